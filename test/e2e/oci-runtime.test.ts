/**
 * secretd as the OCI runtime of real engines, on the compiled binary: a private dockerd started
 * with `--add-runtime secretd=<dir>/secretd-runc` (the shim `secretd oci-runtime install` writes), docker-compose
 * against it, a one-node Docker Swarm on a second dockerd with `--default-runtime secretd`, podman
 * with `--runtime` and `--annotation`, and `secretd spawn` for host processes.
 * The node, dockerd, podman and spawn share one private mount namespace (bench/oci-engines.ts says
 * why); the test reads its mount table and files through /proc/<pid>/mountinfo and /proc/<pid>/root.
 *
 * Needs root, runc, dockerd (docker.io), docker-compose, podman, unshare/nsenter (util-linux) and
 * busybox-static; CI installs them.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  missingTools,
  ok,
  runSync as run,
  startOciEngines,
  type OciEngines,
  type Run,
} from '../../bench/oci-engines.ts';
import { importDockerImage } from '../../bench/service-systems.ts';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { adminRequest, until } from '../helpers/cluster.ts';
import { requireBinary, secretdBin } from '../helpers/process.ts';

setDefaultTimeout(60_000);

const missing = missingTools(['docker-compose', 'podman']);
const skipReason =
  process.getuid?.() !== 0
    ? 'needs root'
    : missing.length > 0
      ? `needs ${missing.join(', ')}`
      : null;
if (skipReason !== null) console.warn(`oci-runtime e2e skipped: ${skipReason}`);

let engines: OciEngines;
let dir = '';
let dataDir = '';
let nodeId = '';
let runtimePath = '';
let dockerSock = '';

const nsPid = (): number => engines.nsPid;
const inNamespace = (argv: readonly string[]): string[] => engines.inNamespace(argv);
const cli = (args: readonly string[], input?: string): Run => engines.cli(args, input);
const docker = (args: readonly string[]): Run => engines.docker(args);
const containerMounts = (): string[] => engines.containerMounts();
const podmanArgs = (): string[] => [
  'podman',
  '--root',
  join(dir, 'podman/root'),
  '--runroot',
  join(dir, 'podman/run'),
  '--storage-driver',
  'vfs',
  '--cgroup-manager',
  'cgroupfs',
  '--events-backend',
  'file',
];
// This machine's root lacks CAP_SYS_RESOURCE: podman's default ulimits (above the hard limits) fail in runc.
const podman = (args: readonly string[]): Run =>
  run(inNamespace([...podmanArgs(), ...args]), {
    env: { CONTAINERS_CONF: join(dir, 'containers.conf') },
  });

interface LocalRow {
  readonly Id: string;
  readonly Owner: string;
  readonly Secrets: readonly { Name: string; Version: number; Target: string }[];
}

/**
 * Stops a `secretd spawn` a test started, if it still runs (SIGTERM: spawn erases its secrets
 * before it exits), so that a failed test leaves no spawn behind to fail the tests after it.
 */
async function ended(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exit = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exit;
}

async function localContainers(): Promise<LocalRow[]> {
  const answer = await adminRequest(dataDir, 'GET', '/secretd/local/containers');
  if (answer.status !== 200)
    throw new Error(`GET /secretd/local/containers answered ${answer.status} ${answer.text}`);
  return JSON.parse(answer.text) as LocalRow[];
}

async function grant(secret: string, constraint: string): Promise<void> {
  const answer = await adminRequest(dataDir, 'POST', `/secretd/secrets/${secret}/grants`, {
    Constraints: [constraint],
  });
  if (answer.status !== 201 && answer.status !== 200)
    throw new Error(`grant answered ${answer.status} ${answer.text}`);
}

async function ungrant(secret: string, constraint: string): Promise<void> {
  const answer = await adminRequest(
    dataDir,
    'DELETE',
    `/secretd/secrets/${secret}/grants?constraint=${encodeURIComponent(constraint)}`,
  );
  if (answer.status !== 200) throw new Error(`ungrant answered ${answer.status} ${answer.text}`);
}

