/**
 * A manager: the Raft member holding the encrypted store, the CA, and the API's backend.
 * Life cycle: `Manager.open` reads the data dir; if the node's keys are autolocked the manager
 * stays locked (serving only what `createApp` allows while locked) until `unlock` gives it the
 * key; then `#start` opens the sealed log, replays it and joins Raft.
 */
import { hostname } from 'node:os';
import {
  constantTimeEqual,
  createKeyAndCSR,
  encodeUnlockKey,
  generateJoinToken,
  certDerFromPem,
  issueCertificate,
  newId,
  parseUnlockKey,
  type Random,
} from '../crypto/index.ts';
import { SecretdError } from '../errors.ts';
import { nodeCertLifetimeMs } from '../limits.ts';
import type { MemberId } from '../raft/types.ts';
import { NodeFileSystem } from '../io/node-fs.ts';
import type { Backend, NodeSummary, SecretSpecInput, SwarmUpdate } from './api/backend.ts';
import { dataDirPaths, type DataDirPaths } from './data-dir.ts';
import { nodeKeysLocked, readNodeKeys, writeNodeKeys, type NodeKeys } from './node-keys.ts';
import { readNodeState, type NodeState } from './node-state.ts';
import type { RaftNode } from './raft-node.ts';
import { openRaftNode } from './raft-open.ts';
import type { Command } from './store/commands.ts';
import { Store, toBase64, type ApplyResult } from './store/store.ts';
import type { ClusterRecord, Labels, SecretRecord } from './store/types.ts';

export interface ManagerOptions {
  readonly dataDir: string;
  readonly random: Random;
  readonly now: () => Date;
  readonly tickMs?: number;
  /** Applied entries between snapshots; tests make it small. */
  readonly snapshotEntries?: number;
  /** A broken invariant or a failed fsync: the process must stop. */
  readonly onFatal: (error: unknown) => void;
}

export class Manager implements Backend {
  readonly paths: DataDirPaths;
  readonly state: NodeState;
  readonly #options: ManagerOptions;
  #raft: RaftNode | null = null;
  #keys: NodeKeys | null = null;
  #kek: Uint8Array | null = null;
  #keysWrite: Promise<void> = Promise.resolve();
  #unlocking = false;
  readonly #startedListeners: Array<() => void> = [];

  private constructor(options: ManagerOptions, paths: DataDirPaths, state: NodeState) {
    this.#options = options;
    this.paths = paths;
    this.state = state;
  }

  static async open(options: ManagerOptions): Promise<Manager> {
    const paths = dataDirPaths(options.dataDir);
    const state = await readNodeState(paths.nodeState, options.dataDir);
    const manager = new Manager(options, paths, state);
    if (!(await nodeKeysLocked(paths.nodeKeys))) await manager.#start(null);
    return manager;
  }

