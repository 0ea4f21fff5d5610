/**
 * The Raft log as the core sees it: a compaction point (index and term of the last snapshot), then
 * every later entry in memory. Entries after `stableIndex` are not yet durable ("unstable"): they
 * go out in Ready.entries and become stable when advance() reports them persisted. A snapshot
 * received from the leader is likewise pending until persisted.
 *
 * Invariants: snapshotIndex <= applied <= committed <= lastIndex (applied may trail the
 * snapshot index only while a received snapshot is pending); stableIndex <= lastIndex.
 */
import { assert } from '../errors.ts';
import type { Entry, LogIndex, Snapshot, Term } from './types.ts';

export interface LogStart {
  readonly snapshotIndex: LogIndex;
  readonly snapshotTerm: Term;
  /** Durable entries following the snapshot, contiguous. */
  readonly entries: readonly Entry[];
  readonly committed: LogIndex;
}

export class RaftLog {
  #snapshotIndex: LogIndex;
  #snapshotTerm: Term;
  /** #entries[k].index === #snapshotIndex + 1 + k */
  #entries: Entry[];
  #stableIndex: LogIndex;
  #pendingSnapshot: Snapshot | null = null;
  #committed: LogIndex;
  #applied: LogIndex;

  constructor(start: LogStart) {
    this.#snapshotIndex = start.snapshotIndex;
    this.#snapshotTerm = start.snapshotTerm;
    this.#entries = [];
    let previousTerm = start.snapshotTerm;
    for (const entry of start.entries) {
      assert(
        entry.index === this.lastIndex() + 1,
        `log entry ${entry.index} does not follow ${this.lastIndex()}`,
      );
      assert(
        entry.term >= previousTerm,
        `log entry ${entry.index} has term ${entry.term} below ${previousTerm}`,
      );
      previousTerm = entry.term;
      this.#entries.push(entry);
    }
    this.#stableIndex = this.lastIndex();
    assert(
      start.committed >= start.snapshotIndex && start.committed <= this.lastIndex(),
      `commit ${start.committed} outside the log [${start.snapshotIndex}, ${this.lastIndex()}]`,
    );
    this.#committed = start.committed;
    // The state machine is rebuilt from the snapshot; later committed entries are handed out again.
    this.#applied = start.snapshotIndex;
  }

  get snapshotIndex(): LogIndex {
    return this.#snapshotIndex;
  }
  get stableIndex(): LogIndex {
    return this.#stableIndex;
  }
  get committed(): LogIndex {
    return this.#committed;
  }
  get applied(): LogIndex {
    return this.#applied;
  }
  get pendingSnapshot(): Snapshot | null {
    return this.#pendingSnapshot;
  }

  firstIndex(): LogIndex {
    return this.#snapshotIndex + 1;
  }

  lastIndex(): LogIndex {
    return this.#snapshotIndex + this.#entries.length;
  }

  /** The term of the entry at `index`, or undefined when it is compacted away or not yet written. */
  term(index: LogIndex): Term | undefined {
    if (index === this.#snapshotIndex) return this.#snapshotTerm;
    if (index < this.#snapshotIndex || index > this.lastIndex()) return undefined;
    return this.#entry(index).term;
  }

  lastTerm(): Term {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, 'the last log entry has a term');
    return term;
  }

  matchTerm(index: LogIndex, term: Term): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: grant a vote only to a candidate whose log is at least as up to date. */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, hi), or undefined when some of them are compacted away. */
  slice(lo: LogIndex, hi: LogIndex): readonly Entry[] | undefined {
    if (lo <= this.#snapshotIndex) return undefined;
    assert(
      hi <= this.lastIndex() + 1 && lo <= hi,
      `slice [${lo}, ${hi}) outside the log ending at ${this.lastIndex()}`,
    );
    const offset = this.#snapshotIndex + 1;
    return this.#entries.slice(lo - offset, hi - offset);
  }

  /** Leader: append its own new entries. */
  append(entries: readonly Entry[]): void {
    for (const entry of entries) {
      assert(
        entry.index === this.lastIndex() + 1,
        `appended entry ${entry.index} does not follow ${this.lastIndex()}`,
      );
      this.#entries.push(entry);
    }
  }

  /**
   * Follower: accept entries following (prevIndex, prevTerm) if that entry matches, truncating a
   * conflicting suffix (Raft §5.3). Returns the index of the last entry the message covers, or
   * null when prevIndex does not match. Entries already present are kept, so a duplicated or
   * reordered message never shortens the log.
   */
  maybeAppend(prevIndex: LogIndex, prevTerm: Term, entries: readonly Entry[]): LogIndex | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const conflict = entries.find((entry) => this.term(entry.index) !== entry.term);
    if (conflict !== undefined) {
      assert(
        conflict.index > this.#committed,
        `entry ${conflict.index} conflicts with committed entry (commit ${this.#committed})`,
      );
      this.#truncateAndAppend(entries.slice(conflict.index - prevIndex - 1));
    }
    return prevIndex + entries.length;
  }

