/**
 * The Timers port on simulated time, for one incarnation of one member's process.
 *
 * `rate` models clock drift: a member whose clock runs fast (rate > 1) fires its timers early and
 * reads a larger now(). Raft here uses only durations (ticks), never wall-clock agreement, so
 * drift must be harmless; it shifts which member times out first.
 *
 * Once the process crashes (`alive()` turns false) no timer of this incarnation fires again,
 * which is what a dead process's timers do.
 */
import type { Timers } from '../../src/io/timers.ts';
import type { Scheduler } from './scheduler.ts';

export class SimTimers implements Timers {
  readonly #scheduler: Scheduler;
  readonly #owner: number;
  readonly #alive: () => boolean;
  readonly #rate: number;

  constructor(scheduler: Scheduler, owner: number, alive: () => boolean, rate = 1) {
    this.#scheduler = scheduler;
    this.#owner = owner;
    this.#alive = alive;
    this.#rate = rate;
  }

  now(): number {
    return this.#scheduler.now * this.#rate;
  }

  after(ms: number, fn: () => void): () => void {
    let cancelled = false;
    this.#scheduler.after(ms / this.#rate, this.#owner, () => {
      if (!cancelled && this.#alive()) fn();
    });
    return () => {
      cancelled = true;
    };
  }

  turn(fn: () => void): void {
    this.after(0, fn);
  }

  every(ms: number, fn: () => void): () => void {
    let cancelled = false;
    const arm = (): void => {
      this.#scheduler.after(ms / this.#rate, this.#owner, () => {
        if (cancelled || !this.#alive()) return;
        arm(); // re-armed first, so a throwing callback still leaves the timer running as setInterval does
        fn();
      });
    };
    arm();
    return () => {
      cancelled = true;
    };
  }
}
