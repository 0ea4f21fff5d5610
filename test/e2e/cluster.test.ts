/**
 * Managers on loopback: real processes, the compiled executable, a fault network in front of every
 * node (test/helpers/fault-proxy.ts). A client streams creates while the leader is killed, paused or
 * cut off, and while managers join, are demoted, removed or lost. Afterwards every acknowledged
 * create must be on every manager with its id and value, nothing may appear twice, and every
 * manager must list the same secrets (test/helpers/workload.ts).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { Cluster, until, type ClusterNode } from '../helpers/cluster.ts';
import { requireBinary, tempDir } from '../helpers/process.ts';
import { listSecrets, ManagerClient, verifyHistory, Workload } from '../helpers/workload.ts';

beforeAll(requireBinary);
// Real processes, fsync, TLS and elections on a small shared machine: each test takes 5-40 s.
setDefaultTimeout(120_000);

/** SIGKILL of the leader → first create sent after it acknowledged, in ms, for the report below. */
const failovers: number[] = [];
afterAll(() => {
  if (failovers.length > 0)
    console.log(
      `failover after SIGKILL of the leader: ${failovers.map((ms) => `${ms} ms`).join(', ')}`,
    );
});

/** Three managers, all voters, and the one leading. */
async function threeManagers(
  cluster: Cluster,
): Promise<{ nodes: ClusterNode[]; leader: ClusterNode }> {
  const nodes = await cluster.bootstrap(3);
  const leader = await cluster.waitForLeader(nodes);
  expect([...(await leader.raftStatus()).conf.voters].sort()).toEqual(
    nodes.map((n) => n.id).sort(),
  );
  return { nodes, leader };
}

function writer(cluster: Cluster, prefix: string, targets: () => readonly ClusterNode[]): Workload {
  return new Workload({ prefix, targets, client: (node) => cluster.client(node) });
}

/** `secretd node ls --format json` on one manager, as a user would run it. */
async function nodeLs(
  via: ClusterNode,
  args: readonly string[] = [],
): Promise<Array<{ ID: string; Spec: { Role: string }; ManagerStatus?: { Leader: boolean } }>> {
  const ls = await via.cli(['node', 'ls', '--format', 'json', ...args]);
  expect({ code: ls.code, stderr: ls.stderr }).toEqual({ code: 0, stderr: '' });
  return ls.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
}

/** `node ls` on every manager names the same one leader, and lists exactly these managers. */
async function expectOneLeader(
  managers: readonly ClusterNode[],
  leader: ClusterNode,
): Promise<void> {
  for (const via of managers) {
    const listed = await nodeLs(via, ['--filter', 'role=manager']);
    expect({
      via: via.name,
      all: listed.map((n) => n.ID).sort(),
      leaders: listed.filter((n) => n.ManagerStatus?.Leader).map((n) => n.ID),
    }).toEqual({ via: via.name, all: managers.map((n) => n.id).sort(), leaders: [leader.id] });
  }
}

const firstAckAfter = (workload: Workload, t: number): number =>
  Math.min(...workload.ackedSentAfter(t).map((a) => a.ackedAt)) - t;

