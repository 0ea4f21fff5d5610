/**
 * Services whose tasks get secrets, on real processes: the compiled executable, real runc
 * containers (busybox), one manager that also runs tasks and, for the placement tests, two workers
 * on the same machine. What must hold: a secret is readable in its task at /run/secrets with the
 * owner and mode asked for; it reaches only the node that runs a task using it (its tmpfs, its
 * agent's memory); it leaves that node as soon as no task there uses it (update, scale, drain,
 * removal); a task of a killed node is rescheduled and gets its secret elsewhere; and no value is
 * ever on disk, in a log or in an API answer.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { requireBinary, tempDir, type TempDir } from '../helpers/process.ts';
import {
  expectRun,
  filesHolding,
  idleCommand,
  ServiceCluster,
  until,
  type ServiceNode,
} from '../helpers/services.ts';

beforeAll(requireBinary);
// Real processes and containers on a small shared machine: each test takes 2-15 s.
setDefaultTimeout(60_000);

/** How long each erasure took, for the report printed at the end. */
const timings: string[] = [];
afterAll(() => {
  if (timings.length > 0) console.log(`services: ${timings.join(', ')}`);
});

/** Erasing a secret from a node stops one container (TERM trap: at once) and unmounts: well under this. */
const promptMs = 5000;

describe('one node', () => {
  test('the seed flow: the secret is readable in its task, follows --secret-rm and --secret-add, and nothing of it is left after service rm', async () => {
    using dir = tempDir('secretd-services-');
    await using cluster = await ServiceCluster.init(dir.path);
    const node = cluster.manager;
    const values = ['This is a secret\n', 'db-password-v2'];
    cluster.importImage('busybox', busyboxRootfsTarball());
    const secretId = expectRun(
      node.cli(['secret', 'create', 'my_secret_data', '-'], 'This is a secret\n'),
      { stdout: /^\w{25}\n$/ },
    ).stdout.trim();
    node.createIdleService('redis', ['--secret', 'my_secret_data']);

    const [first] = await cluster.runningTasks('redis', 1);
    expectRun(node.cli(['exec', 'redis.1', 'ls', '-l', '/run/secrets']), {
      stdout: /^total \d+\n-r--r--r--\s+1 root\s+root\s+17 [^\n]* my_secret_data\n$/,
    });
    expectRun(node.cli(['exec', 'redis.1', 'cat', '/run/secrets/my_secret_data']), {
      stdout: 'This is a secret\n',
    });
    expect(first!.Status.SecretVersions).toEqual({ [secretId]: 1 });
    expect(node.mountedTasks()).toEqual([first!.ID]);
    expect(await node.secretCounts()).toEqual({ SecretsReceived: 1, SecretsHeld: 1 });
    // While it runs, the value is in its tmpfs and nowhere else: not in config.json, the manifest or runc's log.
    const mounts = node.mountedTasks().map((id) => join(node.runDir, 'tasks', id, 'secrets'));
    expect(filesHolding([node.dataDir, node.runDir], values, mounts)).toEqual([]);

    expectRun(node.cli(['service', 'update', '--secret-rm', 'my_secret_data', 'redis']), {
      stdout: 'redis\n',
    });
    const [second] = await cluster.runningTasks('redis', 1, { not: [first!.ID] });
    expect(second!.Spec.ContainerSpec.Secrets).toEqual([]);
    expectRun(node.cli(['exec', second!.ID, 'ls', '-A', '/run/secrets']), { stdout: '' });
    expectRun(node.cli(['exec', second!.ID, 'cat', '/run/secrets/my_secret_data']), {
      code: 1,
      stdout: '',
      stderr: /can't open '\/run\/secrets\/my_secret_data': No such file or directory/,
    });
    // Stop-first: the old task, its tmpfs and its directory were gone before the new one ran.
    expect(node.mountedTasks()).toEqual([second!.ID]);
    expect(existsSync(join(node.runDir, 'tasks', first!.ID))).toBe(false);
    expect((await node.secretCounts()).SecretsHeld).toBe(0);

    expectRun(node.cli(['secret', 'create', 'db_v2', '-'], 'db-password-v2'), {
      stdout: /^\w{25}\n$/,
    });
    expectRun(
      node.cli([
        'service',
        'update',
        '--secret-add',
        'source=db_v2,target=db_pass,uid=1000,gid=1000,mode=0400',
        'redis',
      ]),
      { stdout: 'redis\n' },
    );
    const [third] = await cluster.runningTasks('redis', 1, { not: [first!.ID, second!.ID] });
    expectRun(node.cli(['exec', third!.ID, 'ls', '-ln', '/run/secrets']), {
      stdout: /^total \d+\n-r--------\s+1 1000\s+1000\s+14 [^\n]* db_pass\n$/,
    });
    expect(node.mountedTasks()).toEqual([third!.ID]);

    // No value in any API answer a client can get.
    for (const path of [
      '/tasks',
      '/services',
      '/secrets',
      '/services/redis',
      '/secrets/db_v2',
      `/tasks/${third!.ID}`,
      '/info',
    ]) {
      const answer = await node.admin('GET', path);
      expect({ path, status: answer.status }).toEqual({ path, status: 200 });
      for (const value of values)
        expect(
          answer.text.includes(value.trim()) ||
            answer.text.includes(Buffer.from(value).toString('base64')),
        ).toBe(false);
    }

    expectRun(node.cli(['service', 'rm', 'redis']), { stdout: 'redis\n' });
    const erasedMs = await cluster.waitForSecrets(
      { manager: { tasks: [], held: 0 } },
      'service rm to erase the secrets',
    );
    timings.push(`service rm ${erasedMs} ms (one node)`);
    expect(readdirSync(join(node.runDir, 'tasks'))).toEqual([]);
    expect(filesHolding([node.dataDir, node.runDir], values)).toEqual([]);
    expect(cluster.output()).not.toContain('This is a secret');
    expect(cluster.output()).not.toContain('db-password-v2');
    expect(cluster.daemonErrors()).toEqual([]);
  });
});

