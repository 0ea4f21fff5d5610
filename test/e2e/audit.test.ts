/**
 * The audit trail on real managers (the compiled executable, real runc containers): changes made
 * over the admin socket and over mutual TLS, and refused ones, are in `secretd audit ls --format
 * json` with the right actor; a service's task start and stop are delivery and release records
 * naming the node and the version; `audit verify` passes on the cluster and on an export, and an
 * export with one byte changed or one line removed fails at that record; `--follow` streams new
 * records as they commit. On three managers, SIGKILL of the leader under a stream of creates
 * leaves a trail with no gap in its sequence numbers, the same on every manager, and a record for
 * exactly the changes that happened.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initAutolocked } from '../helpers/autolock.ts';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { asClient, issueClientCert } from '../helpers/client-certs.ts';
import { Cluster, until } from '../helpers/cluster.ts';
import {
  Daemon,
  requireBinary,
  secretd,
  secretdBin,
  tempDir,
  type RunResult,
  type TempDir,
} from '../helpers/process.ts';
import { expectRun, idleCommand, ServiceCluster } from '../helpers/services.ts';
import { listSecrets, ManagerClient, Workload } from '../helpers/workload.ts';

setDefaultTimeout(120_000);

interface Record {
  seq: number;
  at: string;
  actor: { kind: string; name: string; serial?: string; role: string; uid?: number };
  source: string;
  action: string;
  object?: { id?: string; name?: string };
  version?: number;
  node?: string;
  task?: string;
  count?: number;
  detail?: string;
  result: string;
  requestId?: string;
  hash: string;
}

const parseLines = (text: string): Record[] =>
  text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record);

let dir: TempDir;
let cluster: ServiceCluster;

beforeAll(async () => {
  requireBinary();
  dir = tempDir('secretd-audit-');
  cluster = await ServiceCluster.init(dir.path);
});

afterAll(async () => {
  await cluster?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

/** `audit ls --format json` on the manager's admin socket, with `args` as filters. */
function records(args: readonly string[] = []): Record[] {
  return parseLines(
    expectRun(cluster.manager.cli(['audit', 'ls', '--format', 'json', ...args]), {}).stdout,
  );
}

/** Records appended through `audit-append` arrive within a flush (a few hundred ms): waits for them. */
async function eventually(
  what: string,
  args: readonly string[],
  ok: (rs: Record[]) => boolean,
): Promise<Record[]> {
  return until(what, 15_000, async () => {
    const found = records(args);
    return ok(found) ? found : undefined;
  });
}

function issue(name: string, role: string, scope: readonly string[] = []): string {
  return issueClientCert(cluster.manager.dataDir, join(dir.path, name), { name, role, scope });
}

function as(certs: string, args: readonly string[], input?: string): RunResult {
  return asClient(cluster.managerAddr, certs, args, input);
}

const values = ['Audit-Value-One-x91', 'Audit-Value-Two-x92', 'Writer-Value-x93'];