describe('three managers under faults', () => {
  test('SIGKILL of the leader, twice: a new leader each time, and every acknowledged create on every manager', async () => {
    using dir = tempDir('secretd-cluster-');
    await using cluster = new Cluster(dir.path);
    const { nodes, leader: first } = await threeManagers(cluster);
    let leader = first;
    const workload = writer(cluster, 'kill', () => nodes);
    workload.start();
    try {
      await workload.waitForAcks(50, 0, 20_000);
      for (let round = 0; round < 2; round++) {
        const killedAt = Date.now();
        await leader.kill();
        const next = await cluster.waitForLeader(
          nodes.filter((n) => n !== leader),
          { not: leader },
        );
        await workload.waitForAcks(50, killedAt, 20_000);
        failovers.push(firstAckAfter(workload, killedAt));
        // The old leader comes back as a follower and catches up; leadership stays put.
        await leader.restart();
        expect(await cluster.waitForLeader(nodes)).toBe(next);
        leader = next;
      }
    } finally {
      await workload.stop();
    }
    const summary = await verifyHistory(workload, nodes, (n) => cluster.client(n), 'kill');
    console.log(`kill: ${JSON.stringify(summary)}, indeterminate ${workload.indeterminate.size}`);
    await expectOneLeader(nodes, leader);
    expect(cluster.daemonErrors()).toEqual([]);
  });

  test('SIGSTOP of the leader: the others take over; resumed, it follows the new leader and catches up', async () => {
    using dir = tempDir('secretd-cluster-');
    await using cluster = new Cluster(dir.path);
    const { nodes, leader } = await threeManagers(cluster);
    const workload = writer(cluster, 'stop', () => nodes);
    workload.start();
    let next: ClusterNode | null = null;
    try {
      await workload.waitForAcks(50, 0, 20_000);
      const stoppedAt = Date.now();
      leader.signal('SIGSTOP');
      try {
        next = await cluster.waitForLeader(
          nodes.filter((n) => n !== leader),
          { not: leader },
        );
        await workload.waitForAcks(50, stoppedAt, 30_000);
        console.log(
          `stop: first create acknowledged ${firstAckAfter(workload, stoppedAt)} ms after SIGSTOP`,
        );
      } finally {
        leader.signal('SIGCONT');
      }
      const resumedAt = Date.now();
      const resumed = await until('the resumed leader to follow the new one', 10_000, async () => {
        const status = await leader.raftStatus();
        return status.role === 'follower' && status.leader === next!.id ? status : undefined;
      });
      expect(resumed.role).toBe('follower');
      expect(await cluster.waitForLeader(nodes)).toBe(next);
      await workload.waitForAcks(50, resumedAt, 20_000);
    } finally {
      await workload.stop();
    }
    const summary = await verifyHistory(workload, nodes, (n) => cluster.client(n), 'stop');
    console.log(`stop: ${JSON.stringify(summary)}, indeterminate ${workload.indeterminate.size}`);
    await expectOneLeader(nodes, next!);
    expect(cluster.daemonErrors()).toEqual([]);
  });

  test('a leader cut off from the others and the client steps down, neither reads nor writes, and converges once healed', async () => {
    using dir = tempDir('secretd-cluster-');
    await using cluster = new Cluster(dir.path);
    const { nodes, leader } = await threeManagers(cluster);
    const majority = nodes.filter((n) => n !== leader);
    const workload = writer(cluster, 'part', () => nodes);
    workload.start();
    let next: ClusterNode | null = null;
    try {
      await workload.waitForAcks(50, 0, 20_000);
      const termAtCut = (await leader.raftStatus()).term;
      const cutAt = Date.now();
      cluster.net.isolate(leader.ip);
      next = await cluster.waitForLeader(majority, { not: leader });
      // Check-quorum: cut off from a quorum, the old leader steps down on its own.
      await until('the cut-off leader to step down', 10_000, async () =>
        (await leader.raftStatus()).role !== 'leader' ? true : undefined,
      );
      await workload.waitForAcks(50, cutAt, 30_000);
      console.log(
        `partition: first create acknowledged ${firstAckAfter(workload, cutAt)} ms after the cut`,
      );
      // Jepsen's stale read: asked directly, the old leader must not answer from its own state
      // (it would miss what the majority acknowledged since), nor acknowledge a write.
      const ackedBeforeRead = [...workload.acked.keys()];
      const [read, write] = await Promise.all([
        leader.admin('GET', '/secrets', undefined, 20_000),
        leader.admin(
          'POST',
          '/secrets/create',
          { Name: 'part-minority', Data: Buffer.from('minority').toString('base64') },
          20_000,
        ),
      ]);
      if (read.status === 200) {
        const names = new Set(
          (JSON.parse(read.text) as Array<{ Spec: { Name: string } }>).map((s) => s.Spec.Name),
        );
        expect(ackedBeforeRead.filter((name) => !names.has(name))).toEqual([]);
      }
      expect({ read: read.status, write: write.status }).toEqual({ read: 503, write: 503 });
      // Pre-vote: however long it is cut off, it never bumps its term (which would depose the new leader on healing).
      expect((await leader.raftStatus()).term).toBe(termAtCut);
      const healedAt = Date.now();
      cluster.net.heal();
      expect(await cluster.waitForLeader(nodes)).toBe(next);
      await workload.waitForAcks(50, healedAt, 20_000);
    } finally {
      cluster.net.heal();
      await workload.stop();
    }
    const summary = await verifyHistory(workload, nodes, (n) => cluster.client(n), 'part');
    console.log(
      `partition: ${JSON.stringify(summary)}, indeterminate ${workload.indeterminate.size}, network ${JSON.stringify(cluster.net.stats)}`,
    );
    await expectOneLeader(nodes, next!);
    expect(cluster.net.stats.cut).toBeGreaterThan(0);
    expect((await leader.admin('GET', '/secrets/part-minority')).status).toBe(404);
    expect(cluster.daemonErrors()).toEqual([]);
  });
});

