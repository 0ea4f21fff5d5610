/**
 * Rotating a secret in place, on real processes and real runc containers (busybox): a new version
 * reaches the running tasks that follow it by an atomic rename in their tmpfs, without a restart;
 * `signal:SIGHUP` runs the container's trap once per update, after the content is in place;
 * `restart` replaces tasks one at a time, each starting with the new version; pinned references
 * never change; rollback, compare-and-set and version removal behave as documented; a node running
 * no consumer never receives the new version; and a manager failover in the middle of a series of
 * updates loses none of them and delivers exactly the newest.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { requireBinary, tempDir, type TempDir } from '../helpers/process.ts';
import {
  adminRequest,
  expectRun,
  ServiceCluster,
  until,
  type ServiceNode,
  type TaskJSON,
} from '../helpers/services.ts';

beforeAll(requireBinary);
setDefaultTimeout(90_000);

const b64 = (text: string): string => Buffer.from(text).toString('base64');

/**
 * Adds a version through the API (the CLI's route); returns the new version number. A write that
 * got no answer (a leader died under it) is sent again: equal data is a no-op, so a retry of one
 * that did land answers 200 with the version it made, and one that did not lands now.
 */
async function update(node: ServiceNode, secret: string, value: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const answer = await adminRequest(
      node.dataDir,
      'POST',
      `/secretd/secrets/${secret}/versions`,
      { Data: b64(value) },
      30_000,
    ).catch((error: Error) => ({ status: 0, text: error.message }));
    if (answer.status === 201 || answer.status === 200)
      return (JSON.parse(answer.text) as { Version: number }).Version;
    if ((answer.status !== 503 && answer.status !== 0) || attempt >= 5)
      throw new Error(`update of ${secret} answered ${answer.status} ${answer.text}`);
  }
}

function secretId(node: ServiceNode, name: string): string {
  return (
    JSON.parse(expectRun(node.cli(['secret', 'inspect', name]), {}).stdout) as Array<{ ID: string }>
  )[0]!.ID;
}

function read(node: ServiceNode, taskId: string, path: string): string {
  return expectRun(node.cli(['exec', taskId, 'cat', path]), {}).stdout;
}

/** The start time of the container's PID 1 (field 22 of /proc/1/stat): the same value means the same process. */
function pid1Start(node: ServiceNode, taskId: string): string {
  return expectRun(node.cli(['exec', taskId, 'sh', '-c', 'cut -d" " -f22 /proc/1/stat']), {
    stdout: /^\d+\n$/,
  }).stdout;
}

