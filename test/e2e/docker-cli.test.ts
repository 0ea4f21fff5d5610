/**
 * The docker CLI, unchanged, driving secretd: `DOCKER_HOST=tcp://…` with secretd's client
 * certificate, HTTP/1.1 over mutual TLS. Every command runs against secretd and, where dockerd can
 * run here (root, Debian's docker.io), against a private one-node Docker Swarm in the same test,
 * and the two are compared: exit codes, list columns row by row, inspect JSON field by field
 * (with the differences secretd owns listed below), and error messages side by side.
 *
 * Needs root, runc, busybox-static and the docker CLI (CI installs docker.io).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable, startDockerSwarm, type DockerSwarm } from '../../bench/docker-swarm.ts';
import { importDockerImage } from '../../bench/service-systems.ts';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { requireBinary, tempDir, type TempDir } from '../helpers/process.ts';
import { expectRun, ServiceCluster, until } from '../helpers/services.ts';

// Real processes, containers and a dockerd: generous, since CI machines vary.
setDefaultTimeout(90_000);

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface Target {
  readonly name: 'secretd' | 'docker';
  readonly env: Record<string, string>;
}

let dir: TempDir;
let cluster: ServiceCluster;
let secretd: Target;
let docker: Target | null = null;
let swarm: DockerSwarm | null = null;
/** Why there is no Docker to compare with, printed once. */
let noDocker = '';

beforeAll(async () => {
  requireBinary();
  if (!findExecutable('docker'))
    throw new Error('The docker CLI is needed for these tests: apt-get install -y docker.io');
  dir = tempDir('secretd-docker-cli-');
  cluster = await ServiceCluster.init(dir.path);
  cluster.importImage('busybox', busyboxRootfsTarball());
  const certs = join(dir.path, 'certs');
  expectRun(cluster.manager.cli(['ca', 'issue-client', '--name', 'docker-cli', '--out', certs]), {
    stdout: /Wrote/,
  });
  secretd = {
    name: 'secretd',
    env: {
      ...clientEnv('secretd'),
      DOCKER_HOST: `tcp://${cluster.managerAddr}`,
      DOCKER_TLS_VERIFY: '1',
      DOCKER_CERT_PATH: certs,
    },
  };
  if (process.getuid?.() !== 0 || !findExecutable('dockerd')) {
    noDocker = 'dockerd is not installed or this is not root';
  } else {
    try {
      swarm = await startDockerSwarm();
      await importDockerImage(swarm.socket, 'busybox', busyboxRootfsTarball());
      docker = {
        name: 'docker',
        env: { ...clientEnv('docker'), DOCKER_HOST: `unix://${swarm.socket}` },
      };
    } catch (error) {
      noDocker = `Docker Swarm could not start here: ${(error as Error).message}`;
    }
  }
  console.log(
    docker
      ? 'docker-cli: comparing secretd with a private Docker Swarm'
      : `docker-cli: secretd only (${noDocker})`,
  );
});

