/**
 * A copy of a node's data dir started as a second process: it claims the same node id with the
 * same certificate. The dispatcher refuses its session (409) while the first process keeps its
 * heartbeats, so the first keeps its task and its secret, and the copy runs nothing.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { adminRequest } from '../helpers/cluster.ts';
import { Daemon, requireBinary, tempDir } from '../helpers/process.ts';
import {
  expectRun,
  idleCommand,
  runDirOf,
  secretMounts,
  ServiceCluster,
  until,
} from '../helpers/services.ts';

beforeAll(requireBinary);
setDefaultTimeout(90_000);

describe('a second process claiming a node id', () => {
  test("a copy of a worker's data dir is refused its session, and the worker keeps its task and secret", async () => {
    using dir = tempDir('secretd-duplicate-');
    await using cluster = await ServiceCluster.init(dir.path);
    const worker = await cluster.joinWorker('one');
    cluster.importImage('busybox', busyboxRootfsTarball());
    const manager = cluster.manager;
    expectRun(manager.cli(['node', 'update', '--availability', 'drain', manager.id]), {
      stdout: `${manager.id}\n`,
    });
    expectRun(manager.cli(['secret', 'create', 'db_pass', '-'], 'copy-must-not-get-this'), {
      stdout: /^\w{25}\n$/,
    });
    expectRun(
      manager.cli([
        'service',
        'create',
        '--name',
        'app',
        '--secret',
        'db_pass',
        'busybox',
        ...idleCommand,
      ]),
      { stdout: /^\w{25}\n$/ },
    );
    const [task] = await cluster.runningTasks('app', 1);
    expect(task!.NodeID).toBe(worker.id);
    expect(worker.mountedTasks()).toEqual([task!.ID]);

    const copyDir = join(dir.path, 'copy');
    cpSync(worker.dataDir, copyDir, {
      recursive: true,
      filter: (source) => !source.endsWith('admin.sock'),
    });
    await using copy = new Daemon(['run', '--data-dir', copyDir]);
    await copy.waitFor(/worker \w+ running/);
    const refused = await manager.daemon.waitFor(
      new RegExp(
        `dispatcher: refused a session for node ${worker.id} from (\\S+): another process \\(address (\\S+)\\) holds this node's session`,
      ),
      30_000,
    );
    expect(refused[1]).not.toBe(refused[2]);

    // The copy keeps retrying and being refused while the worker keeps its heartbeats: through more
    // than the heartbeat-miss limit, the worker keeps the same task mounted and running.
    await until("the copy's admin socket", 20_000, async () =>
      (await adminRequest(copyDir, 'GET', '/info')).status === 200 ? true : undefined,
    );
    const watchUntil = Date.now() + 5000;
    while (Date.now() < watchUntil) {
      expect(worker.mountedTasks()).toEqual([task!.ID]);
      expect(secretMounts(runDirOf(copyDir))).toEqual([]);
      const [still] = await cluster.runningTasks('app', 1);
      expect(still!.ID).toBe(task!.ID);
      await new Promise((resolve) => setTimeout(resolve, 250)); // a polling interval, not a wait for a condition
    }
    expect((await worker.secretCounts()).SecretsHeld).toBe(1);
    expectRun(manager.cli(['exec', task!.ID, 'cat', '/run/secrets/db_pass']), {
      stdout: 'copy-must-not-get-this',
    });
    const copyInfo = JSON.parse((await adminRequest(copyDir, 'GET', '/info')).text) as {
      SecretsReceived: number;
      SecretsHeld: number;
    };
    expect([copyInfo.SecretsReceived, copyInfo.SecretsHeld]).toEqual([0, 0]);
    expect(secretMounts(runDirOf(copyDir))).toEqual([]);
    const nodes = expectRun(manager.cli(['node', 'ls', '--format', 'json']), {})
      .stdout.trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { ID: string; Status: { State: string } });
    expect(nodes.find((n) => n.ID === worker.id)?.Status.State).toBe('ready');
    expect(copy.stdout + copy.stderr).not.toContain('copy-must-not-get-this');
  });
});
