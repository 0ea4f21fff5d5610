/**
 * Real `Manager`s in the deterministic simulator: each on its own `SimDisk` (the data dir at
 * /data), with simulated timers, the seeded network of sim-manager-net.ts and randomness drawn
 * from the seed, through the ports the production code takes (`ManagerOptions.ports`, `timers`,
 * `now`, `random`, `electionRandom`). Nothing else is swapped: the leader router, the duties, Raft,
 * the sealed WAL, the store, the keys file and the API routes are the production ones.
 *
 * The first manager's data dir is written as `secretd init` writes it, with the production writers
 * (CA, node certificate, keys file, then `Manager.bootstrap` with the cluster's first entry, then
 * node.json); the others join as `secretd join` does, through the first one's join routes (the CA,
 * then a CSR with the manager token), and start with `Manager.openWithKey`. A kill drops the
 * process (its timers never fire again, its disk calls never return, the network refuses its
 * address) and keeps its disk; a restart runs `Manager.open` on that disk.
 *
 * How it stays deterministic: simulated time moves event by event (scheduler.ts), and after each
 * event the microtasks it started run to quiescence. The one thing that leaves the process is
 * WebCrypto (key generation and signing at init and join), which completes on another thread: while
 * such a call is pending the world is held still, so the sequence of events does not depend on how
 * long it takes.
 */
import {
  caMatchesToken,
  certDerFromPem,
  createKeyAndCSR,
  createRootCA,
  generateJoinToken,
  issueCertificate,
  newId,
  parseJoinToken,
} from '../../src/crypto/index.ts';
import { inOrderSha256 } from '../../src/io/sha256.ts';
import { nodeCertLifetimeMs } from '../../src/limits.ts';
import type { Identity } from '../../src/node/api/index.ts';
import {
  dataDirPaths,
  writeFileAtomic,
  writeNodeKeys,
  writeNodeState,
  type NodeState,
} from '../../src/node/data-dir/index.ts';
import { Manager, type ManagerOptions } from '../../src/node/manager/index.ts';
import { peerPaths } from '../../src/node/peers/index.ts';
import { fromBase64, toBase64, type Command } from '../../src/node/store/index.ts';
import { Prng } from './prng.ts';
import { Scheduler, world } from './scheduler.ts';
import { SimDisk } from './sim-fs.ts';
import {
  SimManagerNet,
  simApp,
  type SimCaller,
  type SimHost,
  type SimProcess,
} from './sim-manager-net.ts';
import { SimTimers } from './sim-timers.ts';

/** Simulated time starts here: certificates are issued at it, so a run does not depend on the day. */
export const simEpochMs = Date.parse('2026-01-01T00:00:00.000Z');
const dataDir = '/data';
/** A run that takes this many events is spinning. */
const eventsMax = 400_000;
const admin: Identity = { role: 'admin', nodeId: 'local', via: 'socket' };
const anonymous: Identity = { role: 'anonymous', nodeId: '', via: 'tls' };

export class SimManagerNode implements SimHost {
  readonly index: number;
  readonly name: string;
  readonly addr: string;
  /** Outlives every incarnation. */
  readonly disk: SimDisk;
  incarnation = 0;
  /** The process serving at `addr` (from Raft's start on, as the daemon serves from `onRaftStarted`). */
  #process: SimProcess | null = null;
  /** This incarnation's last log index when its Raft started: the log it read from its disk. */
  lastIndexAtStart = 0;
  /** Nonces, ids and keys: continued across restarts, as from a CSPRNG. */
  readonly random: Prng;
  readonly electionRandom: Prng;

  constructor(scheduler: Scheduler, index: number, prng: Prng) {
    this.index = index;
    this.name = `m${index + 1}`;
    this.addr = `10.9.0.${index + 1}:4377`;
    this.disk = new SimDisk(scheduler, index, prng.fork('disk'), {
      opMs: [0.02, 0.2],
      syncMs: [0.2, 2],
      spikeRate: 0,
      spikeMs: 0,
      syncErrorRate: 0,
      lyingFsync: false,
      crashKeep: { none: 0, all: 1, prefix: 0 },
      tornRate: 0,
    });
    this.random = prng.fork('random');
    this.electionRandom = prng.fork('election');
  }

