/**
 * A node changes role in place, as Docker's do, on the compiled executable with real runc
 * containers: one manager and one worker running a task (a global service) that holds a secret.
 * Promoted, the worker's process becomes a manager (a Raft voter on both sides, the API over mutual
 * TLS with a client certificate, a write through it) while its task keeps running with its secret
 * (the same container, the same process); demoted, it becomes a worker again, the task still
 * running with its secret, its Raft log, snapshots and data key erased from disk, and `node ls`
 * lists it as a worker. Killed (SIGKILL) in the middle of a promotion, it restarts in a working
 * role and the promotion completes; killed in the middle of a demotion, it restarts as a worker. In
 * an autolocked cluster the promoted node gets the unlock key through the replicated store, wraps
 * its keys file with it, and restarts locked like every manager.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeKeysLocked, readNodeKeys } from '../../src/node/data-dir/index.ts';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { Daemon, H2Client, readCerts, requireBinary, tempDir } from '../helpers/process.ts';
import {
  expectRun,
  idleCommand,
  ServiceCluster,
  until,
  type ServiceNode,
} from '../helpers/services.ts';

beforeAll(requireBinary);
setDefaultTimeout(180_000);

const secretValue = 'role-switch-secret\n';

interface NodeState {
  readonly role: string;
  readonly listenAddr: string;
}

function nodeState(node: ServiceNode): NodeState {
  return JSON.parse(readFileSync(join(node.dataDir, 'node.json'), 'utf8')) as NodeState;
}

/** The container's first process, as runc reports it (the task's container id is its task id). */
function containerPid(node: ServiceNode, taskId: string): number {
  const state = spawnSync('runc', ['--root', join(node.runDir, 'runc'), 'state', taskId], {
    encoding: 'utf8',
  });
  if (state.status !== 0) throw new Error(`runc state ${taskId}: ${state.stderr}`);
  const parsed = JSON.parse(state.stdout) as { pid: number; status: string };
  if (parsed.status !== 'running') throw new Error(`container ${taskId} is ${parsed.status}`);
  return parsed.pid;
}

/** The Raft voters and learners `node` sees (through its admin socket), or null while it is no manager. */
async function raftConf(
  node: ServiceNode,
): Promise<{ voters: string[]; learners: string[] } | null> {
  const answer = await node.admin('GET', '/secretd/raft/status').catch(() => null);
  if (answer?.status !== 200) return null;
  const { conf } = JSON.parse(answer.text) as { conf: { voters: string[]; learners: string[] } };
  return { voters: [...conf.voters].sort(), learners: [...conf.learners].sort() };
}

async function waitForVoters(nodes: readonly ServiceNode[], ids: readonly string[]): Promise<void> {
  const want = JSON.stringify({ voters: [...ids].sort(), learners: [] });
  for (const node of nodes) {
    let seen = '';
    await until(`${node.name} to see voters ${ids.join(', ')}`, 45_000, async () => {
      seen = JSON.stringify(await raftConf(node));
      return seen === want ? true : undefined;
    }).catch((error: unknown) => {
      throw new Error(
        `${(error as Error).message}; last seen ${seen}\n${node.daemon.stderr.split('\n').slice(-15).join('\n')}`,
      );
    });
  }
}

/** The task runs on `node` in the same container (same first process) and reads its secret there. */
function expectTaskKept(node: ServiceNode, taskId: string, pid: number, value = secretValue): void {
  expect({ task: taskId, pid: containerPid(node, taskId) }).toEqual({ task: taskId, pid });
  expect(node.mountedTasks()).toContain(taskId);
  expectRun(node.cli(['exec', taskId, 'cat', '/run/secrets/switch_secret']), {
    stdout: value,
  });
}

async function roleInNodeLs(manager: ServiceNode, id: string): Promise<string> {
  const answer = await manager.admin('GET', `/nodes/${id}`);
  expect(answer.status).toBe(200);
  const node = JSON.parse(answer.text) as { Spec: { Role: string }; ManagerStatus?: unknown };
  return `${node.Spec.Role}${node.ManagerStatus ? ' with manager status' : ''}`;
}