describe('audit trail, one manager', () => {
  test('changes over the socket and over TLS, and refused requests, are recorded with their actor', async () => {
    const created = expectRun(cluster.manager.cli(['secret', 'create', 'app_db', '-'], values[0]), {
      stdout: /^\w{25}\n$/,
    }).stdout.trim();
    expectRun(cluster.manager.cli(['secret', 'update', 'app_db', '-'], values[1]), {
      stdout: /version 2/,
    });
    expectRun(cluster.manager.cli(['secret', 'create', 'tmp_x', '-'], 'gone-soon'), {
      stdout: /^\w{25}\n$/,
    });
    expectRun(cluster.manager.cli(['secret', 'rm', 'tmp_x']), { stdout: 'tmp_x\n' });
    const writer = issue('ci-writer', 'writer', ['app_*']);
    expectRun(as(writer, ['secret', 'create', 'app_ci', '-'], values[2]), { stdout: /^\w{25}\n$/ });
    const refused = as(writer, ['secret', 'create', 'db_x', '-'], 'no');
    expect({ code: refused.code, stderr: refused.stderr }).toEqual({
      code: 1,
      stderr: 'Error: Permission denied: role writer (scope app_*) may not create secret db_x\n',
    });
    const reader = issue('viewer', 'reader');
    expect(as(reader, ['secret', 'rm', 'app_db']).code).toBe(1);

    const uid = process.getuid!();
    const socketActor = { kind: 'admin-socket', name: 'admin-socket', role: 'admin', uid };
    const byAction = (rs: Record[], action: string) => rs.filter((r) => r.action === action);
    const secretRecords = records(['--secret', 'app_db']);
    expect(
      secretRecords.map((r) => [r.action, r.object, r.version, r.result, r.actor, r.source]),
    ).toEqual([
      ['secret-create', { id: created, name: 'app_db' }, 1, 'ok', socketActor, 'admin-socket'],
      ['secret-update', { id: created, name: 'app_db' }, 2, 'ok', socketActor, 'admin-socket'],
    ]);
    const all = records();
    expect(byAction(all, 'secret-rm').map((r) => [r.object?.name, r.result])).toEqual([
      ['tmp_x', 'ok'],
    ]);
    const ci = byAction(all, 'secret-create').find((r) => r.object?.name === 'app_ci')!;
    expect(ci.actor).toMatchObject({ kind: 'client', name: 'ci-writer', role: 'writer' });
    expect(ci.actor.serial).toMatch(/^[0-9a-f]+$/);
    expect(ci.source).toMatch(/^(::ffff:)?127\.0\.0\.1:[0-9]+$/);
    const denied = await eventually(
      'the denials to be recorded',
      ['--action', 'POST /secrets/create'],
      (rs) => rs.some((r) => r.result === 'denied'),
    );
    expect(denied.map((r) => [r.actor.name, r.actor.role, r.result, r.detail])).toEqual([
      [
        'ci-writer',
        'writer',
        'denied',
        'Permission denied: role writer (scope app_*) may not create secret db_x',
      ],
    ]);
    const readerDenied = await eventually(
      'the reader denial',
      ['--actor', 'viewer'],
      (rs) => rs.length > 0,
    );
    expect(readerDenied.map((r) => [r.actor.role, r.result])).toEqual([['reader', 'denied']]);
    // A revoked certificate is refused before it has an identity: recorded, naming the certificate.
    expectRun(cluster.manager.cli(['ca', 'revoke', 'ci-writer']), { stdout: /ci-writer/ });
    expect(as(writer, ['secret', 'ls']).code).toBe(1);
    const revoked = await eventually(
      'the revoked caller to be recorded',
      ['--action', 'GET /secrets'],
      (rs) => rs.some((r) => r.result === 'denied'),
    );
    expect(
      revoked.map((r) => [
        r.actor.kind,
        r.result,
        /\(name ci-writer\) was revoked/.test(r.detail ?? ''),
      ]),
    ).toEqual([['anonymous', 'denied', true]]);
    // Never a value: not in any record, in any encoding.
    const text = cluster.manager.cli(['audit', 'ls', '--format', 'json']).stdout;
    for (const value of values) {
      expect(text).not.toContain(value);
      expect(text).not.toContain(Buffer.from(value).toString('base64'));
    }
    // The table names the same.
    const table = expectRun(
      cluster.manager.cli(['audit', 'ls', '--secret', 'app_db']),
      {},
    ).stdout.split('\n');
    expect(table[0]).toMatch(
      /^SEQ\s+TIME\s+ACTOR\s+ROLE\s+SOURCE\s+ACTION\s+OBJECT\s+VERSION\s+NODE\s+RESULT$/,
    );
    expect(table[1]).toMatch(
      new RegExp(
        `admin-socket \\(uid ${uid}\\)\\s+admin\\s+admin-socket\\s+secret-create\\s+app_db\\s+1\\s+ok$`,
      ),
    );
  });

  test('a service task start and stop are delivery and release records naming the node and version', async () => {
    cluster.importImage('busybox', busyboxRootfsTarball());
    expectRun(
      cluster.manager.cli([
        'service',
        'create',
        '--name',
        'web',
        '--secret',
        'app_db',
        'busybox',
        ...idleCommand,
      ]),
      { stdout: /^\w{25}\n$/ },
    );
    const [task] = await cluster.runningTasks('web', 1);
    const delivered = await eventually(
      'the delivery record',
      ['--action', 'secret-deliver'],
      (rs) => rs.length > 0,
    );
    expect(delivered.map((r) => [r.object?.name, r.version, r.node, r.task, r.result])).toEqual([
      ['app_db', 2, cluster.manager.id, task!.ID, 'ok'],
    ]);
    expectRun(cluster.manager.cli(['service', 'rm', 'web']), { stdout: 'web\n' });
    const released = await eventually(
      'the release record',
      ['--action', 'secret-release'],
      (rs) => rs.length > 0,
    );
    expect(released.map((r) => [r.object?.name, r.version, r.node, r.task])).toEqual([
      ['app_db', 2, cluster.manager.id, task!.ID],
    ]);
    expect(records(['--node', cluster.manager.id]).map((r) => r.action)).toEqual(
      expect.arrayContaining(['secret-deliver', 'secret-release']),
    );
  });

  test('audit verify passes; an export verifies offline and fails at a changed byte or a removed line', () => {
    expectRun(cluster.manager.cli(['audit', 'verify']), {
      stdout:
        /^Audit trail of the cluster verified: records 1 to [0-9]+ \([0-9]+\), the hash chain is intact\.\n$/,
    });
    const file = join(dir.path, 'trail.ndjson');
    expectRun(cluster.manager.cli(['audit', 'export', file]), {
      stdout: /^Exported [0-9]+ audit records \(1 to [0-9]+\) to /,
    });
    // Offline: no cluster reachable through this environment.
    const offline = (path: string) =>
      secretd(['audit', 'verify', path], { env: { SECRETD_DATA_DIR: join(dir.path, 'nowhere') } });
    expectRun(offline(file), { stdout: /verified: records 1 to [0-9]+/ });
    const lines = readFileSync(file, 'utf8').split('\n');
    const target = lines.findIndex((l) => l.includes('"action":"secret-update"'));
    const seq = (JSON.parse(lines[target]!) as Record).seq;
    const changed = join(dir.path, 'changed.ndjson');
    writeFileSync(
      changed,
      [
        ...lines.slice(0, target),
        lines[target]!.replace('"version":2', '"version":3'),
        ...lines.slice(target + 1),
      ].join('\n'),
    );
    expectRun(offline(changed), {
      code: 1,
      stdout: '',
      stderr: new RegExp(`fails verification at record ${seq}: record ${seq} was changed`),
    });
    const removed = join(dir.path, 'removed.ndjson');
    writeFileSync(removed, [...lines.slice(0, target), ...lines.slice(target + 1)].join('\n'));
    expectRun(offline(removed), {
      code: 1,
      stdout: '',
      stderr: new RegExp(`fails verification at record ${seq}: record ${seq} is missing`),
    });
  });

  test('bad filters are refused naming the field; --follow streams records as they commit', async () => {
    expectRun(cluster.manager.cli(['audit', 'ls', '--since', 'yesterday']), {
      code: 1,
      stdout: '',
      stderr: /^Error: Invalid since "yesterday": expected a time/,
    });
    const answer = await cluster.manager.admin('GET', '/secretd/audit?until=soon');
    expect({ status: answer.status, text: answer.text }).toEqual({
      status: 400,
      text: expect.stringContaining('Invalid until'),
    });
    const follower = spawn(
      secretdBin,
      ['audit', 'ls', '--format', 'json', '-f', '--action', 'secret-create'],
      {
        env: { ...process.env, SECRETD_DATA_DIR: cluster.manager.dataDir },
      },
    );
    let out = '';
    follower.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    try {
      const before = records(['--action', 'secret-create']).length;
      await until('the follower to print the trail so far', 10_000, () =>
        parseLines(out).length === before ? true : undefined,
      );
      expectRun(cluster.manager.cli(['secret', 'create', 'app_followed', '-'], 'f'), {
        stdout: /^\w{25}\n$/,
      });
      const got = await until('the follower to print the new record', 10_000, () => {
        const lines = parseLines(out);
        return lines.length === before + 1 ? lines.at(-1) : undefined;
      });
      expect([got.action, got.object?.name]).toEqual(['secret-create', 'app_followed']);
    } finally {
      follower.kill('SIGTERM');
    }
    expect(cluster.daemonErrors()).toEqual([]);
  });
});

