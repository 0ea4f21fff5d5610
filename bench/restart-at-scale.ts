/**
 * Restart at scale (issue 17): a manager holding `--secrets` secrets (default 10,000) is SIGKILLed
 * and started again; timed from the kill to its first full linearizable list of every secret
 * (`GET /secrets`, all N present), without autolock and then with autolock (unlocked with the
 * unlock key: `secretd unlock`, Docker's `POST /swarm/unlock`). Docker Swarm, with the same number of
 * secrets, in the same run: a private dockerd (docker-swarm.ts) SIGKILLed with its containerd,
 * started again on the same data root, unlocked the same way. Rounds alternate between the systems.
 *
 *   bun bench/restart-at-scale.ts [--secrets 10000] [--rounds 3] [--size 64] [--secretd-bin dist/secretd]
 *                                 [--no-docker]
 *
 * Services and tasks (the "100 services with 1,000 tasks") are left out: tasks need real
 * containers on this machine, and what a restart reloads for them is their records, not running
 * containers; add them when a bench-only executor exists (see fan-out.ts).
 *
 * The phases printed per round, in ms from the kill: `up` (the API answers /_ping over its usual
 * transport), `unlocked` (autolock only: `secretd unlock` on the admin socket exited 0, since a
 * locked secretd serves no TLS; Docker's POST /swarm/unlock answered 200), `listed` (GET /secrets
 * answered all N).
 */
import { spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { runToEnd, waitUntil } from './child-process.ts';
import { dockerApiPrefix, dockerRequest } from './docker-client.ts';
import { startDockerSwarm, type DockerSwarm } from './docker-swarm.ts';
import { describeMachine, machineFacts, busyWarning } from './machine.ts';
import { openSecretdSession, type SecretdSession } from './secretd-client.ts';
import { startSecretdCluster, type SecretdCluster } from './secretd-cluster.ts';
import { pingOK } from './secretd-process.ts';
import { formatNumber } from './stats.ts';

const { values } = parseArgs({
  options: {
    secrets: { type: 'string' },
    rounds: { type: 'string' },
    size: { type: 'string' },
    'secretd-bin': { type: 'string' },
    'no-docker': { type: 'boolean' },
  },
});
const secretCount = Number(values.secrets ?? '10000');
const rounds = Number(values.rounds ?? '3');
const size = Number(values.size ?? '64');
const command = values['secretd-bin'] === undefined ? undefined : [values['secretd-bin']];
const concurrency = 16;

interface Phases {
  up: number;
  unlocked: number;
  listed: number;
}

interface System {
  readonly name: string;
  /** Creates `count` secrets. */
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
  /** `secretd unlock` with the key on stdin; its exit code. */
  const unlockOnSocket = (dataDir: string, unlockKey: string): Promise<number | null> =>
    new Promise((resolve) => {
      const child = spawn(executable!, [...leading, 'unlock', '--data-dir', dataDir], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      child.on('error', () => resolve(null));
      child.on('exit', (code) => resolve(code));
      child.stdin!.end(`${unlockKey}\n`);
    });
  return {
    name: 'secretd',
    fill: (count) =>
      pool(count, async (i) => {
        const answer = await session.request(
          'POST',
          '/secrets/create',
          JSON.stringify({ Name: `restart-${i}`, Data: value(), Labels: {} }),
        );
        if (answer.status !== 201) throw new Error(`secretd create answered ${answer.status}`);
      }),
    autolock: async () => {
      await cli(['cluster', 'update', '--autolock=true', '--data-dir', manager.dataDir]);
      return (await cli(['cluster', 'unlock-key', '-q', '--data-dir', manager.dataDir])).trim();
    },
    restart: async (key) => {
      await session.close();
      const start = performance.now();
      await manager.kill();
      const phases: Phases = { up: Number.NaN, unlocked: Number.NaN, listed: 0 };
      if (key === undefined) {
        await manager.restart(); // answers /_ping over mutual TLS
        phases.up = performance.now() - start;
      } else {
        // Locked, it serves only its admin socket (its TLS key is sealed): `secretd unlock` there.
        manager.launch();
        await waitUntil(async () => (await unlockOnSocket(manager.dataDir, key)) === 0, {
          timeoutMs: 60_000,
          intervalMs: 10,
          what: 'secretd unlock to succeed',
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
      await waitUntil(
        async () => {
          const answer = await session.request('GET', '/secrets');
          return (
            answer.status === 200 && (JSON.parse(answer.body) as unknown[]).length === secretCount
          );
        },
        { timeoutMs: 120_000, intervalMs: 10, what: `secretd to list all ${secretCount} secrets` },
      );
      phases.listed = performance.now() - start;
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
    fill: (count) =>
      pool(count, async (i) => {
        const answer = await call('POST', '/secrets/create', {
          Name: `restart-${i}`,
          Data: value(),
        });
        if (answer.status !== 201) throw new Error(`docker create answered ${answer.status}`);
      }),
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
      const phases: Phases = { up: performance.now() - start, unlocked: Number.NaN, listed: 0 };
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
      await waitUntil(
        async () => {
          const answer = await call('GET', '/secrets');
          return (
            answer.status === 200 && (JSON.parse(answer.body) as unknown[]).length === secretCount
          );
        },
        { timeoutMs: 120_000, intervalMs: 10, what: `docker to list all ${secretCount} secrets` },
      );
      phases.listed = performance.now() - start;
      return phases;
    },
    stop: () => swarm.stop(),
  };
}

const facts = machineFacts();
console.log(
  `restart-at-scale: ${secretCount} secrets of ${size} B, ${rounds} rounds; ${describeMachine(facts)}`,
);
const warning = busyWarning(facts);
if (warning) console.log(warning);
const systems: System[] = [await secretdSystem()];
if (!values['no-docker']) systems.push(await dockerSystem());
try {
  for (const system of systems) {
    const start = performance.now();
    await system.fill(secretCount);
    console.log(
      `${system.name}: ${secretCount} secrets created in ${formatNumber(performance.now() - start, 0)} ms`,
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
        const phases = await system.restart(keys.get(system.name));
        console.log(
          `${system.name} round ${round + 1}${autolock ? ' (autolock)' : ''}: listed after ${formatNumber(phases.listed, 0)} ms`,
        );
        results.push({ system: system.name, autolock, phases });
      }
  }
  console.log('\nsystem   autolock  up ms  unlocked ms  listed ms');
  console.log('-------  --------  -----  -----------  ---------');
  for (const r of results)
    console.log(
      `${r.system.padEnd(7)}  ${String(r.autolock).padEnd(8)}  ${formatNumber(r.phases.up, 0).padStart(5)}  ${(Number.isNaN(r.phases.unlocked) ? '—' : formatNumber(r.phases.unlocked, 0)).padStart(11)}  ${formatNumber(r.phases.listed, 0).padStart(9)}`,
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
        `secretd/docker, kill → full list${autolock ? ' (autolock, unlock)' : ''}: median ${formatNumber(of('secretd'), 0)} / ${formatNumber(of('docker'), 0)} ms = ${formatNumber(of('secretd') / of('docker'), 2)}`,
      );
    }
} finally {
  for (const system of systems) await system.stop().catch(() => undefined);
}
