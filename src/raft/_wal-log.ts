/**
 * The live log as the WAL sees it: entries after the snapshot, with Raft's conflict rule (an entry
 * at an index already present replaces it and everything after it). Replay and the running WAL
 * share it, so the rules checked before a record is written are the rules checked when it is read.
 */
import { assertNever } from '../errors.ts';
import type { WALRecord } from './_wal-payload.ts';
import type { Entry, HardState, SnapshotMeta } from './types.ts';

export class LiveLog<T> {
  private items: T[];

  /**
   * `base` is the index just before the first item (the snapshot index). An unanchored log (replay
   * before any snapshot marker) may start anywhere: segments holding the entries before it were
   * deleted behind a snapshot whose marker comes later.
   */
  constructor(
    private base: number,
    private anchored: boolean,
    private readonly termOf: (item: T) => number,
    items: T[] = [],
  ) {
    this.items = items;
  }

  get baseIndex(): number {
    return this.base;
  }
  get lastIndex(): number {
    return this.base + this.items.length;
  }
  get all(): readonly T[] {
    return this.items;
  }
  at(index: number): T | undefined {
    return index > this.base ? this.items[index - this.base - 1] : undefined;
  }

  /** Why `item` cannot go at `index`, or null once it is there. */
  put(index: number, item: T): string | null {
    if (index <= this.base || (!this.anchored && this.items.length === 0)) {
      if (this.anchored) return `entry ${index} is at or below the snapshot index ${this.base}`;
      this.base = index - 1;
      this.items = [];
    }
    if (index > this.lastIndex + 1)
      return `entry ${index} would leave a gap after index ${this.lastIndex}`;
    const previous = this.at(index - 1);
    if (previous !== undefined && this.termOf(previous) > this.termOf(item)) {
      return `entry ${index} has term ${this.termOf(item)}, below the term ${this.termOf(previous)} before it`;
    }
    this.items.length = index - this.base - 1;
    this.items.push(item);
    return null;
  }

  /** A snapshot at `index` covers everything up to it; later entries stay. */
  compact(index: number): void {
    if (index < this.base) return; // replay that has not yet seen the marker this log starts after
    this.items.splice(0, Math.min(index - this.base, this.items.length));
    this.base = index;
    // With no entry left after the marker, the next one may legitimately start further on: a
    // snapshot that lagged the log can be marked in a segment whose first entry is past
    // index + 1, and the segment holding the entries between is deleted behind a later marker.
    // Replay.finish() still requires the log to start right after the last marker.
    this.anchored = this.items.length > 0;
  }

  /** An installed snapshot replaces the whole log. */
  reset(index: number): void {
    this.items = [];
    this.base = index;
    this.anchored = true;
  }
}

export interface ReplayedState {
  readonly hardState: HardState | null;
  readonly snapshot: SnapshotMeta | null;
  readonly entries: Entry[];
}

/** Folds decoded records, oldest first, into the state they describe. */
export class Replay {
  private hardState: HardState | null = null;
  private snapshot: SnapshotMeta | null = null;
  private readonly log = new LiveLog<Entry>(0, false, (entry) => entry.term);

  /** Why the record cannot follow the ones before it, or null. */
  apply(record: WALRecord): string | null {
    switch (record.type) {
      case 'entry':
        return this.log.put(record.entry.index, record.entry);
      case 'hard-state':
        this.hardState = record.hardState;
        return null;
      case 'snapshot': {
        const { meta } = record;
        if (this.snapshot !== null && meta.index < this.snapshot.index) {
          return `snapshot marker ${meta.index} is older than the marker ${this.snapshot.index} before it`;
        }
        const there = this.log.at(meta.index);
        if (record.keepLog && there !== undefined && there.term !== meta.term) {
          return `snapshot marker ${meta.index} has term ${meta.term} but the entry there has term ${there.term}`;
        }
        if (record.keepLog) this.log.compact(meta.index);
        else this.log.reset(meta.index);
        this.snapshot = meta;
        return null;
      }
      case 'commit':
        return null;
      case 'group':
        // The scan unpacks groups; one reaching here was nested, which the writer never does.
        return 'a group record inside a group';
      default:
        return assertNever(record);
    }
  }

  /** The final state, or why it is inconsistent. */
  finish(): { readonly state: ReplayedState } | { readonly reason: string } {
    const expectedBase = this.snapshot?.index ?? 0;
    if (this.log.baseIndex !== expectedBase) {
      return {
        reason: `entries start at index ${this.log.baseIndex + 1} but the snapshot index is ${expectedBase}`,
      };
    }
    // Entries are written before the HardState that commits them, in the same batch: a commit index
    // past the log's end means committed entries were lost (a segment cut short, say).
    const end = Math.max(this.log.lastIndex, expectedBase);
    if (this.hardState !== null && this.hardState.commit > end) {
      return {
        reason: `the HardState says entries up to index ${this.hardState.commit} are committed but the log ends at index ${end}, so acknowledged entries are missing`,
      };
    }
    return {
      state: { hardState: this.hardState, snapshot: this.snapshot, entries: [...this.log.all] },
    };
  }
}