  serving(): SimProcess | null {
    return this.#process;
  }

  serve(process: SimProcess | null): void {
    this.#process = process;
  }

  /** The running manager, from Raft's start on; null while down. */
  get manager(): Manager | null {
    return this.#process?.manager ?? null;
  }
}

export interface SimManagerClusterOptions {
  readonly seed: number;
  readonly size?: number;
  /** One-way network delay, in ms. */
  readonly delayMs?: readonly [number, number];
}

export class SimManagerCluster {
  readonly scheduler = new Scheduler();
  readonly nodes: SimManagerNode[];
  readonly net: SimManagerNet;
  /** What happened, in order: leaders, client calls and their outcomes, kills and restarts. */
  readonly history: string[] = [];
  /** The most managers whose leader duties were on at once, over every event. */
  dutiesMax = 0;
  /** Every manager that ran leader duties, in order (a change of hands is one entry). */
  readonly dutiesHolders: string[] = [];
  readonly #prng: Prng;
  readonly #crypto = new PendingCrypto();
  #failure: string | null = null;
  #hash = 0x811c9dc5;
  #leaders = '';

  constructor(options: SimManagerClusterOptions) {
    this.#prng = new Prng(options.seed);
    this.net = new SimManagerNet(
      this.scheduler,
      this.#prng.fork('network'),
      options.delayMs ?? [0.2, 3],
    );
    this.nodes = Array.from(
      { length: options.size ?? 3 },
      (_, i) => new SimManagerNode(this.scheduler, i, this.#prng.fork(`node-${i}`)),
    );
    for (const node of this.nodes) this.net.add(node);
    this.#crypto.install();
  }

  /** Undoes what the cluster changed in the process (the WebCrypto watch). Abandoned managers just stop being run. */
  dispose(): void {
    this.#crypto.uninstall();
  }

  /** A hash of every event run (time and owner) and of the history: equal for two runs of one seed. */
  get traceHash(): number {
    let hash = this.#hash;
    for (const line of this.history)
      for (let i = 0; i < line.length; i++) hash = Math.imul(hash ^ line.charCodeAt(i), 0x01000193);
    return hash >>> 0;
  }

  /** `secretd init` on the first node, then `secretd join` (manager token) on every other one. */
  async form(): Promise<void> {
    await this.run(`init on ${this.nodes[0]!.name}`, () => this.#init(this.nodes[0]!));
    for (const node of this.nodes.slice(1))
      await this.run(`join of ${node.name}`, () => this.#join(node, this.nodes[0]!));
    await this.runUntil('every manager a voter', () => this.#allVoters(), 30_000);
  }

  // --- Life cycle ----------------------------------------------------------------------------

  kill(node: SimManagerNode): void {
    node.incarnation++;
    node.serve(null);
    node.disk.crash('process');
    this.#record(`${node.name} killed`);
  }

  async restart(node: SimManagerNode): Promise<void> {
    await this.run(`restart of ${node.name}`, () => Manager.open(this.#options(node)));
    this.#record(`${node.name} restarted`);
  }

  #options(node: SimManagerNode): ManagerOptions {
    const incarnation = ++node.incarnation;
    const alive = (): boolean => node.incarnation === incarnation;
    const timers = new SimTimers(this.scheduler, node.index, alive);
    const caller: SimCaller = { index: node.index, alive, timers };
    return {
      dataDir,
      random: (n) => node.random.bytes(n),
      electionRandom: () => node.electionRandom.float(),
      now: () => new Date(simEpochMs + this.scheduler.now),
      timers,
      onFatal: (error) => {
        if (alive()) this.#fail(`${node.name} stopped on a fatal error: ${describe(error)}`);
      },
      onLeftCluster: (reason) => {
        if (alive()) this.#fail(`${node.name} left the cluster: ${reason}`);
      },
      // The daemon serves the API from here on: the leader must reach a starting manager to catch it up.
      onRaftStarted: async (manager) => {
        if (!alive()) return;
        // Nothing was delivered yet (that takes events): the log is what it read from its disk.
        node.lastIndexAtStart = manager.raft.core.status().lastIndex;
        node.serve({ manager, app: simApp(manager) });
      },
      log: () => {},
      ports: {
        fs: node.disk.mount(),
        sha256: inOrderSha256,
        peers: (tls) => this.net.link(caller, tls),
      },
    };
  }

  async #init(node: SimManagerNode): Promise<Manager> {
    const fs = node.disk.mount();
    const paths = dataDirPaths(dataDir);
    const random = (n: number): Uint8Array => node.random.bytes(n);
    const now = new Date(simEpochMs + this.scheduler.now);
    const nodeId = newId(random);
    const clusterId = newId(random);
    const ca = await createRootCA({ now });
    const { keyPkcs8, csrPem } = await createKeyAndCSR();
    const certPem = await issueCertificate(ca, csrPem, {
      nodeId,
      role: 'manager',
      clusterId,
      now,
      lifetimeMs: nodeCertLifetimeMs,
      serial: random(16),
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', node.addr.split(':')[0]!],
    });
    await fs.mkdirp(`${dataDir}/certificates`);
    await writeFileAtomic(paths.caCert, ca.certPem, 0o644, fs);
    await writeFileAtomic(paths.nodeCert, certPem, 0o644, fs);
    const keys = { dek: random(32), dekKeyId: 1, tlsKey: keyPkcs8, tlsCert: certPem };
    await writeNodeKeys(paths.nodeKeys, keys, null, random, fs);
    const state: NodeState = {
      format: 1,
      nodeId,
      clusterId,
      role: 'manager',
      listenAddr: node.addr,
      advertiseAddr: node.addr,
      createdAt: now.toISOString(),
      bootstrapVoters: [nodeId],
      peers: [],
    };
    const firstCommand: Command = {
      op: 'cluster-init',
      at: now.toISOString(),
      clusterId,
      caCertPem: ca.certPem,
      caKey: toBase64(ca.keyPkcs8),
      joinTokens: {
        worker: generateJoinToken(ca.certDer, random),
        manager: generateJoinToken(ca.certDer, random),
      },
      unlockKey: null,
      node: {
        id: nodeId,
        role: 'manager',
        hostname: node.name,
        addr: node.addr,
        resources: { nanoCpus: 2e9, memoryBytes: 2 ** 31 },
      },
    };
    const manager = await Manager.bootstrap(this.#options(node), state, firstCommand, null);
    // As initDaemon: node.json last, its presence meaning "initialized".
    await writeNodeState(paths.nodeState, state, fs);
    return manager;
  }

  /** `secretd join` with the manager token, through `via`'s join routes, then the joiner starts. */
  async #join(node: SimManagerNode, via: SimManagerNode): Promise<Manager> {
    const fs = node.disk.mount();
    const paths = dataDirPaths(dataDir);
    const random = (n: number): Uint8Array => node.random.bytes(n);
    const token = (await via.manager!.cluster()).joinTokens.manager;
    const caAnswer = await this.#request(node, anonymous, via, 'GET', peerPaths.joinCA, null);
    const caPem = (caAnswer as { CA: string }).CA;
    if (!caMatchesToken(certDerFromPem(caPem), parseJoinToken(token)))
      throw new Error(`${via.name} served a CA that does not match the join token`);
    const { keyPkcs8, csrPem } = await createKeyAndCSR();
    const answer = (await this.#request(node, anonymous, via, 'POST', peerPaths.join, {
      Token: token,
      CSR: csrPem,
      Addr: node.addr,
      Hostname: node.name,
    })) as {
      NodeID: string;
      ClusterID: string;
      Role: 'manager' | 'worker';
      Certificate: string;
      BootstrapVoters: string[];
      Managers: Array<{ ID: string; Addr: string }>;
      UnlockKey: string | null;
    };
    const unlockKey = answer.UnlockKey === null ? null : fromBase64(answer.UnlockKey);
    await fs.mkdirp(`${dataDir}/certificates`);
    await writeFileAtomic(paths.caCert, caPem, 0o644, fs);
    await writeFileAtomic(paths.nodeCert, answer.Certificate, 0o644, fs);
    const keys = { dek: random(32), dekKeyId: 1, tlsKey: keyPkcs8, tlsCert: answer.Certificate };
    await writeNodeKeys(paths.nodeKeys, keys, unlockKey, random, fs);
    const state: NodeState = {
      format: 1,
      nodeId: answer.NodeID,
      clusterId: answer.ClusterID,
      role: answer.Role,
      listenAddr: node.addr,
      advertiseAddr: node.addr,
      createdAt: new Date(simEpochMs + this.scheduler.now).toISOString(),
      bootstrapVoters: answer.BootstrapVoters,
      peers: answer.Managers.map((m) => ({ id: m.ID, addr: m.Addr })),
    };
    // As joinDaemon: node.json, then the manager starts with the unlock key it was handed.
    await writeNodeState(paths.nodeState, state, fs);
    return Manager.openWithKey(this.#options(node), unlockKey);
  }

  // --- Clients -------------------------------------------------------------------------------

  /** An admin's call to `node`'s API (as over its admin socket): the JSON answer, or a thrown error naming the status. */
  async call(node: SimManagerNode, method: string, path: string, body: unknown): Promise<unknown> {
    const what = `${method} ${path} on ${node.name}`;
    try {
      const answer = await this.run(what, () =>
        this.#request(node, admin, node, method, path, body),
      );
      this.#record(`${what}: ok`);
      return answer;
    } catch (error) {
      this.#record(`${what}: ${describe(error)}`);
      throw error;
    }
  }

  async #request(
    from: SimManagerNode,
    identity: Identity,
    to: SimManagerNode,
    method: string,
    path: string,
    body: unknown,
  ): Promise<unknown> {
    const caller: SimCaller = {
      index: from.index,
      alive: () => true,
      timers: new SimTimers(this.scheduler, world, () => true),
    };
    const bytes = body === null ? null : new TextEncoder().encode(JSON.stringify(body));
    const response = await this.net.request(caller, identity, to.addr, method, path, bytes, {
      timeoutMs: 60_000,
      contentType: 'application/json',
    });
    const text = new TextDecoder().decode(response.body);
    if (response.status >= 300) throw new Error(`${response.status} ${text}`);
    return text === '' ? null : JSON.parse(text);
  }

  // --- Running the world ---------------------------------------------------------------------

  /** Runs simulated time until `work` settles (within 120 s of it): its value, or its error. */
  async run<T>(what: string, work: () => Promise<T>, withinMs = 120_000): Promise<T> {
    let outcome: { ok: true; value: T } | { ok: false; error: unknown } | null = null;
    work().then(
      (value) => (outcome = { ok: true, value }),
      (error: unknown) => (outcome = { ok: false, error }),
    );
    await this.runUntil(what, () => outcome !== null, withinMs);
    const settled = outcome as { ok: true; value: T } | { ok: false; error: unknown } | null;
    if (settled === null) throw new Error(`${what} did not finish`);
    if (!settled.ok) throw settled.error;
    return settled.value;
  }

  /** Runs events until `done()` holds; throws when `withinMs` of simulated time pass first, or on a failure. */
  async runUntil(what: string, done: () => boolean, withinMs: number): Promise<void> {
    const deadline = this.scheduler.now + withinMs;
    for (;;) {
      await this.#quiesce();
      this.#observe();
      if (this.#failure !== null) throw new Error(this.#failure);
      if (done()) return;
      if (this.scheduler.executed >= eventsMax)
        throw new Error(`${eventsMax} events without ${what}: ${this.describe()}`);
      const event = this.scheduler.next(deadline);
      if (event === undefined)
        throw new Error(`${what} did not happen within ${withinMs} ms: ${this.describe()}`);
      this.#hash =
        Math.imul(this.#hash ^ Math.floor(event.time * 4096), 0x01000193) ^ (event.owner + 2);
      event.run();
    }
  }

  /** Runs `ms` of simulated time. */
  async runFor(ms: number): Promise<void> {
    const until = this.scheduler.now + ms;
    let passed = false;
    this.scheduler.at(until, world, () => (passed = true));
    await this.runUntil(`${ms} ms passing`, () => passed, ms + 1);
  }

  /** The live manager that leads, if exactly one does. */
  leader(): SimManagerNode | null {
    const leaders = this.nodes.filter((n) => roleOf(n) === 'leader');
    return leaders.length === 1 ? leaders[0]! : null;
  }

  describe(): string {
    return this.nodes
      .map((node) => {
        const manager = node.manager;
        if (manager === null) return `${node.name} down`;
        try {
          const s = manager.raft.core.status();
          return `${node.name} ${s.role} term ${s.term} commit ${s.commit} applied ${manager.raft.store.appliedIndex}`;
        } catch {
          return `${node.name} locked`;
        }
      })
      .join('; ');
  }

  /** Microtasks to quiescence, waiting out WebCrypto calls with the world held still. */
  async #quiesce(): Promise<void> {
    await drain();
    while (this.#crypto.pending > 0) {
      await this.#crypto.idle();
      await drain();
    }
  }

  /** After every event: who leads, and on how many managers the leader duties run. */
  #observe(): void {
    const leaders = this.nodes
      .filter((n) => roleOf(n) === 'leader')
      .map((n) => `${n.name}@${n.manager!.raft.core.status().term}`)
      .join(',');
    if (leaders !== this.#leaders) {
      this.#leaders = leaders;
      this.#record(`leaders: ${leaders || 'none'}`);
    }
    const duties = this.nodes.filter((n) => n.manager?.leaderDutiesActive === true);
    this.dutiesMax = Math.max(this.dutiesMax, duties.length);
    const holder = duties.map((n) => n.name).join(',');
    if (holder !== '' && this.dutiesHolders.at(-1) !== holder) this.dutiesHolders.push(holder);
  }

  #allVoters(): boolean {
    const leader = this.leader();
    if (leader === null) return false;
    const status = leader.manager!.raft.core.status();
    return status.conf.voters.length === this.nodes.length && status.conf.learners.length === 0;
  }

  #record(line: string): void {
    this.history.push(`[${this.scheduler.now.toFixed(3)}] ${line}`);
  }

