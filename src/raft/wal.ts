/**
 * The encrypted write-ahead log: Raft's HardState, entries and snapshot markers, append-only, in
 * segment files `<seq:016x>-<firstIndex:016x>.wal` (seq counts up from 1 without gaps; firstIndex
 * is the index the segment's first new entry would take). Framing is in wal-codec.ts.
 *
 *   segment = header batch* ;  batch = (ENTRY | HARDSTATE | SNAPSHOT)* COMMIT
 *
 * - `save` writes one batch with one write and one fdatasync. Entries come before the HardState
 *   so one sync covers both, as in etcd. An ENTRY at an index already written replaces it and
 *   everything after it (Raft's conflict rule), on replay as when written.
 * - Segments are created whole (header and a batch re-stating the HardState) as a temp file,
 *   synced, renamed and the directory synced, so a segment never has a torn head and deleting
 *   older segments never loses the HardState. A full segment is synced before the next exists,
 *   so damage in any segment but the last is corruption.
 * - The last segment is extended sparsely ahead of its writes (`preallocateBytes`, 4 MiB by
 *   default), as etcd preallocates its segments: an fdatasync then has no new file size to record
 *   (on ext4 here 75-100 µs instead of 110-145 µs). A segment is cut back to its data, durably,
 *   before the next one exists, so only the last may end in zeros.
 * - Recovery: only the unsynced tail of the last segment may be torn (_wal-scan.ts); it is
 *   truncated, durably, before anything is appended, and reported (`onTornTail`: sizes and entry
 *   indexes, never contents). Zeros alone after the last complete batch (preallocated space, or a
 *   batch none of which reached the disk) are cut off the same way but are not a torn tail.
 *   Anything else refuses to start, including a HardState whose commit index lies past the end of
 *   the log (committed entries are missing). What recovery read is
 *   synced once more before use, in case only the process had crashed.
 * - A log that lost whole segments at its end, or all of them, is still a valid log: only the
 *   marker file kept beside it (_wal-marker.ts) tells, and then open refuses to start.
 * - A SNAPSHOT marker records whether the entries after it stay (local compaction) or go (a
 *   snapshot installed from the leader). A segment is deleted once the next one starts at or
 *   before marker index + 1, oldest first, syncing the directory after each so no gap can appear.
 *
 * - Key rotation (`rotateKey`): new records are sealed with the new key at once, in a new segment,
 *   so a segment is always sealed under one key (checked on replay) and the old key's segments go
 *   whole once a snapshot covers them. A log opened with older keys (a rotation a crash cut short)
 *   reads their segments and starts a new segment under the current key before appending.
 *
 * Not detected: an attacker with the disk can roll the whole directory back to an older valid copy
 * (and with it votedFor), and a cut inside the last segment looks like a torn tail (it is logged).
 * Nor does the WAL lock its directory: one process per data dir.
 */
import { invalid, SecretdError } from '../errors.ts';
import type { Random } from '../crypto/random.ts';
import type { FileHandle, FileSystem } from '../io/fs.ts';
import { walBatchBufferBytesMax, walPreallocateBytes, walSegmentBytesTarget } from '../limits.ts';
import { LiveLog, Replay } from './_wal-log.ts';
import { checkAgainstMarker, readMarker, writeMarker } from './_wal-marker.ts';
import { SpareBytes } from './_spare-bytes.ts';
import {
  createSegment,
  listSegments,
  replaySegment,
  type KeyedSegment,
  type SegmentIO,
  type TornTail,
} from './_wal-segments.ts';
import type { Entry, HardState, SnapshotMeta } from './types.ts';
import { encodeBatch, segmentHeaderBytes, type WALKey, type WALRecord } from './wal-codec.ts';

export type { TornTail } from './_wal-segments.ts';