describe('a manager and a worker', () => {
  let dir: TempDir;
  let cluster: ServiceCluster;

  beforeAll(async () => {
    dir = tempDir('secretd-rotation-');
    cluster = await ServiceCluster.init(dir.path);
    await cluster.joinWorker('w1');
    cluster.importImage('busybox', busyboxRootfsTarball());
    await until('both nodes ready', 15_000, async () => {
      const nodes = JSON.parse((await cluster.manager.admin('GET', '/nodes')).text) as Array<{
        Status: { State: string };
      }>;
      return nodes.length === 2 && nodes.every((n) => n.Status.State === 'ready')
        ? true
        : undefined;
    });
  });

  afterAll(async () => {
    try {
      await cluster?.[Symbol.asyncDispose]();
    } finally {
      dir?.[Symbol.dispose]();
    }
  });

  /** Waits until the service's live tasks all report `version` of the secret; returns them. */
  async function holding(
    service: string,
    count: number,
    id: string,
    version: number,
  ): Promise<TaskJSON[]> {
    return until(`${service} to hold version ${version}`, 20_000, async () => {
      const tasks = (await cluster.tasks(service, 'running')).filter(
        (t) => t.Status.State === 'running',
      );
      return tasks.length === count && tasks.every((t) => t.Status.SecretVersions[id] === version)
        ? tasks
        : undefined;
    });
  }

  test('a reader in a tight loop sees only whole versions across 50 updates, in the same container and process', async () => {
    const node = cluster.manager;
    const value = (n: number): string => `value-${n}-${'x'.repeat(n * 37)}-end`;
    expectRun(node.cli(['secret', 'create', 'rot', '-'], value(1)), { stdout: /^\w{25}\n$/ });
    const id = secretId(node, 'rot');
    // Records every change it sees, and anything that is not a whole value (empty, partial, missing).
    const reader =
      'trap "exit 0" TERM; last=; while true; do v=$(cat /run/secrets/rot 2>&1); case "$v" in value-*-end) ;; *) echo "bad:[$v]" >> /tmp/bad ;; esac; if [ "$v" != "$last" ]; then echo "${v%%-x*}" >> /tmp/seen; last=$v; fi; done';
    expectRun(
      node.cli([
        'service',
        'create',
        '--name',
        'reader',
        '--secret',
        'rot',
        'busybox',
        'sh',
        '-c',
        reader,
      ]),
      { stdout: /^\w{25}\n$/ },
    );
    const [task] = await cluster.runningTasks('reader', 1);
    const host = cluster.nodeById(task!.NodeID);
    const started = pid1Start(host, task!.ID);

    for (let n = 2; n <= 51; n++) {
      expect(await update(node, 'rot', value(n))).toBe(n);
      await holding('reader', 1, id, n);
    }

    expect(read(host, task!.ID, '/run/secrets/rot')).toBe(value(51));
    expectRun(host.cli(['exec', task!.ID, 'cat', '/tmp/bad']), {
      code: 1,
      stdout: '',
      stderr: /No such file or directory/,
    });
    const seen = read(host, task!.ID, '/tmp/seen').trim().split('\n');
    // Whole versions only, in order, ending with the newest; the reader saw most of them go by.
    const numbers = seen.map((line) => Number(/^value-(\d+)$/.exec(line)?.[1]));
    expect(numbers.every((n, i) => Number.isInteger(n) && (i === 0 || n > numbers[i - 1]!))).toBe(
      true,
    );
    expect(numbers.at(-1)).toBe(51);
    expect(numbers.length).toBeGreaterThan(25);
    // Same task, same container, same PID 1: no restart.
    expect((await cluster.runningTasks('reader', 1))[0]!.ID).toBe(task!.ID);
    expect(pid1Start(host, task!.ID)).toBe(started);
    // The old versions left the node: it holds one value of `rot`.
    expect((await host.secretCounts()).SecretsHeld).toBe(1);
    expectRun(node.cli(['service', 'rm', 'reader']), { stdout: 'reader\n' });
    expect(cluster.output()).not.toContain(value(2));
  });

  test('signal:SIGHUP: the trap runs once per update, and reads the new content', async () => {
    const node = cluster.manager;
    expectRun(node.cli(['secret', 'create', 'hup', '-'], 'h1'), { stdout: /^\w{25}\n$/ });
    const id = secretId(node, 'hup');
    const command =
      'trap "exit 0" TERM; trap "cat /run/secrets/hup >> /tmp/hups; echo >> /tmp/hups" HUP; while true; do sleep 1000 & wait; done';
    expectRun(
      node.cli([
        'service',
        'create',
        '--name',
        'hupper',
        '--secret',
        'source=hup,on-update=signal:SIGHUP',
        'busybox',
        'sh',
        '-c',
        command,
      ]),
      { stdout: /^\w{25}\n$/ },
    );
    const [task] = await cluster.runningTasks('hupper', 1);
    const host = cluster.nodeById(task!.NodeID);
    const started = pid1Start(host, task!.ID);
    for (const n of [2, 3, 4]) {
      expectRun(node.cli(['secret', 'update', 'hup', '-'], `h${n}`), {
        stdout: `hup: version ${n}\n`,
      });
      await holding('hupper', 1, id, n);
      const want = ['h2', 'h3', 'h4'].slice(0, n - 1).join('\n') + '\n';
      await until(`the trap to have run for version ${n}`, 10_000, () =>
        host.cli(['exec', task!.ID, 'cat', '/tmp/hups']).stdout === want ? true : undefined,
      );
    }
    // An update with the same data is a no-op: no new version, no signal.
    expectRun(node.cli(['secret', 'update', 'hup', '-'], 'h4'), {
      stdout: 'hup: unchanged (version 4 holds the same data)\n',
    });
    await holding('hupper', 1, id, 4);
    expect(read(host, task!.ID, '/tmp/hups')).toBe('h2\nh3\nh4\n');
    expect(pid1Start(host, task!.ID)).toBe(started);
    expectRun(node.cli(['service', 'rm', 'hupper']), { stdout: 'hupper\n' });
  });

  test('restart: tasks are replaced one at a time, each new task starting with the new version', async () => {
    const node = cluster.manager;
    expectRun(node.cli(['secret', 'create', 'tls', '-'], 'cert-1'), { stdout: /^\w{25}\n$/ });
    const id = secretId(node, 'tls');
    node.createIdleService('web', [
      '--replicas',
      '2',
      '--update-parallelism',
      '1',
      '--secret',
      'source=tls,on-update=restart',
    ]);
    const old = await cluster.runningTasks('web', 2);
    expectRun(node.cli(['secret', 'update', 'tls', '-'], 'cert-2'), { stdout: 'tls: version 2\n' });
    const fresh = await cluster.runningTasks('web', 2, {
      not: old.map((t) => t.ID),
      timeoutMs: 30_000,
    });
    for (const task of fresh) {
      expect(task.Status.SecretVersions).toEqual({ [id]: 2 });
      expect(read(cluster.nodeById(task.NodeID), task.ID, '/run/secrets/tls')).toBe('cert-2');
    }
    // One at a time: the second replacement was created only after the first one ran.
    const all = await cluster.tasks('web');
    const replacements = all
      .filter((t) => !old.some((o) => o.ID === t.ID))
      .sort((a, b) =>
        (a as unknown as { CreatedAt: string }).CreatedAt.localeCompare(
          (b as unknown as { CreatedAt: string }).CreatedAt,
        ),
      );
    expect(replacements.length).toBe(2);
    const firstRunningAt =
      replacements[0]!.Status.State === 'running'
        ? (replacements[0] as unknown as { UpdatedAt: string }).UpdatedAt
        : '';
    expect((replacements[1] as unknown as { CreatedAt: string }).CreatedAt >= firstRunningAt).toBe(
      true,
    );
    expectRun(node.cli(['service', 'rm', 'web']), { stdout: 'web\n' });
  });

  test('pinned never changes; rollback; a stale --if-version is 409 and changes nothing; a pinned version cannot be removed; a node with no consumer gets nothing', async () => {
    const node = cluster.manager;
    expectRun(node.cli(['secret', 'create', 'pr', '-'], 'p1'), { stdout: /^\w{25}\n$/ });
    const id = secretId(node, 'pr');
    node.createIdleService('follow', ['--secret', 'pr']);
    expectRun(node.cli(['secret', 'update', 'pr', '-'], 'p2'), { stdout: 'pr: version 2\n' });
    node.createIdleService('pin', ['--secret', 'source=pr@1,target=pr']);
    const [pinned] = await cluster.runningTasks('pin', 1);
    const [follower] = await holding('follow', 1, id, 2);
    const pinHost = cluster.nodeById(pinned!.NodeID);
    const followHost = cluster.nodeById(follower!.NodeID);
    expect(read(pinHost, pinned!.ID, '/run/secrets/pr')).toBe('p1');
    expect(read(followHost, follower!.ID, '/run/secrets/pr')).toBe('p2');

    expectRun(node.cli(['secret', 'update', 'pr', '-', '--if-version', '1'], 'p3'), {
      code: 1,
      stdout: '',
      stderr:
        'Error: Cannot update secret pr: --if-version 1 is out of date (the newest version is 2)\n',
    });
    expectRun(node.cli(['secret', 'update', 'pr', '-', '--if-version', 'x'], 'p3'), {
      code: 1,
      stdout: '',
      stderr: /^Error: Invalid --if-version "x": a version is a whole number/,
    });
    expectRun(node.cli(['secret', 'rm', 'pr', '--version', '1']), {
      code: 1,
      stdout: '',
      stderr:
        'Error: Cannot remove version 1 of secret pr: it is pinned by service pin, task pin.1\n',
    });

    // Rollback: version 1's data becomes version 3, delivered in place to the follower.
    expectRun(node.cli(['secret', 'rollback', 'pr', '--to', '1']), {
      stdout: 'pr: version 3 (the data of version 1)\n',
    });
    await holding('follow', 1, id, 3);
    expect(read(followHost, follower!.ID, '/run/secrets/pr')).toBe('p1');
    expect(read(pinHost, pinned!.ID, '/run/secrets/pr')).toBe('p1');
    expect((await cluster.tasks('pin', 'running'))[0]!.Status.SecretVersions).toEqual({ [id]: 1 });

    const versions = expectRun(node.cli(['secret', 'versions', 'pr']), {}).stdout.split('\n');
    expect(versions[0]).toMatch(/^VERSION\s+CREATED\s+IN USE BY$/);
    expect(versions.slice(1, 4).map((line) => line.replace(/\s{3,}.*?ago\s*/, ' | '))).toEqual([
      '3 | services: follow; tasks: follow.1',
      '2 | ',
      '1 | services: pin (pinned); tasks: pin.1',
    ]);
    expectRun(node.cli(['secret', 'rm', 'pr', '--version', '2']), {
      stdout: 'pr: version 2 removed\n',
    });

    // Both tasks on one node? Then the other node ran no consumer of `pr` and got none of it.
    const hosts = new Set([pinHost.name, followHost.name]);
    const idle = cluster.nodes.find((n) => !hosts.has(n.name));
    if (idle) {
      const before = await idle.secretCounts();
      expectRun(node.cli(['secret', 'update', 'pr', '-'], 'p4'), { stdout: 'pr: version 4\n' });
      await holding('follow', 1, id, 4);
      expect(await idle.secretCounts()).toEqual(before);
    }
    // The follower's node got version 4; a node whose only task pins version 1 did not.
    if (pinHost !== followHost) {
      const before = await pinHost.secretCounts();
      const newest = Number(
        /^pr: version (\d+)\n$/.exec(
          expectRun(node.cli(['secret', 'update', 'pr', '-'], 'p5'), {}).stdout,
        )?.[1],
      );
      await holding('follow', 1, id, newest);
      expect(await pinHost.secretCounts()).toEqual(before);
    }
    expectRun(node.cli(['service', 'rm', 'pin', 'follow']), { stdout: 'pin\nfollow\n' });
  });
});

