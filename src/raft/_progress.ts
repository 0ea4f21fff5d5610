/**
 * What the leader knows about one follower's log, and how fast it may send to it (etcd's flow
 * control, raft/design.md):
 *   probe      the follower's log end is unknown: one append at a time, the next one only after
 *              a response (or a heartbeat response), walking `next` back on each rejection;
 *   replicate  the follower is known to match up to `match`: appends are streamed optimistically,
 *              at most `Inflights.capacity` unacknowledged at once;
 *   snapshot   the follower needs entries already compacted: nothing is sent until it
 *              acknowledges the snapshot, or until the snapshot times out and probing resumes.
 */
import { assert } from '../errors.ts';
import type { LogIndex } from './types.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A bounded FIFO of the last index carried by each unacknowledged append. */
export class Inflights {
  readonly capacity: number;
  readonly #buffer: LogIndex[];
  #start = 0;
  #count = 0;

  constructor(capacity: number) {
    assert(
      Number.isSafeInteger(capacity) && capacity > 0,
      `in-flight capacity ${capacity} is a positive integer`,
    );
    this.capacity = capacity;
    this.#buffer = new Array<LogIndex>(capacity).fill(0);
  }

  get count(): number {
    return this.#count;
  }

  full(): boolean {
    return this.#count === this.capacity;
  }

  add(lastIndex: LogIndex): void {
    assert(!this.full(), 'no append is sent while the in-flight window is full');
    this.#buffer[(this.#start + this.#count) % this.capacity] = lastIndex;
    this.#count++;
  }

  /** The follower acknowledged everything up to `index`. */
  freeLE(index: LogIndex): void {
    while (this.#count > 0 && (this.#buffer[this.#start] ?? 0) <= index) this.#freeFirst();
  }

  /** Assume the oldest append lost, so that one more may go out and discover the gap. */
  freeFirstOne(): void {
    if (this.#count > 0) this.#freeFirst();
  }

  reset(): void {
    this.#start = 0;
    this.#count = 0;
  }

  #freeFirst(): void {
    this.#start = (this.#start + 1) % this.capacity;
    this.#count--;
  }
}

export class Progress {
  /** Highest index known to match the leader's log. */
  match: LogIndex = 0;
  /** Next index to send. */
  next: LogIndex;
  state: ProgressState = 'probe';
  /** Probe state: an append is out and the next waits for a response. */
  probeSent = false;
  /** Snapshot state: the index of the snapshot sent. */
  pendingSnapshot: LogIndex = 0;
  /** Ticks spent in the snapshot state, to retry a snapshot that was lost. */
  snapshotTicks = 0;
  /** The follower's commit index, as last reported in a heartbeat or append response. */
  commit: LogIndex = 0;
  /** Heard from in the current check-quorum interval. */
  recentActive = false;
  readonly inflights: Inflights;

  constructor(next: LogIndex, inflightMax: number) {
    this.next = next;
    this.inflights = new Inflights(inflightMax);
  }

  becomeProbe(): void {
    this.state = 'probe';
    this.next = this.match + 1;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.pendingSnapshot = 0;
    this.inflights.reset();
  }

  becomeSnapshot(snapshotIndex: LogIndex): void {
    this.state = 'snapshot';
    this.pendingSnapshot = snapshotIndex;
    this.snapshotTicks = 0;
    this.inflights.reset();
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }

  /** Record an append just sent, whose entries end at `lastIndex` (empty: count 0). */
  sentAppend(lastIndex: LogIndex, count: number): void {
    switch (this.state) {
      case 'replicate':
        if (count > 0) {
          this.next = lastIndex + 1;
          this.inflights.add(lastIndex);
        }
        return;
      case 'probe':
        this.probeSent = true;
        return;
      case 'snapshot':
        assert(false, 'no append is sent to a follower receiving a snapshot');
    }
  }

  /** A successful append response for `index`; false when it tells nothing new (stale or duplicate). */
  maybeUpdate(index: LogIndex): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * A rejected append whose prevIndex was `rejected`; the follower (and the leader's own log)
   * suggest retrying after `probeIndex`. False when the rejection is stale.
   */
  maybeDecrTo(rejected: LogIndex, probeIndex: LogIndex): boolean {
    switch (this.state) {
      case 'replicate':
        if (rejected <= this.match) return false;
        break;
      case 'probe':
        if (rejected !== this.next - 1) return false;
        break;
      case 'snapshot':
        return false;
    }
    this.next = Math.max(Math.min(rejected, probeIndex + 1), this.match + 1);
    this.probeSent = false;
    // Optimistic streaming went wrong (a lost or reordered append): find the follower's end again.
    if (this.state === 'replicate') {
      this.state = 'probe';
      this.inflights.reset();
    }
    return true;
  }
}