/** Waits until this node holds `version` of the secret by grant (null: not at all). */
async function nodeHolds(secret: string, version: number | null): Promise<void> {
  await until(`the node to hold ${secret} at ${String(version)}`, 15_000, async () => {
    const answer = await adminRequest(dataDir, 'GET', '/secretd/local/grants');
    const held = (JSON.parse(answer.text) as { Name: string; Version: number }[]).find(
      (g) => g.Name === secret,
    );
    return (held?.Version ?? null) === version ? true : undefined;
  });
}

function containerFile(id: string, path: string): Run {
  return docker(['exec', id, 'cat', path]);
}

/**
 * `docker run --runtime secretd --network none -e VAR… busybox ARG…`: detached (`-d`, its id on
 * stdout) or removed once it exits (`--rm`).
 */
function dockerRun(mode: '-d' | '--rm', env: readonly string[], args: readonly string[]): Run {
  const envArgs = env.flatMap((variable) => ['-e', variable]);
  return docker([
    'run',
    mode,
    '--runtime',
    'secretd',
    '--network',
    'none',
    ...envArgs,
    'busybox',
    ...args,
  ]);
}

/** A container command that idles, counting the SIGHUPs it gets in /tmp/hups. */
const idleCountingHups = [
  'sh',
  '-c',
  'trap "echo hup >> /tmp/hups" HUP; while true; do sleep 0.1; done',
];

