/**
 * A secret lives on a node exactly as long as a running container there needs it: every way a
 * task ends, on real processes and real runc. A task that exits 0, exits 1, is killed from the host
 * or whose command does not exist leaves no mount, no directory and no file with the value once
 * its end is seen (its state in the API is terminal), while the service keeps restarting it; a
 * node whose daemon is killed with -9 while its tasks exit leaves nothing after it restarts; a
 * service removed right after it was created leaves no task behind, on one node and on three
 * managers with two workers, and neither does a removal during which the leader dies; a node
 * stopped with no task left leaves not even its run directory.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { requireBinary, tempDir } from '../helpers/process.ts';
import {
  expectRun,
  filesHolding,
  idleCommand,
  ServiceCluster,
  until,
  type ServiceNode,
  type TaskJSON,
} from '../helpers/services.ts';

beforeAll(requireBinary);
setDefaultTimeout(120_000);

const terminal = new Set(['complete', 'shutdown', 'failed', 'rejected', 'orphaned']);

async function allTasks(node: ServiceNode): Promise<TaskJSON[]> {
  const answer = await node.admin('GET', '/tasks');
  if (answer.status !== 200) throw new Error(`GET /tasks answered ${answer.status} ${answer.text}`);
  return JSON.parse(answer.text) as TaskJSON[];
}

/**
 * What a node still holds of tasks whose end the cluster has seen: a secrets mount, a task
 * directory, or a file anywhere under its run or data directory with one of `values` in it
 * (outside the tmpfs of tasks still alive). The tasks are read first, so anything found belongs to
 * a task that had ended before the look.
 */
async function heldAfterEnd(cluster: ServiceCluster, values: readonly string[]): Promise<string[]> {
  const tasks = await allTasks(cluster.nodes.find((n) => n.running && n.role === 'manager')!);
  const ended = new Set(tasks.filter((t) => terminal.has(t.Status.State)).map((t) => t.ID));
  const found: string[] = [];
  for (const node of cluster.nodes.filter((n) => n.running)) {
    for (const id of node.mountedTasks())
      if (ended.has(id)) found.push(`${node.name}: mount of ended task ${id}`);
    for (const id of node.taskDirs())
      if (ended.has(id)) found.push(`${node.name}: directory of ended task ${id}`);
    // Files with a value: only inside the tmpfs of a task not known to have ended (or too new to be listed).
    const skip = node
      .mountedTasks()
      .filter((id) => !ended.has(id))
      .map((id) => join(node.runDir, 'tasks', id));
    for (const hit of filesHolding([node.dataDir, node.runDir], values, skip)) {
      // A task created after the list was read may hold it legitimately: only an ended one is a leak.
      const task = /\/tasks\/(\w+)\//.exec(hit)?.[1];
      if (task === undefined || ended.has(task)) found.push(`${node.name}: ${hit}`);
    }
  }
  return found;
}

