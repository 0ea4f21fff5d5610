/**
 * A manager: a Raft member holding the encrypted store, the CA, and the API's backend.
 * Life cycle: `Manager.open` reads the data dir; if the node's keys are autolocked the manager
 * stays locked (serving only what `createApp` allows while locked) until `unlock` gives it the
 * key; then `#start` opens the sealed log, replays it, and takes part in Raft over mTLS.
 *
 * Any manager accepts any call: writes are forwarded to the leader (tagged with a request id, so a
 * retry after a lost answer lands once), reads are linearizable through ReadIndex, and node
 * operations that need the leader's view of its followers run on the leader.
 */
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import { constantTimeEqual, encodeUnlockKey, generateJoinToken, certDerFromPem, issueCertificate, issuerInfo, keyPkcs8ToPem, newId, parseUnlockKey, type Random } from '../../crypto/index.ts';
import { codeForHttpStatus, NotLeaderError, SecretdError } from '../../errors.ts';
import { nodeCertLifetimeMs, raftElectionTicks, raftTickMs, secretVersionsKeptDefault } from '../../limits.ts';
import { NodeFileSystem } from '../../io/node-fs.ts';
import { sleep, systemTimers, type Timers } from '../../io/timers.ts';
import type { MemberId } from '../../raft/types.ts';
import type { ProgressStatus, RaftStatus } from '../../raft/core.ts';
import type { Backend, Identity, NodeSummary, NodeUpdate, NodeView, SecretSpecInput, SecretVersionView, SwarmUpdate, VersionOutcome } from '../api/index.ts';
import { dataDirPaths, type DataDirPaths } from '../data-dir/index.ts';
import { issueJoin, type JoinRequest } from '../join/index.ts';
import { splitHostPort } from '../join/index.ts';
import type { JoinAnswer } from '../join/index.ts';
import { bestSuccessor, nextMembershipAction, quorumSurvivesRemoval } from '../raft-io/index.ts';
import { nodeKeysLocked, readNodeKeys, writeNodeKeys, type NodeKeys } from '../data-dir/index.ts';
import { readNodeState, writeNodeState, type NodeState } from '../data-dir/index.ts';
import { PeerClient } from '../peers/index.ts';
import type { RaftNode } from '../raft-io/index.ts';
import { openRaftNode, walMarkerPath } from '../raft-io/index.ts';
import { readConsistency } from '../api/index.ts';
import { forceNewCluster } from '../raft-io/index.ts';
import { RaftTransport } from '../raft-io/index.ts';
import { decodeMessages } from '../raft-io/index.ts';
import type { Command, TaggedCommand, TaskStatusUpdate } from '../store/index.ts';
import { Agent } from '../task-dispatch/index.ts';
import { Dispatcher } from '../task-dispatch/index.ts';
import { WorkloadLoop } from '../orchestration/index.ts';
import { UnlockBackoff, type UnlockBackoffState } from './unlock-backoff.ts';
import type { ExecResult, SessionClaim } from '../task-dispatch/index.ts';
import type { Executor } from '../executor/index.ts';
import { Store, toBase64, type ApplyResult } from '../store/index.ts';
import { terminalTaskStates, type ClusterRecord, type Labels, type NodeRecord, type SecretRecord, type ServiceRecord, type TaskRecord } from '../store/index.ts';
import type { ServiceSpecInput } from '../api/index.ts';
import { filterTasks, resolveService, resolveSpecSecrets, resolveTask } from '../store/index.ts';
import { secretVersionViews } from '../store/index.ts';
import { peerPaths } from '../peers/index.ts';

export interface ManagerOptions {
  readonly dataDir: string;
  readonly random: Random;
  readonly now: () => Date;
  readonly tickMs?: number;
  /** Applied entries between snapshots; tests make it small. */
  readonly snapshotEntries?: number;
  /** A broken invariant or a failed fsync: the process must stop. */
  readonly onFatal: (error: unknown) => void;
  /**
   * Called once the keys are open and Raft runs, before catching up with the leader: the node must
   * already answer on its TLS port then, or the leader could never reach it.
   */
  readonly onRaftStarted?: (manager: Manager) => Promise<void>;
  /** Recover from a lost quorum: restart as a one-member cluster with every committed write. */
  readonly forceNewCluster?: boolean;
  /** This node was demoted or removed, and Raft no longer counts it: the process should stop. */
  readonly onLeftCluster?: (reason: string) => void;
  /** Runs tasks on this manager too (as Docker's managers do); none: this manager runs no tasks. */
  readonly executor?: Executor;
  readonly log?: (line: string) => void;
  /** The clock of the back-off after wrong unlock keys (default: the system's). */
  readonly unlockTimers?: Timers;
}