afterAll(async () => {
  await swarm?.stop();
  await cluster?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

/** A docker config dir of its own per target: the CLI must not read or write the user's. */
function clientEnv(name: string): Record<string, string> {
  const config = join(dir.path, `docker-config-${name}`);
  mkdirSync(config, { recursive: true });
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir.path, DOCKER_CONFIG: config };
}

function run(target: Target, args: readonly string[], input?: string): Run {
  const result = spawnSync('docker', args, {
    env: target.env,
    encoding: 'utf8',
    input: input ?? '',
    timeout: 60_000,
  });
  return { code: result.status ?? -1, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

/** The command against secretd and (when there is one) against Docker. */
function both(args: readonly string[], input?: string): { secretd: Run; docker: Run | null } {
  return { secretd: run(secretd, args, input), docker: docker && run(docker, args, input) };
}

/** Ids, times, tokens, keys and ports differ between any two clusters: replaced by placeholders. */
function normalize(text: string): string {
  return text
    .replace(/(SDTKN|SWMTKN)-1-[\w-]+/g, '<TOKEN>')
    .replace(/(SDKEY|SWMKEY)-1-[\w+/=-]+/g, '<KEY>')
    .replace(/\b[a-z0-9]{25}\b/g, '<ID>')
    .replace(/\b(?=[a-z0-9]*\d)[a-z0-9]{12}\b/g, '<ID12>')
    .replace(/\d{4}-\d\d-\d\d[T ][\d:.]+(Z| \+0000 utc)/g, '<TIME>')
    .replace(/(\d+|Less than a|About an?) (second|minute|hour)s? ago/g, '<AGO>')
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<PORT>');
}

/**
 * A table's rows as lists of cells (columns are two or more spaces apart), normalized. A row's
 * first cell of 12 base-36 characters is an id even without a digit (normalize() needs one, not to
 * take a 12-letter word for an id, and about one id in 50 has none).
 */
function rows(text: string): string[][] {
  return normalize(text)
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => line.trim().split(/\s{2,}/))
    .map(([first = '', ...rest]) => [/^[a-z0-9]{12}$/.test(first) ? '<ID12>' : first, ...rest]);
}

/** The docker CLI's progress display, which redraws itself: only its last, settled lines are compared. */
function settled(text: string): string {
  return text
    .split('\n')
    .filter((line) => line !== '' && !/^(overall progress|verify: Waiting|\d+\/\d+:)/.test(line))
    .join('\n');
}

function expectSameOutcome(result: { secretd: Run; docker: Run | null }, code: number): void {
  expect({ code: result.secretd.code, stderr: result.secretd.stderr }).toEqual({
    code,
    stderr: expect.any(String),
  });
  if (result.docker) expect(result.docker.code).toBe(code);
}

/** Both failed the same way: exit code 1 and a message (the daemon's or the CLI's) saying `words` on both. */
function expectSameFailure(result: { secretd: Run; docker: Run | null }, words: RegExp): void {
  expect(result.secretd.code).toBe(1);
  expect(result.secretd.stderr).toMatch(words);
  if (result.docker) {
    expect(result.docker.code).toBe(1);
    expect(result.docker.stderr).toMatch(words);
  }
}

/**
 * Inspect JSON compared field by field: every field both have must agree (after normalizing), and
 * a field only one has must be in `onlyDocker` (what secretd does not keep) or `onlySecretd`.
 */
function expectSameJson(
  result: { secretd: Run; docker: Run | null },
  known: {
    onlyDocker?: readonly string[];
    onlySecretd?: readonly string[];
    differ?: readonly string[];
  } = {},
): void {
  expect(result.secretd.code).toBe(0);
  const ours: unknown = JSON.parse(normalize(result.secretd.stdout));
  if (!result.docker) return;
  expect(result.docker.code).toBe(0);
  const theirs: unknown = JSON.parse(normalize(result.docker.stdout));
  const problems: string[] = [];
  const walk = (a: unknown, b: unknown, path: string): void => {
    // Raft indexes count different histories.
    if (path.endsWith('.Version.Index') || known.differ?.some((p) => path.endsWith(p))) return;
    if (a !== null && typeof a === 'object' && b !== null && typeof b === 'object') {
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
        const sub = `${path}.${key}`;
        const inA = key in a;
        const inB = key in b;
        if (inA && !inB && !known.onlyDocker?.some((p) => sub.endsWith(p)))
          problems.push(`only Docker has ${sub}`);
        else if (!inA && inB && !known.onlySecretd?.some((p) => sub.endsWith(p)))
          problems.push(`only secretd has ${sub}`);
        else if (inA && inB)
          walk((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], sub);
      }
    } else if (JSON.stringify(a) !== JSON.stringify(b))
      problems.push(`${path}: Docker ${JSON.stringify(a)}, secretd ${JSON.stringify(b)}`);
  };
  walk(theirs, ours, '');
  expect(problems).toEqual([]);
}

/** Waits until `docker service ls` shows every replica of `service` running on this target. */
async function converged(target: Target | null, service: string, replicas: number): Promise<void> {
  if (!target) return;
  await until(`${replicas} running replica(s) of ${service} on ${target.name}`, 30_000, () => {
    const ls = run(target, [
      'service',
      'ls',
      '--filter',
      `name=${service}`,
      '--format',
      '{{.Replicas}}',
    ]);
    return ls.stdout.trim() === `${replicas}/${replicas}` ? true : undefined;
  });
}

/** Reads a file in a running task of `service` on secretd, through secretd's own exec. */
function inTask(service: string, argv: readonly string[]): string {
  return expectRun(cluster.manager.cli(['exec', `${service}.1`, ...argv]), {}).stdout;
}

describe('the docker CLI against secretd', () => {
  test('docker version shows secretd as the server', () => {
    const result = both(['version']);
    expectSameOutcome(result, 0);
    expect(result.secretd.stdout).toMatch(/^Server: secretd$/m);
    expect(result.secretd.stdout).toMatch(/API version:\s+1\.\d+/);
  });

  test('docker info shows the swarm and this machine as Docker does', () => {
    const info = both(['info']);
    expectSameOutcome(info, 0);
    const fields = (text: string): Map<string, string> =>
      new Map(
        [...text.matchAll(/^ +([A-Za-z][A-Za-z ]*): (.*)$/gm)].map((m) => [m[1]!, m[2]!.trim()]),
      );
    const ours = fields(info.secretd.stdout);
    expect(ours.get('Swarm')).toBe('active');
    expect(ours.get('Is Manager')).toBe('true');
    expect(ours.get('NodeID')).toMatch(/^[a-z0-9]{25}$/);
    expect(ours.get('Server Version')).toMatch(/^\d+\.\d+\.\d+/);
    if (info.docker) {
      const theirs = fields(info.docker.stdout);
      // The same machine, so the same answers; and the same swarm shape (one manager, one node).
      for (const key of [
        'Is Manager',
        'Managers',
        'Nodes',
        'Autolock Managers',
        'Root Rotation In Progress',
        'Node Address',
        'Operating System',
        'OSType',
        'Architecture',
        'CPUs',
        'Total Memory',
        'Kernel Version',
        'Number of Old Snapshots to Retain',
        'Heartbeat Tick',
        'Election Tick',
        'Expiry Duration',
      ]) {
        expect(`${key}: ${ours.get(key)}`).toBe(`${key}: ${theirs.get(key)}`);
      }
    }
  });

  test('docker secret create, ls, inspect (JSON and --pretty) and rm behave as against Docker Swarm, and never show the data', () => {
    const value = 'This is a secret';
    const created = both(['secret', 'create', 'my_secret_data', '-'], value);
    expectSameOutcome(created, 0);
    expect(normalize(created.secretd.stdout)).toBe('<ID>\n');
    if (created.docker) expect(normalize(created.docker.stdout)).toBe('<ID>\n');

    const ls = both(['secret', 'ls']);
    expectSameOutcome(ls, 0);
    if (ls.docker) expect(rows(ls.secretd.stdout)).toEqual(rows(ls.docker.stdout));
    expect(rows(ls.secretd.stdout)).toEqual([
      ['ID', 'NAME', 'DRIVER', 'CREATED', 'UPDATED'],
      ['<ID>', 'my_secret_data', '<AGO>', '<AGO>'],
    ]);
    const quiet = both(['secret', 'ls', '-q', '--filter', 'name=my_secret']);
    expect(normalize(quiet.secretd.stdout)).toBe('<ID>\n');
    if (quiet.docker) expect(normalize(quiet.docker.stdout)).toBe('<ID>\n');

    const inspect = both(['secret', 'inspect', 'my_secret_data']);
    expectSameJson(inspect);
    // Docker's names and ids resolve: full id, a unique id prefix, the exact name.
    const id = (JSON.parse(inspect.secretd.stdout) as { ID: string }[])[0]!.ID;
    for (const ref of [id, id.slice(0, 6)])
      expect(run(secretd, ['secret', 'inspect', '--format', '{{.Spec.Name}}', ref]).stdout).toBe(
        'my_secret_data\n',
      );
    const pretty = both(['secret', 'inspect', '--pretty', 'my_secret_data']);
    expectSameOutcome(pretty, 0);
    if (pretty.docker) expect(rows(pretty.secretd.stdout)).toEqual(rows(pretty.docker.stdout));

    for (const output of [created, ls, inspect, pretty])
      expect(output.secretd.stdout + output.secretd.stderr).not.toContain(value);

    const removed = both(['secret', 'rm', 'my_secret_data']);
    expectSameOutcome(removed, 0);
    expect(removed.secretd.stdout).toBe('my_secret_data\n');
    expect(run(secretd, ['secret', 'ls', '-q']).stdout).toBe('');
  });

  test('bad secret input fails as it does against Docker: exit code 1 and a clear message', () => {
    expectSameOutcome(both(['secret', 'create', 'dup', '-'], 'one'), 0);
    expectSameFailure(both(['secret', 'create', 'dup', '-'], 'two'), /already exists/);
    expectSameFailure(both(['secret', 'rm', 'no_such_secret']), /not found|no such secret/i);
    expectSameFailure(both(['secret', 'inspect', 'no_such_secret']), /no such secret|not found/i);
    expectSameFailure(
      both(['secret', 'create', 'bad name', '-'], 'x'),
      /Invalid secret name|invalid/i,
    );
    const missingFile = both(['secret', 'create', 'from_file', join(dir.path, 'no-such-file')]);
    expect(missingFile.secretd.code).toBe(1);
    if (missingFile.docker)
      expect(normalize(missingFile.secretd.stderr)).toBe(normalize(missingFile.docker.stderr));
    // The daemon's message is the one secretd's own CLI prints for the same mistake.
    for (const [args, input] of [
      [['secret', 'create', 'dup', '-'], 'two'],
      [['secret', 'create', 'bad name', '-'], 'x'],
      [['secret', 'rm', 'no_such_secret'], undefined],
    ] as const) {
      const own = cluster.manager.cli(args, input);
      expect(own.code).toBe(1);
      expect(own.stderr).toMatch(/^Error: /);
      expect(run(secretd, args, input).stderr).toBe(
        own.stderr.replace(/^Error: /, 'Error response from daemon: '),
      );
    }
    expectSameOutcome(both(['secret', 'rm', 'dup']), 0);
  });

  test('docker service create, ls, ps, inspect, scale, update --secret-rm/--secret-add and rm', async () => {
    expectSameOutcome(both(['secret', 'create', 'my_secret_data', '-'], 'This is a secret\n'), 0);
    expectSameOutcome(both(['secret', 'create', 'db_v2', '-'], 'db-password-v2'), 0);

    // Not detached: the CLI follows the rollout through the task filters (`_up-to-date`).
    const created = both([
      'service',
      'create',
      '--name',
      'redis',
      '--secret',
      'my_secret_data',
      'busybox',
      'sh',
      '-c',
      'sleep 100000',
    ]);
    expectSameOutcome(created, 0);
    // (The docker CLI of Debian's docker.io prints `Service converged`, newer ones name it.)
    expect(settled(normalize(created.secretd.stdout))).toMatch(
      /^<ID>\nverify: Service (<ID> )?converged$/,
    );
    if (created.docker)
      expect(settled(normalize(created.secretd.stdout))).toBe(
        settled(normalize(created.docker.stdout)),
      );
    expect(created.secretd.stderr).toContain('could not be accessed on a registry'); // as Docker says with no registry
    await converged(secretd, 'redis', 1);
    await converged(docker, 'redis', 1);
    expect(inTask('redis', ['cat', '/run/secrets/my_secret_data'])).toBe('This is a secret\n');

    const serviceId = run(secretd, [
      'service',
      'inspect',
      '--format',
      '{{.ID}}',
      'redis',
    ]).stdout.trim();
    for (const ref of [serviceId, serviceId.slice(0, 5)])
      expect(run(secretd, ['service', 'inspect', '--format', '{{.Spec.Name}}', ref]).stdout).toBe(
        'redis\n',
      );
    const ls = both(['service', 'ls']);
    expectSameOutcome(ls, 0);
    expect(rows(ls.secretd.stdout)).toEqual([
      ['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'],
      ['<ID12>', 'redis', 'replicated', '1/1', 'busybox:latest'],
    ]);
    if (ls.docker) expect(rows(ls.secretd.stdout)).toEqual(rows(ls.docker.stdout));

    const ps = both(['service', 'ps', 'redis']);
    expectSameOutcome(ps, 0);
    const psRows = rows(ps.secretd.stdout);
    expect(psRows[0]).toEqual([
      'ID',
      'NAME',
      'IMAGE',
      'NODE',
      'DESIRED STATE',
      'CURRENT STATE',
      'ERROR',
      'PORTS',
    ]);
    expect(psRows[1]).toEqual([
      '<ID12>',
      'redis.1',
      'busybox:latest',
      expect.any(String),
      'Running',
      'Running <AGO>',
    ]);
    if (ps.docker) expect(psRows).toEqual(rows(ps.docker.stdout));

    // What Docker keeps and secretd does not: a restart delay (secretd backs off on its own), rollback and monitoring settings, update history.
    const serviceOnlyDocker = [
      'RestartPolicy.Delay',
      'UpdateConfig.Monitor',
      'RollbackConfig',
      'PreviousSpec',
      'UpdateStatus',
      'Endpoint.Spec.Mode',
    ];
    expectSameJson(both(['service', 'inspect', 'redis']), { onlyDocker: serviceOnlyDocker });

    // Detached from here on: Docker's own rollout waits 5 s per task to see it stable.
    const scaled = both(['service', 'scale', '-d', 'redis=3']);
    expectSameOutcome(scaled, 0);
    expect(scaled.secretd.stdout).toBe('redis scaled to 3\n');
    if (scaled.docker) expect(scaled.secretd.stdout).toBe(scaled.docker.stdout);
    await converged(secretd, 'redis', 3);
    await converged(docker, 'redis', 3);
    const ps3 = both([
      'service',
      'ps',
      '--filter',
      'desired-state=running',
      '--format',
      '{{.Name}} {{.DesiredState}}',
      'redis',
    ]);
    expect(ps3.secretd.stdout.split('\n').filter(Boolean).sort()).toEqual([
      'redis.1 Running',
      'redis.2 Running',
      'redis.3 Running',
    ]);
    if (ps3.docker)
      expect(ps3.secretd.stdout.split('\n').sort()).toEqual(ps3.docker.stdout.split('\n').sort());

    const secretRm = both(['service', 'update', '-d', '--secret-rm', 'my_secret_data', 'redis']);
    expectSameOutcome(secretRm, 0);
    expect(secretRm.secretd.stdout).toBe('redis\n');
    if (secretRm.docker) expect(secretRm.secretd.stdout).toBe(secretRm.docker.stdout);
    await until('the task to lose my_secret_data', 30_000, () =>
      cluster.manager.cli(['exec', 'redis.1', 'ls', '/run/secrets']).stdout === ''
        ? true
        : undefined,
    );

    const secretAdd = both([
      'service',
      'update',
      '-d',
      '--secret-add',
      'source=db_v2,target=db_pass,mode=0400',
      'redis',
    ]);
    expectSameOutcome(secretAdd, 0);
    expect(secretAdd.secretd.stdout).toBe('redis\n');
    await converged(secretd, 'redis', 3);
    await until('the updated task to hold db_pass', 20_000, () =>
      cluster.manager.cli(['exec', 'redis.1', 'ls', '/run/secrets']).stdout === 'db_pass\n'
        ? true
        : undefined,
    );
    expect(inTask('redis', ['cat', '/run/secrets/db_pass'])).toBe('db-password-v2');
    expect(inTask('redis', ['stat', '-c', '%a', '/run/secrets/db_pass'])).toBe('400\n');
    expectSameJson(both(['service', 'inspect', 'redis']), { onlyDocker: serviceOnlyDocker });

    const removed = both(['service', 'rm', 'redis']);
    expectSameOutcome(removed, 0);
    expect(removed.secretd.stdout).toBe('redis\n');
    expectSameOutcome(both(['secret', 'rm', 'my_secret_data', 'db_v2']), 0);
  });

  test('bad service input fails as it does against Docker', () => {
    expectSameFailure(
      both([
        'service',
        'create',
        '-d',
        '--name',
        'orphan',
        '--secret',
        'no_such_secret',
        'busybox',
        'true',
      ]),
      /no_such_secret/,
    );
    expectSameFailure(
      both(['service', 'scale', 'no_such_service=2']),
      /not found|no such service/i,
    );
    expectSameFailure(both(['service', 'rm', 'no_such_service']), /not found|no such service/i);
    const badName = both(['service', 'create', '-d', '--name', 'bad_name!', 'busybox', 'true']);
    expect(badName.secretd.code).toBe(1);
    if (badName.docker) expect(badName.docker.code).toBe(1);
    for (const name of ['orphan', 'bad_name!'])
      expect(run(secretd, ['service', 'ls', '-q', '--filter', `name=${name}`]).stdout).toBe('');
  });

  test('docker node ls, inspect, update --availability, promote, demote and rm', () => {
    const ls = both(['node', 'ls']);
    expectSameOutcome(ls, 0);
    const ours = rows(ls.secretd.stdout);
    expect(ours[0]).toEqual([
      'ID',
      'HOSTNAME',
      'STATUS',
      'AVAILABILITY',
      'MANAGER STATUS',
      'ENGINE VERSION',
    ]);
    expect(ours[1]!.slice(0, 5)).toEqual([
      '<ID> *',
      expect.any(String),
      'Ready',
      'Active',
      'Leader',
    ]);
    expect(ours[1]![5]).toBe('secretd');
    if (ls.docker)
      expect(ours.map((row) => row.slice(0, 5))).toEqual(
        rows(ls.docker.stdout).map((row) => row.slice(0, 5)),
      );

    expectSameJson(both(['node', 'inspect', 'self']), {
      onlyDocker: ['Engine.Plugins'],
      differ: [
        'EngineVersion',
        'TLSInfo.TrustRoot',
        'CertIssuerSubject',
        'CertIssuerPublicKey',
        'Resources.MemoryBytes',
      ],
    });
    const pretty = both(['node', 'inspect', '--pretty', 'self']);
    expectSameOutcome(pretty, 0);
    expect(pretty.secretd.stdout).toMatch(/^ Raft Status:\s+Reachable$/m);
    expect(pretty.secretd.stdout).toMatch(/^ CPUs:\s+[1-9]\d*$/m);

    const hostname = ours[1]![1]!;
    const nodeId = run(secretd, ['node', 'inspect', '--format', '{{.ID}}', 'self']).stdout.trim();
    for (const ref of [nodeId, nodeId.slice(0, 7), hostname])
      expect(
        run(secretd, ['node', 'inspect', '--format', '{{.Description.Hostname}}', ref]).stdout,
      ).toBe(`${hostname}\n`);
    for (const availability of ['drain', 'active']) {
      const updated = both(['node', 'update', '--availability', availability, hostname]);
      expectSameOutcome(updated, 0);
      expect(updated.secretd.stdout).toBe(`${hostname}\n`);
      expect(
        run(secretd, ['node', 'inspect', '--format', '{{.Spec.Availability}}', 'self']).stdout,
      ).toBe(`${availability}\n`);
    }
    const promote = both(['node', 'promote', hostname]);
    expectSameOutcome(promote, 0);
    expect(normalize(promote.secretd.stdout)).toBe('Node <ID> is already a manager.\n');
    expectSameFailure(both(['node', 'demote', hostname]), /last manager/);
    expectSameFailure(both(['node', 'rm', hostname]), /manager/);
    expectSameFailure(both(['node', 'inspect', 'no-such-node']), /no-such-node/);
  });

  test('docker swarm join-token, unlock-key and update --autolock', () => {
    for (const role of ['worker', 'manager']) {
      const token = both(['swarm', 'join-token', role]);
      expectSameOutcome(token, 0);
      expect(normalize(token.secretd.stdout)).toBe(
        `To add a ${role} to this swarm, run the following command:\n\n    docker swarm join --token <TOKEN> 127.0.0.1:<PORT>\n\n`,
      );
      if (token.docker)
        expect(normalize(token.secretd.stdout)).toBe(normalize(token.docker.stdout));
    }
    const before = run(secretd, ['swarm', 'join-token', '-q', 'worker']).stdout;
    expect(before).toMatch(/^SDTKN-1-/);
    const rotated = both(['swarm', 'join-token', '--rotate', 'worker']);
    expectSameOutcome(rotated, 0);
    if (rotated.docker)
      expect(normalize(rotated.secretd.stdout)).toBe(normalize(rotated.docker.stdout));
    expect(run(secretd, ['swarm', 'join-token', '-q', 'worker']).stdout).not.toBe(before);

    const noKey = both(['swarm', 'unlock-key']);
    expect(noKey.secretd.code).toBe(1);
    expect(noKey.secretd.stderr).toBe('no unlock key is set\n');
    if (noKey.docker) expect(noKey.secretd).toEqual(noKey.docker);

    const lock = both(['swarm', 'update', '--autolock=true']);
    expectSameOutcome(lock, 0);
    expect(normalize(lock.secretd.stdout)).toContain('    <KEY>\n');
    if (lock.docker) expect(normalize(lock.secretd.stdout)).toBe(normalize(lock.docker.stdout));
    const key = run(secretd, ['swarm', 'unlock-key', '-q']).stdout;
    expect(key).toMatch(/^SDKEY-1-/);
    const rotatedKey = both(['swarm', 'unlock-key', '--rotate']);
    expectSameOutcome(rotatedKey, 0);
    if (rotatedKey.docker)
      expect(normalize(rotatedKey.secretd.stdout)).toBe(normalize(rotatedKey.docker.stdout));
    expect(run(secretd, ['swarm', 'unlock-key', '-q']).stdout).not.toBe(key);
    const unlocked = both(['swarm', 'update', '--autolock=false']);
    expectSameOutcome(unlocked, 0);
    expect(unlocked.secretd.stdout).toBe('Swarm updated.\n');
  });

  test('docker swarm update --cert-expiry: the new validity in docker info, a bad one refused', () => {
    const expiry = (target: Target): string =>
      run(target, ['info', '--format', '{{.Swarm.Cluster.Spec.CAConfig.NodeCertExpiry}}']).stdout;
    const before = both(['info', '--format', '{{.Swarm.Cluster.Spec.CAConfig.NodeCertExpiry}}']);
    expectSameOutcome(before, 0);
    expect(before.secretd.stdout).toBe('2160h0m0s\n');
    if (before.docker) expect(before.secretd.stdout).toBe(before.docker.stdout);
    const updated = both(['swarm', 'update', '--cert-expiry', '2h']);
    expectSameOutcome(updated, 0);
    expect(updated.secretd.stdout).toBe('Swarm updated.\n');
    expect(expiry(secretd)).toBe('2h0m0s\n');
    if (docker) expect(expiry(docker)).toBe('2h0m0s\n');
    // Under Docker's minimum (1 h) and ours (1 m): both refuse and keep what they had.
    expectSameFailure(both(['swarm', 'update', '--cert-expiry', '30s']), /minimum/);
    expect(expiry(secretd)).toBe('2h0m0s\n');
    const restored = both(['swarm', 'update', '--cert-expiry', '2160h']);
    expectSameOutcome(restored, 0);
    expect(expiry(secretd)).toBe('2160h0m0s\n');
  });

  test('docker swarm ca prints the root; --rotate waits until every node has a certificate from a new root, then prints it', () => {
    const pem = /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n*$/;
    const before = both(['swarm', 'ca']);
    expectSameOutcome(before, 0);
    expect(before.secretd.stdout).toMatch(pem);
    if (before.docker) expect(before.docker.stdout).toMatch(pem);

    const rotated = both(['swarm', 'ca', '--rotate']);
    expectSameOutcome(rotated, 0);
    for (const result of [rotated.secretd, rotated.docker]) {
      if (!result) continue;
      // The progress display, then the new root: the one `docker swarm ca` prints from now on.
      const root = /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\n*$/.exec(
        result.stdout,
      )?.[0];
      expect(root).toBeDefined();
      expect(result.stdout).toContain('rotated TLS certificates');
    }
    // The client certificate this suite uses came from the old root, which no node trusts now:
    // a new one (and the new root as its ca.pem), as README's "Root CA rotation" says.
    expectRun(
      cluster.manager.cli([
        'ca',
        'issue-client',
        '--name',
        'docker-cli',
        '--out',
        secretd.env.DOCKER_CERT_PATH!,
      ]),
      { stdout: /Wrote/ },
    );
    const after = run(secretd, ['swarm', 'ca']);
    expect(after.code).toBe(0);
    expect(after.stdout).not.toBe(before.secretd.stdout);
    expect(rotated.secretd.stdout.endsWith(after.stdout.trimEnd() + '\n')).toBe(true);
    // A root or key supplied by the client, or an external CA: refused, naming it.
    const given = join(dir.path, 'given-root.pem');
    writeFileSync(given, after.stdout);
    const givenKey = join(dir.path, 'given-key.pem');
    writeFileSync(
      givenKey,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
        type: 'pkcs8',
        format: 'pem',
      }),
    );
    const supplied = run(secretd, [
      'swarm',
      'ca',
      '--rotate',
      '--ca-cert',
      given,
      '--ca-key',
      givenKey,
    ]);
    expect(supplied.code).toBe(1);
    expect(supplied.stderr).toContain('SigningCACert');
  });

  test('what secretd does not do is an honest 501, never a fake success', () => {
    for (const [args, words] of [
      [['network', 'ls'], 'secretd has no networks'],
      [['ps'], 'runs containers only as service tasks'],
      [['volume', 'ls'], 'secretd has no volumes'],
      [
        [
          'service',
          'create',
          '-d',
          '--name',
          'limited',
          '--limit-memory',
          '64m',
          'busybox',
          'true',
        ],
        'resource limits',
      ],
      [
        [
          'service',
          'create',
          '-d',
          '--name',
          'mounted',
          '--mount',
          'type=tmpfs,target=/data',
          'busybox',
          'true',
        ],
        'mounts',
      ],
    ] as const) {
      const result = run(secretd, args);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/^Error response from daemon: /);
      expect(result.stderr).toContain(words);
    }
    for (const name of ['limited', 'mounted'])
      expect(run(secretd, ['service', 'ls', '-q', '--filter', `name=${name}`]).stdout).toBe('');
    expect(
      run(secretd, ['service', 'create', '-d', '--name', 'logged', 'busybox', 'sleep', '1000'])
        .code,
    ).toBe(0);
    const logs = run(secretd, ['service', 'logs', 'logged']);
    expect(logs.code).toBe(1);
    expect(logs.stderr).toContain('does not collect container logs');
    expect(run(secretd, ['service', 'rm', 'logged']).code).toBe(0);
  });
});
