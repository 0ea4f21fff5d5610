/**
 * A running node process (`secretd init` / `join` / `run`). A manager: its admin socket at once,
 * its mTLS listener as soon as it is unlocked, and (as in Docker) an agent running tasks. A worker:
 * its agent and a local admin socket. Both stop cleanly on SIGTERM/SIGINT.
 *
 * The process changes role in place, as Docker's nodes do (role-switch.ts has the part on disk):
 *   promoted   the worker's renewed certificate names a manager: its renewer settles, its socket
 *              closes, the manager's files are written, and a Manager starts in this process
 *              (listening on the address the worker joined with), taking the worker's agent on;
 *              the leader adds it to Raft as a learner, then as a voter.
 *   demoted    once Raft no longer counts it (leader-duties.ts), the manager stops without its
 *              agent, the manager-only files are erased, and a Worker starts, taking the agent on.
 * The agent, its executor and the running containers carry over: tasks keep running with their
 * secrets (in memory and in their tmpfs). Switches and the final stop run one after another.
 * A removed manager still stops, after stopping its tasks and erasing their secrets.
 */
import type { Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import { readFile } from 'node:fs/promises';
import { loadX509 } from '../crypto/index.ts';
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
import type { Agent } from './task-dispatch/index.ts';
import { Worker } from './worker.ts';
import { settleRoleSwitch, writeDemotedFiles, writePromotedFiles } from './role-switch.ts';
import { reportFatal, secretdVersion } from './fatal.ts';

export interface Daemon {
  /** The role this process has now: the manager (null on a worker)… */
  readonly manager: Manager | null;
  /** …or the worker (null on a manager). */
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

export async function initDaemon(
  options: Omit<InitOptions, 'random' | 'now'>,
  hooks: DaemonHooks,
): Promise<Daemon> {
  await loadX509();
  const boot = await bootstrapCluster({ ...options, random: systemRandom, now: systemNow() });
  const node = new NodeProcess(options.dataDir, hooks);
  await node.startManager(async (opts) => {
    const manager = await Manager.bootstrap(opts, boot.state, boot.firstCommand, boot.unlockKey);
    await writeNodeState(boot.paths.nodeState, boot.state);
    return manager;
  });
  return node;
}

export async function joinDaemon(
  options: Omit<JoinOptions, 'random' | 'now'>,
  hooks: DaemonHooks,
): Promise<Daemon> {
  await loadX509();
  const joined = await joinCluster({ ...options, random: systemRandom, now: systemNow() });
  await writeNodeState(dataDirPaths(options.dataDir).nodeState, joined.state);
  const node = new NodeProcess(options.dataDir, hooks);
  if (joined.state.role === 'worker') await node.startWorker();
  else await node.startManager((opts) => Manager.openWithKey(opts, joined.unlockKey));
  return node;
}

export async function runDaemon(
  dataDir: string,
  hooks: DaemonHooks,
  options: { forceNewCluster?: boolean } = {},
): Promise<Daemon> {
  await loadX509();
  // A role switch a crash cut short is finished first (role-switch.ts).
  const state = await settleRoleSwitch(dataDir, hooks.log, systemRandom);
  if (state.role === 'worker' && options.forceNewCluster)
    throw new SecretdError(
      'invalid',
      '--force-new-cluster applies to managers; this node is a worker',
    );
  const node = new NodeProcess(dataDir, hooks);
  if (state.role === 'worker') await node.startWorker();
  else
    await node.startManager((opts) =>
      Manager.open({ ...opts, ...(options.forceNewCluster ? { forceNewCluster: true } : {}) }),
    );
  return node;
}

/** One node process: the role it has now, its listeners, and the switches between roles. */
class NodeProcess implements Daemon {
  manager: Manager | null = null;
  worker: Worker | null = null;
  readonly done: Promise<number>;
  readonly #dataDir: string;
  readonly #hooks: DaemonHooks;
  /** One executor for the process's life: its containers outlive a role switch. */
  readonly #executor: Executor;
  #finish: (code: number) => void = () => {};
  /** The current role's listeners (admin or worker socket, TLS). */
  #servers: Array<Server | Http2SecureServer> = [];
  /** Switches and the stop, one after another. */
  #queue: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | null = null;
  #ended = false;

  constructor(dataDir: string, hooks: DaemonHooks) {
    this.#dataDir = dataDir;
    this.#hooks = hooks;
    this.#executor = new Executor({
      dataDir,
      ...(hooks.runtime ? { runtimeBinary: hooks.runtime } : {}),
    });
    this.done = new Promise<number>((resolve) => (this.#finish = resolve));
    for (const signal of ['SIGTERM', 'SIGINT'] as const)
      process.once(signal, () => void this.stop());
  }

  stop(): Promise<void> {
    return (this.#stopping ??= this.#enqueue(async () => {
      this.#closeServers();
      await this.manager?.stop();
      await this.worker?.stop();
      await this.#executor
        .removeRunDirIfIdle()
        .catch((error: unknown) =>
          this.#hooks.log(
            `secretd: cannot remove the run directory ${this.#executor.runDir}: ${error instanceof Error ? error.message : String(error)}`,
          ),
        );
      this.#end(0);
    }));
  }

  #end(code: number): void {
    this.#ended = true;
    this.#finish(code);
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(work);
    this.#queue = next.catch(() => {});
    return next;
  }

  #closeServers(): void {
    for (const server of this.#servers.splice(0)) server.close();
  }

  #fatal(error: unknown): void {
    this.#hooks.log(
      `secretd: fatal: ${error instanceof Error ? error.message : String(error)}; stopping`,
    );
    // An fsync that failed or a broken invariant: do not serve another request from this state. The
    // manager already refuses every call; the listeners take no new connection, and main.ts exits.
    this.#closeServers();
    reportFatal(70);
    this.#end(70);
  }

  /** Starts this process as a manager; `agent`: the one a promoted worker ran, taken on. */
  async startManager(
    open: (options: ManagerOptions) => Promise<Manager>,
    agent: Agent | null = null,
  ): Promise<void> {
    const hooks = this.#hooks;
    let tls: Promise<void> | null = null;
    const startTls = (manager: Manager): Promise<void> =>
      (tls ??= (async () => {
        const [caPem, certPem] = await Promise.all([
          readFile(manager.paths.caCert, 'utf8'),
          readFile(manager.paths.nodeCert, 'utf8'),
        ]);
        this.#servers.push(
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
    const options: ManagerOptions = {
      dataDir: this.#dataDir,
      random: systemRandom,
      now: systemNow,
      onFatal: (error) => this.#fatal(error),
      onRaftStarted: startTls,
      executor: this.#executor,
      log: hooks.log,
      keepsTasksOnDemotion: true,
      ...(agent ? { agent } : {}),
      onLeftCluster: (reason) => this.#left(reason),
    };
    const manager = await open(options);
    this.manager = manager;
    this.#servers.push(
      await serveAdminSocket(manager.paths.adminSocket, {
        backend: manager,
        version: secretdVersion,
        clusterId: manager.state.clusterId,
      }),
    );
    hooks.log(`secretd: admin socket ready at ${manager.paths.adminSocket}`);
    if (manager.locked) {
      hooks.log(
        `secretd: this manager is locked; run \`secretd unlock --data-dir ${this.#dataDir}\` with the unlock key`,
      );
      manager.onStarted(() => hooks.log('secretd: unlocked'));
    }
    if (!agent) await hooks.onReady?.(manager);
  }

  /** Starts this process as a worker; `agent`: the one a demoted manager ran, taken on. */
  async startWorker(agent: Agent | null = null): Promise<void> {
    const hooks = this.#hooks;
    const worker = await Worker.open({
      dataDir: this.#dataDir,
      executor: this.#executor,
      log: hooks.log,
      agent,
      onPromoted: () => void this.#enqueue(() => this.#promote()),
    });
    this.worker = worker;
    this.#servers.push(
      await serveWorkerSocket(
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
      ),
    );
    hooks.log(
      `secretd: worker ${worker.state.nodeId} running; local admin socket ${worker.paths.adminSocket}`,
    );
    if (!agent) hooks.onWorkerReady?.(worker);
  }

  /** The manager left Raft: removed, it stops (its agent erased everything); demoted, it goes on as a worker. */
  #left(reason: string): void {
    const manager = this.manager;
    if (!manager || this.#stopping) return;
    if (manager.isRemovedNode(manager.state.nodeId)) {
      this.#hooks.log(
        `secretd: ${reason}; it no longer takes part in Raft, so this manager process stops (to join again, use a fresh --data-dir)`,
      );
      void this.stop();
      return;
    }
    void this.#enqueue(() => this.#demote(manager, reason)).catch((error: unknown) =>
      this.#switchFailed('worker', error),
    );
  }

  async #demote(manager: Manager, reason: string): Promise<void> {
    if (this.#ended || this.manager !== manager) return;
    const log = this.#hooks.log;
    log(
      `secretd: ${reason}; Raft no longer counts it: it goes on as a worker, its tasks keep running`,
    );
    const self = manager.state.nodeId;
    const managers = [...manager.raft.store.nodes()]
      .filter((n) => n.role === 'manager' && n.id !== self)
      .map((n) => ({ id: n.id as string, addr: n.addr }));
    const keys = { tlsKey: manager.tlsKey.slice(), tlsCert: manager.certificatePem };
    const agent = manager.detachAgent();
    this.#closeServers();
    await manager.stop();
    this.manager = null;
    try {
      await writeDemotedFiles(
        dataDirPaths(this.#dataDir),
        manager.state,
        keys,
        managers,
        systemRandom,
      );
    } finally {
      keys.tlsKey.fill(0); // best effort under a GC
    }
    log(`secretd: this node's Raft log, snapshots and data key are erased`);
    await this.startWorker(agent);
  }

  async #promote(): Promise<void> {
    const worker = this.worker;
    if (this.#ended || this.#stopping || !worker) return;
    // The renewal that brought the manager certificate has written it; no other starts now.
    await worker.settle();
    const keys = await worker.currentKeys();
    const { listenAddr, advertiseAddr } = worker.state;
    this.#hooks.log(
      `secretd: this node was promoted to a manager: it becomes one in place, serving on ${listenAddr} and advertised as ${advertiseAddr} (the addresses it joined with); its tasks keep running`,
    );
    this.#closeServers();
    const agent = worker.detachAgent();
    await worker.stop();
    this.worker = null;
    try {
      await writePromotedFiles(dataDirPaths(this.#dataDir), worker.state, keys, systemRandom);
    } finally {
      keys.tlsKey.fill(0); // best effort under a GC
    }
    await this.startManager((opts) => Manager.open(opts), agent).catch((error: unknown) =>
      this.#switchFailed('manager', error),
    );
  }

  /** A switch that failed half-way: the files say the new role; a restart (`secretd run`) starts in it. */
  #switchFailed(role: string, error: unknown): void {
    this.#fatal(
      new Error(
        `cannot go on as a ${role}: ${error instanceof Error ? error.message : String(error)} (\`secretd run\` starts this node as a ${role})`,
      ),
    );
  }
}

export function describeError(error: unknown): string {
  if (error instanceof SecretdError) return error.message;
  return error instanceof Error ? error.message : String(error);
}