export interface WALOptions {
  readonly dek: Uint8Array;
  readonly keyId: number;
  readonly random: Random;
  readonly fs: FileSystem;
  /**
   * Keys of a rotation not yet finished, besides `dek`: segments sealed under them are read, and
   * the next record goes to a new segment under `dek`. Default: none.
   */
  readonly olderKeys?: readonly WALKey[];
  /** Size past which the next segment is started. Default `walSegmentBytesTarget` (64 MiB). */
  readonly segmentBytesTarget?: number;
  /**
   * How far ahead of its writes the last segment is extended (AppendOptions). Default
   * `walPreallocateBytes` (4 MiB); 0: the file grows with each write.
   */
  readonly preallocateBytes?: number;
  /** Told when recovery truncates a torn tail (for logs and simulator coverage). Default: nothing. */
  readonly onTornTail?: (tail: TornTail) => void;
  /**
   * A file outside `dir` recording that this log exists and its newest segment (_wal-marker.ts):
   * with it, a log that is gone, empty or missing its newest segments refuses to open. Default:
   * none, and an empty directory starts an empty log.
   */
  readonly marker?: string;
  /** The caller knows this log existed (it holds a snapshot taken from it): no segments refuses to open. */
  readonly mustExist?: boolean;
}

export interface WALState {
  readonly hardState: HardState | null;
  readonly snapshot: SnapshotMeta | null;
  /** After snapshot.index (or from 1), contiguous. */
  readonly entries: Entry[];
}

export interface WALBatch {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
}

/** The segment being appended to: its handle, its end, and how much of it is known synced. */
interface Tip {
  readonly handle: FileHandle;
  readonly offset: number;
  readonly durableOffset: number;
}

export class WAL {
  private queue: Promise<unknown> = Promise.resolve();
  private failure: unknown = null;
  /** The largest batch's bytes so far (up to walBatchBufferBytesMax), sealed into again (append). */
  private readonly batchBuffers = new SpareBytes(walBatchBufferBytesMax);
  private closed = false;
  private cutQueued = false;
  /** Where the current segment's own batches begin; a segment holding none is never cut. */
  private createdOffset = segmentHeaderBytes;

  private constructor(
    private readonly dir: string,
    private io: SegmentIO,
    private readonly segmentBytesTarget: number,
    private readonly segments: KeyedSegment[],
    private tip: Tip,
    private hardState: HardState | null,
    private snapshot: SnapshotMeta | null,
    /** The terms of the live entries, to check saves and decide what a snapshot marker keeps. */
    private readonly terms: LiveLog<number>,
  ) {}

  /** Opens the log in `dir`, creating an empty one if there is none, and returns what it holds. */
  static async open(dir: string, options: WALOptions): Promise<{ wal: WAL; state: WALState }> {
    const { fs } = options;
    const io: SegmentIO = {
      fs,
      key: { dek: options.dek, keyId: options.keyId, random: options.random },
      olderKeys: options.olderKeys ?? [],
      onTornTail: options.onTornTail,
      marker: options.marker,
      preallocateBytes: options.preallocateBytes ?? walPreallocateBytes,
    };
    const marker = options.marker === undefined ? null : await readMarker(fs, options.marker);
    await fs.mkdirp(dir);
    const listed = await listSegments(fs, dir);
    if (options.marker !== undefined)
      checkAgainstMarker(dir, options.marker, marker, listed.at(-1)?.seq ?? null);
    if (listed.length === 0 && options.mustExist) {
      throw new SecretdError(
        'corrupt',
        `WAL in ${dir} is gone (no segments) but this node holds a snapshot taken from it: refusing to start with an empty log, which would forget acknowledged writes`,
      );
    }
    const segments: KeyedSegment[] = [];
    const replay = new Replay();
    let offset = 0;
    for (const [i, segment] of listed.entries()) {
      const replayed = await replaySegment(io, segment, i === listed.length - 1, replay);
      segments.push({ ...segment, keyId: replayed.keyId });
      offset = replayed.offset;
    }
    if (segments.length === 0) {
      const created = await createSegment(io, dir, { seq: 1, firstIndex: 1 }, []);
      await created.handle.close();
      segments.push(created.segment);
      offset = created.offset;
    }
    const finished = replay.finish();
    if ('reason' in finished)
      throw new SecretdError(
        'corrupt',
        `WAL in ${dir} is inconsistent: ${finished.reason}; refusing to start`,
      );
    const { state } = finished;
    const lastSeq = segments[segments.length - 1]!.seq;
    if (options.marker !== undefined && (marker === null || marker.lastSegment < lastSeq))
      await writeMarker(fs, options.marker, { lastSegment: lastSeq });
    const handle = await fs.openAppend(segments[segments.length - 1]!.path, {
      preallocateBytes: io.preallocateBytes,
    });
    // What was read may sit only in the page cache (the process, not the machine, crashed):
    // make it durable before Raft relies on it and before records claim it is.
    await handle.sync();
    const tip = { handle, offset, durableOffset: offset };
    const terms = new LiveLog<number>(
      state.snapshot?.index ?? 0,
      true,
      (term) => term,
      state.entries.map((entry) => entry.term),
    );
    const target = options.segmentBytesTarget ?? walSegmentBytesTarget;
    const wal = new WAL(dir, io, target, segments, tip, state.hardState, state.snapshot, terms);
    // A rotation cut short: nothing is appended to a segment sealed under an older key.
    if (segments.at(-1)!.keyId !== io.key.keyId) await wal.rotateKey(io.key);
    return { wal, state };
  }

