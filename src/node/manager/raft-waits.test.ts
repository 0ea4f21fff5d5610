/**
 * catchUp, the manager's step 4: a read lost to an election is tried again with the next leader
 * after the member's next Ready; one refused by a stop, or past the limit, is thrown. Pure logic:
 * a scripted member and a hand-driven clock.
 */
import { expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import type { Timers } from '../../io/timers.ts';
import { catchUp, type CatchUpRaft } from './_raft-waits.ts';

/** A clock that moves only when told, with its timers. */
function handClock(): Timers & { advance(ms: number): void } {
  let now = 0;
  const timers = new Set<{ at: number; fn: () => void }>();
  return {
    now: () => now,
    after(ms, fn) {
      const timer = { at: now + ms, fn };
      timers.add(timer);
      return () => void timers.delete(timer);
    },
    every: () => () => {},
    turn: (fn) => void setImmediate(fn),
    advance(ms) {
      now += ms;
      for (const timer of [...timers])
        if (timer.at <= now) {
          timers.delete(timer);
          timer.fn();
        }
    },
  };
}

const lostToElection = (): SecretdError =>
  new SecretdError(
    'unavailable',
    'Cannot read: another leader was elected before this read was confirmed; try again',
  );

/** A member whose reads end as `outcomes` say, one per read; Readies come when `ready()` is called. */
function scriptedRaft(outcomes: Array<Error | null>): CatchUpRaft & {
  reads: number;
  stopped: boolean;
  ready(): void;
} {
  const listeners = new Set<() => void>();
  const raft = {
    reads: 0,
    stopped: false,
    waitForLeader: () => Promise.resolve(),
    linearizableRead: () => {
      const outcome = outcomes[raft.reads++] ?? null;
      return outcome === null ? Promise.resolve() : Promise.reject(outcome);
    },
    onAdvanced(listener: () => void) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    ready() {
      for (const listener of [...listeners]) listener();
    },
  };
  return raft;
}

const settled = (promise: Promise<void>): Promise<string> =>
  promise.then(
    () => 'caught up',
    (error: Error) => error.message,
  );

const turns = async (n = 5): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

test('a read lost to an election is tried again after the next Ready, and catching up ends with it', async () => {
  const timers = handClock();
  const raft = scriptedRaft([lostToElection(), null]);
  let outcome = 'waiting';
  void settled(catchUp(raft, { timers, timeoutMs: 30_000 })).then((o) => (outcome = o));
  await turns();
  // Refused once, and not tried again before a Ready.
  expect([raft.reads, outcome]).toEqual([1, 'waiting']);
  raft.ready();
  await turns();
  expect([raft.reads, outcome]).toEqual([2, 'caught up']);
});

test('a read refused because the member stopped, or of another kind, is thrown at once', async () => {
  const timers = handClock();
  const stopped = scriptedRaft([new SecretdError('unavailable', 'Node is shutting down')]);
  stopped.stopped = true;
  expect(await settled(catchUp(stopped, { timers, timeoutMs: 30_000 }))).toBe(
    'Node is shutting down',
  );
  expect(stopped.reads).toBe(1);
  const corrupt = scriptedRaft([new SecretdError('corrupt', 'Snapshot is corrupt')]);
  expect(await settled(catchUp(corrupt, { timers, timeoutMs: 30_000 }))).toBe(
    'Snapshot is corrupt',
  );
  expect(corrupt.reads).toBe(1);
});

test('past its limit, catching up ends with the last refusal', async () => {
  const timers = handClock();
  const raft = scriptedRaft(Array.from({ length: 100 }, lostToElection));
  let outcome = 'waiting';
  void settled(catchUp(raft, { timers, timeoutMs: 1_000 })).then((o) => (outcome = o));
  await turns();
  raft.ready();
  await turns();
  expect([raft.reads, outcome]).toEqual([2, 'waiting']);
  // No Ready comes: the wait for one ends at the limit, and the next refusal is thrown.
  timers.advance(1_000);
  await turns();
  expect(outcome).toBe(lostToElection().message);
  expect(raft.reads).toBe(3);
});
