/**
 * Backup and restore, and unattended unlock, on the compiled executable and real processes:
 *
 * - a backup taken under a steady stream of writes holds every write acknowledged before it began
 *   (and the writes it holds are a prefix of the stream); the file holds no value written, in the
 *   clear or in base64; `backup inspect` reads its header without the key;
 * - restored into a fresh data dir on another port: the service comes back, its task is started
 *   there and every kept version of every secret is read INSIDE the container (never through the
 *   API); the old manager is gone from the node list and the old worker is down; the old worker,
 *   its data dir emptied, joins the restored cluster with the new token and runs the task;
 * - each damaged file (wrong key, a byte flipped in the header, a middle chunk, the end; truncated;
 *   two chunks swapped; a newer format) and a non-empty data dir: refused naming the problem, and no
 *   data dir (nor a build directory beside it) left behind;
 * - `run --unlock-key-file`: a right key starts unlocked; a wrong key, a group-readable file or a
 *   missing one stays locked and says why; `$CREDENTIALS_DIRECTORY/secretd-unlock-key` is read;
 * - the unit `secretd systemd-unit` prints passes `systemd-analyze verify`.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { allocatorEnv } from '../../src/cmd/allocator.ts';
import { initAutolocked } from '../helpers/autolock.ts';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { curlWithCerts, issueClientCert } from '../helpers/client-certs.ts';
import { secretdAsync } from '../helpers/cluster.ts';
import {
  Daemon,
  freePort,
  requireBinary,
  secretd,
  secretdBin,
  tempDir,
  type TempDir,
} from '../helpers/process.ts';
import {
  adminRequest,
  expectRun,
  ServiceCluster,
  ServiceNode,
  until,
  type TaskJSON,
} from '../helpers/services.ts';

beforeAll(requireBinary);
setDefaultTimeout(90_000);

const backupKeyPattern = /SDBAK-1-[A-Za-z0-9+/]{43}/;

let dir: TempDir;
beforeAll(() => (dir = tempDir('secretd-backup-')));
afterAll(() => dir[Symbol.dispose]());

/** Values the backup must never hold in the clear, and where each must be read back. */
const values = {
  a1: `bk-a-v1-${randomBytes(8).toString('hex')}`,
  a2: `bk-a-v2-${randomBytes(8).toString('hex')}`,
  b1: `bk-b-v1-${randomBytes(8).toString('hex')}`,
  // Large enough that the store spans several 64 KiB chunks.
  big: randomBytes(150_000).toString('hex').slice(0, 200_000),
};
/** The backup file and its key, made by the first test, damaged by the second. */
let backupFile = '';
let backupKeyFile = '';

async function tasksOn(dataDir: string, service: string): Promise<TaskJSON[]> {
  const filters = encodeURIComponent(
    JSON.stringify({ service: [service], 'desired-state': ['running'] }),
  );
  const answer = await adminRequest(dataDir, 'GET', `/tasks?filters=${filters}`);
  if (answer.status !== 200) throw new Error(`GET /tasks: ${answer.status} ${answer.text}`);
  return JSON.parse(answer.text) as TaskJSON[];
}

async function runningTaskOn(dataDir: string, service: string, nodeId?: string): Promise<TaskJSON> {
  return until(`a running task of ${service}${nodeId ? ` on ${nodeId}` : ''}`, 30_000, async () =>
    (await tasksOn(dataDir, service)).find(
      (t) => t.Status.State === 'running' && (nodeId === undefined || t.NodeID === nodeId),
    ),
  );
}

/** Reads every secret file of the two services' tasks inside their containers; compares with what was written. */
function expectValuesInTasks(node: ServiceNode, app: string, app2: string): void {
  for (const [task, file, value] of [
    [app, 'a1', values.a1],
    [app, 'b1', values.b1],
    [app2, 'a2', values.a2],
  ] as const)
    expectRun(node.cli(['exec', task, 'cat', `/run/secrets/${file}`]), { stdout: value });
  const digest = new Bun.CryptoHasher('sha256').update(values.big).digest('hex');
  expectRun(node.cli(['exec', app, 'sha256sum', '/run/secrets/big']), {
    stdout: `${digest}  /run/secrets/big\n`,
  });
}

