/**
 * Pending ReadIndex requests on the leader (Raft thesis §6.4). A request records the commit index
 * when it arrived; it is answered once a quorum of voters has acknowledged a heartbeat carrying its
 * context, which proves no newer leader existed at that moment. Heartbeats are sent in order, so
 * an acknowledgement of one request's heartbeat also confirms every request queued before it.
 */
import { assert } from '../errors.ts';
import type { LogIndex, MemberId } from './types.ts';

export interface ReadRequest {
  readonly context: string;
  readonly index: LogIndex;
  /** The member to answer: the leader itself or the follower that forwarded the request. */
  readonly requester: MemberId;
  readonly acks: Set<MemberId>;
}

export type AddResult = 'added' | 'duplicate' | 'full';

export class ReadOnlyQueue {
  readonly #capacity: number;
  #queue: ReadRequest[] = [];
  readonly #byContext = new Map<string, ReadRequest>();

  constructor(capacity: number) {
    assert(capacity > 0, `read queue capacity ${capacity} is positive`);
    this.#capacity = capacity;
  }

  get size(): number {
    return this.#queue.length;
  }

  add(request: ReadRequest): AddResult {
    if (this.#byContext.has(request.context)) return 'duplicate';
    if (this.#queue.length >= this.#capacity) return 'full';
    this.#queue.push(request);
    this.#byContext.set(request.context, request);
    return 'added';
  }

  /** Record `from`'s acknowledgement; the acknowledgers so far, or undefined for an unknown context. */
  ack(context: string, from: MemberId): ReadonlySet<MemberId> | undefined {
    const request = this.#byContext.get(context);
    request?.acks.add(from);
    return request?.acks;
  }

  /** Remove and return every request up to and including the one for `context`. */
  releaseThrough(context: string): readonly ReadRequest[] {
    const at = this.#queue.findIndex((request) => request.context === context);
    if (at < 0) return [];
    const released = this.#queue.slice(0, at + 1);
    this.#queue = this.#queue.slice(at + 1);
    for (const request of released) this.#byContext.delete(request.context);
    return released;
  }

  /** The newest pending context: a heartbeat carrying it serves every pending request. */
  lastContext(): string | undefined {
    return this.#queue.at(-1)?.context;
  }

  reset(): void {
    this.#queue = [];
    this.#byContext.clear();
  }
}