  #fail(message: string): void {
    this.#failure ??= message;
  }
}

function roleOf(node: SimManagerNode): string | null {
  try {
    return node.manager?.raft.core.role ?? null;
  } catch {
    return null; // locked, or undoing a failed start
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * WebCrypto calls in flight. They complete on another thread, at a time no seed decides; the
 * cluster holds simulated time still until none is pending. Installed on SubtleCrypto's prototype
 * for the cluster's lifetime.
 */
class PendingCrypto {
  pending = 0;
  #waiters: Array<() => void> = [];
  #restore: Array<() => void> = [];

  install(): void {
    const proto = Object.getPrototypeOf(globalThis.crypto.subtle) as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const original = proto[name];
      if (name === 'constructor' || typeof original !== 'function') continue;
      const tracked = function (this: unknown, ...args: unknown[]): unknown {
        const result = (original as (...a: unknown[]) => unknown).apply(this, args);
        if (!(result instanceof Promise)) return result;
        tracker.pending++;
        const done = (): void => {
          if (--tracker.pending === 0) for (const wake of tracker.#waiters.splice(0)) wake();
        };
        return result.finally(done);
      };
      const tracker = this;
      proto[name] = tracked;
      this.#restore.push(() => (proto[name] = original));
    }
  }

  uninstall(): void {
    for (const restore of this.#restore.splice(0)) restore();
  }

  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
