/** The Timers port on a hand-driven clock: nothing fires until the test calls `advance`. */
import type { Timers } from '../../src/io/timers.ts';

export class ManualTimers implements Timers {
  time = 0;
  readonly #tasks: Array<{ at: number; every: number; fn: () => void; live: boolean }> = [];
  now(): number {
    return this.time;
  }
  after(ms: number, fn: () => void): () => void {
    const task = { at: this.time + ms, every: 0, fn, live: true };
    this.#tasks.push(task);
    return () => (task.live = false);
  }
  every(ms: number, fn: () => void): () => void {
    const task = { at: this.time + ms, every: ms, fn, live: true };
    this.#tasks.push(task);
    return () => (task.live = false);
  }
  /** A turn of the event loop is not time: it comes on its own, as in production. */
  turn(fn: () => void): void {
    setImmediate(fn);
  }
  /** Milliseconds from now to each one-shot timer still waiting, soonest first. */
  pendingAfters(): number[] {
    return this.#tasks
      .filter((t) => t.live && t.every === 0)
      .map((t) => t.at - this.time)
      .sort((a, b) => a - b);
  }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const next = this.#tasks.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.time = next.at;
      if (next.every > 0) next.at += next.every;
      else next.live = false;
      next.fn();
    }
    this.time = end;
  }
}
