/** The manager on real files: snapshots and log compaction across restarts, keys re-wrapped. */
import { describe, expect, test } from 'bun:test';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { systemNow, systemRandom } from '../../io/system.ts';
import { startTestManager } from '../../../test/helpers/manager.ts';
import { Manager } from './manager.ts';

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('Manager', () => {
  test('state survives restarts across snapshots and log compaction', async () => {
    await using tm = await startTestManager({ snapshotEntries: 25 });
    const ids = new Map<string, string>();
    for (let i = 0; i < 120; i++)
      ids.set(
        `s${i}`,
        await tm.manager.createSecret({
          name: `s${i}`,
          labels: { i: String(i) },
          data: bytes(`value-${i}`),
        }),
      );
    await tm.manager.removeSecret('s7');
    const snaps = readdirSync(join(tm.dataDir, 'raft', 'snap')).filter((f) => f.endsWith('.snap'));
    expect(snaps.length).toBeGreaterThanOrEqual(1);
    expect(snaps.length).toBeLessThanOrEqual(2);

    const restarted = await tm.restart();
    const names = (await restarted.listSecrets()).map((s) => s.name).sort();
    expect(names).toEqual([...ids.keys()].filter((n) => n !== 's7').sort());
    const s42 = await restarted.getSecret('s42');
    expect(s42.id as string).toBe(ids.get('s42')!);
    expect(new TextDecoder().decode(s42.versions[0]!.data)).toBe('value-42');
    expect(s42.labels).toEqual({ i: '42' });
    // Writes go on after the restart, and a second restart sees them.
    await restarted.createSecret({ name: 'after', labels: {}, data: bytes('x') });
    expect((await (await tm.restart()).getSecret('after')).name).toBe('after');
  });

  test('turning autolock on re-wraps the keys file; the restarted manager needs the key', async () => {
    await using tm = await startTestManager();
    const cluster = await tm.manager.cluster();
    await tm.manager.updateSwarm({
      expectedIndex: cluster.metaIndex,
      autolock: true,
      rotateWorkerToken: false,
      rotateManagerToken: false,
      rotateUnlockKey: false,
    });
    const key = await tm.manager.unlockKey();
    expect(key).toMatch(/^SDKEY-1-/);
    const restarted = await tm.restart();
    expect(restarted.locked).toBe(true);
    await expect(restarted.listSecrets()).rejects.toThrow('locked');
    await restarted.unlock(key);
    expect(restarted.locked).toBe(false);
    expect((await restarted.cluster()).id).toBe(cluster.id);
  });

  test('an unlock that fails after Raft started leaves the manager locked, and the next unlock starts it', async () => {
    await using tm = await startTestManager();
    const cluster = await tm.manager.cluster();
    await tm.manager.updateSwarm({
      expectedIndex: cluster.metaIndex,
      autolock: true,
      rotateWorkerToken: false,
      rotateManagerToken: false,
      rotateUnlockKey: false,
    });
    const key = await tm.manager.unlockKey();
    await tm.manager.stop();
    let starts = 0;
    const manager = await Manager.open({
      dataDir: tm.dataDir,
      random: systemRandom,
      now: systemNow,
      tickMs: 10,
      onFatal: (error) => {
        throw error;
      },
      // The step after Raft starts (serving TLS, in the daemon) fails the first time.
      onRaftStarted: async () => {
        if (++starts === 1) throw new Error('listen EADDRINUSE');
      },
    });
    try {
      expect(manager.locked).toBe(true);
      await expect(manager.unlock(key)).rejects.toThrow('listen EADDRINUSE');
      expect(manager.locked).toBe(true);
      await expect(manager.listSecrets()).rejects.toThrow('locked');
      await manager.unlock(key);
      expect([manager.locked, starts]).toEqual([false, 2]);
      expect((await manager.cluster()).id).toBe(cluster.id);
      await manager.createSecret({ name: 'after-retry', labels: {}, data: bytes('x') });
      expect((await manager.getSecret('after-retry')).name).toBe('after-retry');
    } finally {
      await manager.stop();
    }
  });
});