  /**
   * Seals every later record with `key`, in a new segment (unless the newest is already sealed
   * with it). Resolves with the last index that segments sealed under other keys may hold (0 if
   * there are none): a snapshot at or past it lets `markSnapshot` delete them all.
   */
  rotateKey(key: WALKey): Promise<number> {
    return this.serialize(async () => {
      const random = this.io.key.random;
      const previous = [this.io.key, ...this.io.olderKeys].filter((k) => k.keyId !== key.keyId);
      this.io = {
        ...this.io,
        key: { dek: key.dek, keyId: key.keyId, random },
        olderKeys: previous,
      };
      if (this.segments.at(-1)!.keyId !== key.keyId) await this.startSegment();
      // markSnapshot deletes a segment once the next one starts at or before the snapshot index + 1.
      const last = this.segments.findLastIndex((segment) => segment.keyId !== key.keyId);
      let boundary = 0;
      for (const segment of this.segments.slice(1, last + 2))
        boundary = Math.max(boundary, segment.firstIndex - 1);
      return boundary;
    });
  }

  /** The key id of each segment on disk, oldest first. */
  keyIds(): number[] {
    return this.segments.map((segment) => segment.keyId);
  }

  /** Appends the batch with one write and, unless `sync` is false, one fdatasync before resolving. */
  save(batch: WALBatch, options: { readonly sync?: boolean } = {}): Promise<void> {
    return this.serialize(async () => {
      this.checkEntries(batch.entries);
      const records: WALRecord[] = batch.entries.map((entry) => ({ type: 'entry', entry }));
      if (batch.hardState !== null)
        records.push({ type: 'hard-state', hardState: batch.hardState });
      if (records.length === 0) return;
      await this.cutIfFull(); // saves queued before the cut below bound the segment to one batch over
      await this.append(records, options.sync ?? true);
      for (const entry of batch.entries) this.terms.put(entry.index, entry.term);
      if (batch.hardState !== null) this.hardState = batch.hardState;
      if (this.tip.offset >= this.segmentBytesTarget && !this.cutQueued) {
        // Queued behind this save, which resolves after its own write and sync only. A failure
        // poisons the WAL, and the next call reports it.
        this.cutQueued = true;
        this.serialize(() => this.cutIfFull()).catch(() => {});
      }
    });
  }

  /**
   * Starts a new segment now unless the current one holds nothing since it was created: a
   * snapshot at the last index written then lets `markSnapshot` delete every segment before it,
   * so a restart replays nothing the snapshot already holds.
   */
  cut(): Promise<void> {
    return this.serialize(async () => {
      this.cutQueued = false;
      if (this.tip.offset === this.createdOffset) return;
      await this.startSegment();
    });
  }

  /** Records (durably) that a snapshot at `meta.index` exists, then deletes segments wholly before it. */
  markSnapshot(meta: SnapshotMeta): Promise<void> {
    return this.serialize(async () => {
      if (this.snapshot !== null && meta.index < this.snapshot.index) {
        throw invalid(
          `Cannot mark snapshot at index ${meta.index}: the WAL already has one at ${this.snapshot.index}`,
        );
      }
      const term =
        meta.index === this.snapshot?.index ? this.snapshot.term : this.terms.at(meta.index);
      const keepLog = term === meta.term;
      await this.append([{ type: 'snapshot', meta, keepLog }], true);
      if (keepLog) this.terms.compact(meta.index);
      else this.terms.reset(meta.index);
      this.snapshot = meta;
      while (this.segments.length > 1 && this.segments[1]!.firstIndex <= meta.index + 1) {
        const oldest = this.segments[0]!;
        await this.guard(async () => {
          await this.io.fs.remove(oldest.path);
          await this.io.fs.syncDir(this.dir);
        });
        this.segments.shift();
      }
    });
  }

