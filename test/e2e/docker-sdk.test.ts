/**
 * The official Docker SDK for Python (Debian's python3-docker) driving secretd as a user drives it:
 * `docker.from_env()` with `DOCKER_HOST=tcp://…`, TLS and secretd's client certificate. Every case
 * (test/e2e/docker_sdk_cases.py) runs against secretd and against a private one-node Docker Swarm in
 * the same test, as the docker CLI suite does, and the answers are compared. Where secretd answers
 * otherwise on purpose (the README lists it), the test says so and checks secretd's answer.
 *
 * Needs root, runc, busybox-static, dockerd and python3-docker (CI installs them). Nothing is
 * skipped: without any of them, the suite fails saying what is missing.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable, startDockerSwarm, type DockerSwarm } from '../../bench/docker-swarm.ts';
import { importDockerImage } from '../../bench/service-systems.ts';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { issueClientCert } from '../helpers/client-certs.ts';
import { requireBinary, tempDir, type TempDir } from '../helpers/process.ts';
import { expectRun, ServiceCluster, until } from '../helpers/services.ts';

// Real processes, containers and a dockerd: generous, since CI machines vary.
setDefaultTimeout(120_000);

/** Debian's interpreter, where python3-docker is installed (a pyenv `python3` earlier in PATH would not see it). */
const python = '/usr/bin/python3';
const script = join(import.meta.dir, 'docker_sdk_cases.py');

type Answer =
  | { readonly ok: true; readonly value: any }
  | { readonly ok: false; readonly status: number; readonly message: string };

interface Target {
  readonly name: 'secretd' | 'docker';
  readonly env: Record<string, string>;
}

let dir: TempDir;
let cluster: ServiceCluster;
let secretd: Target;
let docker: Target;
let swarm: DockerSwarm | undefined;

