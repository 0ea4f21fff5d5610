/**
 * A running node process (`secretd init` / `join` / `run`). A manager: its admin socket at once,
 * its mTLS listener as soon as it is unlocked, and (as in Docker) an agent running tasks. A worker:
 * its agent and a local admin socket. Both stop cleanly on SIGTERM/SIGINT.
 */
import type { Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import { readFile } from 'node:fs/promises';
import { SecretdError } from '../errors.ts';
import { systemNow, systemRandom } from '../io/system.ts';
import { bootstrapCluster, type InitOptions } from './join/index.ts';
import { Manager, type ManagerOptions } from './manager/index.ts';
import { writeNodeState } from './data-dir/index.ts';
import { joinCluster, type JoinOptions } from './join/index.ts';
import { dataDirPaths } from './data-dir/index.ts';
import { serveAdminSocket, serveTls, serveWorkerSocket } from './api/index.ts';
import { hostname } from 'node:os';
import { Executor } from './executor/index.ts';
import { readNodeState } from './data-dir/index.ts';
import { Worker } from './worker.ts';

export const secretdVersion = '0.1.0';

let reportFatal: (code: number) => void = () => {};
/**
 * Resolves with the exit code (70) as soon as a node in this process meets a fatal error (a failed
 * fsync, a broken invariant), whatever the command is doing then: src/main.ts, the only place that
 * exits the process, races the command against it. The node's `done` resolves with 70 too.
 */
export const fatalExit: Promise<number> = new Promise((resolve) => (reportFatal = resolve));

export interface Daemon {
  /** Null on a worker. */
  readonly manager: Manager | null;
  readonly worker: Worker | null;
  /** Resolves when the node has stopped (signal or fatal error). */
  readonly done: Promise<number>;
  stop(): Promise<void>;
}

export interface DaemonHooks {
  /** Told once a manager serves (unlocked or not): what to print for the operator. */
  readonly onReady?: (manager: Manager) => void | Promise<void>;
  readonly onWorkerReady?: (worker: Worker) => void;
  readonly log: (line: string) => void;
  /** The OCI runtime binary (default runc). */
  readonly runtime?: string | undefined;
}

function executorFor(dataDir: string, hooks: DaemonHooks): Executor {
  return new Executor({ dataDir, ...(hooks.runtime ? { runtimeBinary: hooks.runtime } : {}) });
}

export async function initDaemon(
  options: Omit<InitOptions, 'random' | 'now'>,
  hooks: DaemonHooks,
): Promise<Daemon> {
  const boot = await bootstrapCluster({ ...options, random: systemRandom, now: systemNow() });
  return startDaemon(options.dataDir, hooks, async (opts) => {
    const manager = await Manager.bootstrap(opts, boot.state, boot.firstCommand, boot.unlockKey);
    await writeNodeState(boot.paths.nodeState, boot.state);
    return manager;
  });
}

export async function joinDaemon(
  options: Omit<JoinOptions, 'random' | 'now'>,
  hooks: DaemonHooks,
): Promise<Daemon> {
  const joined = await joinCluster({ ...options, random: systemRandom, now: systemNow() });
  await writeNodeState(dataDirPaths(options.dataDir).nodeState, joined.state);
  if (joined.state.role === 'worker') return startWorker(options.dataDir, hooks);
  return startDaemon(options.dataDir, hooks, (opts) => Manager.openWithKey(opts, joined.unlockKey));
}

export async function runDaemon(
  dataDir: string,
  hooks: DaemonHooks,
  options: { forceNewCluster?: boolean } = {},
): Promise<Daemon> {
  const state = await readNodeState(dataDirPaths(dataDir).nodeState, dataDir);
  if (state.role === 'worker') {
    if (options.forceNewCluster)
      throw new SecretdError(
        'invalid',
        '--force-new-cluster applies to managers; this node is a worker',
      );
    return startWorker(dataDir, hooks);
  }
  return startDaemon(dataDir, hooks, (opts) =>
    Manager.open({ ...opts, ...(options.forceNewCluster ? { forceNewCluster: true } : {}) }),
  );
}

async function startWorker(dataDir: string, hooks: DaemonHooks): Promise<Daemon> {
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));
  const worker = await Worker.open({
    dataDir,
    executor: executorFor(dataDir, hooks),
    log: hooks.log,
  });
  const server = await serveWorkerSocket(
    worker.paths.adminSocket,
    {
      nodeId: worker.state.nodeId,
      hostname: hostname(),
      importImage: async (name, path) => ({
        Name: (await worker.executor.images.importImage(name, path)).name,
      }),
      exec: (taskId, argv) => worker.agent.exec(taskId, argv),
      secretCounts: () => worker.agent.secretCounts(),
      localContainers: () => worker.agent.containers,
      localGrants: () => worker.agent.granted.list(),
    },
    secretdVersion,
  );
  hooks.log(
    `secretd: worker ${worker.state.nodeId} running; local admin socket ${worker.paths.adminSocket}`,
  );
  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      server.close();
      await worker.stop();
      finish(0);
    })());
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void stop());
  hooks.onWorkerReady?.(worker);
  return { manager: null, worker, done, stop };
}