  /** Called by `init`: starts on a fresh data dir and commits the cluster's first entry. */
  static async bootstrap(options: ManagerOptions, state: NodeState, firstCommand: Command, unlockKey: Uint8Array | null): Promise<Manager> {
    const manager = new Manager(options, dataDirPaths(options.dataDir), state);
    await manager.#start(unlockKey);
    expectOk(await manager.#raftNode().propose(firstCommand));
    return manager;
  }

  get locked(): boolean {
    return this.#raft === null;
  }

  /** The TLS private key (PKCS#8), available once unlocked. */
  get tlsKey(): Uint8Array {
    if (!this.#keys) throw lockedError();
    return this.#keys.tlsKey;
  }

  onStarted(listener: () => void): void {
    if (this.#raft) listener();
    else this.#startedListeners.push(listener);
  }

  async #start(kek: Uint8Array | null): Promise<void> {
    const keys = await readNodeKeys(this.paths.nodeKeys, kek);
    const id = this.state.nodeId as MemberId;
    this.#keys = keys;
    this.#kek = kek;
    this.#raft = await openRaftNode({
      id,
      walDir: this.paths.wal,
      snapshotDir: this.paths.snapshots,
      dek: keys.dek,
      dekKeyId: keys.dekKeyId,
      fs: new NodeFileSystem(),
      random: this.#options.random,
      electionRandom: Math.random,
      bootstrapConf: { voters: [id], learners: [] },
      transport: { send: () => {} },
      tickMs: this.#options.tickMs ?? 100,
      onFatal: this.#options.onFatal,
      ...(this.#options.snapshotEntries ? { snapshotEntries: this.#options.snapshotEntries } : {}),
      onStore: (store) =>
        store.onEvent((event) => {
          if (event.kind === 'cluster') this.#maybeRewrapKeys(event.cluster.unlockKey);
        }),
    });
    const store = this.#raft.store;
    const core = this.#raft.core;
    this.#raft.start();
    if (core.status().conf.voters.length === 1) this.#raft.campaign();
    store.announce();
    await this.#raft.waitForLeader(10_000);
    await this.#raft.linearizableRead();
    for (const listener of this.#startedListeners.splice(0)) listener();
  }

  /** Every manager keeps its keys file wrapped by the cluster's current unlock key. */
  #maybeRewrapKeys(kek: Uint8Array | null): void {
    const same = kek === null ? this.#kek === null : this.#kek !== null && constantTimeEqual(kek, this.#kek);
    if (same || !this.#keys) return;
    this.#kek = kek && kek.slice();
    const keys = this.#keys;
    this.#keysWrite = this.#keysWrite.then(() => writeNodeKeys(this.paths.nodeKeys, keys, kek, this.#options.random)).catch(this.#options.onFatal);
  }

  async stop(): Promise<void> {
    await this.#raft?.stop();
    await this.#keysWrite;
  }

  #raftNode(): RaftNode {
    if (!this.#raft) throw lockedError();
    return this.#raft;
  }

  async #read(): Promise<Store> {
    const raft = this.#raftNode();
    await raft.linearizableRead();
    return raft.store;
  }

  async #propose(command: Command): Promise<ApplyResult & { ok: true }> {
    return expectOk(await this.#raftNode().propose(command));
  }

  // --- Backend -------------------------------------------------------------------------------

  summary(): NodeSummary {
    const store = this.#raft?.store;
    const count = (it: Iterable<unknown> | undefined): number => (it ? [...it].length : 0);
    return {
      nodeId: this.state.nodeId,
      clusterId: this.state.clusterId,
      addr: this.state.advertiseAddr,
      state: this.locked ? 'locked' : 'active',
      isManager: true,
      hostname: hostname(),
      managers: store ? [...store.nodes()].filter((n) => n.role === 'manager').length : 0,
      nodes: count(store?.nodes()),
      secrets: count(store?.secrets()),
    };
  }

  async listSecrets(): Promise<readonly SecretRecord[]> {
    return [...(await this.#read()).secrets()];
  }

  async getSecret(ref: string): Promise<SecretRecord> {
    return (await this.#read()).resolveSecret(ref);
  }

  async createSecret(spec: SecretSpecInput): Promise<string> {
    const store = this.#raftNode().store;
    if (store.secretByName(spec.name)) throw new SecretdError('conflict', `Secret ${spec.name} already exists`);
    const result = await this.#propose({ op: 'secret-create', at: this.#now(), id: newId(this.#options.random), name: spec.name, labels: spec.labels, data: toBase64(spec.data) });
    return result.id!;
  }

  async updateSecret(ref: string, expectedIndex: number, spec: { name: string; labels: Labels; data: Uint8Array | null }): Promise<void> {
    const secret = (await this.#read()).resolveSecret(ref);
    const latest = secret.versions.at(-1)!.data;
    if (spec.name !== secret.name || (spec.data !== null && !constantTimeEqual(spec.data, latest))) {
      throw new SecretdError('invalid', `Cannot update secret ${secret.name}: only updates to Labels are allowed`);
    }
    await this.#propose({ op: 'secret-update', at: this.#now(), id: secret.id, expectedIndex, labels: spec.labels });
  }

  async removeSecret(ref: string): Promise<void> {
    const secret = (await this.#read()).resolveSecret(ref);
    await this.#propose({ op: 'secret-remove', at: this.#now(), ids: [secret.id] });
  }

  async cluster(): Promise<ClusterRecord> {
    const cluster = (await this.#read()).cluster;
    if (!cluster) throw new SecretdError('unavailable', 'This manager has not joined a cluster yet');
    return cluster;
  }

  async updateSwarm(update: SwarmUpdate): Promise<void> {
    const cluster = await this.cluster();
    const random = this.#options.random;
    const caDer = certDerFromPem(cluster.caCertPem);
    const autolock = update.autolock ?? cluster.unlockKey !== null;
    let unlockKey: string | null | undefined;
    if (!autolock) unlockKey = cluster.unlockKey === null ? undefined : null;
    else if (cluster.unlockKey === null || update.rotateUnlockKey) unlockKey = toBase64(random(32));
    const rotateTokens = update.rotateWorkerToken || update.rotateManagerToken;
    await this.#propose({
      op: 'cluster-update',
      at: this.#now(),
      expectedIndex: update.expectedIndex,
      ...(update.labels ? { labels: update.labels } : {}),
      ...(rotateTokens
        ? {
            joinTokens: {
              worker: update.rotateWorkerToken ? generateJoinToken(caDer, random) : cluster.joinTokens.worker,
              manager: update.rotateManagerToken ? generateJoinToken(caDer, random) : cluster.joinTokens.manager,
            },
          }
        : {}),
      ...(unlockKey !== undefined ? { unlockKey } : {}),
    });
    // Answer only once this manager's keys file is wrapped by the new key (or unwrapped).
    await this.#keysWrite;
  }

  async unlockKey(): Promise<string> {
    const cluster = await this.cluster();
    return cluster.unlockKey ? encodeUnlockKey(cluster.unlockKey) : '';
  }

  async unlock(keyText: string): Promise<void> {
    if (!this.locked || this.#unlocking) throw new SecretdError('conflict', 'This manager is not locked');
    const kek = parseUnlockKey(keyText);
    this.#unlocking = true;
    try {
      await this.#start(kek);
    } finally {
      this.#unlocking = false;
    }
  }

  async issueClientCertificate(name: string, csrPem: string): Promise<{ certPem: string; caPem: string }> {
    const cluster = await this.cluster();
    const certPem = await issueCertificate({ certPem: cluster.caCertPem, keyPkcs8: cluster.caKey }, csrPem, {
      nodeId: name,
      role: 'admin',
      clusterId: cluster.id,
      now: this.#options.now(),
      lifetimeMs: nodeCertLifetimeMs,
      serial: this.#options.random(16),
    });
    return { certPem, caPem: cluster.caCertPem };
  }

  #now(): string {
    return this.#options.now().toISOString();
  }
}

function expectOk(result: ApplyResult): ApplyResult & { ok: true } {
  if (!result.ok) throw new SecretdError(result.code, result.message);
  return result;
}

function lockedError(): SecretdError {
  return new SecretdError('locked', 'This manager is locked: run `secretd unlock` with the cluster unlock key');
}

export { createKeyAndCSR };