async function setUp(dir: string): Promise<{
  cluster: ServiceCluster;
  worker: ServiceNode;
  taskId: string;
  pid: number;
}> {
  const cluster = await ServiceCluster.init(dir);
  const worker = await cluster.joinWorker('w1');
  cluster.importImage('busybox', busyboxRootfsTarball());
  expectRun(cluster.manager.cli(['secret', 'create', 'switch_secret', '-'], secretValue), {
    stdout: /^\w{25}\n$/,
  });
  expectRun(
    cluster.manager.cli([
      'service',
      'create',
      '--name',
      'kept',
      '--mode',
      'global',
      '--secret',
      'switch_secret',
      'busybox',
      ...idleCommand,
    ]),
    { stdout: /^\w{25}\n$/ },
  );
  const tasks = await cluster.runningTasks('kept', 2, { timeoutMs: 30_000 });
  const task = tasks.find((t) => t.NodeID === worker.id);
  if (!task) throw new Error('no task of the global service on the worker');
  const pid = containerPid(worker, task.ID);
  expectTaskKept(worker, task.ID, pid);
  return { cluster, worker, taskId: task.ID, pid };
}

describe('a node switching role in place', () => {
  test('a promoted worker becomes a Raft voter serving the API, a demoted one a worker again, its task running with its secret throughout', async () => {
    using dir = tempDir('secretd-role-switch-');
    const { cluster, worker, taskId, pid } = await setUp(dir.path);
    await using _cluster = cluster;
    const manager = cluster.manager;
    const certsDir = join(dir.path, 'client-certs');
    expectRun(manager.cli(['ca', 'issue-client', '--name', 'e2e', '--out', certsDir]), {});

    expectRun(manager.cli(['node', 'promote', worker.id]), {
      stdout: `Node ${worker.id} promoted to a manager in the cluster.\n`,
    });
    await worker.daemon.waitFor(/becomes one in place/, 30_000);
    await waitForVoters([manager, worker], [manager.id, worker.id]);
    expect(worker.running).toBe(true);
    expect(nodeState(worker).role).toBe('manager');
    expect(existsSync(join(worker.dataDir, 'raft', 'wal'))).toBe(true);
    expect(await roleInNodeLs(manager, worker.id)).toBe('manager with manager status');
    expectTaskKept(worker, taskId, pid);

    // The API over mutual TLS on the address it joined with, and a write through it.
    const addr = nodeState(worker).listenAddr;
    {
      using client = new H2Client(`https://${addr}`, readCerts(certsDir));
      const nodes = await client.request('GET', '/nodes');
      expect(nodes.status).toBe(200);
      const created = await client.request('POST', '/secrets/create', {
        Name: 'written_through_promoted',
        Data: Buffer.from('v').toString('base64'),
      });
      expect(created.status).toBe(201);
    }
    expect((await manager.admin('GET', '/secrets/written_through_promoted')).status).toBe(200);
    const dekBefore = (
      await readNodeKeys(join(worker.dataDir, 'certificates', 'node-keys.json'), null)
    ).dek;

    expectRun(manager.cli(['node', 'demote', worker.id]), {
      stdout: `Node ${worker.id} demoted to a worker in the cluster.\n`,
    });
    await worker.daemon.waitFor(/goes on as a worker[^]*worker \w+ running/, 25_000);
    await until('the demoted node to be a worker on disk', 20_000, () =>
      nodeState(worker).role === 'worker' && !existsSync(join(worker.dataDir, 'raft'))
        ? true
        : undefined,
    );
    await waitForVoters([manager], [manager.id]);
    expect(worker.running).toBe(true);
    expect(await raftConf(worker)).toBeNull();
    expect(await roleInNodeLs(manager, worker.id)).toBe('worker');
    const keys = await readNodeKeys(join(worker.dataDir, 'certificates', 'node-keys.json'), null);
    expect({
      role: keys.role,
      sameDek: Buffer.from(keys.dek).equals(Buffer.from(dekBefore)),
    }).toEqual({
      role: 'worker',
      sameDek: false,
    });
    expectTaskKept(worker, taskId, pid);
    // Its agent keeps its session: a new version of the secret reaches the running task in place.
    expectRun(manager.cli(['secret', 'update', 'switch_secret', '-'], 'second-value\n'), {
      stdout: /version 2/,
    });
    await until('the running task to hold version 2', 15_000, () =>
      worker.cli(['exec', taskId, 'cat', '/run/secrets/switch_secret']).stdout === 'second-value\n'
        ? true
        : undefined,
    );
    expectTaskKept(worker, taskId, pid, 'second-value\n');
    expect(cluster.daemonErrors()).toEqual([]);
  });

  test('a worker killed in the middle of its promotion restarts in a working role and the promotion completes', async () => {
    using dir = tempDir('secretd-role-switch-kill-');
    const { cluster, worker, taskId, pid } = await setUp(dir.path);
    await using _cluster = cluster;
    const manager = cluster.manager;

    expectRun(manager.cli(['node', 'promote', worker.id]), {
      stdout: `Node ${worker.id} promoted to a manager in the cluster.\n`,
    });
    await worker.daemon.waitFor(/becomes one in place/, 30_000);
    await worker.daemon.kill('SIGKILL');
    const restarted = new Daemon(['run', '--data-dir', worker.dataDir]);
    worker.spawned.push(restarted);
    worker.daemon = restarted;
    await waitForVoters([manager, worker], [manager.id, worker.id]);
    expect(nodeState(worker).role).toBe('manager');
    expect(await roleInNodeLs(manager, worker.id)).toBe('manager with manager status');
    // The task survived the agent's death and was adopted again by the restarted process.
    expectTaskKept(worker, taskId, pid);
    expect(cluster.daemonErrors()).toEqual([]);
  });
  test('a manager killed in the middle of its demotion restarts as a worker, its task still running with its secret', async () => {
    using dir = tempDir('secretd-role-switch-kill-');
    const { cluster, worker, taskId, pid } = await setUp(dir.path);
    await using _cluster = cluster;
    const manager = cluster.manager;
    expectRun(manager.cli(['node', 'promote', worker.id]), {
      stdout: `Node ${worker.id} promoted to a manager in the cluster.\n`,
    });
    await waitForVoters([manager, worker], [manager.id, worker.id]);

    expectRun(manager.cli(['node', 'demote', worker.id]), {
      stdout: `Node ${worker.id} demoted to a worker in the cluster.\n`,
    });
    await worker.daemon.waitFor(/goes on as a worker/, 30_000);
    await worker.daemon.kill('SIGKILL');
    const restarted = new Daemon(['run', '--data-dir', worker.dataDir]);
    worker.spawned.push(restarted);
    worker.daemon = restarted;
    await restarted.waitFor(/worker \w+ running/, 30_000);
    await waitForVoters([manager], [manager.id]);
    expect({
      role: nodeState(worker).role,
      raftDir: existsSync(join(worker.dataDir, 'raft')),
      nodeLs: await roleInNodeLs(manager, worker.id),
    }).toEqual({ role: 'worker', raftDir: false, nodeLs: 'worker' });
    // The restarted agent adopts the running container at its first full assignment set.
    await until("the restarted worker to hold the task's secret again", 20_000, async () =>
      (await worker.secretCounts()).SecretsHeld > 0 ? true : undefined,
    );
    expectTaskKept(worker, taskId, pid);
    expect(cluster.daemonErrors()).toEqual([]);
  });
  test("in an autolocked cluster a promoted worker's keys file is wrapped by the cluster's unlock key, and it restarts locked", async () => {
    using dir = tempDir('secretd-role-switch-autolock-');
    await using cluster = await ServiceCluster.init(dir.path, { initFlags: ['--autolock'] });
    const manager = cluster.manager;
    const worker = await cluster.joinWorker('w1');
    const keysPath = join(worker.dataDir, 'certificates', 'node-keys.json');
    expect(await nodeKeysLocked(keysPath)).toBe(false);
    expectRun(manager.cli(['node', 'promote', worker.id]), {
      stdout: `Node ${worker.id} promoted to a manager in the cluster.\n`,
    });
    await waitForVoters([manager, worker], [manager.id, worker.id]);
    await until("the promoted node's keys file to be wrapped", 10_000, async () =>
      (await nodeKeysLocked(keysPath)) ? true : undefined,
    );
    // Asked while both voters run: one of two cannot confirm a read.
    const unlockKey = expectRun(manager.cli(['cluster', 'unlock-key', '-q']), {
      stdout: /^SDKEY-/,
    }).stdout.trim();
    await worker.daemon.kill('SIGTERM');
    const restarted = new Daemon(['run', '--data-dir', worker.dataDir]);
    worker.spawned.push(restarted);
    worker.daemon = restarted;
    await restarted.waitFor(/this manager is locked/, 30_000);
    expectRun(worker.cli(['unlock'], unlockKey), {});
    await restarted.waitFor(/unlocked/, 30_000);
    await waitForVoters([manager, worker], [manager.id, worker.id]);
    expect(cluster.daemonErrors()).toEqual([]);
  });
});