describe.skipIf(skipReason !== null)('secretd as the OCI runtime', () => {
  beforeAll(async () => {
    requireBinary();
    engines = await startOciEngines(secretdBin);
    ({ dir, dataDir, nodeId, runtimePath, dockerSock } = engines);
    writeFileSync(join(dir, 'containers.conf'), '[containers]\ndefault_ulimits = []\n');
    // Secrets, granted to this node.
    ok(cli(['secret', 'create', 'db_pass', '-'], 'db-v1'), 'secret create db_pass');
    ok(cli(['secret', 'create', 'api_key', '-'], 'api-v1'), 'secret create api_key');
    ok(cli(['secret', 'create', 'web_key', '-'], 'web-v1'), 'secret create web_key');
    ok(cli(['secret', 'create', 'not_granted', '-'], 'nope'), 'secret create not_granted');
    await grant('db_pass', 'node.role==manager');
    await grant('api_key', `node.id==${nodeId}`);
    await grant('web_key', 'node.role==manager');
    await nodeHolds('web_key', 1);
    await importDockerImage(dockerSock, 'busybox', busyboxRootfsTarball());
    ok(podman(['import', busyboxRootfsTarball(), 'localhost/busybox:latest']), 'podman import');
  }, 120_000);

  afterAll(async () => {
    if (engines === undefined) return;
    const ids = docker(['ps', '-aq'])
      .stdout.split('\n')
      .filter((id) => id !== '');
    if (ids.length > 0) docker(['rm', '-f', ...ids]);
    const leftovers = containerMounts();
    await engines.stop();
    expect(leftovers).toEqual([]);
  }, 60_000);

  test('docker run --runtime secretd gets a granted secret on a read-only tmpfs with its mode and owner, never in docker inspect, updated in place with SIGHUP, erased by docker rm -f', async () => {
    const started = dockerRun(
      '-d',
      [
        'SECRETD_SECRET_DB=source=db_pass,target=db,uid=123,gid=456,mode=0440,on-update=signal:SIGHUP',
      ],
      idleCountingHups,
    );
    const id = ok(started, 'docker run').stdout.trim();
    expect(containerFile(id, '/run/secrets/db')).toEqual({ code: 0, stdout: 'db-v1', stderr: '' });
    expect(
      ok(docker(['exec', id, 'stat', '-c', '%u %g %a', '/run/secrets/db']), 'stat').stdout,
    ).toBe('123 456 440\n');
    const mount = ok(
      docker(['exec', id, 'grep', ' /run/secrets ', '/proc/mounts']),
      'mounts',
    ).stdout;
    expect(mount).toMatch(/^secretd-secrets \/run\/secrets tmpfs ro,nosuid,nodev,noexec/);
    const inspect = ok(docker(['inspect', id]), 'docker inspect').stdout;
    expect(inspect).toContain('SECRETD_SECRET_DB=source=db_pass,target=db');
    expect(inspect).not.toContain('db-v1');
    const rows = await localContainers();
    expect(rows).toEqual([
      {
        Id: id,
        Owner: 'runc',
        Secrets: [{ ID: expect.any(String), Name: 'db_pass', Version: 1, Target: 'db' }],
      },
    ] as never);
    expect(containerMounts()).toHaveLength(1);
    const pid = ok(docker(['inspect', '-f', '{{.State.Pid}}', id]), 'pid').stdout.trim();

    ok(cli(['secret', 'update', 'db_pass', '-'], 'db-v2'), 'secret update');
    await until('the new version in the running container', 15_000, () =>
      containerFile(id, '/run/secrets/db').stdout === 'db-v2' ? true : undefined,
    );
    await until('SIGHUP in the container', 10_000, () =>
      containerFile(id, '/tmp/hups').stdout === 'hup\n' ? true : undefined,
    );
    expect(ok(docker(['inspect', '-f', '{{.State.Pid}}', id]), 'pid').stdout.trim()).toBe(pid);
    expect((await localContainers())[0]!.Secrets[0]!.Version).toBe(2);

    ok(docker(['rm', '-f', id]), 'docker rm -f');
    await until('the erase', 10_000, async () =>
      (await localContainers()).length === 0 && containerMounts().length === 0 ? true : undefined,
    );
  });

  test('docker run fails with the secret named in docker error when it is not granted, on-update=restart or a bad target, mounting nothing', async () => {
    const cases: [string, RegExp][] = [
      ['not_granted', /secret 'not_granted' is not granted to this node/],
      ['source=db_pass,on-update=restart', /secret 'db_pass' asks for on-update=restart/],
      ['source=db_pass,target=../x', /secret target '\.\.\/x' must not contain '\.' or '\.\.'/],
      [
        'source=db_pass,mode=99999',
        /SECRETD_SECRET_BAD is not a valid reference.*invalid file mode/,
      ],
    ];
    for (const [spec, message] of cases) {
      const result = dockerRun('--rm', [`SECRETD_SECRET_BAD=${spec}`], ['true']);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(message);
    }
    const twice = dockerRun(
      '--rm',
      ['SECRETD_SECRET_A=source=db_pass,target=x', 'SECRETD_SECRET_B=source=api_key,target=x'],
      ['true'],
    );
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/secret target '\/run\/secrets\/x' is used twice/);
    expect(await localContainers()).toEqual([]);
    expect(containerMounts()).toEqual([]);
    // Without a reference: straight through.
    expect(dockerRun('--rm', [], ['echo', 'plain'])).toEqual({
      code: 0,
      stdout: 'plain\n',
      stderr: '',
    });
  });

  test('secret ungrant and a node label that stops matching withdraw the file from running containers, and new containers cannot get it', async () => {
    ok(cli(['node', 'update', '--label-add', 'role=db', nodeId]), 'label add');
    await grant('not_granted', 'node.labels.role==db');
    await nodeHolds('not_granted', 1);
    const id = ok(
      dockerRun(
        '-d',
        ['SECRETD_SECRET_A=api_key', 'SECRETD_SECRET_L=not_granted'],
        idleCountingHups,
      ),
      'docker run',
    ).stdout.trim();
    expect(ok(docker(['exec', id, 'ls', '/run/secrets']), 'ls').stdout).toBe(
      'api_key\nnot_granted\n',
    );

    await ungrant('api_key', `node.id==${nodeId}`);
    await until('api_key to leave the container', 10_000, () =>
      docker(['exec', id, 'ls', '/run/secrets']).stdout === 'not_granted\n' ? true : undefined,
    );
    ok(cli(['node', 'update', '--label-rm', 'role', nodeId]), 'label rm');
    await until('not_granted to leave the container', 10_000, () =>
      docker(['exec', id, 'ls', '/run/secrets']).stdout === '' ? true : undefined,
    );
    const again = dockerRun('--rm', ['SECRETD_SECRET_A=api_key'], ['true']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/secret 'api_key' is not granted to this node/);
    ok(docker(['rm', '-f', id]), 'docker rm -f');
    await grant('api_key', `node.id==${nodeId}`);
    await until('the erase', 10_000, async () =>
      (await localContainers()).length === 0 ? true : undefined,
    );
  });

  test('docker-compose up with runtime: secretd gives each of two services only its own secrets', async () => {
    await nodeHolds('api_key', 1);
    const project = join(dir, 'compose');
    mkdirSync(project);
    writeFileSync(
      join(project, 'docker-compose.yml'),
      [
        'version: "2.4"',
        'services:',
        '  api:',
        '    image: busybox',
        '    runtime: secretd',
        '    network_mode: none',
        '    command: ["sh", "-c", "while true; do sleep 1; done"]',
        '    environment:',
        '      SECRETD_SECRET_API: api_key',
        '  web:',
        '    image: busybox',
        '    runtime: secretd',
        '    network_mode: none',
        '    command: ["sh", "-c", "while true; do sleep 1; done"]',
        '    environment:',
        '      SECRETD_SECRET_WEB: source=web_key,target=tls/key.pem,mode=0400',
        '',
      ].join('\n'),
    );
    const compose = (args: readonly string[]): Run =>
      run(
        ['docker-compose', '-p', 'secretdoci', '-f', join(project, 'docker-compose.yml'), ...args],
        {
          env: { DOCKER_HOST: `unix://${dockerSock}` },
          timeoutMs: 120_000,
        },
      );
    ok(compose(['up', '-d']), 'docker-compose up');
    try {
      const api = ok(compose(['ps', '-q', 'api']), 'ps api').stdout.trim();
      const web = ok(compose(['ps', '-q', 'web']), 'ps web').stdout.trim();
      expect(ok(docker(['exec', api, 'find', '/run/secrets', '-type', 'f']), 'find').stdout).toBe(
        '/run/secrets/api_key\n',
      );
      expect(ok(docker(['exec', web, 'find', '/run/secrets', '-type', 'f']), 'find').stdout).toBe(
        '/run/secrets/tls/key.pem\n',
      );
      expect(containerFile(web, '/run/secrets/tls/key.pem').stdout).toBe('web-v1');
      expect((await localContainers()).map((row) => row.Secrets.map((s) => s.Name)).sort()).toEqual(
        [['api_key'], ['web_key']],
      );
    } finally {
      ok(compose(['down', '-t', '1']), 'docker-compose down');
    }
    await until('the erase', 10_000, async () =>
      (await localContainers()).length === 0 && containerMounts().length === 0 ? true : undefined,
    );
  });

  test('podman run with --runtime and an environment reference, and with --annotation', async () => {
    const runtime = ['--runtime', runtimePath, '--network', 'none'];
    expect(
      podman([
        'run',
        '--rm',
        ...runtime,
        '-e',
        'SECRETD_SECRET_DB=db_pass',
        'localhost/busybox:latest',
        'cat',
        '/run/secrets/db_pass',
      ]),
    ).toEqual({
      code: 0,
      stdout: 'db-v2',
      stderr: '',
    });
    expect(
      podman([
        'run',
        '--rm',
        ...runtime,
        '--annotation',
        'io.secretd.secret.tls=source=web_key;target=/etc/app/key.pem;mode=0400',
        'localhost/busybox:latest',
        'sh',
        '-c',
        'cat /etc/app/key.pem; stat -c " %a" /etc/app/key.pem',
      ]),
    ).toEqual({ code: 0, stdout: 'web-v1 400\n', stderr: '' });
    const refused = podman([
      'run',
      '--rm',
      ...runtime,
      '--annotation',
      'io.secretd.secret.x=not_there',
      'localhost/busybox:latest',
      'true',
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/secret 'not_there' is not granted to this node/);
    await until('the erase', 10_000, async () =>
      (await localContainers()).length === 0 && containerMounts().length === 0 ? true : undefined,
    );
  });

  test('secretd spawn gives a host process its secrets under --dir and in --env, passes its exit code on and leaves nothing behind', async () => {
    const secretsDir = join(dir, 'spawn-secrets');
    const result = run(
      inNamespace([
        secretdBin,
        'spawn',
        '--data-dir',
        dataDir,
        '--dir',
        secretsDir,
        '--secret',
        'source=db_pass,target=db,mode=0400',
        '--env',
        'API_KEY=api_key',
        '--',
        'sh',
        '-c',
        `cat ${secretsDir}/db; echo " $API_KEY"; grep " ${secretsDir} " /proc/self/mountinfo | grep -c " ro,"; exit 7`,
      ]),
    );
    expect(result).toEqual({ code: 7, stdout: 'db-v2 api-v1\n1\n', stderr: '' });
    expect(await localContainers()).toEqual([]);
    expect(containerMounts()).toEqual([]);
    // Outside the spawn's namespace, --dir holds nothing.
    expect(existsSync(join(`/proc/${nsPid()}/root`, secretsDir, 'db'))).toBe(false);

    const refused = run(
      inNamespace([
        secretdBin,
        'spawn',
        '--data-dir',
        dataDir,
        '--secret',
        'not_there',
        '--',
        'true',
      ]),
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/secret 'not_there' is not granted to this node/);
    const escaping = run(
      inNamespace([
        secretdBin,
        'spawn',
        '--data-dir',
        dataDir,
        '--secret',
        'source=db_pass,target=../x',
        '--',
        'true',
      ]),
    );
    expect(escaping.code).toBe(1);
    expect(escaping.stderr).toMatch(/secret target '\.\.\/x' must not contain/);
  });

  test('secretd spawn sees an update in place and gets its on-update signal', async () => {
    const secretsDir = join(dir, 'spawn-update');
    const out = join(dir, 'shared', 'spawn-update.out');
    const ready = join(dir, 'shared', 'spawn-update.ready');
    const child = spawn(
      'nsenter',
      inNamespace([
        secretdBin,
        'spawn',
        '--data-dir',
        dataDir,
        '--dir',
        secretsDir,
        '--user',
        '1000:1000',
        '--secret',
        'source=db_pass,uid=1000,mode=0400,on-update=signal:SIGUSR1',
        '--',
        'sh',
        '-c',
        `trap 'cat ${secretsDir}/db_pass > ${out}; exit 3' USR1; id -u > ${ready}; while true; do sleep 0.1; done`,
      ]).slice(1),
      { stdio: 'ignore' },
    );
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    );
    try {
      // The shell creates the file before it writes to it: wait for the line.
      await until('the spawned command to start', 10_000, () =>
        existsSync(ready) && readFileSync(ready, 'utf8').endsWith('\n') ? true : undefined,
      );
      expect(readFileSync(ready, 'utf8')).toBe('1000\n');
      expect((await localContainers()).map((row) => row.Owner)).toEqual(['process']);
      ok(cli(['secret', 'update', 'db_pass', '-'], 'db-v3'), 'secret update');
      expect(await exited).toBe(3);
      expect(readFileSync(out, 'utf8')).toBe('db-v3');
      expect(await localContainers()).toEqual([]);
      expect(containerMounts()).toEqual([]);
    } finally {
      await ended(child);
    }
  });

  test('a spawn killed with SIGKILL takes its command with it and leaves its tmpfs, which the agent sweep erases', async () => {
    const pidFile = join(dir, 'spawn-killed.pid');
    const child = spawn(
      'nsenter',
      inNamespace([
        secretdBin,
        'spawn',
        '--data-dir',
        dataDir,
        '--dir',
        join(dir, 'spawn-killed'),
        '--secret',
        'db_pass',
        '--',
        'sh',
        '-c',
        `echo $$ > ${pidFile}; exec sleep 1000`,
      ]).slice(1),
      { stdio: 'ignore' },
    );
    try {
      await until('the spawned command to start', 10_000, () =>
        existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n') ? true : undefined,
      );
      expect(containerMounts()).toHaveLength(1);
      // nsenter execs secretd: the child's pid is spawn's.
      child.kill('SIGKILL');
      await until('the sweep to erase the killed spawn', 20_000, async () =>
        (await localContainers()).length === 0 && containerMounts().length === 0 ? true : undefined,
      );
      // The command does not outlive spawn (its parent-death signal): nothing runs on without its secrets.
      const commandPid = Number(readFileSync(pidFile, 'utf8'));
      await until('the command to die with spawn', 10_000, () => {
        try {
          process.kill(commandPid, 0);
          return undefined;
        } catch {
          return true;
        }
      });
    } finally {
      await ended(child);
    }
  });

  test('a Docker Swarm service on a dockerd with --default-runtime secretd gets its granted secret from the environment, erased by docker service rm', async () => {
    ok(cli(['secret', 'create', 'svc_key', '-'], 'svc-v1'), 'secret create svc_key');
    await grant('svc_key', 'node.role==manager');
    await nodeHolds('svc_key', 1);
    // Its own dockerd (data root, containerd namespace, loopback-only network namespace): the
    // crash test below kills every engine process in the namespace.
    const swarmd = await engines.startDockerd('swarmd', ['--default-runtime', 'secretd']);
    try {
      await importDockerImage(swarmd.socket, 'busybox', busyboxRootfsTarball());
      ok(
        swarmd.docker([
          'swarm',
          'init',
          '--listen-addr',
          '127.0.0.1:2377',
          '--advertise-addr',
          '127.0.0.1:2377',
        ]),
        'docker swarm init',
      );
      ok(
        swarmd.docker([
          'service',
          'create',
          '--detach',
          '--no-resolve-image',
          '--name',
          'svc',
          '--env',
          'SECRETD_SECRET_SVC=source=svc_key,target=svc',
          'busybox',
          'sh',
          '-c',
          'while true; do sleep 0.1; done',
        ]),
        'docker service create',
      );
      const id = await until('the service task container to run', 60_000, () => {
        const ids = swarmd
          .docker(['ps', '-q', '--no-trunc', '--filter', 'label=com.docker.swarm.service.name=svc'])
          .stdout.split('\n')
          .filter((line) => line !== '');
        return ids.length === 1 ? ids[0] : undefined;
      });
      expect(
        ok(swarmd.docker(['inspect', '-f', '{{.HostConfig.Runtime}}', id]), 'inspect').stdout,
      ).toBe('secretd\n');
      expect(swarmd.docker(['exec', id, 'cat', '/run/secrets/svc'])).toEqual({
        code: 0,
        stdout: 'svc-v1',
        stderr: '',
      });
      expect(
        (await localContainers()).map((row) => [row.Id, row.Secrets.map((s) => s.Name)]),
      ).toEqual([[id, ['svc_key']]]);
      expect(containerMounts().filter((mount) => mount.includes(id))).toHaveLength(1);

      ok(swarmd.docker(['service', 'rm', 'svc']), 'docker service rm');
      await until('the erase of the service task container', 30_000, async () =>
        (await localContainers()).every((row) => row.Id !== id) &&
        containerMounts().every((mount) => !mount.includes(id))
          ? true
          : undefined,
      );
    } finally {
      swarmd.docker(['swarm', 'leave', '--force']);
      await swarmd.stop();
    }
  });

  test('an engine crash (kill -9 of dockerd, containerd, the shim and the container) leaves a mount that the agent erases', async () => {
    const id = ok(
      dockerRun('-d', ['SECRETD_SECRET_DB=db_pass'], idleCountingHups),
      'docker run',
    ).stdout.trim();
    const containerPid = Number(
      ok(docker(['inspect', '-f', '{{.State.Pid}}', id]), 'pid').stdout.trim(),
    );
    expect(containerMounts()).toHaveLength(1);
    // Every process of the engine in the namespace, and the container's.
    const ns = readlinkSync(`/proc/${nsPid()}/ns/mnt`);
    const engine: number[] = [];
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        if (
          readlinkSync(`/proc/${pid}/ns/mnt`) === ns &&
          /^(dockerd|containerd|containerd-shim)/.test(comm)
        )
          engine.push(Number(pid));
      } catch {
        // gone
      }
    }
    expect(engine.length).toBeGreaterThanOrEqual(3);
    for (const pid of [...engine, containerPid]) process.kill(pid, 'SIGKILL');
    await until('the sweep to erase the crashed engine container', 20_000, async () =>
      (await localContainers()).length === 0 && containerMounts().length === 0 ? true : undefined,
    );
    // The agent says so once its sweep has finished (the list is empty a moment before).
    await until('the sweep to log the erase', 10_000, () =>
      new RegExp(
        `erased the secrets of \\d+ container\\(s\\) or spawned process\\(es\\) no longer running: .*${id}`,
      ).test(engines.nodeOutput())
        ? true
        : undefined,
    );
  });
});
