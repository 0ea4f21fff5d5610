/**
 * Waiting on the Raft member without polling: a condition is checked now and again after every
 * Ready the member advances (RaftNode.onAdvanced), which is when its leader, role and
 * configuration can change; a bound, when there is one, goes through the Timers port.
 */
import type { Timers } from '../../io/timers.ts';

/** What the waits need of a RaftNode. */
export interface AdvanceEvents {
  onAdvanced(listener: () => void): () => void;
}

/** Calls `fn` once, as soon as `condition` holds (at once if it does now); returns a function that cancels the watch. */
export function whenTrue(
  raft: AdvanceEvents,
  condition: () => boolean,
  fn: () => void,
): () => void {
  if (condition()) {
    fn();
    return () => {};
  }
  const stop = raft.onAdvanced(() => {
    if (!condition()) return;
    stop();
    fn();
  });
  return stop;
}

/** Resolves true once `condition` holds, or false once `timeoutMs` has passed without it. */
export function waitUntil(
  raft: AdvanceEvents,
  condition: () => boolean,
  options: { readonly timers: Timers; readonly timeoutMs: number },
): Promise<boolean> {
  if (condition()) return Promise.resolve(true);
  return new Promise((resolve) => {
    let cancelTimer: () => void = () => {};
    const stopWatch = whenTrue(raft, condition, () => {
      cancelTimer();
      resolve(true);
    });
    cancelTimer = options.timers.after(options.timeoutMs, () => {
      stopWatch();
      resolve(false);
    });
  });
}