/** How long a write may wait for a leader (elections take about a second). */
const writeDeadlineMs = 15_000;
const forwardTimeoutMs = 10_000;
export const proposePath = peerPaths.propose;
export const internalNodesPath = peerPaths.internalNodes;
export const internalExecPath = peerPaths.internalExec;
const workloadOps: ReadonlySet<Command['op']> = new Set(['secret-version-add', 'secret-rollback', 'secret-version-remove', 'service-create', 'service-update', 'service-remove', 'tasks-put', 'task-status', 'tasks-remove', 'node-add', 'node-update', 'node-remove', 'node-status']);

export class Manager implements Backend {
  readonly paths: DataDirPaths;
  #state: NodeState;
  readonly #options: ManagerOptions;
  #raft: RaftNode | null = null;
  #transport: RaftTransport | null = null;
  #peers: PeerClient | null = null;
  #stopReconciling: (() => void) | null = null;
  #keys: NodeKeys | null = null;
  #kek: Uint8Array | null = null;
  #keysWrite: Promise<void> = Promise.resolve();
  readonly #unlockBackoff: UnlockBackoff;
  #reconciling = false;
  #leavingStarted = false;
  #dispatcher: Dispatcher | null = null;
  #workloads: WorkloadLoop | null = null;
  #agent: Agent | null = null;
  readonly #startedListeners: Array<() => void> = [];

  private constructor(options: ManagerOptions, paths: DataDirPaths, state: NodeState) {
    this.#options = options;
    this.paths = paths;
    this.#state = state;
    this.#unlockBackoff = new UnlockBackoff(options.unlockTimers ?? systemTimers);
  }

  get state(): NodeState {
    return this.#state;
  }

  static async open(options: ManagerOptions): Promise<Manager> {
    const paths = dataDirPaths(options.dataDir);
    const state = await readNodeState(paths.nodeState, options.dataDir);
    const manager = new Manager(options, paths, state);
    if (!(await nodeKeysLocked(paths.nodeKeys))) await manager.#start(null);
    return manager;
  }

  /** Called right after `join`: the joiner was just handed the unlock key (if any) with its certificate. */
  static async openWithKey(options: ManagerOptions, kek: Uint8Array | null): Promise<Manager> {
    const paths = dataDirPaths(options.dataDir);
    const manager = new Manager(options, paths, await readNodeState(paths.nodeState, options.dataDir));
    await manager.#start(kek);
    return manager;
  }