describe('membership under write load', () => {
  test('two managers join under load; demoting the leader moves leadership first, the cluster keeps serving, and the demoted manager goes on as a worker', async () => {
    using dir = tempDir('secretd-cluster-');
    await using cluster = new Cluster(dir.path);
    const [first] = await cluster.bootstrap(1);
    const targets: ClusterNode[] = [first!];
    const workload = writer(cluster, 'join', () => targets);
    workload.start();
    try {
      await workload.waitForAcks(50, 0, 20_000);
      for (let i = 0; i < 2; i++) {
        const node = await cluster.addNode();
        const joinedAt = Date.now();
        await cluster.join(node, first!);
        targets.push(node);
        // Listed reachable means a voter: under load, a learner is promoted once it has caught up.
        await cluster.waitForLeader(targets, { timeoutMs: 30_000 });
        console.log(
          `join: ${node.name} a voter ${Date.now() - joinedAt} ms after \`join\` started`,
        );
        await workload.waitForAcks(30, joinedAt, 20_000);
      }
      const leader = await cluster.waitForLeader(targets);
      const demote = await leader.cli(['node', 'demote', leader.id]);
      expect({ code: demote.code, stdout: demote.stdout.trim(), stderr: demote.stderr }).toEqual({
        code: 0,
        stdout: `Node ${leader.id} demoted to a worker in the cluster.`,
        stderr: '',
      });
      const demotedAt = Date.now();
      targets.splice(targets.indexOf(leader), 1);
      const next = await cluster.waitForLeader(targets, { not: leader });
      await workload.waitForAcks(50, demotedAt, 20_000);
      console.log(
        `demote: first create acknowledged ${firstAckAfter(workload, demotedAt)} ms after the demotion`,
      );
      // Once Raft no longer counts it, the demoted manager goes on as a worker in the same process.
      await leader.daemon!.waitFor(
        /this node was demoted to a worker[^]*worker \w+ running/,
        30_000,
      );
      expect(leader.running).toBe(true);
      const inspect = await next.cli(['node', 'inspect', leader.id]);
      expect({ code: inspect.code, stderr: inspect.stderr }).toEqual({ code: 0, stderr: '' });
      const [demoted] = JSON.parse(inspect.stdout) as Array<{
        Spec: { Role: string };
        ManagerStatus?: unknown;
      }>;
      expect({ role: demoted!.Spec.Role, managerStatus: demoted!.ManagerStatus }).toEqual({
        role: 'worker',
        managerStatus: undefined,
      });

      // Back to three managers: a fresh one joins, still under load.
      const fresh = await cluster.addNode();
      const joinedAt = Date.now();
      await cluster.join(fresh, next);
      targets.push(fresh);
      await cluster.waitForLeader(targets, { timeoutMs: 30_000 });
      await workload.waitForAcks(30, joinedAt, 20_000);
    } finally {
      await workload.stop();
    }
    const summary = await verifyHistory(workload, targets, (n) => cluster.client(n), 'join');
    console.log(
      `join/demote: ${JSON.stringify(summary)}, indeterminate ${workload.indeterminate.size}`,
    );
    expect(cluster.daemonErrors()).toEqual([]);
  });

  test('a dead manager removed with node rm --force is gone, and restarted it cannot rejoin or serve writes', async () => {
    using dir = tempDir('secretd-cluster-');
    await using cluster = new Cluster(dir.path);
    const { nodes, leader } = await threeManagers(cluster);
    const victim = nodes.find((n) => n !== leader)!;
    const rest = nodes.filter((n) => n !== victim);
    const targets = [...nodes];
    const workload = writer(cluster, 'rm', () => targets);
    workload.start();
    try {
      await workload.waitForAcks(50, 0, 20_000);
      await victim.kill();
      targets.splice(targets.indexOf(victim), 1);
      const removedAt = Date.now();
      const rm = await leader.cli(['node', 'rm', '--force', victim.id]);
      expect({ code: rm.code, stdout: rm.stdout.trim(), stderr: rm.stderr }).toEqual({
        code: 0,
        stdout: victim.id,
        stderr: '',
      });
      await until(
        'the removed manager to leave the node list and the Raft configuration',
        10_000,
        async () => {
          const [view, status] = await Promise.all([leader.nodes(), leader.raftStatus()]);
          return view &&
            !view.some((n) => n.ID === victim.id) &&
            !status.conf.voters.includes(victim.id)
            ? true
            : undefined;
        },
      );
      await workload.waitForAcks(50, removedAt, 20_000);

      // Back from the dead with its old data: its peers refuse its certificate, so it finds no
      // leader, a write sent to it is not acknowledged, and it disturbs no one.
      const restarted = victim.run();
      await restarted.waitFor(/serving the API on/);
      using toVictim = cluster.client(victim);
      const write = await toVictim.request(
        'POST',
        '/secrets/create',
        { Name: 'rm-zombie', Data: Buffer.from('zombie').toString('base64') },
        { timeoutMs: 25_000 },
      );
      expect({ status: write.status, message: write.json<{ message: string }>().message }).toEqual({
        status: 503,
        message: expect.stringContaining('No leader'),
      });
      await workload.waitForAcks(30, Date.now(), 20_000);
      expect(await cluster.waitForLeader(rest)).toBe(leader);
    } finally {
      await workload.stop();
      await victim.kill();
    }
    const ls = await leader.cli(['node', 'ls', '-q']);
    expect({ code: ls.code, ids: ls.stdout.trim().split('\n').sort(), stderr: ls.stderr }).toEqual({
      code: 0,
      ids: rest.map((n) => n.id).sort(),
      stderr: '',
    });
    const summary = await verifyHistory(workload, rest, (n) => cluster.client(n), 'rm');
    console.log(`rm: ${JSON.stringify(summary)}, indeterminate ${workload.indeterminate.size}`);
    expect((await leader.admin('GET', '/secrets/rm-zombie')).status).toBe(404);
    expect(cluster.daemonErrors()).toEqual([]);
  });

  test('after losing two of three managers, run --force-new-cluster on the survivor keeps every acknowledged create, and a fresh manager joins it', async () => {
    using dir = tempDir('secretd-cluster-');
    await using cluster = new Cluster(dir.path);
    const { nodes, leader } = await threeManagers(cluster);
    const survivor = nodes.find((n) => n !== leader)!;
    const before = writer(cluster, 'fnc', () => nodes);
    before.start();
    try {
      await before.waitForAcks(100, 0, 20_000);
    } finally {
      await before.stop();
    }
    // The survivor keeps what it has applied. A linearizable read there shows it has every
    // acknowledged create before the others die (one acknowledged by the other two alone could
    // be lost, as in Docker: that is the price of forcing a new cluster, not a bug).
    {
      using client = new ManagerClient(() => cluster.client(survivor));
      const listed = new Set((await listSecrets(client)).map((s) => s.Spec.Name));
      expect([...before.acked.keys()].filter((name) => !listed.has(name))).toEqual([]);
    }
    await Promise.all(nodes.map((n) => n.kill()));
    const forcedAt = Date.now();
    await survivor.restart(['--force-new-cluster']);
    expect(await cluster.waitForLeader([survivor])).toBe(survivor);
    console.log(
      `force-new-cluster: leading alone ${Date.now() - forcedAt} ms after \`run --force-new-cluster\` started`,
    );
    expect((await nodeLs(survivor)).map((n) => [n.ID, n.ManagerStatus?.Leader])).toEqual([
      [survivor.id, true],
    ]);

    const targets = [survivor];
    const after = writer(cluster, 'fnc2', () => targets);
    after.start();
    try {
      await after.waitForAcks(50, 0, 20_000);
      const fresh = await cluster.addNode();
      const joinedAt = Date.now();
      await cluster.join(fresh, survivor);
      targets.push(fresh);
      const newLeader = await cluster.waitForLeader(targets, { timeoutMs: 30_000 });
      await after.waitForAcks(50, joinedAt, 20_000);
      // A manager of the old cluster, back with its old data, is refused and changes nothing.
      const ghost = leader.run();
      await ghost.waitFor(/serving the API on/);
      await after.waitForAcks(30, Date.now(), 20_000);
      expect(await cluster.waitForLeader(targets)).toBe(newLeader);
      expect((await nodeLs(survivor)).map((n) => n.ID).sort()).toEqual(
        targets.map((n) => n.id).sort(),
      );
    } finally {
      await after.stop();
      await leader.kill();
    }
    const old = await verifyHistory(before, targets, (n) => cluster.client(n), 'fnc');
    const since = await verifyHistory(after, targets, (n) => cluster.client(n), 'fnc2');
    console.log(`force-new-cluster: before ${JSON.stringify(old)}, after ${JSON.stringify(since)}`);
    expect(cluster.daemonErrors()).toEqual([]);
  });
});