/** The pid of a task's container, as runc knows it. */
function containerPid(node: ServiceNode, taskId: string): number {
  const state = spawnSync('runc', ['--root', join(node.runDir, 'runc'), 'state', taskId], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (state.status !== 0) throw new Error(`runc state ${taskId}: ${state.stderr}`);
  return (JSON.parse(state.stdout) as { pid: number }).pid;
}

function endedCount(tasks: readonly TaskJSON[], service: string): number {
  return tasks.filter((t) => t.ServiceID === service && terminal.has(t.Status.State)).length;
}

describe('one node', () => {
  test('tasks that exit 0, exit 1, are killed from the host or cannot start leave nothing once their end is seen; after service rm and secret rm nothing remains', async () => {
    using dir = tempDir('secretd-left-behind-');
    await using cluster = await ServiceCluster.init(dir.path);
    const node = cluster.manager;
    cluster.importImage('busybox', busyboxRootfsTarball());
    const values: string[] = [];
    const services = [
      { name: 'ex0', command: ['sh', '-c', 'cat /run/secrets/leak >/dev/null; exit 0'] },
      { name: 'ex1', command: ['sh', '-c', 'cat /run/secrets/leak >/dev/null; exit 1'] },
      { name: 'killed', command: idleCommand },
      { name: 'nocmd', command: ['/no/such/command'] },
    ];
    const ids = new Map<string, string>();
    for (const { name, command } of services) {
      const value = `lb-value-${name}-${crypto.randomUUID()}`;
      values.push(value);
      expectRun(node.cli(['secret', 'create', `leak_${name}`, '-'], value), {
        stdout: /^\w{25}\n$/,
      });
      ids.set(
        name,
        expectRun(
          node.cli([
            'service',
            'create',
            '--name',
            name,
            '--secret',
            `source=leak_${name},target=leak`,
            'busybox',
            ...command,
          ]),
          { stdout: /^\w{25}\n$/ },
        ).stdout.trim(),
      );
    }

    // Kill the 'killed' task's container from the host (as the OOM killer would), three times over,
    // and look for leftovers of ended tasks all along while the others keep exiting and restarting.
    const leaks = new Set<string>();
    for (let kill = 0; kill < 3; kill++) {
      const [task] = await cluster.runningTasks('killed', 1, { timeoutMs: 40_000 });
      process.kill(containerPid(node, task!.ID), 'SIGKILL');
      await until(`the killed task ${task!.ID} to be seen ended`, 20_000, async () => {
        for (const leak of await heldAfterEnd(cluster, values)) leaks.add(leak);
        const seen = (await allTasks(node)).find((t) => t.ID === task!.ID);
        return seen !== undefined && terminal.has(seen.Status.State) ? true : undefined;
      });
    }
    await until('every service to have ended three tasks', 60_000, async () => {
      for (const leak of await heldAfterEnd(cluster, values)) leaks.add(leak);
      const tasks = await allTasks(node);
      return services.every(({ name }) => endedCount(tasks, ids.get(name)!) >= 3)
        ? true
        : undefined;
    });
    for (const leak of await heldAfterEnd(cluster, values)) leaks.add(leak);
    expect([...leaks]).toEqual([]);
    const tasks = await allTasks(node);
    const states = (name: string): string[] =>
      [
        ...new Set(
          tasks
            .filter((t) => t.ServiceID === ids.get(name) && terminal.has(t.Status.State))
            .map((t) => t.Status.State),
        ),
      ].sort();
    expect({
      ex0: states('ex0'),
      ex1: states('ex1'),
      killed: states('killed'),
      nocmd: states('nocmd'),
    }).toEqual({
      ex0: ['complete'],
      ex1: ['failed'],
      killed: ['failed'],
      nocmd: [expect.stringMatching(/^(failed|rejected)$/)] as unknown as string[],
    });

    expectRun(node.cli(['service', 'rm', ...services.map((s) => s.name)]), {});
    expectRun(node.cli(['secret', 'rm', ...services.map((s) => `leak_${s.name}`)]), {});
    await cluster.waitForSecrets(
      { manager: { tasks: [], held: 0 } },
      'service rm and secret rm to leave nothing',
      20_000,
    );
    expect(filesHolding([node.dataDir, node.runDir], values)).toEqual([]);
    expect(readMountsHolding(values)).toEqual([]);
    expect(cluster.output()).not.toContain('lb-value-');
    expect(cluster.daemonErrors()).toEqual([]);
    // A clean stop with no task left takes its run directory along: nothing under /run/secretd.
    expect(existsSync(node.runDir)).toBe(true);
    node.daemon.proc.kill('SIGTERM');
    expect(await node.daemon.exited).toBe(0);
    expect(existsSync(node.runDir)).toBe(false);
  });

  test('a node killed with -9 while its tasks keep exiting leaves nothing of them after it restarts', async () => {
    using dir = tempDir('secretd-left-behind-');
    await using cluster = await ServiceCluster.init(dir.path);
    const node = cluster.manager;
    cluster.importImage('busybox', busyboxRootfsTarball());
    const value = `agent-restart-${crypto.randomUUID()}`;
    expectRun(node.cli(['secret', 'create', 'churn', '-'], value), { stdout: /^\w{25}\n$/ });
    // Three replicas that each live a fraction of a second: some are always starting or exiting.
    const service = expectRun(
      node.cli([
        'service',
        'create',
        '--name',
        'churn',
        '--replicas',
        '3',
        '--secret',
        'churn',
        'busybox',
        'sh',
        '-c',
        'cat /run/secrets/churn >/dev/null; sleep 0.3; exit 3',
      ]),
      { stdout: /^\w{25}\n$/ },
    ).stdout.trim();
    await until('tasks to have ended and restarted', 40_000, async () =>
      endedCount(await allTasks(node), service) >= 3 ? true : undefined,
    );
    await node.daemon.kill('SIGKILL');
    // Containers outlive the agent and go on exiting with nobody to see it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await node.restart();
    // Once the restarted node has taken stock, nothing of an ended task is left, and no more appears.
    await until('the restarted node to erase what ended while it was down', 30_000, async () =>
      (await heldAfterEnd(cluster, [value])).length === 0 &&
      (await allTasks(node)).some((t) => t.Status.State === 'running')
        ? true
        : undefined,
    );
    const leaks = new Set<string>();
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline)
      for (const leak of await heldAfterEnd(cluster, [value])) leaks.add(leak);
    expect([...leaks]).toEqual([]);
    expectRun(node.cli(['service', 'rm', 'churn']), { stdout: 'churn\n' });
    expectRun(node.cli(['secret', 'rm', 'churn']), { stdout: 'churn\n' });
    await cluster.waitForSecrets(
      { manager: { tasks: [], held: 0 } },
      'service rm after the restart to leave nothing',
      20_000,
    );
    expect(filesHolding([node.dataDir, node.runDir], [value])).toEqual([]);
    expect(readMountsHolding([value])).toEqual([]);
  });

  test('50 times create a service and remove it at once: no task is left behind', async () => {
    using dir = tempDir('secretd-left-behind-');
    await using cluster = await ServiceCluster.init(dir.path);
    const node = cluster.manager;
    cluster.importImage('busybox', busyboxRootfsTarball());
    expectRun(node.cli(['secret', 'create', 'quick', '-'], `quick-${crypto.randomUUID()}`), {
      stdout: /^\w{25}\n$/,
    });
    for (let i = 0; i < 50; i++) {
      expectRun(
        node.cli([
          'service',
          'create',
          '--name',
          `quick${i}`,
          '--secret',
          'quick',
          'busybox',
          ...idleCommand,
        ]),
        { stdout: /^\w{25}\n$/ },
      );
      expectRun(node.cli(['service', 'rm', `quick${i}`]), { stdout: `quick${i}\n` });
    }
    await until('every task of the removed services to be gone', 30_000, async () =>
      (await allTasks(node)).length === 0 ? true : undefined,
    ).catch(async (error: Error) => {
      throw new Error(
        `${error.message}: ${(await allTasks(node)).map((t) => `${t.ID} ${t.DesiredState}/${t.Status.State}`).join(', ')}`,
      );
    });
    await cluster.waitForSecrets(
      { manager: { tasks: [], held: 0 } },
      'nothing mounted or held',
      20_000,
    );
  });
});