beforeAll(async () => {
  requireBinary();
  if (spawnSync(python, ['-c', 'import docker'], { encoding: 'utf8' }).status !== 0)
    throw new Error(
      `The Docker SDK for Python is needed for these tests: apt-get install -y python3-docker (for ${python})`,
    );
  if (process.getuid?.() !== 0 || !findExecutable('dockerd'))
    throw new Error(
      'These tests compare with a private Docker Swarm: they need root and dockerd (apt-get install -y docker.io)',
    );
  dir = tempDir('secretd-docker-sdk-');
  cluster = await ServiceCluster.init(dir.path);
  cluster.importImage('busybox', busyboxRootfsTarball());
  const certs = join(dir.path, 'certs');
  expectRun(cluster.manager.cli(['ca', 'issue-client', '--name', 'docker-sdk', '--out', certs]), {
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
  swarm = await startDockerSwarm();
  await importDockerImage(swarm.socket, 'busybox', busyboxRootfsTarball());
  docker = {
    name: 'docker',
    env: { ...clientEnv('docker'), DOCKER_HOST: `unix://${swarm.socket}` },
  };
});

afterAll(async () => {
  await swarm?.stop();
  await cluster?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

/** A home and docker config dir of its own per target: the SDK must not read the user's. */
function clientEnv(name: string): Record<string, string> {
  const home = join(dir.path, `home-${name}`);
  mkdirSync(join(home, '.docker'), { recursive: true });
  return { PATH: '/usr/bin:/bin', HOME: home, DOCKER_CONFIG: join(home, '.docker') };
}

/** One case against one target: its JSON answer; a traceback (a failure of the case itself) fails the test. */
function run(target: Target, name: string, args: object = {}): Answer {
  const result = spawnSync(python, [script, name, JSON.stringify(args)], {
    env: target.env,
    encoding: 'utf8',
    timeout: 90_000,
  });
  if (result.status !== 0)
    throw new Error(
      `${name} against ${target.name} exited ${result.status}:\n${result.stdout}${result.stderr}`,
    );
  expect(result.stderr).toBe('');
  return JSON.parse(result.stdout) as Answer;
}

/** The case against both; their answers side by side. */
function both(name: string, args: object = {}): { secretd: Answer; docker: Answer } {
  return { secretd: run(secretd, name, args), docker: run(docker, name, args) };
}

/** Both succeeded with the same value. */
function expectSame(answers: { secretd: Answer; docker: Answer }): any {
  expect(answers.secretd).toEqual(answers.docker);
  expect(answers.secretd.ok).toBe(true);
  return (answers.secretd as { value: unknown }).value;
}

/** Waits until `count` tasks of `service` run on the target (as the SDK lists them). */
async function converged(target: Target, service: string, count: number): Promise<void> {
  await until(`${count} running task(s) of ${service} on ${target.name}`, 60_000, () => {
    const answer = run(target, 'service_running', { name: service });
    return answer.ok && answer.value === count ? true : undefined;
  });
}

describe('the Docker SDK for Python against secretd and Docker Swarm', () => {
  test('secrets: create, list, inspect and remove give the same answers, and never the data', () => {
    const value = 'sdk-secret-value';
    expect(
      expectSame(both('secret_create', { name: 'sdk_secret', data: value, labels: { team: 'a' } })),
    ).toEqual({ id_length: 25 });
    expect(expectSame(both('secret_list', { prefix: 'sdk_' }))).toEqual(['sdk_secret']);
    expect(expectSame(both('secret_inspect', { name: 'sdk_secret' }))).toEqual({
      Spec: { Name: 'sdk_secret', Labels: { team: 'a' } },
      has_data: false,
    });
    const duplicate = both('secret_create', { name: 'sdk_secret', data: 'other' });
    expect([duplicate.secretd.ok, duplicate.docker.ok]).toEqual([false, false]);
    expect([
      (duplicate.secretd as { status: number }).status,
      (duplicate.docker as { status: number }).status,
    ]).toEqual([409, 409]);
    expect(expectSame(both('secret_remove', { name: 'sdk_secret' }))).toBe(true);
    expect(expectSame(both('secret_list', { prefix: 'sdk_' }))).toEqual([]);
  });

  test("with the SDK's own version negotiation (GET /version first), a scoped writer creates in its scope and an auditor gets the 403 of its role", () => {
    const as = (name: string, role: string, scope: readonly string[] = []): Target => ({
      name: 'secretd',
      env: {
        ...secretd.env,
        DOCKER_CERT_PATH: issueClientCert(cluster.manager.dataDir, join(dir.path, name), {
          name,
          role,
          scope,
        }),
        SDK_API_VERSION: 'auto',
      },
    });
    const writer = as('sdk-writer', 'writer', ['sdk_w_*']);
    expect(run(writer, 'secret_create', { name: 'sdk_w_one', data: 'w' })).toEqual({
      ok: true,
      value: { id_length: 25 },
    });
    expect(run(writer, 'secret_create', { name: 'sdk_other', data: 'w' })).toEqual({
      ok: false,
      status: 403,
      message: 'Permission denied: role writer (scope sdk_w_*) may not create secret sdk_other',
    });
    expect(run(as('sdk-auditor', 'auditor'), 'secret_list', { prefix: 'sdk_' })).toEqual({
      ok: false,
      status: 403,
      message: 'Permission denied: role auditor may not list secrets',
    });
    expect(run(secretd, 'secret_remove', { name: 'sdk_w_one' })).toEqual({ ok: true, value: true });
    expect(run(secretd, 'secret_list', { prefix: 'sdk_' })).toEqual({ ok: true, value: [] });
  });

  test('a replicated service with a secret, scale() and update() with an update config', async () => {
    expectSame(both('secret_create', { name: 'sdk_db', data: 'db-password' }));
    const created = both('service_create', {
      name: 'sdk_rep',
      secret: 'sdk_db',
      target: 'db_pass',
      replicas: 2,
    });
    // The SDK sends {"replicated": {"Replicas": 2}}: read as Go reads it, case-insensitively.
    const spec = expectSame({
      secretd: withoutIds(created.secretd),
      docker: withoutIds(created.docker),
    });
    expect(spec).toEqual({
      Mode: { Replicated: { Replicas: 2 } },
      Secrets: [
        {
          File: { Name: 'db_pass', UID: '0', GID: '0', Mode: 0o400 },
          SecretID: '<ID>',
          SecretName: 'sdk_db',
        },
      ],
    });
    await converged(secretd, 'sdk_rep', 2);
    await converged(docker, 'sdk_rep', 2);
    expect(
      expectRun(cluster.manager.cli(['exec', 'sdk_rep.1', 'cat', '/run/secrets/db_pass']), {})
        .stdout,
    ).toBe('db-password');

    // scale() fetches the spec with ?insertDefaults=True and sends it back with the new mode.
    expect(expectSame(both('service_scale', { name: 'sdk_rep', replicas: 3 }))).toEqual({
      result: true,
      Mode: { Replicated: { Replicas: 3 } },
    });
    await converged(secretd, 'sdk_rep', 3);
    await converged(docker, 'sdk_rep', 3);

    // docker.types.UpdateConfig sends FailureAction continue; the delay is kept to the nanosecond.
    expect(
      expectSame(
        both('service_update_config', { name: 'sdk_rep', parallelism: 2, delay: 1_500_000 }),
      ),
    ).toEqual({
      Parallelism: 2,
      Delay: 1_500_000,
      FailureAction: 'continue',
      MaxFailureRatio: 0,
      Order: 'stop-first',
    });

    // ServiceStatus (API 1.41): the same counts.
    expect(expectSame(both('service_status', { name: 'sdk_rep' }))).toEqual([
      { RunningTasks: 3, DesiredTasks: 3, CompletedTasks: 0 },
    ]);

    // insertDefaults: what secretd does is filled in as Docker fills it; what it lacks is not.
    const defaults = both('service_inspect_defaults', { name: 'sdk_rep' });
    expect([defaults.secretd.ok, defaults.docker.ok]).toEqual([true, true]);
    const ours = (defaults.secretd as { value: any }).value;
    const theirs = (defaults.docker as { value: any }).value;
    expect(ours.TaskTemplate.RestartPolicy).toEqual({
      Condition: theirs.TaskTemplate.RestartPolicy.Condition,
      MaxAttempts: theirs.TaskTemplate.RestartPolicy.MaxAttempts,
    });
    expect(ours.TaskTemplate.ContainerSpec.StopGracePeriod).toBe(
      theirs.TaskTemplate.ContainerSpec.StopGracePeriod,
    );
    // Docker's restart delay, update monitor and rollback settings: secretd has none of them (README).
    expect([
      theirs.TaskTemplate.RestartPolicy.Delay,
      theirs.UpdateConfig.Monitor,
      typeof theirs.RollbackConfig,
    ]).toEqual([5e9, 5e9, 'object']);
    expect([
      ours.TaskTemplate.RestartPolicy.Delay,
      ours.UpdateConfig.Monitor,
      ours.RollbackConfig,
    ]).toEqual([undefined, undefined, undefined]);

    expect(expectSame(both('service_remove', { name: 'sdk_rep' }))).toBe(true);
  });

  test('a global service with a secret', async () => {
    const created = both('service_create', {
      name: 'sdk_global',
      secret: 'sdk_db',
      target: '/etc/app/db',
    });
    // The SDK sends {"global": {}}.
    expect(
      expectSame({ secretd: withoutIds(created.secretd), docker: withoutIds(created.docker) }).Mode,
    ).toEqual({ Global: {} });
    await converged(secretd, 'sdk_global', 1);
    await converged(docker, 'sdk_global', 1);
    const task = expectRun(cluster.manager.cli(['service', 'ps', '-q', 'sdk_global']), {})
      .stdout.trim()
      .split('\n')[0]!;
    expect(expectRun(cluster.manager.cli(['exec', task, 'cat', '/etc/app/db']), {}).stdout).toBe(
      'db-password',
    );
    expect(expectSame(both('service_status', { name: 'sdk_global' }))).toEqual([
      { RunningTasks: 1, DesiredTasks: 1, CompletedTasks: 0 },
    ]);
    expect(expectSame(both('service_remove', { name: 'sdk_global' }))).toBe(true);
    await until('the secret to be unused', 30_000, () =>
      run(secretd, 'secret_remove', { name: 'sdk_db' }).ok ? true : undefined,
    );
    expect(run(docker, 'secret_remove', { name: 'sdk_db' }).ok).toBe(true);
  });

  test('update_swarm() with rotation flags sent as True rotates exactly what it names', () => {
    const worker = expectSame(both('swarm_rotate', { rotate_worker_token: true }));
    expect(worker).toEqual({
      result: true,
      worker_changed: true,
      manager_changed: false,
      unlock_key_changed: false,
      unlock_key_set: false,
    });
    expect(expectSame(both('swarm_rotate', { rotate_manager_token: true }))).toEqual({
      result: true,
      worker_changed: false,
      manager_changed: true,
      unlock_key_changed: false,
      unlock_key_set: false,
    });
    expect(expectSame(both('swarm_rotate', { autolock_managers: true }))).toEqual({
      result: true,
      worker_changed: false,
      manager_changed: false,
      unlock_key_changed: true,
      unlock_key_set: true,
    });
    expect(
      expectSame(
        both('swarm_rotate', { rotate_manager_unlock_key: true, autolock_managers: true }),
      ),
    ).toEqual({
      result: true,
      worker_changed: false,
      manager_changed: false,
      unlock_key_changed: true,
      unlock_key_set: true,
    });
    expect(expectSame(both('swarm_rotate', { autolock_managers: false }))).toEqual({
      result: true,
      worker_changed: false,
      manager_changed: false,
      unlock_key_changed: true,
      unlock_key_set: false,
    });
  });

  test('update_swarm() without EncryptionConfig: Docker replaces the spec and turns autolock off, secretd leaves it on (README)', () => {
    expectSame(both('swarm_rotate', { autolock_managers: true }));
    const rotated = both('swarm_rotate', { rotate_manager_unlock_key: true });
    expect(rotated.docker).toEqual({
      ok: true,
      value: {
        result: true,
        worker_changed: false,
        manager_changed: false,
        unlock_key_changed: true,
        unlock_key_set: false,
      },
    });
    expect(rotated.secretd).toEqual({
      ok: true,
      value: {
        result: true,
        worker_changed: false,
        manager_changed: false,
        unlock_key_changed: true,
        unlock_key_set: true,
      },
    });
    expect(run(secretd, 'swarm_rotate', { autolock_managers: false })).toEqual({
      ok: true,
      value: {
        result: true,
        worker_changed: false,
        manager_changed: false,
        unlock_key_changed: true,
        unlock_key_set: false,
      },
    });
  });

  test('update_swarm() asking for other Raft settings: Docker applies them, secretd refuses naming the field (501)', () => {
    const raft = both('swarm_rotate', { snapshot_interval: 5000 });
    expect(raft.docker.ok).toBe(true);
    expect(raft.secretd).toEqual({
      ok: false,
      status: 501,
      message:
        'secretd does not support changing its Raft settings: Spec.Raft.SnapshotInterval is 10000 here, not 5000',
    });
  });

  test("node update, with Docker's keys in any case, and node remove with force=True", async () => {
    const drained = both('node_update', {
      spec: { Availability: 'drain', Role: 'manager', Labels: { sdk: 'yes' } },
    });
    expect(expectSame(drained)).toEqual({
      result: true,
      Spec: { Availability: 'drain', Role: 'manager', Labels: { sdk: 'yes' } },
    });
    const active = both('node_update', {
      spec: { availability: 'active', role: 'manager', labels: {} },
    });
    expect(expectSame(active)).toEqual({
      result: true,
      Spec: { Availability: 'active', Role: 'manager', Labels: {} },
    });

    // force=True reaches the daemon's rule (not a 400 on the flag): the last manager is not removed.
    const self = both('node_remove', { node: 'self', force: true });
    expect([self.secretd.ok, self.docker.ok]).toEqual([false, false]);
    expect((self.secretd as { message: string }).message).toMatch(/manager/);
    expect((self.docker as { message: string }).message).toMatch(/manager/);
    const unknown = both('node_remove', { node: 'nosuchnode', force: true });
    expect([unknown.secretd.ok, unknown.docker.ok]).toEqual([false, false]);
    expect([
      (unknown.secretd as { status: number }).status,
      (unknown.docker as { status: number }).status,
    ]).toEqual([404, 404]);

    // A worker removed with force=True (secretd only: the Docker Swarm here has one node).
    const joined = await cluster.joinWorker('sdk-worker');
    const workerId = joined.id;
    expect(run(secretd, 'node_remove', { node: workerId, force: true })).toEqual({
      ok: true,
      value: true,
    });
    const listed = expectRun(cluster.manager.cli(['node', 'ls', '-q']), {}).stdout;
    expect(listed).not.toContain(workerId);
  });
});

/** A service answer with the secret id (which differs between clusters) replaced by a placeholder. */
function withoutIds(answer: Answer): Answer {
  if (!answer.ok) return answer;
  return {
    ok: true,
    value: JSON.parse(
      JSON.stringify(answer.value).replace(/"SecretID":"[a-z0-9]+"/g, '"SecretID":"<ID>"'),
    ),
  };
}
