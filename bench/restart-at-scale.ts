/**
 * Restart at scale (issue 17): a manager holding `--secrets` secrets (default 10,000) is SIGKILLed
 * and started again; timed from the kill to its first full linearizable list of every secret
 * (`GET /secrets`, all N present), without autolock and then with autolock (unlocked with the
 * unlock key through the same API route, `POST /swarm/unlock`: secretd's on its admin socket, which
 * is what `secretd unlock` calls, Docker's on dockerd's socket, as `docker swarm unlock` does; the
 * start of either CLI is left out of both). Docker Swarm, with the same number of
 * secrets, in the same run: a private dockerd (docker-swarm.ts) SIGKILLed with its containerd,
 * started again on the same data root, unlocked the same way. Rounds alternate between the systems.
 *
 *   bun bench/restart-at-scale.ts [--secrets 10000] [--services 100] [--replicas 10] [--rounds 3]
 *                                 [--size 64] [--secretd-bin dist/secretd] [--no-docker]
 *
 * Services and tasks (the "100 services with 1,000 tasks"): `--services` services of
 * `--replicas` replicas each, every one using a secret of its own, placed by a constraint no node
 * meets (`node.labels.secretd-bench-nowhere==1`), so that on both systems their tasks are records
 * that wait pending ("no suitable node"), as a restarted manager reloads and schedules them, with
 * no container on the machine (1,000 real containers would measure the container engine).
 *
 * The phases printed per round, in ms from the kill: `up` (the API answers /_ping over its usual
 * transport), `unlocked` (autolock only: POST /swarm/unlock answered 200, secretd's on its admin
 * socket, since a locked secretd serves no TLS), `listed` (GET /secrets
 * answered all N, then GET /services and GET /tasks answered every service and task), and for
 * secretd `replayed`: the log entries past the snapshot the restart opened from (its metrics).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { runToEnd, waitUntil } from './child-process.ts';
import {
  nonNegativeInteger,
  optionsOrExit,
  positiveInteger,
  readFlags,
  UsageError,
} from './create-secrets-options.ts';
import { dockerApiPrefix, dockerRequest } from './docker-client.ts';
import { startDockerSwarm, type DockerSwarm } from './docker-swarm.ts';
import { describeMachine, machineFacts, busyWarning, waitQuiet } from './machine.ts';
import { openSecretdSession, type SecretdSession } from './secretd-client.ts';
import { startSecretdCluster, type SecretdCluster } from './secretd-cluster.ts';
import { pingOK } from './secretd-process.ts';
import { scrape } from './metrics-scrape.ts';
import { formatNumber } from './stats.ts';

const usage = `Usage: bun bench/restart-at-scale.ts [options]

Loads a one-node secretd and a private Docker Swarm (root) with N secrets and pending services,
then, rounds alternating between them, SIGKILLs each and starts it again on the same data: prints
the ms from the kill to the API answering, unlocked (with autolock) and every secret, service and
task listed, first without autolock, then with it.

  --secrets N            secrets created in each system (default 10000)
  --size S               bytes of random data per secret (default 64)
  --services N           services, each using a secret of its own; at most --secrets (default 100)
  --replicas R           pending tasks per service (default 10)
  --rounds R             restarts timed per system, without and again with autolock (default 3)
  --secretd-bin PATH     run this secretd executable (e.g. dist/secretd) instead of src/main.ts
  --no-docker            skip Docker
`;

interface RestartOptions {
  readonly secretCount: number;
  readonly rounds: number;
  readonly size: number;
  readonly serviceCount: number;
  readonly replicas: number;
  readonly command: readonly string[] | undefined;
  readonly docker: boolean;
}

/** Undefined for --help. */
function parseOptions(argv: readonly string[]): RestartOptions | undefined {
  const values = readFlags(argv, {
    secrets: { type: 'string' },
    rounds: { type: 'string' },
    size: { type: 'string' },
    services: { type: 'string' },
    replicas: { type: 'string' },
    'secretd-bin': { type: 'string' },
    'no-docker': { type: 'boolean' },
  });
  if (values === undefined) return undefined;
  const bin = values['secretd-bin'];
  const options = {
    secretCount: positiveInteger('--secrets', values.secrets ?? '10000'),
    rounds: positiveInteger('--rounds', values.rounds ?? '3'),
    size: positiveInteger('--size', values.size ?? '64'),
    serviceCount: nonNegativeInteger('--services', values.services ?? '100'),
    replicas: positiveInteger('--replicas', values.replicas ?? '10'),
    command: bin === undefined ? undefined : [bin],
    docker: values['no-docker'] !== true,
  };
  if (options.serviceCount > options.secretCount)
    throw new UsageError('--services must not exceed --secrets (each uses one)');
  return options;
}