describe('backup and restore', () => {
  test('a backup under writes restores elsewhere: values read in a container there, the old worker joins and runs the task', async () => {
    await using cluster = await ServiceCluster.init(join(dir.path, 'old'));
    const manager = cluster.manager;
    const worker = await cluster.joinWorker('w1');
    cluster.importImage('busybox', busyboxRootfsTarball());
    expectRun(manager.cli(['secret', 'create', 's_a', '-'], values.a1), { stdout: /^\w{25}\n$/ });
    expectRun(manager.cli(['secret', 'update', 's_a', '-'], values.a2), {
      stdout: 's_a: version 2\n',
    });
    expectRun(manager.cli(['secret', 'create', 's_b', '-'], values.b1), { stdout: /^\w{25}\n$/ });
    expectRun(manager.cli(['secret', 'create', 's_big', '-'], values.big), {
      stdout: /^\w{25}\n$/,
    });
    manager.createIdleService('app', [
      '--secret',
      'source=s_a@1,target=a1',
      '--secret',
      'source=s_b,target=b1',
      '--secret',
      'source=s_big,target=big',
    ]);
    manager.createIdleService('app2', ['--secret', 'source=s_a@2,target=a2']);
    await cluster.runningTasks('app', 1);
    await cluster.runningTasks('app2', 1);

    // A steady stream of writes, one after another; each acknowledged write's time is kept.
    const acked: Array<{ name: string; value: string; at: number }> = [];
    let writing = true;
    const load = (async () => {
      for (let i = 0; writing; i++) {
        const value = `bk-load-${i}-${randomBytes(6).toString('hex')}`;
        const answer = await adminRequest(manager.dataDir, 'POST', '/secrets/create', {
          Name: `load_${i}`,
          Data: Buffer.from(value).toString('base64'),
        });
        if (answer.status !== 201)
          throw new Error(`create load_${i}: ${answer.status} ${answer.text}`);
        acked.push({ name: `load_${i}`, value, at: performance.now() });
      }
    })();
    await until('some writes to be acknowledged', 10_000, () =>
      acked.length >= 5 ? true : undefined,
    );
    backupFile = join(dir.path, 'cluster.bak');
    backupKeyFile = join(dir.path, 'cluster.key');
    const startedAt = performance.now();
    const backup = await secretdAsync(
      ['backup', '--out', backupFile, '--key-file', backupKeyFile, '--data-dir', manager.dataDir],
      { timeoutMs: 30_000 },
    );
    writing = false;
    await load;
    expectRun(backup, {
      stdout: new RegExp(
        `^Backup written to ${backupFile}: cluster \\w{25} at index \\d+, \\d+ secrets \\(\\d+ versions\\), 2 services, 2 nodes\\.\\nBackup key written to ${backupKeyFile}\\.\\n$`,
      ),
    });
    expect(statSync(backupFile).mode & 0o777).toBe(0o600);
    expect(statSync(backupKeyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(backupKeyFile, 'utf8')).toMatch(/^SDBAK-1-[A-Za-z0-9+/]{43}\n$/);
    const ackedBefore = acked.filter((w) => w.at < startedAt);
    expect(ackedBefore.length).toBeGreaterThanOrEqual(5);

    // The header without the key; no value written is in the file, in the clear or in base64.
    const inspect = expectRun(secretd(['backup', 'inspect', backupFile, '--format', 'json']), {
      stdout: /"format": 1/,
    });
    const header = JSON.parse(inspect.stdout) as {
      index: number;
      counts: { secrets: number; services: number; versions: number };
    };
    expect(header.counts.services).toBe(2);
    const file = readFileSync(backupFile);
    for (const value of [...Object.values(values), ...acked.map((w) => w.value)]) {
      expect(file.includes(Buffer.from(value))).toBe(false);
      expect(file.includes(Buffer.from(Buffer.from(value).toString('base64')))).toBe(false);
      expect(file.includes(Buffer.from(value.slice(0, 16)))).toBe(false);
    }

    // The old cluster lets go of its task; its worker leaves and forgets its data.
    expectRun(manager.cli(['service', 'rm', 'app', 'app2']), { stdout: 'app\napp2\n' });
    await until('the old nodes to erase their tasks', 15_000, () =>
      manager.mountedTasks().length === 0 && worker.mountedTasks().length === 0 ? true : undefined,
    );
    worker.daemon.proc.kill('SIGTERM');
    await worker.daemon.exited;
    rmSync(worker.dataDir, { recursive: true, force: true });

    // Restore on another port, with the key from a file.
    const restoredDir = join(dir.path, 'restored');
    const restoredAddr = `127.0.0.1:${await freePort()}`;
    const restoreDaemon = new Daemon([
      'restore',
      '--from',
      backupFile,
      '--key-file',
      backupKeyFile,
      '--data-dir',
      restoredDir,
      '--listen-addr',
      restoredAddr,
    ]);
    const restored = new ServiceNode('restored', restoredDir, 'manager', restoreDaemon);
    cluster.nodes.push(restored);
    restored.id = (
      await restoreDaemon.waitFor(/This node \((\w+)\) is its only manager/, 30_000)
    )[1]!;
    await restoreDaemon.waitFor(/Data directory:/, 30_000);
    expect(restoreDaemon.stdout).toContain('Old managers removed: 1; old workers marked down: 1');
    expect(restoreDaemon.stdout).not.toContain(values.a1);

    // Every write acknowledged before the backup began is there, and what is there is a prefix.
    const names = new Set(
      expectRun(restored.cli(['secret', 'ls', '--format', 'json']), {})
        .stdout.trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { Spec: { Name: string } }).Spec.Name),
    );
    for (const w of ackedBefore) expect(names.has(w.name)).toBe(true);
    const loads = acked.filter((w) => names.has(w.name)).length;
    expect(acked.slice(0, loads).every((w) => names.has(w.name))).toBe(true);
    expect(names.size).toBe(3 + loads);
    expect(header.counts.secrets).toBe(3 + loads);

    // The nodes: this one leads; the old manager is gone, the old worker down.
    const nodes = expectRun(restored.cli(['node', 'ls']), {}).stdout;
    expect(nodes).toContain(`${restored.id} *`);
    expect(nodes).not.toContain(manager.id);
    expect(nodes).toMatch(new RegExp(`${worker.id}\\s+\\S+\\s+Down`));

    // The service comes back; its task starts here, and every version is read in the container.
    expectRun(restored.cli(['image', 'import', 'busybox', busyboxRootfsTarball()]), {
      stdout: 'busybox:latest\n',
    });
    const here = await runningTaskOn(restoredDir, 'app', restored.id);
    const here2 = await runningTaskOn(restoredDir, 'app2', restored.id);
    expectValuesInTasks(restored, here.ID, here2.ID);

    // The old worker, its data dir emptied, joins with the new token and takes the task.
    const token = expectRun(restored.cli(['cluster', 'join-token', 'worker', '-q']), {
      stdout: /^SDTKN-/,
    }).stdout.trim();
    const oldToken = /SDTKN-\S+/.exec(manager.daemon.stdout)?.[0];
    expect(token).not.toBe(oldToken);
    const addr = `127.0.0.1:${await freePort()}`;
    const joinDaemon = new Daemon([
      'join',
      '--data-dir',
      worker.dataDir,
      '--token-file',
      writeTemp('token', token),
      '--listen-addr',
      addr,
      '--advertise-addr',
      addr,
      restoredAddr,
    ]);
    const again = new ServiceNode('w1-again', worker.dataDir, 'worker', joinDaemon);
    cluster.nodes.push(again);
    again.id = (await joinDaemon.waitFor(/joined the cluster as a worker \((\w+)\)/, 30_000))[1]!;
    expectRun(again.cli(['image', 'import', 'busybox', busyboxRootfsTarball()]), {
      stdout: 'busybox:latest\n',
    });
    expectRun(restored.cli(['node', 'update', '--availability', 'drain', restored.id]), {
      stdout: `${restored.id}\n`,
    });
    const there = await runningTaskOn(restoredDir, 'app', again.id);
    const there2 = await runningTaskOn(restoredDir, 'app2', again.id);
    expectValuesInTasks(restored, there.ID, there2.ID);

    // The restore and the backup are in the trails; the chain still verifies.
    expectRun(restored.cli(['audit', 'ls', '--action', 'restore']), {
      stdout: /restore\s+\w{25}\s+ok/,
    });
    expectRun(manager.cli(['audit', 'ls', '--action', 'backup']), { stdout: /backup\s.*ok/ });
    expectRun(restored.cli(['audit', 'verify']), { stdout: /the hash chain is intact/ });

    expectRun(restored.cli(['service', 'rm', 'app', 'app2']), { stdout: 'app\napp2\n' });
    await until('the restored cluster to erase its tasks', 15_000, () =>
      restored.mountedTasks().length === 0 && again.mountedTasks().length === 0 ? true : undefined,
    );
    expect(cluster.daemonErrors()).toEqual([]);
  });

  test('damaged backups and a non-empty data dir are refused naming the problem, leaving nothing behind', () => {
    expect(backupFile).not.toBe('');
    const file = readFileSync(backupFile);
    const headerEnd = file.indexOf(0x0a, file.indexOf(0x0a) + 1) + 1;
    const chunks: number[] = [];
    for (let at = headerEnd; at < file.length; at += 4 + file.readUInt32BE(at)) chunks.push(at);
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    const last = chunks.length - 1;
    const flipped = (at: number): Buffer => {
      const copy = Buffer.from(file);
      copy[at]! ^= 0x01;
      return copy;
    };
    // The last digit of the secrets count: flipping its low bit keeps a digit and valid JSON (the
    // first digit could become a leading zero, which JSON refuses, when the count is 10 to 19).
    const countAt = file.indexOf('"secrets":') + '"secrets":'.length;
    let counts = countAt;
    while (file[counts + 1]! >= 0x30 && file[counts + 1]! <= 0x39) counts++;
    const swapped = Buffer.concat([
      file.subarray(0, chunks[1]),
      file.subarray(chunks[2], chunks[3]),
      file.subarray(chunks[1], chunks[2]),
      file.subarray(chunks[3]),
    ]);
    const wrongKey = writeTemp(
      'wrong.key',
      `SDBAK-1-${randomBytes(32).toString('base64').replace(/=+$/, '')}\n`,
    );
    const cases: Array<[string, Buffer, string, string]> = [
      ['wrong key', file, wrongKey, 'the key does not match it'],
      ['header byte', flipped(counts), backupKeyFile, 'its header or chunk 0 was changed'],
      [
        'middle chunk byte',
        flipped(chunks[1]! + 200),
        backupKeyFile,
        `chunk 1 (at byte ${chunks[1]}) was changed or moved`,
      ],
      [
        'last byte',
        flipped(file.length - 1),
        backupKeyFile,
        `chunk ${last} (at byte ${chunks[last]}) was changed or moved`,
      ],
      [
        'truncated',
        file.subarray(0, chunks[last]),
        backupKeyFile,
        `it is truncated after chunk ${last - 1}: its final chunk is missing`,
      ],
      ['swapped', swapped, backupKeyFile, `chunk 1 (at byte ${chunks[1]}) was changed or moved`],
      [
        'newer format',
        Buffer.concat([
          Buffer.from('secretd-backup 2\n'),
          file.subarray('secretd-backup 1\n'.length),
        ]),
        backupKeyFile,
        'it is format 2, newer than this secretd reads (1)',
      ],
    ];
    const parent = join(dir.path, 'damaged');
    mkdirSync(parent);
    for (const [name, bytes, keyFile, problem] of cases) {
      const path = join(dir.path, `${name.replace(/ /g, '-')}.bak`);
      writeFileSync(path, bytes);
      const dataDir = join(parent, name.replace(/ /g, '-'));
      const result = secretd([
        'restore',
        '--from',
        path,
        '--key-file',
        keyFile,
        '--data-dir',
        dataDir,
        '--listen-addr',
        '127.0.0.1:1',
      ]);
      expect([name, result.code, result.stdout]).toEqual([name, 1, '']);
      expect(result.stderr).toContain(problem);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(readdirSync(parent)).toEqual([]);
    }

    const busy = join(parent, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'keep'), 'x');
    expectRun(
      secretd(['restore', '--from', backupFile, '--key-file', backupKeyFile, '--data-dir', busy]),
      { code: 1, stdout: '', stderr: /it is not empty/ },
    );
    expect(readdirSync(parent)).toEqual(['busy']);
    expect(readdirSync(busy)).toEqual(['keep']);
  });

  test("GET /secretd/backup with curl and an admin's certificate: the key in a header, a file inspect reads and restore takes; an operator is refused", async () => {
    await using cluster = await ServiceCluster.init(join(dir.path, 'curl'));
    const manager = cluster.manager;
    const value = `bk-curl-${randomBytes(8).toString('hex')}`;
    expectRun(manager.cli(['secret', 'create', 'curl_s', '-'], value), { stdout: /^\w{25}\n$/ });
    const url = `https://${cluster.managerAddr}/secretd/backup`;
    const operator = issueClientCert(manager.dataDir, join(dir.path, 'curl-operator'), {
      name: 'curl-operator',
      role: 'operator',
    });
    const refused = curlWithCerts(operator, url, ['-w', '%{http_code}', '-o', '/dev/null']);
    expect(refused).toEqual({ code: 0, stdout: '403', stderr: '' });

    const admin = issueClientCert(manager.dataDir, join(dir.path, 'curl-admin'), {
      name: 'curl-admin',
      role: 'admin',
    });
    const file = join(dir.path, 'curl.bak');
    const headersFile = join(dir.path, 'curl.headers');
    expect(curlWithCerts(admin, url, ['--fail', '-D', headersFile, '-o', file])).toEqual({
      code: 0,
      stdout: '',
      stderr: '',
    });
    const headers = readFileSync(headersFile, 'utf8');
    expect(headers).toStartWith('HTTP/2 200');
    const headerOf = (name: string): string | undefined =>
      new RegExp(`^${name}: (\\S+)\r?$`, 'im').exec(headers)?.[1];
    const key = headerOf('secretd-backup-key');
    expect(key).toMatch(new RegExp(`^${backupKeyPattern.source}$`));
    const inspect = expectRun(secretd(['backup', 'inspect', file, '--format', 'json']), {
      stdout: /"format": 1/,
    });
    const header = JSON.parse(inspect.stdout) as {
      clusterId: string;
      index: number;
      counts: { secrets: number };
    };
    expect([header.clusterId, String(header.index), header.counts.secrets]).toEqual([
      headerOf('secretd-backup-cluster') ?? 'no Secretd-Backup-Cluster header',
      headerOf('secretd-backup-index') ?? 'no Secretd-Backup-Index header',
      1,
    ]);
    const bytes = readFileSync(file);
    expect(bytes.includes(Buffer.from(value))).toBe(false);
    expect(bytes.includes(Buffer.from(Buffer.from(value).toString('base64')))).toBe(false);
    // The record is proposed in the recorder's next batch: waited for, not expected at once.
    await until('the backup in the audit trail', 10_000, () =>
      /backup\s.*ok/.test(manager.cli(['audit', 'ls', '--action', 'backup']).stdout)
        ? true
        : undefined,
    );

    const restoredDir = join(dir.path, 'curl-restored');
    const restoreDaemon = new Daemon([
      'restore',
      '--from',
      file,
      '--key-file',
      writeTemp('curl.key', `${key}\n`),
      '--data-dir',
      restoredDir,
      '--listen-addr',
      `127.0.0.1:${await freePort()}`,
    ]);
    const restored = new ServiceNode('curl-restored', restoredDir, 'manager', restoreDaemon);
    cluster.nodes.push(restored);
    restored.id = (
      await restoreDaemon.waitFor(/This node \((\w+)\) is its only manager/, 30_000)
    )[1]!;
    await restoreDaemon.waitFor(/Data directory:/, 30_000);
    const listed = expectRun(restored.cli(['secret', 'ls', '--format', 'json']), {}).stdout;
    expect(
      listed
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).Spec.Name),
    ).toEqual(['curl_s']);
    expect(cluster.daemonErrors()).toEqual([]);
  });
});