async function startDaemon(
  dataDir: string,
  hooks: DaemonHooks,
  open: (options: ManagerOptions) => Promise<Manager>,
): Promise<Daemon> {
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => (finish = resolve));
  let stopping: Promise<void> | null = null;
  const servers: Array<Server | Http2SecureServer> = [];
  const fatal = (error: unknown): void => {
    hooks.log(
      `secretd: fatal: ${error instanceof Error ? error.message : String(error)}; stopping`,
    );
    // An fsync that failed or a broken invariant: do not serve another request from this state. The
    // manager already refuses every call; the listeners take no new connection, and main.ts exits.
    for (const server of servers) server.close();
    reportFatal(70);
    finish(70);
  };
  let tls: Promise<void> | null = null;
  const startTls = (manager: Manager): Promise<void> =>
    (tls ??= (async () => {
      const [caPem, certPem] = await Promise.all([
        readFile(manager.paths.caCert, 'utf8'),
        readFile(manager.paths.nodeCert, 'utf8'),
      ]);
      servers.push(
        await serveTls({
          backend: manager,
          version: secretdVersion,
          clusterId: manager.state.clusterId,
          listenAddr: manager.state.listenAddr,
          caPem,
          certPem,
          tlsKey: manager.tlsKey,
        }),
      );
      hooks.log(`secretd: serving the API on https://${manager.state.listenAddr} (mutual TLS)`);
    })());
  let stopNow: () => void = () => {};
  const options: ManagerOptions = {
    dataDir,
    random: systemRandom,
    now: systemNow,
    onFatal: fatal,
    onRaftStarted: startTls,
    executor: executorFor(dataDir, hooks),
    log: hooks.log,
    onLeftCluster: (reason) => {
      hooks.log(
        `secretd: ${reason}; it no longer takes part in Raft, so this manager process stops (to join again, use a fresh --data-dir)`,
      );
      stopNow();
    },
  };
  const manager = await open(options);
  servers.push(
    await serveAdminSocket(manager.paths.adminSocket, {
      backend: manager,
      version: secretdVersion,
      clusterId: manager.state.clusterId,
    }),
  );
  hooks.log(`secretd: admin socket ready at ${manager.paths.adminSocket}`);
  if (manager.locked) {
    hooks.log(
      `secretd: this manager is locked; run \`secretd unlock --data-dir ${dataDir}\` with the unlock key`,
    );
    manager.onStarted(() => hooks.log('secretd: unlocked'));
  }
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      for (const server of servers) server.close();
      await manager.stop();
      finish(0);
    })());
  stopNow = () => void stop();
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void stop());
  await hooks.onReady?.(manager);
  return { manager, worker: null, done, stop };
}

export function describeError(error: unknown): string {
  if (error instanceof SecretdError) return error.message;
  return error instanceof Error ? error.message : String(error);
}