describe('audit trail, three managers', () => {
  test('SIGKILL of the leader: no gap in sequence numbers, the same chain everywhere, a record for exactly what happened', async () => {
    using threeDir = tempDir('secretd-audit3-');
    await using three = new Cluster(threeDir.path);
    const nodes = await three.bootstrap(3);
    const leader = await three.waitForLeader(nodes);
    const workload = new Workload({
      prefix: 'au',
      targets: () => nodes,
      client: (n) => three.client(n),
    });
    workload.start();
    let survivors = nodes.filter((n) => n !== leader);
    try {
      await workload.waitForAcks(30, 0, 20_000);
      const killedAt = Date.now();
      await leader.kill();
      await three.waitForLeader(survivors, { not: leader });
      await workload.waitForAcks(30, killedAt, 20_000);
    } finally {
      await workload.stop();
    }
    await leader.restart();
    survivors = nodes;
    const trails: string[] = [];
    for (const node of nodes) {
      const answer = await node.admin('GET', '/secretd/audit', undefined, 15_000);
      expect(answer.status).toBe(200);
      trails.push(answer.text);
    }
    // Every manager: the same records, numbered 1..N without a gap, chain intact.
    const trail = parseLines(trails[0]!);
    expect(trail.map((r) => r.seq)).toEqual(trail.map((_, i) => i + 1));
    await until('every manager to hold the same trail', 15_000, async () => {
      const texts = await Promise.all(
        nodes.map(async (n) => (await n.admin('GET', '/secretd/audit')).text),
      );
      return texts.every((t) => t === texts[0]) ? true : undefined;
    });
    for (const node of nodes) {
      const verified = await node.cli(['audit', 'verify']);
      expect({ node: node.name, code: verified.code, stderr: verified.stderr }).toEqual({
        node: node.name,
        code: 0,
        stderr: '',
      });
    }
    // A record for every acknowledged create, and a secret for every create recorded as done.
    using client = new ManagerClient(() => three.client(survivors[0]!));
    const existing = new Set((await listSecrets(client)).map((s) => s.Spec.Name));
    const final = parseLines(
      (await survivors[0]!.admin('GET', '/secretd/audit?action=secret-create', undefined, 15_000))
        .text,
    );
    // A retried create may be recorded again with its refusal (conflict): one `ok` per change.
    const oks = new Map<string, number>();
    for (const r of final)
      if (r.result === 'ok') oks.set(r.object!.name!, (oks.get(r.object!.name!) ?? 0) + 1);
    for (const name of workload.acked.keys())
      expect({ name, oks: oks.get(name) }).toEqual({ name, oks: 1 });
    for (const name of existing)
      if (name.startsWith('au')) expect({ name, oks: oks.get(name) }).toEqual({ name, oks: 1 });
    for (const name of oks.keys())
      expect({ name, exists: existing.has(name) }).toEqual({ name, exists: true });
    expect(final.every((r) => r.actor.name === 'e2e' && r.actor.kind === 'client')).toBe(true);
    // A node change sent to a follower runs on the leader: its record names the caller, not the follower.
    const current = await three.waitForLeader(nodes);
    const follower = nodes.find((n) => n !== current)!;
    const paused = await follower.cli(['node', 'update', '--availability', 'pause', follower.id]);
    expect({ code: paused.code, stderr: paused.stderr }).toEqual({ code: 0, stderr: '' });
    const nodeRecords = parseLines(
      (await current.admin('GET', `/secretd/audit?action=node-update&node=${follower.id}`)).text,
    );
    expect(nodeRecords.map((r) => [r.actor.kind, r.source, r.detail, r.result])).toEqual([
      ['admin-socket', 'admin-socket', 'changed: availability', 'ok'],
    ]);
    expect(three.daemonErrors()).toEqual([]);
  });
});

