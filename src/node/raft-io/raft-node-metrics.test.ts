/**
 * RaftNode's metrics on a one-member node with real files: every write proposed here is recorded
 * at each stage, in order, the WAL's fsyncs are timed, and the gauges describe the member and its
 * store.
 */
import { describe, expect, test } from 'bun:test';
import { tempDir } from '../../../test/helpers/process.ts';
import { openOneMember, oneMemberLeader } from '../../../test/helpers/raft-leader.ts';
import { until } from '../../../test/helpers/cluster.ts';
import { readdir } from 'node:fs/promises';
import { systemRandom } from '../../io/system.ts';
import { systemTimers } from '../../io/timers.ts';
import { leaderStages, parseMetricsText, quantileOf, SecretdMetrics } from '../metrics/index.ts';
const at = '2026-11-28T00:00:00.000Z';

describe('RaftNode metrics', () => {
  test('records each stage of every write proposed on the leader, each no earlier than the one before', async () => {
    using dir = tempDir('secretd-raft-metrics-');
    const metrics = new SecretdMetrics(() => systemTimers.now());
    const node = await oneMemberLeader(dir.path, { metrics });
    const writes = 20;
    for (let i = 0; i < writes; i++) await node.propose({ op: 'dek-rotate', at });

    for (const stage of leaderStages) expect(metrics.leader[stage].count).toBe(writes);
    // Cumulative stages: each one's median is at least the one before's (same buckets).
    const medians = leaderStages.map((stage) =>
      quantileOf(metrics.leader[stage].bounds, metrics.leader[stage].counts, 0.5),
    );
    for (let i = 1; i < medians.length; i++)
      expect(medians[i]!).toBeGreaterThanOrEqual(medians[i - 1]!);
    expect(metrics.proposals.value).toBe(writes);
    expect(metrics.walFsync.count).toBeGreaterThanOrEqual(writes);
    expect(metrics.walBytes.value).toBeGreaterThan(0);

    const samples = parseMetricsText(metrics.render());
    expect(samples.get('secretd_raft{index="leader"}')).toBe(1);
    expect(samples.get('secretd_raft{index="applied"}')).toBe(node.store.appliedIndex);
    // A new member opened from no snapshot and an empty log.
    expect(samples.get('secretd_raft{index="opened_snapshot"}')).toBe(0);
    expect(samples.get('secretd_raft{index="opened_last"}')).toBe(0);
    expect(samples.get('secretd_store_objects{kind="secrets"}')).toBe(0);
    expect(samples.get(`secretd_raft_write_stage_seconds_count{stage="applied"}`)).toBe(writes);
    await node.stop();
    expect(metrics.render()).not.toContain('secretd_raft{');
  });

  test("counts the WAL's writes and fsyncs, not the snapshot store's", async () => {
    using dir = tempDir('secretd-raft-metrics-');
    const metrics = new SecretdMetrics(() => systemTimers.now());
    const node = await oneMemberLeader(dir.path, { metrics });
    // Eight values of 256 KiB: a snapshot writes them (2.7 MiB of base64) into a pack, appended.
    const big = (i: number) =>
      ({ id: `s${i}`, name: `big-${i}`, data: new Uint8Array(256 * 1024).fill(i + 1) }) as const;
    for (let i = 0; i < 8; i++)
      await node.propose({ op: 'secret-create', at, labels: {}, ...big(i) });
    const [bytes, fsyncs] = [metrics.walBytes.value, metrics.walFsync.count];
    await node.snapshotNow();
    expect(metrics.walBytes.value - bytes).toBeLessThan(4096); // the WAL's snapshot marker
    expect(metrics.walFsync.count - fsyncs).toBeLessThanOrEqual(2);
    await node.stop();
  });

  test('say what a restart replays: the entries between the snapshot it opened from and its log then', async () => {
    using dir = tempDir('secretd-raft-metrics-');
    const dek = systemRandom(32); // the same key at each opening
    const opened = async (): Promise<{
      snapshot: number | undefined;
      last: number | undefined;
    }> => {
      const metrics = new SecretdMetrics(() => systemTimers.now());
      const node = await openOneMember(dir.path, { metrics, dek });
      node.start(); // its gauges are read from then on
      const samples = parseMetricsText(metrics.render());
      await node.stop();
      return {
        snapshot: samples.get('secretd_raft{index="opened_snapshot"}'),
        last: samples.get('secretd_raft{index="opened_last"}'),
      };
    };
    // Five writes, stopped before the member is idle for a second: no snapshot, a restart replays all.
    const node = await oneMemberLeader(dir.path, { dek });
    for (let i = 0; i < 5; i++)
      await node.propose({ op: 'secret-remove', at, ids: [`secret-${i}`] });
    const applied = node.store.appliedIndex;
    await node.stop();
    expect(await opened()).toEqual({ snapshot: 0, last: applied });
    // Idle for a second: a snapshot of everything, and a restart replays nothing.
    const idle = await oneMemberLeader(dir.path, { dek });
    await until('the idle snapshot', 20_000, async () =>
      (await readdir(`${dir.path}/raft/snap`)).some((n) => n.endsWith('.snap')) ? true : undefined,
    );
    const snapshotted = idle.store.appliedIndex; // its election's no-op too
    expect(snapshotted).toBeGreaterThan(applied);
    await idle.stop();
    expect(await opened()).toEqual({ snapshot: snapshotted, last: snapshotted });
  });
});