const { secretCount, rounds, size, serviceCount, replicas, command, docker } = optionsOrExit(
  usage,
  () => parseOptions(process.argv.slice(2)),
);
const concurrency = 16;

interface Phases {
  up: number;
  unlocked: number;
  listed: number;
  /**
   * secretd only (NaN for Docker): the log entries the restarted member found past the snapshot
   * it opened from (its metrics: `opened_last` minus `opened_snapshot`), which it replays. Near 0:
   * the snapshot covered the log; near N: it replayed the log, a different figure for the same N.
   */
  replayed: number;
}

interface System {
  readonly name: string;
  /** Creates `count` secrets, then the services, each using one of them. */
  fill(count: number): Promise<void>;
  /** Turns autolock on; returns the unlock key. */
  autolock(): Promise<string>;
  /** kill -9, start again, unlock with `key` if given, list all: the phases in ms from the kill. */
  restart(key: string | undefined): Promise<Phases>;
  stop(): Promise<void>;
}

async function pool(count: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await task(next++);
    }),
  );
}

const value = (): string => randomBytes(size).toString('base64');

/** Docker's service create body: `replicas` tasks that wait pending, using secret `secretId`. */
function serviceSpec(i: number, secretId: string): object {
  return {
    Name: `restart-svc-${i}`,
    TaskTemplate: {
      ContainerSpec: {
        Image: 'busybox:latest',
        Command: ['sleep', '1d'],
        Secrets: [
          {
            SecretID: secretId,
            SecretName: `restart-${i}`,
            File: { Name: `restart-${i}`, UID: '0', GID: '0', Mode: 0o444 },
          },
        ],
      },
      Placement: { Constraints: ['node.labels.secretd-bench-nowhere==1'] },
    },
    Mode: { Replicated: { Replicas: replicas } },
  };
}

/** How a system answers GET PATH: status and body. */
type Get = (path: string) => Promise<{ status: number; body: string }>;

/** True once GET /secrets, /services and /tasks answer every secret, service and task. */
async function allListed(get: Get): Promise<boolean> {
  for (const [path, expected] of [
    ['/secrets', secretCount],
    ['/services', serviceCount],
    ['/tasks', serviceCount * replicas],
  ] as const) {
    const answer = await get(path);
    if (answer.status !== 200 || (JSON.parse(answer.body) as unknown[]).length < expected)
      return false;
  }
  return true;
}

/** Creates the services through `post`, service i using secret i. */
async function createServices(
  ids: readonly string[],
  post: (path: string, body: object) => Promise<{ status: number; body: string }>,
): Promise<void> {
  await pool(serviceCount, async (i) => {
    const answer = await post('/services/create', serviceSpec(i, ids[i]!));
    if (answer.status !== 201)
      throw new Error(`service create answered ${answer.status}: ${answer.body.slice(0, 200)}`);
  });
}

