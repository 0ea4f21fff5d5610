/**
 * Three real managers (src/node/manager/) in the deterministic simulator, on simulated disks,
 * timers and network (sim-manager-cluster.ts, sim-manager-net.ts): formed by init and two joins,
 * written to through a follower (so the leader router forwards), the leader killed and a new one
 * elected, the killed manager restarted from its disk. Each seed is one reproducible run.
 */
import { afterEach, describe, expect, test } from 'bun:test';
import { peerPaths } from '../../src/node/peers/index.ts';
import { toBase64 } from '../../src/node/store/index.ts';
import { SimManagerCluster, type SimManagerNode } from './sim-manager-cluster.ts';

const seeds = [1, 2, 3, 4, 5, 6];
let cluster: SimManagerCluster | null = null;

afterEach(() => {
  cluster?.dispose();
  cluster = null;
});

async function createSecret(
  c: SimManagerCluster,
  via: SimManagerNode,
  name: string,
): Promise<void> {
  const answer = (await c.call(via, 'POST', '/secrets/create', {
    Name: name,
    Data: toBase64(new TextEncoder().encode(`value of ${name}`)),
  })) as { ID?: unknown };
  expect(typeof answer.ID).toBe('string');
}

/** Whether every manager up holds every named secret. */
function everyStoreHolds(c: SimManagerCluster, names: readonly string[]): boolean {
  return c.nodes.every((node) => {
    const manager = node.manager;
    if (manager === null) return true;
    return names.every((name) => manager.raft.store.secretByName(name) !== undefined);
  });
}

function followerOf(c: SimManagerCluster, leader: SimManagerNode): SimManagerNode {
  return c.nodes.find((n) => n !== leader && n.manager !== null)!;
}

/** After a few membership rounds: the duties run on the leader, and nowhere else. */
async function expectDutiesOnLeaderOnly(c: SimManagerCluster): Promise<SimManagerNode> {
  await c.runFor(1000);
  const leader = c.leader();
  expect(leader).not.toBeNull();
  expect(c.nodes.filter((n) => n.manager?.leaderDutiesActive).map((n) => n.name)).toEqual([
    leader!.name,
  ]);
  return leader!;
}

/** The whole story for one seed; returns the cluster for more checks. */
async function story(seed: number): Promise<SimManagerCluster> {
  const c = new SimManagerCluster({ seed });
  cluster = c;
  await c.form();
  const first = await expectDutiesOnLeaderOnly(c);

  // Written through a follower: the leader router forwards to the leader.
  const before = ['alpha', 'beta', 'gamma'];
  const follower = followerOf(c, first);
  for (const name of before) await createSecret(c, follower, name);
  expect(c.net.paths.get(peerPaths.propose)).toBe(before.length);
  await c.runUntil('the secrets on every manager', () => everyStoreHolds(c, before), 10_000);

  // The leader dies (its disk stays): the other two elect one of them and take writes.
  const victimId = first.manager!.state.nodeId;
  const appliedBeforeDeath = first.manager!.raft.store.appliedIndex;
  c.kill(first);
  await c.runUntil('a new leader', () => c.leader() !== null && c.leader() !== first, 30_000);
  const second = await expectDutiesOnLeaderOnly(c);
  expect(second).not.toBe(first);
  const after = ['delta', 'epsilon'];
  for (const name of after) await createSecret(c, followerOf(c, second), name);
  await c.runUntil('the new secrets on both managers up', () => everyStoreHolds(c, after), 10_000);

  // The killed manager comes back from its disk and catches up with the leader.
  await c.restart(first);
  expect(first.manager!.state.nodeId).toBe(victimId);
  // Its log up to its death came from its own disk; what was written meanwhile, from the leader.
  expect(first.lastIndexAtStart).toBeGreaterThanOrEqual(appliedBeforeDeath);
  await c.runUntil(
    'the restarted manager caught up',
    () => everyStoreHolds(c, [...before, ...after]),
    10_000,
  );
  await expectDutiesOnLeaderOnly(c);
  await createSecret(c, first, 'zeta');
  await c.runUntil(
    'a write through the restarted manager',
    () => everyStoreHolds(c, ['zeta']),
    10_000,
  );
  return c;
}

describe('managers in the deterministic simulator', () => {
  for (const seed of seeds) {
    test(`seed ${seed}: elect, replicate writes made on a follower, survive the leader's death, catch up after a restart`, async () => {
      const c = await story(seed);
      const stores = c.nodes.map((node) =>
        [...node.manager!.raft.store.secrets()].map((s) => s.name).sort(),
      );
      for (const names of stores)
        expect(names).toEqual(['alpha', 'beta', 'delta', 'epsilon', 'gamma', 'zeta']);
      // Leader duties ran on one manager at a time, and changed hands when the leader died.
      expect(c.dutiesMax).toBe(1);
      expect(c.dutiesHolders.length).toBeGreaterThanOrEqual(2);
    }, 20_000);
  }

  test('the same seed gives the same history twice', async () => {
    const runs: Array<{ history: string[]; hash: number }> = [];
    for (let i = 0; i < 2; i++) {
      const c = await story(7);
      runs.push({ history: [...c.history], hash: c.traceHash });
      c.dispose();
      cluster = null;
    }
    expect(runs[0]!.history.length).toBeGreaterThan(10);
    expect(runs[1]!.history).toEqual(runs[0]!.history);
    expect(runs[1]!.hash).toBe(runs[0]!.hash);
  }, 30_000);
});
