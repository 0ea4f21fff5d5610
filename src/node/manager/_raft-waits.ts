/**
 * Waiting on the Raft member without polling: a condition is checked now and again after every
 * Ready the member advances (RaftNode.onAdvanced), which is when its leader, role and
 * configuration can change; a bound, when there is one, goes through the Timers port.
 */
import { SecretdError } from '../../errors.ts';
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

/** What catchUp needs of a RaftNode. */
export interface CatchUpRaft extends AdvanceEvents {
  waitForLeader(timeoutMs: number): Promise<void>;
  linearizableRead(timeoutMs: number): Promise<void>;
  readonly stopped: boolean;
}

/**
 * Resolves once a leader is known and the member's store holds every write committed before the
 * call (a linearizable read), within `timeoutMs`. A read refused as unavailable (lost to an
 * election: RaftNode refuses it once another leader is known) is tried again after the member's
 * next Ready, so that a manager started while the others elect still starts; one refused because
 * the member stopped, or past the limit, is thrown.
 */
export async function catchUp(
  raft: CatchUpRaft,
  options: { readonly timers: Timers; readonly timeoutMs: number },
): Promise<void> {
  const { timers } = options;
  const deadline = timers.now() + options.timeoutMs;
  const left = (): number => Math.max(1, deadline - timers.now());
  for (;;) {
    await raft.waitForLeader(left());
    try {
      return await raft.linearizableRead(left());
    } catch (error) {
      const again =
        error instanceof SecretdError &&
        error.code === 'unavailable' &&
        !raft.stopped &&
        timers.now() < deadline;
      if (!again) throw error;
      // What refused it may refuse again until the next Ready: wait for one (or the limit).
      await nextReady(raft, { timers, timeoutMs: left() });
    }
  }
}

/** Resolves after the member's next Ready, or once `timeoutMs` has passed without one. */
function nextReady(
  raft: AdvanceEvents,
  options: { readonly timers: Timers; readonly timeoutMs: number },
): Promise<void> {
  return new Promise((resolve) => {
    const stop = raft.onAdvanced(() => {
      stop();
      cancel();
      resolve();
    });
    const cancel = options.timers.after(options.timeoutMs, () => {
      stop();
      resolve();
    });
  });
}