describe('a manager and two workers', () => {
  let dir: TempDir;
  let cluster: ServiceCluster;
  const value = `placement-secret-${crypto.randomUUID()}`;
  const none = { tasks: [] as string[], held: 0 };

  beforeAll(async () => {
    dir = tempDir('secretd-services-');
    cluster = await ServiceCluster.init(dir.path);
    await cluster.joinWorker('w1');
    await cluster.joinWorker('w2');
    cluster.importImage('busybox', busyboxRootfsTarball());
    expectRun(cluster.manager.cli(['secret', 'create', 'placed', '-'], value), {
      stdout: /^\w{25}\n$/,
    });
    await allReady();
  });

  afterAll(async () => {
    try {
      await cluster?.[Symbol.asyncDispose]();
    } finally {
      dir?.[Symbol.dispose]();
    }
  });

  /** Every node Ready and Active, as `node ls` shows them. */
  async function allReady(): Promise<void> {
    await until('every node ready and active', 15_000, async () => {
      const nodes = JSON.parse((await cluster.manager.admin('GET', '/nodes')).text) as Array<{
        Spec: { Availability: string };
        Status: { State: string };
      }>;
      return nodes.length === 3 &&
        nodes.every((n) => n.Status.State === 'ready' && n.Spec.Availability === 'active')
        ? true
        : undefined;
    });
  }

  function create(name: string, replicas = 1): void {
    cluster.manager.createIdleService(name, ['--replicas', String(replicas), '--secret', 'placed']);
  }

  function readable(taskId: string): void {
    expectRun(cluster.manager.cli(['exec', taskId, 'cat', '/run/secrets/placed']), {
      stdout: value,
    });
  }

  /** The expected state: each node's mounted tasks and held secrets (1 where a task uses the secret). */
  function only(
    placed: Record<string, string[]>,
  ): Record<string, { tasks: string[]; held: number }> {
    return Object.fromEntries(
      cluster.nodes.map((n) => [
        n.name,
        placed[n.name] ? { tasks: placed[n.name]!, held: 1 } : none,
      ]),
    );
  }

  /** Nodes without a task using the secret have it nowhere; those with one have it only in the tmpfs. */
  function noValueOnDiskOutsideTmpfs(): void {
    const mounts = cluster.nodes.flatMap((n) =>
      n.mountedTasks().map((id) => join(n.runDir, 'tasks', id, 'secrets')),
    );
    expect(
      filesHolding(
        cluster.nodes.flatMap((n) => [n.dataDir, n.runDir]),
        [value],
        mounts,
      ),
    ).toEqual([]);
  }

  async function removeService(name: string): Promise<number> {
    expectRun(cluster.manager.cli(['service', 'rm', name]), { stdout: `${name}\n` });
    return cluster.waitForSecrets(only({}), `${name} removed everywhere`);
  }

  /** Runs a test's steps, then makes sure the next test starts without the service, whatever happened. */
  async function withService(name: string, steps: () => Promise<void>): Promise<void> {
    try {
      await steps();
    } finally {
      if (cluster.manager.cli(['service', 'rm', name]).code === 0)
        await cluster.waitForSecrets(only({}), `${name} removed everywhere`).catch(() => undefined);
    }
  }

  test('node ls shows the workers Ready (their dispatcher sessions), so node rm of a running worker needs --force', () => {
    const ls = expectRun(cluster.manager.cli(['node', 'ls', '--format', 'json']), {})
      .stdout.trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { ID: string; Status: { State: string } });
    expect(
      ls.map((n) => ({ id: n.ID, state: n.Status.State })).sort((a, b) => a.id.localeCompare(b.id)),
    ).toEqual(
      cluster.nodes
        .map((n) => ({ id: n.id, state: 'ready' }))
        .sort((a, b) => a.id.localeCompare(b.id)),
    );
    const w1 = cluster.node('w1');
    expectRun(cluster.manager.cli(['node', 'rm', w1.id]), {
      code: 1,
      stdout: '',
      stderr: `Error: Node ${w1.id} is not down and can't be removed: stop it first, or use --force\n`,
    });
  });

  test("a replica's secret reaches only the node that runs it, and service rm erases it there", () =>
    withService('solo', async () => {
      const before = await Promise.all(cluster.nodes.map((n) => n.secretCounts()));
      create('solo');
      const [task] = await cluster.runningTasks('solo', 1);
      const holder = cluster.nodeById(task!.NodeID);
      readable(task!.ID);
      await cluster.waitForSecrets(
        only({ [holder.name]: [task!.ID] }),
        'the secret on its node only',
      );
      const received = (await Promise.all(cluster.nodes.map((n) => n.secretCounts()))).map(
        (c, i) => c.SecretsReceived - before[i]!.SecretsReceived,
      );
      expect(received).toEqual(cluster.nodes.map((n) => (n === holder ? 1 : 0)));
      noValueOnDiskOutsideTmpfs();

      const ms = await removeService('solo');
      timings.push(`service rm ${ms} ms`);
      expect(ms).toBeLessThan(promptMs);
    }));

  test('service update --secret-rm erases the secret from its node; the new task runs without it', () =>
    withService('rotating', async () => {
      create('rotating');
      const [task] = await cluster.runningTasks('rotating', 1);
      readable(task!.ID);
      const start = Date.now();
      expectRun(cluster.manager.cli(['service', 'update', '--secret-rm', 'placed', 'rotating']), {
        stdout: 'rotating\n',
      });
      const [next] = await cluster.runningTasks('rotating', 1, { not: [task!.ID] });
      await cluster.waitForSecrets(
        { ...only({}), [cluster.nodeById(next!.NodeID).name]: { tasks: [next!.ID], held: 0 } },
        'the secret gone, the new task without it',
      );
      const ms = Date.now() - start;
      timings.push(`--secret-rm ${ms} ms`);
      expect(ms).toBeLessThan(promptMs);
      expectRun(cluster.manager.cli(['exec', next!.ID, 'ls', '-A', '/run/secrets']), {
        stdout: '',
      });
      noValueOnDiskOutsideTmpfs();
      await removeService('rotating');
    }));

  test('scaling 3 → 1 erases the secret from the two nodes that no longer run a replica', () =>
    withService('scaled', async () => {
      create('scaled', 3);
      const tasks = await cluster.runningTasks('scaled', 3);
      // Spread: one replica per node.
      expect(new Set(tasks.map((t) => t.NodeID)).size).toBe(3);
      await cluster.waitForSecrets(
        only(Object.fromEntries(tasks.map((t) => [cluster.nodeById(t.NodeID).name, [t.ID]]))),
        'one replica and its secret per node',
      );
      const start = Date.now();
      expectRun(cluster.manager.cli(['service', 'scale', 'scaled=1']), {
        stdout: 'scaled scaled to 1\n',
      });
      const [kept] = await cluster.runningTasks('scaled', 1);
      expect(kept!.ID).toBe(tasks[0]!.ID);
      await cluster.waitForSecrets(
        only({ [cluster.nodeById(kept!.NodeID).name]: [kept!.ID] }),
        'the secret only where the replica left runs',
      );
      const ms = Date.now() - start;
      timings.push(`scale 3→1 ${ms} ms`);
      expect(ms).toBeLessThan(promptMs);
      readable(kept!.ID);
      await removeService('scaled');
    }));

  test('a --constraint no node matches leaves the task pending with "no suitable node"; once a node matches, the task and its secret go there only', () =>
    withService('constrained', async () => {
      const w2 = cluster.node('w2');
      try {
        cluster.manager.createIdleService('constrained', [
          '--constraint',
          'node.labels.zone==e2e',
          '--secret',
          'placed',
        ]);
        const pending = await until('the task pending', 15_000, async () => {
          const [task] = await cluster.tasks('constrained', 'running');
          return task?.Status.State === 'pending' ? task : undefined;
        });
        expect([pending.NodeID ?? null, pending.Status.Message]).toEqual([
          null,
          'no suitable node (scheduling constraints not satisfied on 3 nodes)',
        ]);
        await cluster.waitForSecrets(only({}), 'the secret nowhere');
        expectRun(cluster.manager.cli(['node', 'update', '--label-add', 'zone=e2e', w2.id]), {
          stdout: `${w2.id}\n`,
        });
        const [task] = await cluster.runningTasks('constrained', 1);
        expect([task!.ID, task!.NodeID]).toEqual([pending.ID, w2.id]);
        readable(task!.ID);
        await cluster.waitForSecrets(only({ w2: [task!.ID] }), 'the secret on w2 only');
        await removeService('constrained');
      } finally {
        cluster.manager.cli(['node', 'update', '--label-rm', 'zone', w2.id]);
      }
    }));

  test("draining the node that runs the task erases the secret there and delivers it to the replacement's node", () =>
    withService('drained', async () => {
      create('drained');
      const [task] = await cluster.runningTasks('drained', 1);
      const from = cluster.nodeById(task!.NodeID);
      try {
        const start = Date.now();
        expectRun(cluster.manager.cli(['node', 'update', '--availability', 'drain', from.id]), {
          stdout: `${from.id}\n`,
        });
        const [moved] = await cluster.runningTasks('drained', 1, { not: [task!.ID] });
        const to = cluster.nodeById(moved!.NodeID);
        expect(to).not.toBe(from);
        await cluster.waitForSecrets(
          only({ [to.name]: [moved!.ID] }),
          'the secret moved with the task',
        );
        const ms = Date.now() - start;
        timings.push(`drain ${ms} ms`);
        expect(ms).toBeLessThan(promptMs);
        readable(moved!.ID);
      } finally {
        expectRun(cluster.manager.cli(['node', 'update', '--availability', 'active', from.id]), {
          stdout: `${from.id}\n`,
        });
      }
      await removeService('drained');
      await allReady();
    }));

  test('SIGKILL of the worker running the task: rescheduled after the missed heartbeats, the secret arrives on the other worker, and the restarted worker erases its orphan', () =>
    withService('survivor', async () => {
      // Only the workers take tasks here, so the task and its replacement are on one each.
      expectRun(
        cluster.manager.cli(['node', 'update', '--availability', 'drain', cluster.manager.id]),
        { stdout: `${cluster.manager.id}\n` },
      );
      let victim: ServiceNode | null = null;
      try {
        create('survivor');
        const [task] = await cluster.runningTasks('survivor', 1);
        victim = cluster.nodeById(task!.NodeID);
        expect(victim.role).toBe('worker');
        readable(task!.ID);
        const killedAt = Date.now();
        await victim.daemon.kill('SIGKILL');
        const [moved] = await cluster.runningTasks('survivor', 1, {
          not: [task!.ID],
          timeoutMs: 15_000,
        });
        const rescheduledMs = Date.now() - killedAt;
        const heir = cluster.nodeById(moved!.NodeID);
        expect(heir.role).toBe('worker');
        expect(heir).not.toBe(victim);
        readable(moved!.ID);
        timings.push(
          `SIGKILL → running elsewhere with its secret ${Date.now() - killedAt} ms (rescheduled at ${rescheduledMs} ms)`,
        );
        // Down once 3 s pass without a heartbeat, counted from the last one (up to 1 s before the
        // kill): not at the dropped connection, which a restarting agent also causes; then at once.
        expect(rescheduledMs).toBeGreaterThanOrEqual(1000);
        expect(rescheduledMs).toBeLessThan(10_000);
        const orphan = (await cluster.tasks('survivor')).find((t) => t.ID === task!.ID);
        expect({
          state: orphan?.Status.State,
          message: orphan?.Status.Message,
          desired: orphan?.DesiredState,
        }).toEqual({
          state: 'orphaned',
          message: `node ${victim.id} is down`,
          desired: 'shutdown',
        });
        // The killed agent's container (and so its tmpfs) outlived it, as Docker's do.
        expect(victim.mountedTasks()).toEqual([task!.ID]);

        await victim.restart();
        const ms = await cluster.waitForSecrets(
          only({ [heir.name]: [moved!.ID] }),
          'the restarted worker to erase its orphaned task',
        );
        timings.push(`restarted worker erased its orphan in ${ms} ms`);
        noValueOnDiskOutsideTmpfs();
      } finally {
        if (victim && !victim.running) await victim.restart();
        expectRun(
          cluster.manager.cli(['node', 'update', '--availability', 'active', cluster.manager.id]),
          { stdout: `${cluster.manager.id}\n` },
        );
      }
      await removeService('survivor');
      await allReady();
      expect(cluster.output()).not.toContain(value);
      expect(cluster.daemonErrors()).toEqual([]);
    }));

  // Last: it leaves the cluster with two nodes.
  test('a worker removed while it was down stops its tasks and erases their secrets when it comes back', () =>
    withService('leaver', async () => {
      const victim = cluster.node('w2');
      create('leaver', 3);
      const tasks = await cluster.runningTasks('leaver', 3);
      const orphaned = tasks.filter((t) => t.NodeID === victim.id).map((t) => t.ID);
      expect(orphaned.length).toBe(1);
      await victim.daemon.kill('SIGKILL');
      await until(`${victim.name} down`, 15_000, async () => {
        const nodes = JSON.parse((await cluster.manager.admin('GET', '/nodes')).text) as Array<{
          ID: string;
          Status: { State: string };
        }>;
        return nodes.find((n) => n.ID === victim.id)?.Status.State === 'down' ? true : undefined;
      });
      // A down node needs no --force (as with Docker).
      expectRun(cluster.manager.cli(['node', 'rm', victim.id]), { stdout: `${victim.id}\n` });
      const replaced = await cluster.runningTasks('leaver', 3);
      expect(replaced.some((t) => t.NodeID === victim.id)).toBe(false);
      // Nobody could tell the dead agent; its container and tmpfs outlived it.
      expect(victim.mountedTasks()).toEqual(orphaned);

      await victim.restart();
      const placed: Record<string, string[]> = {};
      for (const t of replaced) (placed[cluster.nodeById(t.NodeID).name] ??= []).push(t.ID);
      const ms = await cluster.waitForSecrets(
        only(placed),
        'the removed worker to erase its tasks',
      );
      timings.push(`removed worker erased its tasks ${ms} ms after its restart`);
      expect(victim.daemon.stderr).toContain(
        `secretd: agent: the cluster refused this node (Permission denied: node ${victim.id} was removed from the cluster); stopping its tasks and erasing their secrets`,
      );
      expect(filesHolding([victim.dataDir, victim.runDir], [value])).toEqual([]);
      await removeService('leaver');
    }));
});

