/**
 * RaftNode's metrics on a one-member node with real files: every write proposed here is recorded
 * at each stage, in order, the WAL's fsyncs are timed, and the gauges describe the member and its
 * store.
 */
import { describe, expect, test } from 'bun:test';
import { tempDir } from '../../../test/helpers/process.ts';
import { NodeFileSystem } from '../../io/node-fs.ts';
import { systemRandom } from '../../io/system.ts';
import { systemTimers } from '../../io/timers.ts';
import type { MemberId } from '../../raft/types.ts';
import { leaderStages, parseMetricsText, quantileOf, SecretdMetrics } from '../metrics/index.ts';
import { openRaftNode } from './open-raft-node.ts';

const id = 'node-a' as MemberId;
const at = '2026-11-28T00:00:00.000Z';

describe('RaftNode metrics', () => {
  test('records each stage of every write proposed on the leader, each no earlier than the one before', async () => {
    using dir = tempDir('secretd-raft-metrics-');
    const metrics = new SecretdMetrics(() => systemTimers.now());
    const node = await openRaftNode({
      id,
      walDir: `${dir.path}/raft/wal`,
      snapshotDir: `${dir.path}/raft/snap`,
      dek: systemRandom(32),
      dekKeyId: 1,
      fs: new NodeFileSystem(),
      random: systemRandom,
      electionRandom: () => 0.5,
      bootstrapConf: { voters: [id], learners: [] },
      transport: { send: () => {} },
      tickMs: 5,
      onFatal: (error) => {
        throw error;
      },
      metrics,
    });
    node.start();
    node.campaign();
    await node.waitForLeader(5000);
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
    expect(samples.get('secretd_store_objects{kind="secrets"}')).toBe(0);
    expect(samples.get(`secretd_raft_write_stage_seconds_count{stage="applied"}`)).toBe(writes);
    await node.stop();
    expect(metrics.render()).not.toContain('secretd_raft{');
  });
});