describe('unattended unlock', () => {
  test('run --unlock-key-file and $CREDENTIALS_DIRECTORY: a right key unlocks; a wrong key, a group-readable or missing file stays locked and says why', async () => {
    const dataDir = join(dir.path, 'locked');
    const { daemon: first, key } = await initAutolocked(dataDir);
    expectRun(secretd(['secret', 'create', 'kept', '-', '--data-dir', dataDir], { input: 'v' }), {
      stdout: /^\w{25}\n$/,
    });
    await first.kill('SIGKILL');

    const run = async (
      flags: readonly string[],
      expected: RegExp,
      env?: Record<string, string>,
    ): Promise<Daemon> => {
      const saved = { ...process.env };
      Object.assign(process.env, env ?? {});
      const daemon = new Daemon(['run', '--data-dir', dataDir, ...flags]);
      for (const name of Object.keys(env ?? {})) if (!(name in saved)) delete process.env[name];
      await daemon.waitFor(expected);
      return daemon;
    };
    const isLocked = (): boolean => {
      const ls = secretd(['secret', 'ls', '-q', '--data-dir', dataDir]);
      if (ls.code === 0) return false;
      expect(ls.stderr).toContain('This manager is locked');
      return true;
    };

    const good = writeTemp('unlock.key', `${key}\n`, 0o600);
    {
      await using d = await run(['--unlock-key-file', good], /unlocked with the key from/);
      await until('the manager to answer', 10_000, () => (isLocked() ? undefined : true));
      expect(d.stderr).not.toContain(key);
      // A graceful stop proposes the records still queued (this attempt's among them).
      expect(await d.kill('SIGTERM')).toBe(0);
    }
    const wrong = writeTemp(
      'wrong-unlock.key',
      `SDKEY-1-${Buffer.alloc(32, 9).toString('base64').replace(/=+$/, '')}\n`,
      0o600,
    );
    {
      await using d = await run(
        ['--unlock-key-file', wrong],
        /did not unlock this manager: .*Invalid unlock key.*; it stays locked/,
      );
      expect(isLocked()).toBe(true);
      expect(d.stderr).not.toContain(readFileSync(wrong, 'utf8').trim());
      // Still serves unlock.
      expectRun(secretd(['unlock', '--data-dir', dataDir], { input: key }), {});
      expect(isLocked()).toBe(false);
      // The attempts from files are in the audit trail, as the API's are, without the key.
      const records = await until('the unlock attempts in the audit trail', 10_000, () => {
        const out = secretd([
          'audit',
          'ls',
          '--action',
          'unlock',
          '--format',
          'json',
          '--data-dir',
          dataDir,
        ]);
        const lines = out.stdout
          .trim()
          .split('\n')
          .filter((l) => l !== '');
        const parsed = lines.map(
          (l) => JSON.parse(l) as { source: string; result: string; detail?: string },
        );
        return parsed.filter((r) => r.source === 'unlock-key-file').length >= 2
          ? parsed
          : undefined;
      });
      expect(
        records
          .filter((r) => r.source === 'unlock-key-file')
          .map((r) => [r.result, r.detail?.split(':')[0]]),
      ).toEqual([
        ['ok', good],
        ['invalid', wrong],
      ]);
      expect(JSON.stringify(records)).not.toContain(key.slice(8));
    }
    const shared = writeTemp('shared-unlock.key', `${key}\n`, 0o640);
    {
      await using _ = await run(
        ['--unlock-key-file', shared],
        /readable or writable by its group or others \(mode 0640; chmod 600 it\); this manager stays locked/,
      );
      expect(isLocked()).toBe(true);
    }
    {
      await using _ = await run(
        ['--unlock-key-file', join(dir.path, 'absent.key')],
        /absent\.key: no such file; this manager stays locked/,
      );
      expect(isLocked()).toBe(true);
    }
    const credentials = join(dir.path, 'credentials');
    mkdirSync(credentials, { mode: 0o700 });
    writeFileSync(join(credentials, 'secretd-unlock-key'), key, { mode: 0o400 });
    {
      await using _ = await run([], /unlocked with the key from .*secretd-unlock-key/, {
        CREDENTIALS_DIRECTORY: credentials,
      });
      await until('the manager to answer', 10_000, () => (isLocked() ? undefined : true));
    }
  });

  test('the unit systemd-unit prints passes systemd-analyze verify, for a manager and a worker', () => {
    for (const role of ['--manager', '--worker']) {
      const unit = expectRun(
        secretd(['systemd-unit', role, '--data-dir', '/var/lib/secretd', '--exec', secretdBin]),
        { stdout: /^\[Unit\]\n/ },
      ).stdout;
      expect(unit).toContain(`ExecStart=${secretdBin} run --data-dir /var/lib/secretd\n`);
      expect(unit).toContain(
        `Environment=MIMALLOC_PURGE_DELAY=${allocatorEnv.MIMALLOC_PURGE_DELAY}\n`,
      );
      expect(unit).toContain('ProtectSystem=strict\n');
      expect(unit).toContain('ReadWritePaths=/var/lib/secretd /run/secretd\n');
      expect(unit).toContain('NoNewPrivileges=true\n');
      expect(unit.includes('LoadCredentialEncrypted=secretd-unlock-key:')).toBe(
        role === '--manager',
      );
      const path = join(dir.path, `secretd${role.slice(1) === 'worker' ? '-worker' : ''}.service`);
      writeFileSync(path, unit);
      const verify = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8' });
      expect([verify.status, verify.stderr]).toEqual([0, '']);
    }
    // The check can fail: a unit without ExecStart= is refused.
    const broken = join(dir.path, 'broken.service');
    writeFileSync(broken, '[Unit]\nDescription=x\n[Service]\nType=simple\n');
    expect(spawnSync('systemd-analyze', ['verify', broken]).status).not.toBe(0);
    expectRun(secretd(['systemd-unit', '--data-dir', 'relative/dir']), {
      code: 1,
      stdout: '',
      stderr: /Invalid --data-dir "relative\/dir": a unit needs an absolute path/,
    });
  });
});

function writeTemp(name: string, text: string, mode = 0o600): string {
  const path = join(dir.path, name);
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  return path;
}