  /** Called by `init`: starts on a fresh data dir and commits the cluster's first entry. */
  static async bootstrap(options: ManagerOptions, state: NodeState, firstCommand: Command, unlockKey: Uint8Array | null): Promise<Manager> {
    const manager = new Manager(options, dataDirPaths(options.dataDir), state);
    await manager.#start(unlockKey);
    await manager.#propose(firstCommand);
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

  get raft(): RaftNode {
    return this.#raftNode();
  }

  onStarted(listener: () => void): void {
    if (this.#raft) listener();
    else this.#startedListeners.push(listener);
  }

  async #start(kek: Uint8Array | null): Promise<void> {
    const keys = await readNodeKeys(this.paths.nodeKeys, kek);
    const id = this.state.nodeId as MemberId;
    const [ca, cert] = await Promise.all([readFile(this.paths.caCert, 'utf8'), readFile(this.paths.nodeCert, 'utf8')]);
    const peers = new PeerClient({ ca, cert, key: keyPkcs8ToPem(keys.tlsKey) }, localAddressOf(this.state.advertiseAddr));
    const hints = new Map(this.state.peers.map((p) => [p.id, p.addr]));
    const fs = new NodeFileSystem();
    if (this.#options.forceNewCluster) {
      await forceNewCluster({ id, walDir: this.paths.wal, snapshotDir: this.paths.snapshots, dek: keys.dek, dekKeyId: keys.dekKeyId, fs, random: this.#options.random });
      // The old log's marker counts the old log's segments; the new log records its own on open.
      await rm(walMarkerPath(this.#options.dataDir), { force: true });
      // From now on this manager founds the cluster: joiners replay from its configuration.
      this.#state = { ...this.#state, bootstrapVoters: [id], peers: [] };
      await writeNodeState(this.paths.nodeState, this.#state);
    }
    const transport = new RaftTransport({ client: peers, timeoutMs: 5000, resolve: (member) => this.#raft?.store.node(member)?.addr ?? hints.get(member) });
    const raft = await openRaftNode({
      id,
      walDir: this.paths.wal,
      snapshotDir: this.paths.snapshots,
      dek: keys.dek,
      dekKeyId: keys.dekKeyId,
      fs,
      random: this.#options.random,
      electionRandom: Math.random,
      bootstrapConf: { voters: this.state.bootstrapVoters as MemberId[], learners: [] },
      transport,
      tickMs: this.#options.tickMs ?? raftTickMs,
      electionTicks: raftElectionTicks,
      onFatal: this.#options.onFatal,
      ...(this.#options.snapshotEntries ? { snapshotEntries: this.#options.snapshotEntries } : {}),
      onStore: (store) => this.#watch(store),
      walMarker: walMarkerPath(this.#options.dataDir),
      log: this.#options.log ?? ((line) => console.error(line)),
    });
    this.#keys = keys;
    this.#kek = kek;
    this.#peers = peers;
    this.#transport = transport;
    this.#raft = raft;
    const log = this.#options.log ?? (() => {});
    this.#dispatcher = new Dispatcher({ store: () => raft.store, propose: (command) => this.#propose(command), timers: systemTimers, now: () => this.#now(), log });
    this.#workloads = new WorkloadLoop({ store: () => raft.store, propose: (command) => this.#propose(command), timers: systemTimers, now: () => this.#now(), newId: () => newId(this.#options.random), log });
    raft.start();
    const conf = raft.core.status().conf;
    if (conf.voters.length === 1 && conf.voters[0] === id) raft.campaign();
    raft.store.announce();
    this.#stopReconciling = systemTimers.every((this.#options.tickMs ?? raftTickMs) * 4, () => void this.#reconcileMembership());
    await this.#options.onRaftStarted?.(this);
    await raft.waitForLeader(30_000);
    await raft.linearizableRead(30_000);
    if (this.#options.forceNewCluster) await this.#dropOtherManagers();
    if (this.#options.executor) {
      this.#agent = new Agent({ nodeId: id, managers: () => this.#managerAddrs(), peers, executor: this.#options.executor, timers: systemTimers, log });
      this.#agent.start();
    }
    for (const listener of this.#startedListeners.splice(0)) listener();
  }

  /** After --force-new-cluster: the other managers' data is from the old cluster; they must join again. */
  async #dropOtherManagers(): Promise<void> {
    const others = [...this.#raftNode().store.nodes()].filter((n) => n.role === 'manager' && n.id !== this.state.nodeId).map((n) => n.id as string);
    if (others.length > 0) await this.#propose({ op: 'node-remove', at: this.#now(), ids: others });
  }

  #workloadKick = false;
  /** Coalesces a burst of applied entries into one orchestrator round. */
  #workloadsChanged(): void {
    if (this.#workloadKick || !this.#workloads) return;
    this.#workloadKick = true;
    queueMicrotask(() => {
      this.#workloadKick = false;
      this.#workloads?.kick();
    });
  }

  /** Where this node's agent looks for the dispatcher: the leader, then every manager. */
  #managerAddrs(): string[] {
    const raft = this.#raft;
    if (!raft) return [];
    const leader = raft.core.leader;
    const addrs = [...raft.store.nodes()].filter((n) => n.role === 'manager').map((n) => ({ id: n.id as string, addr: n.addr }));
    addrs.sort((a, b) => Number(b.id === leader) - Number(a.id === leader));
    return addrs.map((a) => a.addr);
  }

  #watch(store: Store): void {
    store.onApplied((op) => {
      // New secret versions change assignments; cluster settings, labels and removals do not (a secret in use cannot be removed).
      if (!workloadOps.has(op)) return;
      this.#dispatcher?.storeChanged();
      this.#workloadsChanged();
    });
    store.onEvent((event) => {
      if (event.kind === 'cluster') this.#maybeRewrapKeys(event.cluster.unlockKey);
      else if (event.kind === 'node' && event.node.id === this.state.nodeId && event.node.role !== 'manager') this.#leaving('this node was demoted to a worker');
      else if (event.kind === 'node-removed' && event.id === this.state.nodeId) this.#leaving('this node was removed from the cluster');
    });
  }

  /** Waits (bounded) until Raft no longer counts this member, so a demoted leader hands over first. */
  #leaving(reason: string): void {
    if (this.#leavingStarted) return;
    this.#leavingStarted = true;
    const deadline = Date.now() + 10_000;
    const stopTimer = systemTimers.every(100, () => {
      const conf = this.#raft?.core.status().conf;
      const member = conf !== undefined && [...conf.voters, ...conf.learners].includes(this.state.nodeId as MemberId);
      if (!member || Date.now() > deadline) {
        stopTimer();
        this.#options.onLeftCluster?.(reason);
      }
    });
  }

  /**
   * Whether Raft frames from a manager certificate's node reach the core: yes while it is in this
   * member's Raft configuration (a manager being demoted or removed may still be needed for the
   * quorum that removes it), no once it has left it and the store says it is a worker (demoted).
   * An id the store does not know goes on to the core, which drops it unless this member is itself
   * outside its configuration (a joiner catching up) or a member vouched for it as leader (core.ts).
   * Removed nodes never get here (403 on every route).
   */
  speaksRaft(nodeId: string): boolean {
    const raft = this.#raft;
    if (!raft) return false;
    const { voters, learners } = raft.core.conf;
    const id = nodeId as MemberId;
    return voters.includes(id) || learners.includes(id) || this.currentRole(nodeId) !== 'worker';
  }

  /** The role a node may act in now: a certificate's role is worth nothing once the store says otherwise. */
  currentRole(nodeId: string): 'manager' | 'worker' | undefined {
    const node = this.#raft?.store.node(nodeId);
    return node && node.role !== 'admin' ? node.role : undefined;
  }

  /** Every manager keeps its keys file wrapped by the cluster's current unlock key. */
  #maybeRewrapKeys(kek: Uint8Array | null): void {
    const same = kek === null ? this.#kek === null : this.#kek !== null && constantTimeEqual(kek, this.#kek);
    if (same || !this.#keys) return;
    this.#kek = kek && kek.slice();
    const keys = this.#keys;
    this.#keysWrite = this.#keysWrite.then(() => writeNodeKeys(this.paths.nodeKeys, keys, kek, this.#options.random)).catch(this.#options.onFatal);
  }

  /** On the leader: one step of moving the Raft configuration towards the store's managers. */
  async #reconcileMembership(): Promise<void> {
    const raft = this.#raft;
    const leading = raft?.core.role === 'leader' && !this.#leavingStarted;
    this.#dispatcher?.setActive(leading);
    this.#workloads?.setActive(leading);
    if (!raft || this.#reconciling || raft.core.role !== 'leader') return;
    const status = raft.core.status();
    if (status.role !== 'leader' || !status.progress) return;
    const managers = new Set([...raft.store.nodes()].filter((n) => n.role === 'manager').map((n) => n.id as string));
    if (managers.size === 0) return;
    const action = nextMembershipAction({ self: status.id, conf: status.conf, managers, progress: status.progress, commit: status.commit });
    if (!action) return;
    this.#reconciling = true;
    try {
      if (action.kind === 'transfer') await raft.transferLeadership(action.to);
      else await raft.proposeConfChange(action.change);
    } catch {
      // One change at a time: the core refuses while another is pending; the next round retries.
    } finally {
      this.#reconciling = false;
    }
  }

  /** Graceful stop: a leader first hands leadership to the most caught-up voter. */
  async stop(): Promise<void> {
    this.#stopReconciling?.();
    this.#dispatcher?.setActive(false);
    this.#workloads?.setActive(false);
    await this.#agent?.stop();
    const raft = this.#raft;
    if (raft) {
      const status = raft.core.status();
      const successor = status.role === 'leader' && status.progress ? bestSuccessor({ self: status.id, conf: status.conf, progress: status.progress }) : null;
      if (successor) {
        await raft.transferLeadership(successor).catch(() => {});
        const deadline = Date.now() + 2000;
        while (raft.core.status().role === 'leader' && Date.now() < deadline) await sleep(systemTimers, 10);
      }
      await raft.stop();
    }
    this.#transport?.close();
    this.#peers?.closeAll();
    await this.#keysWrite;
  }

  #raftNode(): RaftNode {
    if (!this.#raft) throw lockedError();
    return this.#raft;
  }

  async #read(): Promise<Store> {
    const raft = this.#raftNode();
    if (readConsistency.getStore() !== 'local') await raft.linearizableRead();
    return raft.store;
  }

  #leaderAddr(): { self: true } | { self: false; addr: string } {
    const raft = this.#raftNode();
    const leader = raft.core.leader;
    if (leader === null) throw new SecretdError('unavailable', 'No leader: the managers are electing one, or a quorum is unreachable');
    if (leader === this.state.nodeId) return { self: true };
    const addr = raft.store.node(leader)?.addr ?? this.state.peers.find((p) => p.id === leader)?.addr;
    if (!addr) throw new SecretdError('unavailable', `The leader ${leader} has no known address yet`);
    return { self: false, addr };
  }

  /** Proposes on the leader, wherever it is; retries while leadership moves. */
  async #propose(command: Command): Promise<ApplyResult & { ok: true }> {
    const tagged: TaggedCommand = { ...command, requestId: Buffer.from(this.#options.random(16)).toString('hex') };
    const deadline = Date.now() + writeDeadlineMs;
    for (let attempt = 0; ; attempt++) {
      const leaderBefore = this.#raft?.core.leader ?? null;
      try {
        const leader = this.#leaderAddr();
        const result = leader.self ? await this.#raftNode().propose(tagged) : await this.#forwardWhileLeading(leader.addr, tagged);
        return expectOk(result);
      } catch (error) {
        const retryable = error instanceof SecretdError && error.code === 'unavailable' && !this.locked;
        if (!retryable || Date.now() > deadline) throw error;
        await this.#leaderChangeOrPause(leaderBefore, Math.min(25 * (attempt + 1), 200));
      }
    }
  }

  /** Waits until a leader other than `previous` is known, or `maxMs`: a retry goes as soon as an election ends. */
  async #leaderChangeOrPause(previous: string | null, maxMs: number): Promise<void> {
    const until = Date.now() + maxMs;
    while (Date.now() < until) {
      const leader = this.#raft?.core.leader ?? null;
      if (leader !== null && leader !== previous) return;
      await sleep(systemTimers, 5);
    }
  }

  /**
   * Forwards to the leader, but gives up as soon as another manager is known to lead: a stopped or
   * cut-off old leader would hold the write until its timeout. The retry carries the same request
   * id, so a write the old leader did commit is not applied twice.
   */
  async #forwardWhileLeading(addr: string, command: TaggedCommand): Promise<ApplyResult> {
    const raft = this.#raftNode();
    const leader = raft.core.leader;
    let stopWatching: () => void = () => {};
    const moved = new Promise<never>((_, reject) => {
      stopWatching = systemTimers.every(25, () => {
        if (raft.core.leader !== leader) reject(new SecretdError('unavailable', 'Leadership moved while the write was forwarded; retrying'));
      });
    });
    try {
      return await Promise.race([this.#forward(addr, command), moved]);
    } finally {
      stopWatching();
    }
  }

  async #forward(addr: string, command: TaggedCommand): Promise<ApplyResult> {
    const body = new TextEncoder().encode(JSON.stringify({ Command: command }));
    const response = await this.#peers!.request(addr, 'POST', proposePath, body, { timeoutMs: forwardTimeoutMs, contentType: 'application/json' });
    const parsed = JSON.parse(new TextDecoder().decode(response.body)) as ApplyResult | { message: string };
    if (response.status === 200) return parsed as ApplyResult;
    throw new SecretdError(codeForHttpStatus(response.status), (parsed as { message: string }).message);
  }

  /** Runs on the leader: locally if this is it, else through the leader's internal route. */
  async #onLeader<T>(local: () => Promise<T>, method: string, path: string, body: unknown = null): Promise<T> {
    const leader = this.#leaderAddr();
    if (leader.self) return local();
    const payload = body === null ? null : new TextEncoder().encode(JSON.stringify(body));
    const response = await this.#peers!.request(leader.addr, method, path, payload, { timeoutMs: forwardTimeoutMs, contentType: 'application/json' });
    const text = new TextDecoder().decode(response.body);
    const parsed: unknown = text ? JSON.parse(text) : null;
    if (response.status >= 200 && response.status < 300) return parsed as T;
    throw new SecretdError(codeForHttpStatus(response.status), (parsed as { message?: string } | null)?.message ?? `HTTP ${response.status}`);
  }

  // --- Raft between managers -----------------------------------------------------------------

  raftReceive(from: Identity, body: Uint8Array): void {
    if (!from.speaksRaft) throw new SecretdError('forbidden', 'Permission denied: only managers speak Raft');
    const raft = this.#raftNode();
    for (const message of decodeMessages(body)) {
      // A manager speaks only for itself: the sender named in the message must be the certificate's node.
      if (message.from !== from.nodeId || message.to !== this.state.nodeId) throw new SecretdError('forbidden', 'Permission denied: Raft message addressed or signed for another member');
      raft.step(message);
    }
  }

  openSession(from: Identity, claim?: SessionClaim): ReadableStream<Uint8Array> {
    const dispatcher = this.#dispatcher;
    if (!dispatcher?.active) throw this.#notLeader('Not the leader: node sessions are served by the leader');
    return dispatcher.openSession(from.nodeId, claim);
  }

  sessionHeartbeat(from: Identity): void {
    if (!this.#dispatcher?.active) throw this.#notLeader('Not the leader');
    this.#dispatcher.heartbeat(from.nodeId);
  }

  async sessionStatus(from: Identity, updates: readonly TaskStatusUpdate[]): Promise<void> {
    if (!this.#dispatcher?.active) throw this.#notLeader('Not the leader');
    await this.#dispatcher.reportStatus(from.nodeId, updates);
  }

  sessionExecResult(from: Identity, id: string, result: ExecResult): void {
    if (!this.#dispatcher?.active) throw this.#notLeader('Not the leader');
    this.#dispatcher.execResult(from.nodeId, id, result);
  }

  #notLeader(message: string): NotLeaderError {
    const leader = this.#raft?.core.leader ?? null;
    const addr = leader === null ? null : (this.#raft?.store.node(leader)?.addr ?? null);
    return new NotLeaderError(message, addr);
  }

  raftStatus(): unknown {
    return this.#raftNode().core.status();
  }

  async proposeForwarded(command: TaggedCommand): Promise<ApplyResult> {
    const raft = this.#raftNode();
    if (raft.core.leader !== this.state.nodeId) throw new SecretdError('unavailable', 'Not the leader');
    return raft.propose(command);
  }

  async joinCA(): Promise<string> {
    return readFile(this.paths.caCert, 'utf8');
  }

  async join(request: JoinRequest): Promise<JoinAnswer> {
    const store = await this.#read();
    const cluster = this.#clusterOf(store);
    const issued = await issueJoin(cluster, request, { random: this.#options.random, now: this.#options.now(), idTaken: (id) => store.node(id) !== undefined || store.isRemovedNode(id) });
    await this.#propose({ op: 'node-add', at: this.#now(), node: { id: issued.nodeId, role: issued.role, hostname: request.hostname, addr: issued.addr, ...(request.resources ? { resources: request.resources } : {}) } });
    const managers = [...store.nodes()].filter((n) => n.role === 'manager').map((n) => ({ ID: n.id as string, Addr: n.addr }));
    return {
      NodeID: issued.nodeId,
      Role: issued.role,
      ClusterID: cluster.id,
      Certificate: issued.certPem,
      CA: cluster.caCertPem,
      BootstrapVoters: [...this.state.bootstrapVoters],
      Managers: managers,
      UnlockKey: issued.role === 'manager' && cluster.unlockKey ? toBase64(cluster.unlockKey) : null,
    };
  }

  isRemovedNode(nodeId: string): boolean {
    return this.#raft?.store.isRemovedNode(nodeId) ?? false;
  }

  // --- Services, tasks, exec, images ---------------------------------------------------------

  async listServices(): Promise<readonly ServiceRecord[]> {
    return [...(await this.#read()).workloads.services.values()];
  }

  async getService(ref: string): Promise<ServiceRecord> {
    return resolveService(await this.#read(), ref);
  }

  async createService(spec: ServiceSpecInput): Promise<string> {
    const store = await this.#read();
    if (store.workloads.serviceByName(spec.name)) throw new SecretdError('conflict', `Service ${spec.name} already exists`);
    const result = await this.#propose({ op: 'service-create', at: this.#now(), id: newId(this.#options.random), spec: resolveSpecSecrets(store, spec) });
    return result.id!;
  }

  async updateService(ref: string, expectedIndex: number, spec: ServiceSpecInput): Promise<void> {
    const store = await this.#read();
    const service = resolveService(store, ref);
    await this.#propose({ op: 'service-update', at: this.#now(), id: service.id, expectedIndex, spec: resolveSpecSecrets(store, spec) });
  }

  async removeService(ref: string): Promise<void> {
    const service = resolveService(await this.#read(), ref);
    await this.#propose({ op: 'service-remove', at: this.#now(), id: service.id });
  }

  async listTasks(filters: ReadonlyMap<string, readonly string[]>): Promise<readonly TaskRecord[]> {
    return filterTasks(await this.#read(), filters);
  }

  async getTask(ref: string): Promise<TaskRecord> {
    return resolveTask(await this.#read(), ref);
  }

  /** Runs a command in a task's container wherever it runs: here, or relayed over its node's session. */
  async exec(taskRef: string, argv: readonly string[]): Promise<ExecResult> {
    const task = resolveTask(await this.#read(), taskRef);
    if (task.nodeId === null) throw new SecretdError('conflict', `Task ${taskRef} is not placed on a node yet`);
    if (task.nodeId === this.state.nodeId && this.#agent) return this.#agent.exec(task.id, argv);
    if (this.#dispatcher?.active) return this.#dispatcher.exec(task.nodeId, task.id, argv, 60_000);
    return this.#onLeader(() => this.exec(task.id, argv), 'POST', internalExecPath, { Task: task.id, Cmd: argv });
  }

  async importImage(name: string, path: string): Promise<{ Name: string }> {
    const executor = this.#options.executor;
    if (!executor) throw new SecretdError('unimplemented', 'This node runs no tasks, so it keeps no images');
    const image = await executor.images.importImage(name, path);
    return { Name: image.name };
  }

  // --- Nodes ---------------------------------------------------------------------------------

  async listNodes(): Promise<readonly NodeView[]> {
    return this.#onLeader(async () => [...(await this.#read()).nodes()].map((n) => this.#view(n)), 'GET', internalNodesPath);
  }

  async getNode(ref: string): Promise<NodeView> {
    return this.#onLeader(async () => this.#view(resolveNode(await this.#read(), ref)), 'GET', `${internalNodesPath}/${encodeURIComponent(ref)}`);
  }

  async updateNode(ref: string, expectedIndex: number, update: NodeUpdate): Promise<void> {
    await this.#onLeader(
      async () => {
        const store = await this.#read();
        const node = resolveNode(store, ref);
        if (update.role === 'worker' && node.role === 'manager') this.#checkCanLoseManager(store, node, 'demote');
        await this.#propose({ op: 'node-update', at: this.#now(), id: node.id, expectedIndex, ...update });
        return null;
      },
      'POST',
      `${internalNodesPath}/${encodeURIComponent(ref)}/update`,
      { ExpectedIndex: expectedIndex, Update: update },
    );
  }

  async removeNode(ref: string, force: boolean): Promise<void> {
    await this.#onLeader(
      async () => {
        const store = await this.#read();
        const node = resolveNode(store, ref);
        const view = this.#view(node);
        if (node.role === 'manager' && !force) {
          throw new SecretdError('invalid', `Node ${node.id} is a cluster manager: demote it before removing it (secretd node demote ${node.id}), or use --force if it is gone for good`);
        }
        if (node.role === 'manager') this.#checkCanLoseManager(store, node, 'remove');
        else if (view.state === 'ready' && !force) throw new SecretdError('invalid', `Node ${node.id} is not down and can't be removed: stop it first, or use --force`);
        await this.#propose({ op: 'node-remove', at: this.#now(), ids: [node.id] });
        return null;
      },
      'DELETE',
      `${internalNodesPath}/${encodeURIComponent(ref)}?force=${force}`,
    );
  }

  #checkCanLoseManager(store: Store, node: NodeRecord, action: 'demote' | 'remove'): void {
    const managers = [...store.nodes()].filter((n) => n.role === 'manager');
    if (managers.length <= 1) throw new SecretdError('invalid', `Cannot ${action} node ${node.id}: it is the last manager of the cluster`);
    const status = this.#raftNode().core.status();
    const progress = this.#activeProgress(status);
    if (!progress || !quorumSurvivesRemoval({ self: status.id, conf: status.conf, progress }, node.id)) {
      throw new SecretdError('invalid', `Cannot ${action} node ${node.id}: the managers left could not form a quorum (too few of them are reachable)`);
    }
  }

  /**
   * The leader's progress, with `recentActive` meaning what an operator means by it. The core
   * clears it for every follower at each check-quorum round (once per election timeout) and sets it
   * again at the follower's next answer, so just after a round a live follower reads as inactive;
   * a successful exchange on the Raft transport within two election timeouts also counts.
   */
  #activeProgress(status: RaftStatus): Readonly<Record<string, ProgressStatus>> | undefined {
    if (!status.progress) return undefined;
    const windowMs = 2 * raftElectionTicks * (this.#options.tickMs ?? raftTickMs);
    const progress: Record<string, ProgressStatus> = {};
    for (const [id, pr] of Object.entries(status.progress)) {
      const reachable = this.#transport?.reachable(id as MemberId, windowMs) === true;
      progress[id] = pr.recentActive || !reachable ? pr : { ...pr, recentActive: true };
    }
    return progress;
  }

  #view(node: NodeRecord): NodeView {
    const status = this.#raftNode().core.status();
    // Only a voter counts towards the quorum: a manager still catching up as a learner is not yet
    // reachable as a manager (showing it so would overstate how many failures the cluster survives).
    const member = status.conf.voters.includes(node.id as unknown as MemberId);
    const isSelf = node.id === this.state.nodeId;
    const active = isSelf || this.#activeProgress(status)?.[node.id]?.recentActive === true;
    const reachability = !member ? 'unknown' : status.role !== 'leader' ? (isSelf ? 'reachable' : 'unknown') : active ? 'reachable' : 'unreachable';
    return {
      id: node.id,
      metaIndex: node.metaIndex,
      createdAt: node.createdAt,
      updatedAt: node.updatedAt,
      role: node.role,
      availability: node.availability,
      labels: node.labels,
      hostname: node.hostname,
      addr: node.addr,
      // A manager's state is the leader's Raft view of it; a worker's is its dispatcher session (the store's status).
      state: node.role === 'manager' ? (reachability === 'reachable' ? 'ready' : reachability === 'unreachable' ? 'down' : 'unknown') : node.status,
      manager: node.role === 'manager' ? { leader: status.leader === (node.id as string), reachability } : null,
      resources: node.resources ?? null,
      tls: this.#tlsInfo(),
    };
  }

  #tlsInfoCache: { caPem: string; info: NodeView['tls'] } | null = null;

  /** The CA as Docker's node TLS info shows it, worked out once per CA certificate. */
  #tlsInfo(): NodeView['tls'] {
    const caPem = this.#clusterOf(this.#raftNode().store).caCertPem;
    if (this.#tlsInfoCache?.caPem !== caPem) {
      const info = issuerInfo(caPem);
      this.#tlsInfoCache = { caPem, info: { trustRoot: caPem, issuerSubject: toBase64(info.subjectDer), issuerPublicKey: toBase64(info.publicKeyDer) } };
    }
    return this.#tlsInfoCache.info;
  }

  // --- Backend: cluster and secrets ----------------------------------------------------------

  summary(): NodeSummary {
    const store = this.#raft?.store;
    const nodes = store ? [...store.nodes()] : [];
    const agentSecrets = this.#agent?.secretCounts() ?? { received: 0, held: 0 };
    return {
      nodeId: this.state.nodeId,
      clusterId: this.state.clusterId,
      addr: this.state.advertiseAddr,
      state: this.locked ? 'locked' : 'active',
      isManager: true,
      hostname: hostname(),
      managers: nodes.filter((n) => n.role === 'manager').length,
      nodes: nodes.length,
      secrets: store ? [...store.secrets()].length : 0,
      secretsReceived: agentSecrets.received,
      secretsHeld: agentSecrets.held,
      remoteManagers: nodes.filter((n) => n.role === 'manager').map((n) => ({ nodeId: n.id as string, addr: n.addr })),
      tasks: this.#localTaskCounts(store),
      cluster: store && !this.locked ? (store.cluster ?? null) : null,
    };
  }

  #localTaskCounts(store: Store | undefined): NodeSummary['tasks'] {
    let live = 0;
    let running = 0;
    for (const task of store?.workloads.tasks.values() ?? []) {
      if (task.nodeId !== this.state.nodeId || terminalTaskStates.has(task.status.state)) continue;
      live++;
      if (task.status.state === 'running') running++;
    }
    return { live, running };
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

  async listSecretVersions(ref: string): Promise<{ secret: SecretRecord; versions: SecretVersionView[] }> {
    const store = await this.#read();
    const secret = store.resolveSecret(ref);
    return { secret, versions: secretVersionViews(store, secret) };
  }

  async addSecretVersion(ref: string, data: Uint8Array, ifVersion: number | null): Promise<VersionOutcome> {
    try {
      const secret = (await this.#read()).resolveSecret(ref);
      const newest = secret.versions.at(-1)!;
      // Equal data is a no-op: answered here without a log entry (the store would decide the same).
      if ((ifVersion === null || ifVersion === newest.version) && constantTimeEqual(data, newest.data)) return { version: newest.version, changed: false };
      const result = await this.#propose({ op: 'secret-version-add', at: this.#now(), id: secret.id, data: toBase64(data), ifVersion });
      return { version: result.version!, changed: result.changed ?? true };
    } finally {
      data.fill(0);
    }
  }

  async rollbackSecret(ref: string, to: number, ifVersion: number | null): Promise<VersionOutcome> {
    const secret = (await this.#read()).resolveSecret(ref);
    const result = await this.#propose({ op: 'secret-rollback', at: this.#now(), id: secret.id, to, ifVersion });
    return { version: result.version!, changed: result.changed ?? true };
  }

  async removeSecretVersion(ref: string, version: number): Promise<void> {
    const secret = (await this.#read()).resolveSecret(ref);
    await this.#propose({ op: 'secret-version-remove', at: this.#now(), id: secret.id, version });
  }

  async secretSettings(): Promise<{ versionsKept: number }> {
    return { versionsKept: this.#clusterOf(await this.#read()).secretVersionsKept ?? secretVersionsKeptDefault };
  }

  async updateSecretSettings(settings: { versionsKept: number }): Promise<void> {
    await this.#propose({ op: 'cluster-update', at: this.#now(), expectedIndex: null, secretVersionsKept: settings.versionsKept });
  }

  async cluster(): Promise<ClusterRecord> {
    return this.#clusterOf(await this.#read());
  }

  #clusterOf(store: Store): ClusterRecord {
    if (!store.cluster) throw new SecretdError('unavailable', 'This manager has not caught up with the cluster yet');
    return store.cluster;
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
    // Answer only once this manager has applied the change and re-wrapped its keys file.
    await this.#read();
    await this.#keysWrite;
  }

  async unlockKey(): Promise<string> {
    const cluster = await this.cluster();
    return cluster.unlockKey ? encodeUnlockKey(cluster.unlockKey) : '';
  }

  /**
   * Tries a key through the back-off (`unlock-backoff.ts`): one try at a time, each wrong key in a
   * row doubling the wait before the next, and every key that fails zeroed (best effort: the text
   * form is a string and cannot be cleared). A right key is kept: it re-wraps the keys file later.
   */
  async unlock(keyText: string): Promise<void> {
    if (!this.locked) throw new SecretdError('conflict', 'This manager is not locked');
    const kek = parseUnlockKey(keyText);
    await this.#unlockBackoff.attempt(kek, async (key) => {
      try {
        // Unlocked while this attempt waited its turn.
        if (!this.locked) throw new SecretdError('conflict', 'This manager is not locked');
        await this.#start(key);
      } catch (error) {
        // A wrong key is zeroed by the back-off; after any other failure, unless the key was kept.
        if (this.#kek !== key) key.fill(0);
        throw error;
      }
    });
  }

  /** Wrong unlock keys in a row and the wait before the next try, for tests and diagnostics. */
  get unlockBackoff(): UnlockBackoffState {
    return this.#unlockBackoff.state;
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

/** Docker's order: full id, exact hostname, then a unique id prefix. */
function resolveNode(store: Store, ref: string): NodeRecord {
  const nodes = [...store.nodes()];
  const exact = store.node(ref) ?? nodes.filter((n) => n.hostname === ref);
  if (!Array.isArray(exact)) return exact;
  if (exact.length === 1) return exact[0]!;
  const matches = exact.length > 1 ? exact : nodes.filter((n) => ref !== '' && n.id.startsWith(ref));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1) throw new SecretdError('invalid', `Node ${ref} is ambiguous (${matches.length} matches found)`);
  throw new SecretdError('not_found', `Node ${ref} not found`);
}

/** A specific IP to originate peer connections from; none for a wildcard or a host name. */
function localAddressOf(advertiseAddr: string): string | undefined {
  const { host } = splitHostPort(advertiseAddr);
  return isIP(host) && host !== '0.0.0.0' && host !== '::' ? host : undefined;
}

function expectOk(result: ApplyResult): ApplyResult & { ok: true } {
  if (!result.ok) throw new SecretdError(result.code, result.message);
  return result;
}

function lockedError(): SecretdError {
  return new SecretdError('locked', 'This manager is locked: run `secretd unlock` with the cluster unlock key');
}