describe('audit trail, autolock', () => {
  test('unlock attempts on a locked manager, failed and ok, are recorded once it is unlocked, without the key', async () => {
    using lockDir = tempDir('secretd-audit-lock-');
    const dataDir = join(lockDir.path, 'm');
    const started = await initAutolocked(dataDir);
    await using first = started.daemon;
    const key = started.key;
    await first.kill('SIGKILL');
    await using locked = new Daemon(['run', '--data-dir', dataDir]);
    await locked.waitFor(/this manager is locked/);
    const wrongKey = `SDKEY-1-${Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')}`;
    expect(secretd(['unlock', '--data-dir', dataDir], { input: wrongKey }).code).toBe(1);
    expect(
      secretd(['secret', 'create', 'while_locked', '-', '--data-dir', dataDir], { input: 'x' })
        .code,
    ).toBe(1);
    expect(secretd(['unlock', '--data-dir', dataDir], { input: `${key}\n` }).code).toBe(0);
    const ls = (args: readonly string[]) =>
      parseLines(
        secretd(['audit', 'ls', '--format', 'json', '--data-dir', dataDir, ...args]).stdout,
      );
    const unlocks = await until('the unlock attempts to be recorded', 15_000, async () => {
      const found = ls(['--action', 'unlock']);
      return found.length === 2 ? found : undefined;
    });
    expect(unlocks.map((r) => [r.result, r.source, r.actor.kind])).toEqual([
      ['invalid', 'admin-socket', 'admin-socket'],
      ['ok', 'admin-socket', 'admin-socket'],
    ]);
    expect(ls(['--action', 'POST /secrets/create']).map((r) => r.result)).toEqual(['locked']);
    const all = secretd(['audit', 'ls', '--format', 'json', '--data-dir', dataDir]).stdout;
    for (const secret of [key, wrongKey, key.slice(8), wrongKey.slice(8)])
      expect(all).not.toContain(secret);
    expect(secretd(['audit', 'verify', '--data-dir', dataDir]).code).toBe(0);
  });
});
