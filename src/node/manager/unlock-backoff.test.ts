/** The unlock back-off: wrong keys in a row slow the next try down, on a hand-driven clock. */
import { describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeUnlockKey } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { systemNow, systemRandom } from '../../io/system.ts';
import {
  unlockAttemptsWaitingMax,
  unlockBackoffInitialMs,
  unlockBackoffMaxMs,
} from '../../limits.ts';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import { until } from '../../../test/helpers/cluster.ts';
import { bootstrapCluster } from '../join/index.ts';
import { Manager, type ManagerOptions } from './manager.ts';
import { writeNodeState } from '../data-dir/index.ts';
import { UnlockBackoff } from './unlock-backoff.ts';

const wrongKey = (): SecretdError =>
  new SecretdError('invalid', "Invalid unlock key: it does not open this node's keys");
const codeOf = (promise: Promise<unknown>): Promise<string> =>
  promise.then(
    () => 'ok',
    (error: SecretdError) => error.code,
  );

/** The waits the back-off asks for after 1, 2, 3, … wrong keys in a row. */
const expectedWaits = (count: number): number[] =>
  Array.from({ length: count }, (_, i) =>
    Math.min(unlockBackoffInitialMs * 2 ** i, unlockBackoffMaxMs),
  );

describe('UnlockBackoff', () => {
  test('a wrong key is zeroed and delays the next try; a right key resets the back-off', async () => {
    const timers = new ManualTimers();
    const backoff = new UnlockBackoff(timers);
    const tried = new Uint8Array(32).fill(7);
    await expect(backoff.attempt(tried, async () => Promise.reject(wrongKey()))).rejects.toThrow(
      'Invalid unlock key',
    );
    expect(tried).toEqual(new Uint8Array(32));
    expect(backoff.state).toEqual({ failures: 1, waitMs: unlockBackoffInitialMs, pending: 0 });

    const right = new Uint8Array(32).fill(9);
    const opened: Uint8Array[] = [];
    const unlocking = backoff.attempt(right, async (key) => void opened.push(key));
    await until(
      'the try to wait for the clock',
      1000,
      () => (timers.pendingAfters().length === 1 ? true : undefined),
      1,
    );
    expect(opened).toEqual([]);
    expect(timers.pendingAfters()).toEqual([unlockBackoffInitialMs]);
    timers.advance(unlockBackoffInitialMs);
    await unlocking;
    expect(opened).toEqual([new Uint8Array(32).fill(9)]);
    expect(right).toEqual(new Uint8Array(32).fill(9));
    expect(backoff.state).toEqual({ failures: 0, waitMs: 0, pending: 0 });
  });

  test('a failure other than a wrong key neither counts nor zeroes the key', async () => {
    const backoff = new UnlockBackoff(new ManualTimers());
    const key = new Uint8Array(32).fill(5);
    await expect(
      backoff.attempt(key, async () =>
        Promise.reject(new SecretdError('unavailable', 'No leader')),
      ),
    ).rejects.toThrow('No leader');
    expect(key).toEqual(new Uint8Array(32).fill(5));
    expect(backoff.state).toEqual({ failures: 0, waitMs: 0, pending: 0 });
  });

  test('attempts beyond the waiting limit are refused at once with their keys zeroed', async () => {
    const timers = new ManualTimers();
    const backoff = new UnlockBackoff(timers);
    await expect(
      backoff.attempt(new Uint8Array(32), async () => Promise.reject(wrongKey())),
    ).rejects.toThrow();
    const keys = Array.from({ length: unlockAttemptsWaitingMax + 3 }, () =>
      new Uint8Array(32).fill(1),
    );
    const outcomes = keys.map((key) =>
      codeOf(backoff.attempt(key, async () => Promise.reject(wrongKey()))),
    );
    expect(backoff.state.pending).toBe(unlockAttemptsWaitingMax);
    expect(await Promise.all(outcomes.slice(unlockAttemptsWaitingMax))).toEqual([
      'unavailable',
      'unavailable',
      'unavailable',
    ]);
    expect(keys.slice(unlockAttemptsWaitingMax)).toEqual(
      Array.from({ length: 3 }, () => new Uint8Array(32)),
    );
    for (const wait of expectedWaits(unlockAttemptsWaitingMax + 1).slice(0, -1)) {
      await until(
        'the next try to wait for the clock',
        1000,
        () => (timers.pendingAfters().length === 1 ? true : undefined),
        1,
      );
      expect(timers.pendingAfters()).toEqual([wait]);
      timers.advance(wait);
    }
    expect(await Promise.all(outcomes.slice(0, unlockAttemptsWaitingMax))).toEqual(
      Array.from({ length: unlockAttemptsWaitingMax }, () => 'invalid'),
    );
    expect(backoff.state).toEqual({
      failures: unlockAttemptsWaitingMax + 1,
      waitMs: unlockBackoffMaxMs,
      pending: 0,
    });
  });
});

describe('Manager.unlock', () => {
  test('wrong keys in a row are tried one per back-off period; the right key still unlocks after', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'secretd-unlock-'));
    const timers = new ManualTimers();
    const options: ManagerOptions = {
      dataDir,
      random: systemRandom,
      now: systemNow,
      tickMs: 10,
      unlockTimers: timers,
      onFatal: (error) => {
        throw error;
      },
    };
    let manager: Manager | null = null;
    try {
      const boot = await bootstrapCluster({
        dataDir,
        listenAddr: '127.0.0.1:0',
        advertiseAddr: '127.0.0.1:4377',
        autolock: true,
        random: systemRandom,
        now: systemNow(),
      });
      const rightKey = encodeUnlockKey(boot.unlockKey!);
      const first = await Manager.bootstrap(options, boot.state, boot.firstCommand, boot.unlockKey);
      await writeNodeState(boot.paths.nodeState, boot.state);
      await first.stop();
      manager = await Manager.open(options);
      const locked = manager;
      expect(locked.locked).toBe(true);

      const wrongKeys = Array.from({ length: 8 }, () => encodeUnlockKey(systemRandom(32)));
      await expect(locked.unlock(wrongKeys[0]!)).rejects.toThrow(
        "Invalid unlock key: it does not open this node's keys",
      );
      // Seven more wrong keys and then the right one, all at once: each waits its turn and the back-off.
      const outcomes = [...wrongKeys.slice(1), rightKey].map((key) => codeOf(locked.unlock(key)));
      expect(locked.unlockBackoff).toEqual({
        failures: 1,
        waitMs: unlockBackoffInitialMs,
        pending: 8,
      });
      for (const [i, wait] of expectedWaits(8).entries()) {
        await until(
          'the next try to wait for the clock',
          10_000,
          () => (timers.pendingAfters().length === 1 ? true : undefined),
          1,
        );
        expect(timers.pendingAfters()).toEqual([wait]);
        expect(locked.unlockBackoff.failures).toBe(i + 1);
        expect(locked.locked).toBe(true);
        timers.advance(wait);
      }
      expect(await Promise.all(outcomes)).toEqual([
        ...Array.from({ length: 7 }, () => 'invalid'),
        'ok',
      ]);
      expect(locked.locked).toBe(false);
      expect(locked.unlockBackoff).toEqual({ failures: 0, waitMs: 0, pending: 0 });
      expect((await locked.cluster()).id).toBe(boot.state.clusterId);
    } finally {
      await manager?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