  /** Syncs anything written with `sync: false` and closes the file. Idempotent. */
  close(): Promise<void> {
    const run = this.queue.then(async () => {
      if (this.closed) return;
      this.closed = true;
      try {
        if (this.tip.durableOffset < this.tip.offset && this.failure === null)
          await this.tip.handle.sync();
      } finally {
        // After a failed cut the handle may already be closed; that earlier error is the one to report.
        await this.tip.handle.close().catch((error: unknown) => {
          if (this.failure === null) throw error;
        });
      }
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** Writes never interleave: each operation starts when the one before it has settled. */
  private serialize<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed)
        throw new SecretdError('unavailable', `Cannot write to WAL in ${this.dir}: it is closed`);
      if (this.failure !== null) {
        throw new SecretdError(
          'internal',
          `Cannot write to WAL in ${this.dir}: an earlier write failed`,
          { cause: this.failure },
        );
      }
      return operation();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  /** After an I/O error the file is in an unknown state (fsyncgate): no later write may follow. */
  private async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      this.failure = error;
      throw error;
    }
  }

  private async append(records: readonly WALRecord[], sync: boolean): Promise<void> {
    const { seq } = this.segments[this.segments.length - 1]!;
    const { handle, offset, durableOffset } = this.tip;
    const spare = this.batchBuffers.takeAny();
    const bytes = encodeBatch(records, { seq, offset, durableOffset }, this.io.key, spare);
    try {
      await this.guard(async () => {
        await handle.write(bytes);
        if (sync) await handle.sync();
      });
    } finally {
      // The write has returned: the next batch may be sealed into these bytes (appends never overlap).
      if (spare !== undefined) this.batchBuffers.give(spare);
      if (bytes.buffer !== spare?.buffer) this.batchBuffers.give(bytes);
    }
    const end = offset + bytes.length;
    this.tip = { handle, offset: end, durableOffset: sync ? end : durableOffset };
  }

  private async cutIfFull(): Promise<void> {
    this.cutQueued = false;
    if (this.tip.offset < this.segmentBytesTarget || this.tip.offset === this.createdOffset) return;
    await this.startSegment();
  }

  /** Closes the current segment (synced) and appends from now on to a new one, sealed with the current key. */
  private async startSegment(): Promise<void> {
    const { seq } = this.segments[this.segments.length - 1]!;
    const records: WALRecord[] =
      this.hardState === null ? [] : [{ type: 'hard-state', hardState: this.hardState }];
    await this.guard(async () => {
      if (this.tip.durableOffset < this.tip.offset) await this.tip.handle.sync();
      await this.tip.handle.close();
      const created = await createSegment(
        this.io,
        this.dir,
        { seq: seq + 1, firstIndex: this.terms.lastIndex + 1 },
        records,
      );
      if (this.io.marker !== undefined)
        await writeMarker(this.io.fs, this.io.marker, { lastSegment: seq + 1 });
      this.segments.push(created.segment);
      this.tip = { handle: created.handle, offset: created.offset, durableOffset: created.offset };
      this.createdOffset = created.offset;
    });
  }

  /** The rules replay enforces (LiveLog.put), checked before writing. */
  private checkEntries(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    const { baseIndex, lastIndex } = this.terms;
    if (first.index <= baseIndex || first.index > lastIndex + 1) {
      throw invalid(
        `Cannot save entry ${first.index}: the log holds indexes ${baseIndex + 1} to ${lastIndex}, and the next is ${lastIndex + 1}`,
      );
    }
    let previousTerm =
      first.index - 1 === baseIndex ? this.snapshot?.term : this.terms.at(first.index - 1);
    for (const [i, entry] of entries.entries()) {
      if (entry.index !== first.index + i)
        throw invalid(
          `Cannot save entries: index ${entry.index} does not follow ${first.index + i - 1}`,
        );
      if (!Number.isSafeInteger(entry.term) || entry.term < 0)
        throw invalid(`Cannot save entry ${entry.index}: bad term ${entry.term}`);
      if (previousTerm !== undefined && entry.term < previousTerm) {
        throw invalid(
          `Cannot save entry ${entry.index}: term ${entry.term} is below the term ${previousTerm} before it`,
        );
      }
      previousTerm = entry.term;
    }
  }
}
