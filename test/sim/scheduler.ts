/**
 * Simulated time: a queue of events ordered by (time, sequence number), so events due at the same
 * millisecond run in the order they were scheduled and a run is a pure function of the seed.
 *
 * Every event has an owner: a member index, or `world` for the simulator, clients and nemesis. A
 * paused member (a stop-the-world pause: GC, VM migration, SIGSTOP) runs nothing: its events
 * (timer ticks, message deliveries, disk completions, client requests) wait until it resumes and
 * then run in their original order.
 */
export const world = -1;

export interface SimEvent {
  readonly time: number;
  readonly seq: number;
  readonly owner: number;
  readonly run: () => void;
}

export class Scheduler {
  #now = 0;
  #seq = 0;
  readonly #heap: SimEvent[] = [];
  readonly #pausedUntil = new Map<number, number>();
  /** Events run so far. */
  executed = 0;

  get now(): number {
    return this.#now;
  }

  get pending(): number {
    return this.#heap.length;
  }

  at(time: number, owner: number, run: () => void): void {
    this.#push({ time: Math.max(time, this.#now), seq: this.#seq++, owner, run });
  }

  after(delayMs: number, owner: number, run: () => void): void {
    this.at(this.#now + delayMs, owner, run);
  }

  /** Freezes `owner` until `untilMs` (extends an earlier pause, never shortens it). */
  pause(owner: number, untilMs: number): void {
    this.#pausedUntil.set(owner, Math.max(untilMs, this.#pausedUntil.get(owner) ?? 0));
  }

  resume(owner: number): void {
    this.#pausedUntil.delete(owner);
  }

  isPaused(owner: number): boolean {
    return (this.#pausedUntil.get(owner) ?? -1) > this.#now;
  }

  /**
   * The next event to run, with the clock moved to its time; undefined (the clock moved to
   * `untilMs`) when no event is due by then.
   */
  next(untilMs = Infinity): SimEvent | undefined {
    for (;;) {
      const top = this.#heap[0];
      if (top === undefined || top.time > untilMs) {
        if (untilMs !== Infinity) this.#now = Math.max(this.#now, untilMs);
        return undefined;
      }
      const event = this.#pop()!;
      const until = this.#pausedUntil.get(event.owner);
      if (until !== undefined && until > event.time) {
        // Re-queued in pop order, so the owner's events keep their relative order.
        this.#push({ time: until, seq: this.#seq++, owner: event.owner, run: event.run });
        continue;
      }
      this.#now = event.time;
      this.executed++;
      return event;
    }
  }

  // A binary min-heap on (time, seq).
  #push(event: SimEvent): void {
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(event, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = event;
  }

  #pop(): SimEvent | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