async function secretdSystem(): Promise<System> {
  const cluster: SecretdCluster = await startSecretdCluster({
    managers: 1,
    ...(command ? { command } : {}),
  });
  const manager = cluster.managers[0]!;
  const [executable, ...leading] = cluster.command;
  const cli = (args: string[]): Promise<string> => runToEnd(executable!, [...leading, ...args]);
  const open = (): Promise<SecretdSession> =>
    openSecretdSession(manager.url, cluster, { requestTimeoutMs: 60_000 });
  let session = await open();
  /** Whether the node answers anything on its admin socket (a locked one answers 503 to most). */
  const servesSocket = (dataDir: string): Promise<boolean> =>
    dockerRequest({
      socketPath: join(dataDir, 'admin.sock'),
      method: 'GET',
      path: '/_ping',
      timeoutMs: 1_000,
    }).then(
      () => true,
      () => false,
    );
  /**
   * What `secretd unlock` sends (cmd/node-process.ts), as the bench sends Docker's: POST
   * /swarm/unlock on the admin socket; whether it answered 200. (The CLI's own start, about 80 ms
   * here, would be a cost `docker swarm unlock` is not charged with either.)
   */
  const unlockOnSocket = (dataDir: string, unlockKey: string): Promise<boolean> =>
    dockerRequest({
      socketPath: join(dataDir, 'admin.sock'),
      method: 'POST',
      path: '/swarm/unlock',
      body: JSON.stringify({ UnlockKey: unlockKey }),
      timeoutMs: 60_000,
    }).then(
      (answer) => answer.status === 200,
      () => false,
    );
  return {
    name: 'secretd',
    fill: async (count) => {
      const ids: string[] = [];
      await pool(count, async (i) => {
        const answer = await session.request(
          'POST',
          '/secrets/create',
          JSON.stringify({ Name: `restart-${i}`, Data: value(), Labels: {} }),
        );
        if (answer.status !== 201) throw new Error(`secretd create answered ${answer.status}`);
        ids[i] = (JSON.parse(answer.body) as { ID: string }).ID;
      });
      await createServices(ids, (path, body) =>
        session.request('POST', path, JSON.stringify(body)),
      );
      await waitUntil(() => allListed((path) => session.request('GET', path)), {
        timeoutMs: 120_000,
        intervalMs: 50,
        what: "secretd's services to have every task",
      });
    },
    autolock: async () => {
      await cli(['cluster', 'update', '--autolock=true', '--data-dir', manager.dataDir]);
      return (await cli(['cluster', 'unlock-key', '-q', '--data-dir', manager.dataDir])).trim();
    },
    restart: async (key) => {
      await session.close();
      const start = performance.now();
      await manager.kill();
      const phases: Phases = {
        up: Number.NaN,
        unlocked: Number.NaN,
        listed: 0,
        replayed: Number.NaN,
      };
      if (key === undefined) {
        await manager.restart(); // answers /_ping over mutual TLS
        phases.up = performance.now() - start;
      } else {
        // Locked, it serves only its admin socket (its TLS key is sealed): the unlock is sent there
        // once the socket answers, as Docker's is sent once dockerd answers.
        manager.launch();
        await waitUntil(() => servesSocket(manager.dataDir), {
          timeoutMs: 60_000,
          intervalMs: 5,
          what: 'the locked secretd to answer on its admin socket',
        });
        await waitUntil(() => unlockOnSocket(manager.dataDir, key), {
          timeoutMs: 60_000,
          intervalMs: 10,
          what: 'POST /swarm/unlock on the admin socket to answer 200',
        });
        phases.unlocked = performance.now() - start;
        await waitUntil(async () => (await pingOK(manager.url, cluster), true), {
          timeoutMs: 60_000,
          intervalMs: 10,
          what: 'secretd to answer /_ping after unlock',
        });
        phases.up = performance.now() - start;
      }
      session = await open();
      await waitUntil(() => allListed((path) => session.request('GET', path)), {
        timeoutMs: 120_000,
        intervalMs: 10,
        what: 'secretd to list every secret, service and task',
      });
      phases.listed = performance.now() - start;
      const gauges = await scrape(session);
      phases.replayed =
        (gauges.get('secretd_raft{index="opened_last"}') ?? Number.NaN) -
        (gauges.get('secretd_raft{index="opened_snapshot"}') ?? Number.NaN);
      return phases;
    },
    stop: async () => {
      await session.close().catch(() => undefined);
      await cluster.stop();
    },
  };
}