describe('three managers and two workers', () => {
  test('50 quick create-and-remove cycles leave no task; a removal during which the leader dies leaves nothing on any node', async () => {
    using dir = tempDir('secretd-left-behind-');
    await using cluster = await ServiceCluster.init(dir.path);
    await cluster.joinManager('m2');
    await cluster.joinManager('m3');
    await cluster.joinWorker('w1');
    await cluster.joinWorker('w2');
    cluster.importImage('busybox', busyboxRootfsTarball());
    const leader = cluster.manager;
    const value = `five-nodes-${crypto.randomUUID()}`;
    expectRun(leader.cli(['secret', 'create', 'five', '-'], value), { stdout: /^\w{25}\n$/ });
    await until('five ready nodes', 30_000, async () => {
      const nodes = JSON.parse((await leader.admin('GET', '/nodes')).text) as Array<{
        Status: { State: string };
      }>;
      return nodes.length === 5 && nodes.every((n) => n.Status.State === 'ready')
        ? true
        : undefined;
    });
    for (let i = 0; i < 50; i++) {
      expectRun(
        leader.cli([
          'service',
          'create',
          '--name',
          `quick${i}`,
          '--replicas',
          '2',
          '--secret',
          'five',
          'busybox',
          ...idleCommand,
        ]),
        { stdout: /^\w{25}\n$/ },
      );
      expectRun(leader.cli(['service', 'rm', `quick${i}`]), { stdout: `quick${i}\n` });
    }
    await until('every task of the removed services to be gone', 40_000, async () =>
      (await allTasks(leader)).length === 0 ? true : undefined,
    ).catch(async (error: Error) => {
      throw new Error(
        `${error.message}: ${(await allTasks(leader)).map((t) => `${t.ID} ${t.DesiredState}/${t.Status.State}@${t.NodeID}`).join(', ')}`,
      );
    });
    const none = { tasks: [] as string[], held: 0 };
    await cluster.waitForSecrets(
      { manager: none, m2: none, m3: none, w1: none, w2: none },
      'nothing mounted or held anywhere',
      20_000,
    );

    // Five replicas spread over the nodes; remove the service and kill the leader at once.
    expectRun(
      leader.cli([
        'service',
        'create',
        '--name',
        'spread',
        '--replicas',
        '5',
        '--secret',
        'five',
        'busybox',
        ...idleCommand,
      ]),
      { stdout: /^\w{25}\n$/ },
    );
    await cluster.runningTasks('spread', 5, { timeoutMs: 40_000 });
    expectRun(leader.cli(['service', 'rm', 'spread']), { stdout: 'spread\n' });
    await leader.daemon.kill('SIGKILL');
    const m2 = cluster.node('m2');
    await until('a new leader to show no task', 40_000, async () => {
      const answer = await m2.admin('GET', '/tasks');
      return answer.status === 200 && (JSON.parse(answer.text) as TaskJSON[]).length === 0
        ? true
        : undefined;
    });
    await leader.restart();
    await cluster.waitForSecrets(
      { manager: none, m2: none, m3: none, w1: none, w2: none },
      'nothing mounted or held anywhere after the leader change',
      30_000,
    );
    for (const node of cluster.nodes)
      expect({
        node: node.name,
        files: filesHolding([node.dataDir, node.runDir], [value]),
      }).toEqual({ node: node.name, files: [] });
    expect(readMountsHolding([value])).toEqual([]);
    expect(cluster.daemonErrors()).toEqual([]);
  });
});