describe('three managers', () => {
  test('a leader killed in the middle of a series of updates loses none of them, and every task ends with exactly the newest', async () => {
    using dir = tempDir('secretd-rotation-ha-');
    await using cluster = await ServiceCluster.init(dir.path);
    const [m1] = cluster.nodes;
    const m2 = await cluster.joinManager('m2');
    await cluster.joinManager('m3');
    cluster.importImage('busybox', busyboxRootfsTarball());
    await until('three managers ready', 20_000, async () => {
      const nodes = JSON.parse((await m2.admin('GET', '/nodes')).text) as Array<{
        Status: { State: string };
      }>;
      return nodes.length === 3 && nodes.every((n) => n.Status.State === 'ready')
        ? true
        : undefined;
    });
    expectRun(m2.cli(['secret', 'create', 'fo', '-'], 'f1'), { stdout: /^\w{25}\n$/ });
    const id = secretId(m2, 'fo');
    m2.createIdleService('ha', ['--replicas', '3', '--secret', 'fo']);
    await cluster.runningTasks('ha', 3, { timeoutMs: 30_000 });

    // Updates go through m2, which forwards them to the leader (m1) and retries while a new one is elected.
    const acked: number[] = [];
    for (let n = 2; n <= 11; n++) {
      if (n === 6) m1!.daemon.proc.kill('SIGKILL');
      acked.push(await update(m2, 'fo', `f${n}`));
    }
    expect(acked).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const versions = JSON.parse((await m2.admin('GET', '/secretd/secrets/fo/versions')).text) as {
      Versions: Array<{ Version: number }>;
    };
    expect(versions.Versions.map((v) => v.Version)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

    // The killed node's task moves to a live node; every live task ends with version 11 and its data.
    const tasks = await until('every live task to hold version 11', 45_000, async () => {
      const answer = await m2.admin(
        'GET',
        `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: ['ha'], 'desired-state': ['running'] }))}`,
      );
      if (answer.status !== 200) return undefined;
      const live = (JSON.parse(answer.text) as TaskJSON[]).filter(
        (t) => t.Status.State === 'running',
      );
      return live.length === 3 &&
        live.every((t) => t.NodeID !== m1!.id && t.Status.SecretVersions[id] === 11)
        ? live
        : undefined;
    });
    for (const task of tasks)
      expect(expectRun(m2.cli(['exec', task.ID, 'cat', '/run/secrets/fo']), {}).stdout).toBe('f11');

    // The killed manager comes back, and erases the container it left (its task moved elsewhere).
    await m1!.restart();
    await until('m1 to erase what it left', 30_000, () =>
      m1!.mountedTasks().length === 0 ? true : undefined,
    );
    expect(cluster.daemonErrors()).toEqual([]);
  });
});