async function dockerSystem(): Promise<System> {
  const swarm: DockerSwarm = await startDockerSwarm();
  const call = (method: 'GET' | 'POST', path: string, body?: unknown) =>
    dockerRequest({
      socketPath: swarm.socket,
      method,
      path: `${dockerApiPrefix}${path}`,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      timeoutMs: 60_000,
    });
  return {
    name: 'docker',
    fill: async (count) => {
      const ids: string[] = [];
      await pool(count, async (i) => {
        const answer = await call('POST', '/secrets/create', {
          Name: `restart-${i}`,
          Data: value(),
        });
        if (answer.status !== 201) throw new Error(`docker create answered ${answer.status}`);
        ids[i] = (JSON.parse(answer.body) as { ID: string }).ID;
      });
      await createServices(ids, (path, body) => call('POST', path, body));
      await waitUntil(() => allListed((path) => call('GET', path)), {
        timeoutMs: 120_000,
        intervalMs: 50,
        what: "docker's services to have every task",
      });
    },
    autolock: async () => {
      const info = JSON.parse((await call('GET', '/swarm')).body) as {
        Version: { Index: number };
        Spec: { EncryptionConfig?: Record<string, unknown> };
      };
      const spec = {
        ...info.Spec,
        EncryptionConfig: { ...info.Spec.EncryptionConfig, AutoLockManagers: true },
      };
      const updated = await call('POST', `/swarm/update?version=${info.Version.Index}`, spec);
      if (updated.status !== 200)
        throw new Error(`docker swarm update answered ${updated.status}: ${updated.body}`);
      return (JSON.parse((await call('GET', '/swarm/unlockkey')).body) as { UnlockKey: string })
        .UnlockKey;
    },
    restart: async (key) => {
      const start = performance.now();
      await swarm.kill();
      await swarm.restart();
      const phases: Phases = {
        up: performance.now() - start,
        unlocked: Number.NaN,
        listed: 0,
        replayed: Number.NaN,
      };
      if (key !== undefined) {
        await waitUntil(
          async () => (await call('POST', '/swarm/unlock', { UnlockKey: key })).status === 200,
          {
            timeoutMs: 60_000,
            intervalMs: 10,
            what: 'docker to accept the unlock key',
          },
        );
        phases.unlocked = performance.now() - start;
      }
      await waitUntil(() => allListed((path) => call('GET', path)), {
        timeoutMs: 120_000,
        intervalMs: 10,
        what: 'docker to list every secret, service and task',
      });
      phases.listed = performance.now() - start;
      return phases;
    },
    stop: () => swarm.stop(),
  };
}

const facts = machineFacts();
console.log(
  `restart-at-scale: ${secretCount} secrets of ${size} B, ${serviceCount} services of ${replicas} pending tasks, ${rounds} rounds; ${describeMachine(facts)}`,
);
const warning = busyWarning(facts);
if (warning) console.log(warning);
const systems: System[] = [await secretdSystem()];
if (docker) systems.push(await dockerSystem());
try {
  for (const system of systems) {
    const start = performance.now();
    await system.fill(secretCount);
    console.log(
      `${system.name}: ${secretCount} secrets and ${serviceCount} services created in ${formatNumber(performance.now() - start, 0)} ms`,
    );
  }
  const results: Array<{ system: string; autolock: boolean; phases: Phases }> = [];
  for (const autolock of [false, true]) {
    const keys = new Map<string, string>();
    if (autolock)
      for (const system of systems) {
        keys.set(system.name, await system.autolock());
        console.log(`${system.name}: autolock on`);
      }
    for (let round = 0; round < rounds; round++)
      for (const system of round % 2 === 0 ? systems : [...systems].reverse()) {
        const quiet = await waitQuiet();
        const phases = await system.restart(keys.get(system.name));
        console.log(
          `${system.name} round ${round + 1}${autolock ? ' (autolock)' : ''}: listed after ${formatNumber(phases.listed, 0)} ms ` +
            `(started once the machine was quiet: ${formatNumber(quiet.waitedMs, 0)} ms waited, ${formatNumber(100 * quiet.busy, 0)}% busy)`,
        );
        results.push({ system: system.name, autolock, phases });
      }
  }
  console.log('\nsystem   autolock  up ms  unlocked ms  listed ms  replayed');
  console.log('-------  --------  -----  -----------  ---------  --------');
  const orDash = (x: number): string => (Number.isNaN(x) ? '—' : formatNumber(x, 0));
  for (const r of results)
    console.log(
      `${r.system.padEnd(7)}  ${String(r.autolock).padEnd(8)}  ${formatNumber(r.phases.up, 0).padStart(5)}  ${orDash(r.phases.unlocked).padStart(11)}  ${formatNumber(r.phases.listed, 0).padStart(9)}  ${orDash(r.phases.replayed).padStart(8)}`,
    );
  console.log(
    '(replayed: log entries past the snapshot the restarted secretd opened from, which it replays; Docker: not known)',
  );
  const median = (xs: number[]): number =>
    [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  if (systems.length === 2)
    for (const autolock of [false, true]) {
      const of = (name: string) =>
        median(
          results
            .filter((r) => r.system === name && r.autolock === autolock)
            .map((r) => r.phases.listed),
        );
      console.log(
        `secretd/docker, kill → everything listed${autolock ? ' (autolock, unlock)' : ''}: median ${formatNumber(of('secretd'), 0)} / ${formatNumber(of('docker'), 0)} ms = ${formatNumber(of('secretd') / of('docker'), 2)}`,
      );
    }
} finally {
  for (const system of systems) await system.stop().catch(() => undefined);
}
