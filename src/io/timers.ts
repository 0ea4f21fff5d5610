/**
 * The clock port: wall-clock timers for the real node, simulated time in the deterministic
 * simulator. Everything in src/node that waits goes through it.
 */
export interface Timers {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `fn` after `ms`; returns a function that cancels it. */
  after(ms: number, fn: () => void): () => void;
  /** Calls `fn` every `ms`; returns a function that stops it. */
  every(ms: number, fn: () => void): () => void;
  /**
   * Calls `fn` at the next turn of the event loop: after every callback already queued for this
   * one (setImmediate; Bun's setTimeout(0) waits a millisecond).
   */
  turn(fn: () => void): void;
}

export const systemTimers: Timers = {
  now: () => performance.now(),
  after(ms, fn) {
    const handle = setTimeout(fn, ms);
    return () => clearTimeout(handle);
  },
  every(ms, fn) {
    const handle = setInterval(fn, ms);
    return () => clearInterval(handle);
  },
  turn(fn) {
    setImmediate(fn);
  },
};

export function sleep(timers: Timers, ms: number): Promise<void> {
  return new Promise((resolve) => timers.after(ms, resolve));
}