describe('three managers', () => {
  test('a demoted manager goes on as a worker with its task and secret, and erases them when the task ends', async () => {
    using dir = tempDir('secretd-lb-');
    await using cluster = await ServiceCluster.init(dir.path);
    const m2 = await cluster.joinManager('m2');
    const m3 = await cluster.joinManager('m3');
    cluster.importImage('busybox', busyboxRootfsTarball());
    const leader = cluster.manager;
    const value = `demoted-${crypto.randomUUID()}`;
    expectRun(leader.cli(['secret', 'create', 'demo', '-'], value), { stdout: /^\w{25}\n$/ });
    // One task on every node, the one about to be demoted included.
    expectRun(
      leader.cli([
        'service',
        'create',
        '--name',
        'everywhere',
        '--mode',
        'global',
        '--secret',
        'demo',
        'busybox',
        ...idleCommand,
      ]),
      {
        stdout: /^\w{25}\n$/,
      },
    );
    await cluster.runningTasks('everywhere', 3, { timeoutMs: 40_000 });
    expect(m3.mountedTasks().length).toBe(1);
    expectRun(leader.cli(['node', 'demote', m3.id]), {});
    // In place, as Docker's: the process lives on as a worker (its Raft data gone), and its task
    // keeps running with its secret: a running container's secret is never taken from it.
    await until('the demoted manager to be a worker', 60_000, () => {
      const state = JSON.parse(readFileSync(join(m3.dataDir, 'node.json'), 'utf8')) as {
        role: string;
      };
      return state.role === 'worker' && !existsSync(join(m3.dataDir, 'raft')) ? true : undefined;
    });
    expect(m3.running).toBe(true);
    await cluster.runningTasks('everywhere', 3, { timeoutMs: 40_000 });
    expect(m3.mountedTasks().length).toBe(1);
    // The task ends: nothing of it is left on the demoted node's machine.
    expectRun(leader.cli(['service', 'rm', 'everywhere']), { stdout: 'everywhere\n' });
    await until('the demoted node to erase its task', 30_000, () =>
      m3.mountedTasks().length === 0 && m3.taskDirs().length === 0 ? true : undefined,
    );
    expect(filesHolding([m3.dataDir, m3.runDir], [value])).toEqual([]);
    expect(m2.running).toBe(true);
  }, 240_000);
});

/** Any tmpfs on the machine, under any secretd run directory, with one of the values in a file (there must be none). */
function readMountsHolding(values: readonly string[]): string[] {
  const mounts = spawnSync(
    'sh',
    ['-c', 'awk \'$3=="tmpfs" && $2 ~ /^\\/run\\/secretd\\// {print $2}\' /proc/mounts'],
    { encoding: 'utf8' },
  )
    .stdout.split('\n')
    .filter((m) => m !== '' && existsSync(m));
  return mounts.flatMap((mount) => filesHolding([mount], values));
}