describe('bad input', () => {
  let dir: TempDir;
  let cluster: ServiceCluster;

  beforeAll(async () => {
    dir = tempDir('secretd-services-');
    cluster = await ServiceCluster.init(dir.path);
    cluster.importImage('busybox', busyboxRootfsTarball());
    expectRun(cluster.manager.cli(['secret', 'create', 'a', '-'], 'value-a'), {
      stdout: /^\w{25}\n$/,
    });
    expectRun(cluster.manager.cli(['secret', 'create', 'b', '-'], 'value-b'), {
      stdout: /^\w{25}\n$/,
    });
  });

  afterAll(async () => {
    try {
      await cluster?.[Symbol.asyncDispose]();
    } finally {
      dir?.[Symbol.dispose]();
    }
  });

  const services = (): string =>
    expectRun(cluster.manager.cli(['service', 'ls', '-q']), { stdout: /^[\w\n]*$/ }).stdout.trim();

  test('an unknown secret in --secret is refused by name and creates no service', () => {
    expectRun(
      cluster.manager.cli([
        'service',
        'create',
        '--name',
        'ghost',
        '--secret',
        'nope',
        'busybox',
        ...idleCommand,
      ]),
      { code: 1, stdout: '', stderr: 'Error: Secret not found: nope\n' },
    );
    expectRun(
      cluster.manager.cli([
        'service',
        'create',
        '--name',
        'ghost',
        '--secret',
        'a',
        '--secret',
        'nope2',
        '--secret',
        'nope3',
        'busybox',
        ...idleCommand,
      ]),
      { code: 1, stdout: '', stderr: 'Error: Secrets not found: nope2, nope3\n' },
    );
    expect(services()).toBe('');
  });

  test('two secrets with one target are refused by the CLI and by the API', async () => {
    expectRun(
      cluster.manager.cli([
        'service',
        'create',
        '--name',
        'twice',
        '--secret',
        'source=a,target=same',
        '--secret',
        'source=b,target=same',
        'busybox',
        ...idleCommand,
      ]),
      {
        code: 1,
        stdout: '',
        stderr: 'Error: Duplicate secret target for same not allowed\n',
      },
    );
    const spec = {
      Name: 'twice',
      TaskTemplate: {
        ContainerSpec: {
          Image: 'busybox',
          Args: idleCommand,
          Secrets: [
            { SecretName: 'a', File: { Name: 'same' } },
            { SecretName: 'b', File: { Name: 'same' } },
          ],
        },
      },
    };
    const answer = await cluster.manager.admin('POST', '/services/create', spec);
    expect({ status: answer.status, body: JSON.parse(answer.text) }).toEqual({
      status: 400,
      body: {
        message:
          "Invalid service spec: secret references 'a' and 'b' have a conflicting target: 'same'",
      },
    });
    expect(services()).toBe('');
  });

  test('secret rm of a secret in use is refused, naming the service; once the service is gone it succeeds', async () => {
    cluster.manager.createIdleService('user', ['--secret', 'b']);
    expectRun(cluster.manager.cli(['secret', 'rm', 'b']), {
      code: 1,
      stdout: '',
      stderr: "Error: Secret 'b' is in use by the following service: user\n",
    });
    expectRun(cluster.manager.cli(['secret', 'inspect', 'b']), { stdout: /"Name": "b"/ });
    expectRun(cluster.manager.cli(['service', 'rm', 'user']), { stdout: 'user\n' });
    await cluster.waitForSecrets({ manager: { tasks: [], held: 0 } }, 'the service removed');
    expectRun(cluster.manager.cli(['secret', 'rm', 'b']), { stdout: 'b\n' });
  });

  test('invalid modes are refused with the mode named, by the CLI and by the API', async () => {
    for (const mode of ['999', '0999', '0o400', '-1', 'rw', '01000']) {
      expectRun(
        cluster.manager.cli([
          'service',
          'create',
          '--name',
          'moded',
          '--secret',
          `source=a,mode=${mode}`,
          'busybox',
          ...idleCommand,
        ]),
        {
          code: 1,
          stdout: '',
          stderr: `Error: Invalid --secret "source=a,mode=${mode}": invalid file mode "${mode}"\n`,
        },
      );
    }
    for (const mode of [0o1000, -1, 1.5, '0400']) {
      const spec = {
        Name: 'moded',
        TaskTemplate: {
          ContainerSpec: {
            Image: 'busybox',
            Args: idleCommand,
            Secrets: [{ SecretName: 'a', File: { Name: 'a', Mode: mode } }],
          },
        },
      };
      const answer = await cluster.manager.admin('POST', '/services/create', spec);
      expect({ mode, status: answer.status, body: JSON.parse(answer.text) }).toEqual({
        mode,
        status: 400,
        body: {
          message: 'Invalid service spec: secret a has an invalid file mode (expected 0 to 0777)',
        },
      });
    }
    expect(services()).toBe('');
  });

  test('an image the node does not have: the task is rejected with the reason in service ps, and nothing is mounted', async () => {
    expectRun(
      cluster.manager.cli([
        'service',
        'create',
        '--name',
        'noimage',
        '--secret',
        'a',
        'nosuchimage',
        ...idleCommand,
      ]),
      { stdout: /^\w{25}\n$/ },
    );
    const rejected = await until('a rejected task', 15_000, async () =>
      (await cluster.tasks('noimage')).find((t) => t.Status.State === 'rejected'),
    );
    expect(rejected.Status.Err).toBe(
      "Image 'nosuchimage' not found on this node: import it with `secretd image import nosuchimage ROOTFS.tar`",
    );
    expectRun(cluster.manager.cli(['service', 'ps', 'noimage']), {
      stdout: /noimage\.1\s+nosuchimage\s.*Rejected .*"Image 'nosuchimage' not found on this node/,
    });
    expect(cluster.manager.mountedTasks()).toEqual([]);
    expectRun(cluster.manager.cli(['service', 'rm', 'noimage']), { stdout: 'noimage\n' });
    await cluster.waitForSecrets({ manager: { tasks: [], held: 0 } }, 'the service removed');
  });

  test('a node whose OCI runtime is missing rejects the task with a message naming the runtime, and mounts nothing', async () => {
    using other = tempDir('secretd-services-');
    await using broken = await ServiceCluster.init(other.path, {
      initFlags: ['--runtime', '/nonexistent/runc'],
    });
    broken.importImage('busybox', busyboxRootfsTarball());
    expectRun(broken.manager.cli(['secret', 'create', 'a', '-'], 'value-a'), {
      stdout: /^\w{25}\n$/,
    });
    broken.manager.createIdleService('noruntime', ['--secret', 'a']);
    const rejected = await until('a rejected task', 15_000, async () =>
      (await broken.tasks('noruntime')).find((t) => t.Status.State === 'rejected'),
    );
    expect(rejected.Status.Err).toBe(
      "OCI runtime '/nonexistent/runc' not found: install runc or pass --runtime PATH",
    );
    expectRun(broken.manager.cli(['service', 'ps', 'noruntime']), {
      stdout: /Rejected .*"OCI runtime '\/nonexistent\/runc' not found/,
    });
    expect(broken.manager.mountedTasks()).toEqual([]);
    expect(filesHolding([broken.manager.dataDir, broken.manager.runDir], ['value-a'])).toEqual([]);
    expect({
      errors: [...cluster.daemonErrors(), ...broken.daemonErrors()],
      values: [cluster.output(), broken.output()].some((out) => out.includes('value-')),
    }).toEqual({ errors: [], values: false });
  });
});