  #truncateAndAppend(entries: readonly Entry[]): void {
    const first = entries[0];
    assert(
      first !== undefined && first.index > this.#snapshotIndex,
      'truncation keeps the snapshot',
    );
    this.#entries.length = first.index - this.#snapshotIndex - 1;
    // The persisted copy of the dropped suffix is overwritten when these entries are persisted.
    this.#stableIndex = Math.min(this.#stableIndex, first.index - 1);
    this.append(entries);
  }

  /**
   * The largest index <= `index` whose entry has a term <= `term`: no entry between it and
   * `index` can match a log whose entry at `index` has `term`, so a probe may jump there.
   * Below the compaction point terms are unknown, and `index` is returned unchanged.
   */
  findConflictByTerm(index: LogIndex, term: Term): { index: LogIndex; term: Term | undefined } {
    let i = Math.min(index, this.lastIndex());
    if (i < this.#snapshotIndex) return { index, term: undefined };
    while (i > this.#snapshotIndex && this.#entry(i).term > term) i--;
    return { index: i, term: this.term(i) };
  }

  commitTo(index: LogIndex): void {
    if (index <= this.#committed) return;
    assert(
      index <= this.lastIndex(),
      `commit ${index} is past the last log entry ${this.lastIndex()}`,
    );
    this.#committed = index;
  }

  unstableEntries(): readonly Entry[] {
    return this.#entries.slice(this.#stableIndex - this.#snapshotIndex);
  }

  /** The node persisted entries up to (index, term); a later truncation may have replaced them. */
  stableTo(index: LogIndex, term: Term): void {
    if (index > this.#stableIndex && this.matchTerm(index, term)) this.#stableIndex = index;
  }

  hasCommittedToApply(): boolean {
    return this.#pendingSnapshot === null && this.#committed > this.#applied;
  }

  /** Committed entries not yet handed out for applying; none while a snapshot must be applied first. */
  committedToApply(): readonly Entry[] {
    if (this.#pendingSnapshot !== null || this.#committed <= this.#applied) return [];
    const entries = this.slice(this.#applied + 1, this.#committed + 1);
    assert(
      entries !== undefined,
      `committed entries after ${this.#applied} were compacted before being applied`,
    );
    return entries;
  }

  appliedTo(index: LogIndex): void {
    assert(index === this.#applied + 1, `applied entry ${index} does not follow ${this.#applied}`);
    assert(
      index <= this.#committed,
      `applied entry ${index} is not committed (commit ${this.#committed})`,
    );
    this.#applied = index;
  }

  /** Follower: replace the whole log by a snapshot from the leader (persisted and applied later). */
  restore(snapshot: Snapshot): void {
    const { index, term } = snapshot.meta;
    assert(
      index > this.#committed,
      `restored snapshot ${index} is not past commit ${this.#committed}`,
    );
    this.#snapshotIndex = index;
    this.#snapshotTerm = term;
    this.#entries = [];
    this.#stableIndex = index;
    this.#committed = index;
    this.#pendingSnapshot = snapshot;
  }

  /** The node persisted and applied the pending snapshot at `index`. */
  snapshotApplied(index: LogIndex): void {
    if (this.#pendingSnapshot?.meta.index === index) this.#pendingSnapshot = null;
    if (index > this.#applied) this.#applied = index;
  }

  /** Drop entries up to `index` (inclusive), which a snapshot of the state machine now covers. */
  compact(index: LogIndex, term: Term): void {
    assert(index <= this.#applied, `compaction at ${index} is past applied ${this.#applied}`);
    if (index < this.#snapshotIndex) return;
    assert(
      this.matchTerm(index, term),
      `snapshot term ${term} at ${index} differs from the log's ${this.term(index)}`,
    );
    if (index === this.#snapshotIndex) return;
    this.#entries = this.#entries.slice(index - this.#snapshotIndex);
    this.#snapshotIndex = index;
    this.#snapshotTerm = term;
    this.#stableIndex = Math.max(this.#stableIndex, index);
  }

  /**
   * Drops the entries after `index`, committed or not. Unsafe: only for a deliberately broken
   * variant in the simulator's self-test (RaftOptions.unsafeTestingMutations); Raft never does this.
   */
  unsafeDiscardAfter(index: LogIndex): void {
    if (index >= this.lastIndex() || index < this.#snapshotIndex) return;
    this.#entries.length = index - this.#snapshotIndex;
    this.#stableIndex = Math.min(this.#stableIndex, index);
  }

  /** True when a committed, not yet applied entry is a membership change. */
  hasUnappliedConfChange(): boolean {
    const pending =
      this.slice(Math.max(this.#applied, this.#snapshotIndex) + 1, this.#committed + 1) ?? [];
    return pending.some((entry) => entry.type === 'conf');
  }

  #entry(index: LogIndex): Entry {
    const entry = this.#entries[index - this.#snapshotIndex - 1];
    assert(entry !== undefined && entry.index === index, `log entry ${index} is in memory`);
    return entry;
  }
}
