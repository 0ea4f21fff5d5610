/**
 * A manager: a Raft member holding the encrypted store, the CA, and the API's backend. This file
 * is where the manager's parts are wired, not where they are written:
 *
 *   leader-router.ts   writes proposed on the leader wherever it is (forwarded, retried), reads
 *                      made linearizable, node operations run on the leader
 *   leader-duties.ts   membership rounds, dispatcher and orchestrator on the leader only,
 *                      leaving after a demotion, handing leadership over on stop
 *   node-view.ts       Docker's node view and this node's summary, pure
 *
 * Life cycle: `Manager.open` reads the data dir; if the node's keys are autolocked the manager
 * stays locked (serving only what `createApp` allows while locked) until `unlock` gives it the
 * key. Starting is five steps: open storage (keys, peer client, the sealed log replayed into the
 * store) → start Raft → start the leader duties → catch up with the leader → start the agent. The
 * manager counts as unlocked from the second step on (the leader must reach it over the API to
 * catch it up); a step that fails undoes the earlier ones, so the manager is locked again and
 * `unlock` can be retried.
 *
 * The clock and randomness come in through the options (`timers`, `now`, `random`,
 * `electionRandom`), the data dir's disk and the link to other nodes through `ports` (ports.ts):
 * the simulator runs this same code on simulated ones (test/sim/manager-sim.test.ts).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { hostname } from 'node:os';
import { isIP } from 'node:net';
import {
  constantTimeEqual,
  encodeUnlockKey,
  generateJoinToken,
  certDerFromPem,
  issuerInfo,
  keyPkcs8ToPem,
  newId,
  parseIdentity,
  parseUnlockKey,
  type Random,
} from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import {
  certRecordsPruneIntervalMs,
  certRenewalTimeoutMs,
  raftElectionTicks,
  raftTickMs,
  secretVersionsKeptDefault,
} from '../../limits.ts';
import { systemTimers, type Timers } from '../../io/timers.ts';
import type { MemberId } from '../../raft/types.ts';
import type { RaftStatus } from '../../raft/core.ts';
import type {
  Backend,
  Identity,
  ClientCertUpdateOutcome,
  IssuedClientCertificate,
  NodeSummary,
  NodeUpdate,
  NodeView,
  SecretSpecInput,
  SecretVersionView,
  ServiceSpecInput,
  RevocationOutcome,
  SwarmUpdate,
  VersionOutcome,
} from '../api/index.ts';
import {
  holdingsPaths,
  secretVersionViews,
  type NodeStateView,
  type RootRotationStatus,
  type SecretHolderView,
} from '../api/index.ts';
import {
  CertRenewer,
  issuerKeyOf,
  issuerKeyOfDer,
  newRotation,
  reportCertificateInUse,
  RootRotationDriver,
  samePemSet,
  trustBundleOf,
  checkExpiryWithinCA,
  checkNodeCertificate,
  issueRenewal,
  type RenewalRequest,
  type RenewedPair,
} from '../certs/index.ts';
import {
  dataDirPaths,
  writeFileAtomic,
  nodeKeysLocked,
  openingKeys,
  readNodeKeys,
  readNodeState,
  readTextFile,
  removeIfPresent,
  sealingKey,
  writeNodeState,
  type DataDirPaths,
  type NodeState,
} from '../data-dir/index.ts';
import type { Executor } from '../executor/index.ts';
import { issueJoin, splitHostPort, type JoinAnswer, type JoinRequest } from '../join/index.ts';
import { WorkloadLoop } from '../orchestration/index.ts';
import type { PeerLink } from '../peers/index.ts';
import {
  decodeMessages,
  forceNewCluster,
  openRaftNode,
  quorumSurvivesRemoval,
  RaftTransport,
  walMarkerPath,
  type RaftNode,
} from '../raft-io/index.ts';
import {
  filterTasks,
  resolveNode,
  resolveService,
  resolveSpecSecrets,
  resolveTask,
  Store,
  toBase64,
  type ApplyResult,
  type ClientCertRecord,
  type ClientCertRole,
  type ClusterRecord,
  type Command,
  type Labels,
  type NodeRecord,
  type SecretRecord,
  type ServiceRecord,
  type TaggedCommand,
  type TaskRecord,
  type TaskStatusUpdate,
  nodeIssuerKey,
  rotationProgress,
} from '../store/index.ts';
import {
  Dispatcher,
  type Agent,
  type ExecResult,
  type SessionClaim,
} from '../task-dispatch/index.ts';
import { peerPaths } from '../peers/index.ts';
import { startAgent } from '../_node-agent.ts';
import type { LocalContainers } from '../task-dispatch/index.ts';
import type { GrantedSecretInfo } from '../task-dispatch/index.ts';
import { DekRotation, type EncryptionStatus } from './dek-rotation.ts';
import { KeysFile } from './keys-file.ts';
import { LeaderDuties } from './leader-duties.ts';
import {
  clientCertificateRecord,
  clientCertificateRefusal,
  issueClientCertificate,
  updateClientCertificate,
  pruneCertRecords,
  revokeClientCertificates,
  type ClientCertsContext,
} from './_client-certs.ts';
import { LeaderRouter, lockedError } from './leader-router.ts';
import { ManagerAudit } from './_audit.ts';
import { catchUp } from './_raft-waits.ts';
import { auditContext } from '../audit/index.ts';
import {
  activeIds,
  activeProgress,
  nodeSummary,
  nodeView,
  type NodeViewContext,
} from './node-view.ts';
import { UnlockBackoff, type UnlockBackoffState } from './unlock-backoff.ts';
import { nodeStatesView, probeLocked, secretHoldersView } from './holdings.ts';
import { systemPorts, type ManagerPorts } from './ports.ts';

export interface ManagerOptions {
  readonly dataDir: string;
  readonly random: Random;
  readonly now: () => Date;
  /** The clock of every timer and wait (default: the system's); the simulator passes simulated time. */
  readonly timers?: Timers;
  /** The election timeout's jitter, in [0, 1) (default: drawn from `random`). */
  readonly electionRandom?: () => number;
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
  /** An agent this process already runs (a promoted worker's, role-switch.ts): taken on, not started anew. */
  readonly agent?: Agent;
  /**
   * Demoted (not removed), this node lives on as a worker in the same process (role-switch.ts):
   * its agent keeps its tasks and their secrets, and `onLeftCluster` takes it on (`detachAgent`).
   */
  readonly keepsTasksOnDemotion?: boolean;
  readonly log?: (line: string) => void;
  /** The clock of the back-off after wrong unlock keys (default: `timers`). */
  readonly unlockTimers?: Timers;
  /** The data dir's disk and the link to other nodes (default: the real ones, `systemPorts`). */
  readonly ports?: ManagerPorts;
}

/** A stream to a peer whose frames go unacknowledged this long is dropped. */
const raftStreamTimeoutMs = 5000;
/** How long a starting manager waits for a leader, and then for a read confirmed by it. */
const catchUpTimeoutMs = 30_000;
/** How long a command run in a task's container on another node may take. */
const execTimeoutMs = 60_000;
/** Membership rounds run every this many ticks. */
const membershipRoundTicks = 4;

/** Everything a start builds; torn down together. */
interface Running {
  /** The keys file: every write of it goes through here (keys-file.ts says why). */
  readonly keysFile: KeysFile;
  readonly dekRotation: DekRotation;
  readonly peers: PeerLink;
  readonly transport: RaftTransport;
  readonly raft: RaftNode;
  readonly dispatcher: Dispatcher;
  readonly workloads: WorkloadLoop;
  readonly duties: LeaderDuties;
}

export class Manager implements Backend {
  readonly paths: DataDirPaths;
  #state: NodeState;
  readonly #options: ManagerOptions;
  readonly #ports: ManagerPorts;
  readonly #timers: Timers;
  readonly #router: LeaderRouter;
  /** The audit trail (Backend.audit): requests' own records, reading it (_audit.ts). */
  readonly audit: ManagerAudit;
  readonly #unlockBackoff: UnlockBackoff;
  readonly #startedListeners: Array<() => void> = [];
  /** Set from the second start step on; null while locked. */
  #run: Running | null = null;
  /** This member has caught up with the leader once (step 4). */
  #caughtUp = false;
  #agent: Agent | null = null;
  /** The unlock key the keys file is wrapped with now (null: not autolocked). */
  #kek: Uint8Array | null = null;
  /** A fatal error was reported: nothing more is served from this state. */
  #failed = false;
  /** --force-new-cluster rewrote the data dir (once, even if a start is retried). */
  #clusterForced = false;
  #tlsInfoCache: { caPem: string; info: NodeView['tls'] } | null = null;
  /** Told (outside the Raft loop) when revocations may have changed: the TLS server closes connections. */
  readonly #revocationListeners = new Set<() => void>();
  /** This node's certificate in use (PEM) and the CA it chains to: read at start, replaced by renewals. */
  #certPem = '';
  #caPem = '';
  #renewer: CertRenewer | null = null;
  #roleRenewalAsked = '';
  /** The leader's part in a root CA rotation (certs/ca-rotation-driver.ts). */
  #rotationDriver: RootRotationDriver | null = null;
  /** The rotation this manager last renewed its own certificate for. */
  #rootRenewalAsked = '';
  /** Writes of the trust bundle (certificates/ca.pem), one after another. */
  #trustWrites: Promise<void> = Promise.resolve();
  /** The roots the TLS server and the peer client were last given ('' : those they opened with). */
  #trustApplied = '';
  readonly #certificateListeners: Array<
    (pair: { certPem: string; tlsKey: Uint8Array; caPem?: string }) => void
  > = [];

  private constructor(options: ManagerOptions, paths: DataDirPaths, state: NodeState) {
    this.#options = options;
    this.paths = paths;
    this.#state = state;
    this.#ports = options.ports ?? systemPorts;
    this.#timers = options.timers ?? systemTimers;
    this.#unlockBackoff = new UnlockBackoff(options.unlockTimers ?? this.#timers);
    this.#router = new LeaderRouter({
      selfId: state.nodeId,
      raft: () => this.#raftOrNull(),
      peers: () => this.#running().peers,
      knownAddr: (id) => this.#state.peers.find((p) => p.id === id)?.addr,
      timers: this.#timers,
      random: options.random,
    });
    this.audit = new ManagerAudit({
      router: this.#router,
      store: () => this.#run?.raft.store ?? null,
      timers: this.#timers,
      now: () => this.#now(),
      random: options.random,
      log: options.log ?? ((line) => console.error(line)),
    });
  }

  get state(): NodeState {
    return this.#state;
  }

  static async open(options: ManagerOptions): Promise<Manager> {
    const paths = dataDirPaths(options.dataDir);
    const { fs } = options.ports ?? systemPorts;
    const state = await readNodeState(paths.nodeState, options.dataDir, fs);
    // An expired certificate cannot be renewed: say so instead of failing every handshake.
    await checkNodeCertificate(paths, { now: options.now(), log: options.log ?? (() => {}), fs });
    const manager = new Manager(options, paths, state);
    if (!(await nodeKeysLocked(paths.nodeKeys, fs))) await manager.#start(null);
    return manager;
  }

  /** Called right after `join`: the joiner was just handed the unlock key (if any) with its certificate. */
  static async openWithKey(options: ManagerOptions, kek: Uint8Array | null): Promise<Manager> {
    const paths = dataDirPaths(options.dataDir);
    const { fs } = options.ports ?? systemPorts;
    const manager = new Manager(
      options,
      paths,
      await readNodeState(paths.nodeState, options.dataDir, fs),
    );
    await manager.#start(kek);
    return manager;
  }

  /** Called by `init`: starts on a fresh data dir and commits the cluster's first entry. */
  static async bootstrap(
    options: ManagerOptions,
    state: NodeState,
    firstCommand: Command,
    unlockKey: Uint8Array | null,
  ): Promise<Manager> {
    const manager = new Manager(options, dataDirPaths(options.dataDir), state);
    await manager.#start(unlockKey);
    await manager.#router.propose(firstCommand);
    return manager;
  }

  get locked(): boolean {
    return this.#run === null;
  }

  /** The TLS private key (PKCS#8), available once unlocked. */
  get tlsKey(): Uint8Array {
    return this.#running().keysFile.keys.tlsKey;
  }

  get raft(): RaftNode {
    return this.#running().raft;
  }

  onStarted(listener: () => void): void {
    if (this.#run) listener();
    else this.#startedListeners.push(listener);
  }

  // --- Starting, step by step ----------------------------------------------------------------

  async #start(kek: Uint8Array | null): Promise<void> {
    const run = this.#wire(await this.#openStorage(kek));
    // From here on the manager is unlocked: the API must take Raft frames while it catches up.
    this.#run = run;
    this.#kek = kek;
    try {
      this.#startRaft(run.raft);
      run.duties.start();
      await this.#options.onRaftStarted?.(this);
      await this.#catchUp(run.raft);
      this.#caughtUp = true;
      const self = run.raft.store.node(this.state.nodeId);
      if (self && self.role === 'worker') run.duties.storeEvent({ kind: 'node', node: self });
      await run.dekRotation.start();
      if (this.#options.forceNewCluster) await this.#dropOtherManagers(run.raft.store);
      this.#startAgent(run.peers);
      this.#startRenewer(run.peers);
      this.#startRootRotation(run);
    } catch (error) {
      await this.#undoStart(run);
      throw error;
    }
    for (const listener of this.#startedListeners.splice(0)) listener();
  }

  /** Step 1: the node's keys, its peer client and the sealed log replayed into the store (Raft not yet running). */
  async #openStorage(
    kek: Uint8Array | null,
  ): Promise<Pick<Running, 'keysFile' | 'dekRotation' | 'peers' | 'transport' | 'raft'>> {
    const { fs } = this.#ports;
    const keys = await readNodeKeys(this.paths.nodeKeys, kek, fs);
    // The certificate the keys file pairs with the key (in older files: node.pem).
    [this.#certPem, this.#caPem] = await Promise.all([
      keys.tlsCert ?? readTextFile(this.paths.nodeCert, fs),
      readTextFile(this.paths.caCert, fs),
    ]);
    // During a DEK rotation a crash cut short, new records are sealed with the pending DEK and the current one opens the rest.
    const { dek, keyId: dekKeyId } = sealingKey(keys);
    const olderKeys = openingKeys(keys);
    const id = this.state.nodeId as MemberId;
    // This member's log and snapshots on disk, and the keys that seal and open them.
    const storage = {
      id,
      walDir: this.paths.wal,
      snapshotDir: this.paths.snapshots,
      dek,
      dekKeyId,
      olderKeys,
      fs,
      sha256: this.#ports.sha256,
      random: this.#options.random,
    };
    if (this.#options.forceNewCluster && !this.#clusterForced) {
      await forceNewCluster(storage);
      // The old log's marker counts the old log's segments; the new log records its own on open.
      await removeIfPresent(fs, walMarkerPath(this.#options.dataDir));
      // From now on this manager founds the cluster: joiners replay from its configuration.
      this.#state = { ...this.#state, bootstrapVoters: [id], peers: [] };
      await writeNodeState(this.paths.nodeState, this.#state, fs);
      this.#clusterForced = true;
    }
    const peers = this.#ports.peers(
      { ca: this.#caPem, cert: this.#certPem, key: keyPkcs8ToPem(keys.tlsKey) },
      localAddressOf(this.state.advertiseAddr),
    );
    const hints = new Map(this.state.peers.map((p) => [p.id, p.addr]));
    let raft: RaftNode | null = null;
    const transport = new RaftTransport({
      client: peers,
      timeoutMs: raftStreamTimeoutMs,
      timers: this.#timers,
      resolve: (member) => raft?.store.node(member)?.addr ?? hints.get(member),
    });
    try {
      raft = await openRaftNode({
        ...storage,
        electionRandom: this.#options.electionRandom ?? (() => unitInterval(this.#options.random)),
        bootstrapConf: { voters: this.state.bootstrapVoters as MemberId[], learners: [] },
        transport,
        tickMs: this.#tickMs,
        electionTicks: raftElectionTicks,
        timers: this.#timers,
        onFatal: (error) => this.#fatal(error),
        ...(this.#options.snapshotEntries
          ? { snapshotEntries: this.#options.snapshotEntries }
          : {}),
        onStore: (store) => this.#watch(store),
        walMarker: walMarkerPath(this.#options.dataDir),
        log: this.#options.log ?? ((line) => console.error(line)),
      });
    } catch (error) {
      transport.close();
      peers.closeAll();
      throw error;
    }
    const keysFile = new KeysFile(keys, kek, {
      path: this.paths.nodeKeys,
      fs,
      random: this.#options.random,
      onFatal: (error) => this.#fatal(error),
    });
    const log = this.#options.log ?? ((line) => console.error(line));
    const dekRotation = new DekRotation({
      file: keysFile,
      raft,
      random: this.#options.random,
      log,
    });
    const cluster = raft.store.cluster;
    if (cluster) dekRotation.request(cluster.dekRotations ?? 0);
    return { keysFile, dekRotation, peers, transport, raft };
  }

  /** The parts that act on the store: the dispatcher, the orchestrator and the duties that turn them on. */
  #wire(
    opened: Pick<Running, 'keysFile' | 'dekRotation' | 'peers' | 'transport' | 'raft'>,
  ): Running {
    const { raft } = opened;
    const log = this.#options.log ?? (() => {});
    const propose = (command: Command): Promise<ApplyResult> => this.#router.propose(command);
    const now = (): string => this.#now();
    const dispatcher = new Dispatcher({
      store: () => raft.store,
      propose,
      timers: this.#timers,
      random: this.#options.random,
      now,
      log,
      record: (entry) => this.audit.recorder.record(entry),
    });
    const workloads = new WorkloadLoop({
      store: () => raft.store,
      propose,
      timers: this.#timers,
      now,
      newId: () => newId(this.#options.random),
      log,
    });
    const duties = new LeaderDuties({
      selfId: this.state.nodeId,
      raft,
      dispatcher,
      workloads,
      timers: this.#timers,
      roundMs: this.#tickMs * membershipRoundTicks,
      prune: {
        everyMs: certRecordsPruneIntervalMs,
        run: () => pruneCertRecords(this.#clientCertsContext(), raft.store),
      },
      // A demoted manager leaves with a worker's certificate: a renewal under way finishes first.
      // One that lives on as a worker keeps its tasks (onLeftCluster takes the agent on); otherwise
      // its tasks stop and their secrets are erased before the process goes: no agent stays behind.
      onLeft: (reason) => {
        // Out of Raft now: a demoted manager may take its worker's certificate (#renewForRole).
        const role = this.currentRole(this.state.nodeId);
        if (role !== undefined) this.#checkOwnRole(role);
        const renewal = this.#renewer?.settled ?? Promise.resolve();
        const bounded = new Promise<void>((done) => this.#timers.after(certRenewalTimeoutMs, done));
        const livesOn = (): boolean =>
          this.#options.keepsTasksOnDemotion === true && !this.isRemovedNode(this.state.nodeId);
        void Promise.race([renewal, bounded])
          .then(() => (livesOn() ? undefined : this.#agent?.leave(reason)))
          .catch((error: unknown) =>
            log(`secretd: erasing this node's tasks on leaving: ${(error as Error).message}`),
          )
          .then(() => this.#options.onLeftCluster?.(reason));
      },
    });
    return { ...opened, dispatcher, workloads, duties };
  }

  /** Step 2: Raft runs; the only member of a one-member configuration campaigns at once. */
  #startRaft(raft: RaftNode): void {
    raft.start();
    const conf = raft.core.status().conf;
    if (conf.voters.length === 1 && conf.voters[0] === this.state.nodeId) raft.campaign();
    raft.store.announce();
  }

  /**
   * Step 4: a leader is known and this store holds every write committed before now; a read lost
   * to an election is tried again with the next leader (catchUp).
   */
  #catchUp(raft: RaftNode): Promise<void> {
    return catchUp(raft, { timers: this.#timers, timeoutMs: catchUpTimeoutMs });
  }

  /** Step 5: this manager runs tasks too, when it has an executor. */
  #startAgent(peers: PeerLink): void {
    const executor = this.#options.executor;
    if (!executor) return;
    const log = this.#options.log ?? (() => {});
    this.#agent = startAgent(
      {
        nodeId: this.state.nodeId,
        managers: () => this.#managerAddrs(),
        peers,
        executor,
        timers: this.#timers,
        log,
        random: this.#options.random,
        onRenewCertificate: (reason, role) => this.#renewForRole(reason, role),
      },
      this.#options.agent,
    );
  }

  /** This node's agent, handed over (a demoted manager living on as a worker): `stop` leaves it running. */
  detachAgent(): Agent | null {
    const agent = this.#agent;
    this.#agent = null;
    return agent;
  }

  /** Step 5 too: this manager renews its own certificate over mTLS, as every node does (certs/renewer.ts). */
  #startRenewer(peers: PeerLink): void {
    this.#renewer = new CertRenewer({
      nodeId: this.state.nodeId,
      clusterId: this.state.clusterId,
      caPem: () => this.#caPem,
      certificate: () => this.#certPem,
      // Other managers first (the leader first of all): this one may be the one behind.
      managers: () => {
        const self = this.#run?.raft.store.node(this.state.nodeId)?.addr;
        const addrs = this.#managerAddrs();
        return [...addrs.filter((a) => a !== self), ...addrs.filter((a) => a === self)];
      },
      peers,
      timers: this.#timers,
      now: this.#options.now,
      random: this.#options.random,
      persist: (pair) => this.#persistCertificate(pair),
      apply: (pair) => this.#applyCertificate(pair),
      report: () => this.#reportOwnCertificate(),
      log: this.#options.log ?? (() => {}),
    });
    this.#renewer.start();
  }

  /** The renewed pair into the keys file (one write: key wrapped under autolock, certificate), then node.pem. */
  async #persistCertificate(pair: RenewedPair): Promise<void> {
    // The roots first: during a rotation they include the old one, which the old pair chains to.
    if (!samePemSet(pair.caPem, this.#caPem)) await this.#writeTrust(pair.caPem);
    await this.#running().keysFile.update(
      (keys) => ({ ...keys, tlsKey: pair.keyPkcs8, tlsCert: pair.certPem }),
      () => writeFileAtomic(this.paths.nodeCert, pair.certPem, 0o644, this.#ports.fs),
    );
  }

  /** Whether this manager's leader duties (dispatcher, orchestrator) are on now: the leader's only. */
  get leaderDutiesActive(): boolean {
    return this.#run?.dispatcher.active === true;
  }

  /**
   * New connections, both ways, present the renewed certificate. This node's open connections to
   * other managers are retired (PeerClient.setTls): what is in flight on them finishes there, and
   * their long-lived streams move to new ones at once (the agent's dispatcher session on
   * `onRetired`, the Raft transport at its next frame), so none goes on under the old certificate.
   */
  #applyCertificate(pair: RenewedPair): void {
    this.#certPem = pair.certPem;
    this.#caPem = pair.caPem;
    const key = keyPkcs8ToPem(pair.keyPkcs8);
    this.#run?.peers.setTls({ ca: this.#caPem, cert: pair.certPem, key });
    for (const listener of this.#certificateListeners)
      listener({ certPem: pair.certPem, tlsKey: pair.keyPkcs8, caPem: this.#caPem });
    this.#trustApplied = this.#caPem;
  }

  onNodeCertificate(
    listener: (pair: { certPem: string; tlsKey: Uint8Array; caPem?: string }) => void,
  ): void {
    this.#certificateListeners.push(listener);
  }

  /** This node's certificate in use now (PEM). */
  get certificatePem(): string {
    return this.#certPem;
  }

  /** Renews this node's certificate now; resolves once the attempt has ended (a failure is logged and retried). */
  async renewCertificate(reason: string): Promise<void> {
    this.#renewer?.renewNow(reason);
    await this.#renewer?.settled;
  }

  /** The store gives this node another role than its certificate names (demoted): renew now. */
  #checkOwnRole(role: string): void {
    if (!this.#renewer || this.#certPem === '') return;
    const named = parseIdentity(this.#certPem).role;
    // Asked once per certificate and role: the node's other events (its status) do not ask again.
    const asked = `${role} ${this.#certPem.length} ${this.#certPem.slice(-80)}`;
    if (named === role || this.#roleRenewalAsked === asked) return;
    if (this.#demotedInRaft()) return; // asked again on leaving (onLeft)
    this.#roleRenewalAsked = asked;
    this.#renewer.renewNow(`this node is a ${role} now, its certificate says ${named}`);
  }

  /**
   * A renewal the dispatcher asks for. Asked to become a worker (dispatcher.ts's role reason) while
   * still in the Raft configuration, this manager waits until it has left (onLeft renews then): the
   * leader's store may say so before this member has applied it.
   */
  #renewForRole(reason: string, role: 'manager' | 'worker' | undefined): void {
    const toWorker = role === 'worker';
    if (!this.#demotedInRaft() && !(toWorker && this.#inRaftConf()))
      this.#renewer?.renewNow(reason);
  }

  #inRaftConf(): boolean {
    const raft = this.#run?.raft;
    if (!raft) return false;
    const { voters, learners } = raft.core.conf;
    const self = this.state.nodeId as MemberId;
    return voters.includes(self) || learners.includes(self);
  }

  /**
   * Demoted, but still in the Raft configuration: the leader may need this member's answers to
   * remove it (with two managers, its vote is half the quorum), and a worker's certificate would
   * get them refused (only managers speak Raft). It keeps its manager certificate until it has left.
   */
  #demotedInRaft(): boolean {
    const raft = this.#run?.raft;
    return (
      raft !== undefined && this.currentRole(this.state.nodeId) === 'worker' && this.#inRaftConf()
    );
  }

  /** A start that failed: everything it started stops, and the manager is locked again. */
  async #undoStart(run: Running): Promise<void> {
    this.#rotationDriver?.stop();
    run.duties.stop();
    await run.raft.stop().catch(() => {});
    run.transport.close();
    run.peers.closeAll();
    this.#run = null;
    this.#kek = null;
    // Its keys-file writes finish before a retry starts: the retry writes the same file.
    await run.keysFile.settled();
  }

  /** After --force-new-cluster: the other managers' data is from the old cluster; they must join again. */
  async #dropOtherManagers(store: Store): Promise<void> {
    const others = [...store.nodes()]
      .filter((n) => n.role === 'manager' && n.id !== this.state.nodeId)
      .map((n) => n.id as string);
    if (others.length > 0)
      await this.#router.propose({ op: 'node-remove', at: this.#now(), ids: others });
  }

  /** Graceful stop: a leader first hands leadership to the most caught-up voter. */
  async stop(): Promise<void> {
    const run = this.#run;
    // Records still queued (denials, deliveries) go now if they can; none is taken after this.
    if (run && this.audit.recorder.pending > 0)
      await Promise.race([
        this.audit.recorder.flush(),
        new Promise<void>((done) => this.#timers.after(1000, done)),
      ]);
    this.audit.recorder.stop();
    this.#renewer?.stop();
    this.#rotationDriver?.stop();
    run?.duties.stop();
    await this.#agent?.stop();
    if (run) {
      await run.duties.stepDown();
      await run.raft.stop();
      run.transport.close();
      run.peers.closeAll();
      await run.keysFile.settled();
    }
  }

  // --- Wiring ------------------------------------------------------------------------------------

  get #tickMs(): number {
    return this.#options.tickMs ?? raftTickMs;
  }

  #fatal(error: unknown): void {
    this.#failed = true;
    this.#options.onFatal(error);
  }

  #raftOrNull(): RaftNode | null {
    if (this.#failed)
      throw new SecretdError('unavailable', 'This manager stopped after a fatal error');
    return this.#run?.raft ?? null;
  }

  #running(): Running {
    if (this.#failed)
      throw new SecretdError('unavailable', 'This manager stopped after a fatal error');
    if (!this.#run) throw lockedError();
    return this.#run;
  }

  /** Called with the store when Raft opens it, and again whenever a snapshot replaces it. */
  #watch(store: Store): void {
    store.onApplied((op) => this.#run?.duties.applied(op));
    this.audit.watch(store);
    // A new store (a snapshot installed) may hold revocations no event announced.
    this.#revocationsChanged();
    store.onEvent((event) => {
      if (event.kind === 'client-certs-revoked' || event.kind === 'node-removed')
        this.#revocationsChanged();
      if (event.kind === 'cluster') {
        this.#followRoot(event.cluster);
        this.#maybeRewrapKeys(event.cluster.unlockKey);
        this.#run?.dekRotation.request(event.cluster.dekRotations ?? 0);
      } else {
        const own = event.kind === 'node' && event.node.id === this.state.nodeId;
        if (own) this.#checkOwnRole(event.node.role);
        // While catching up, this member replays history: a promoted worker's own record says
        // worker there. Whether it must leave is decided on what the store says once caught up.
        if (!own || this.#caughtUp || event.node.role === 'manager')
          this.#run?.duties.storeEvent(event);
      }
    });
  }

  #revocationsChanged(): void {
    if (this.#revocationListeners.size === 0) return;
    queueMicrotask(() => {
      for (const listener of this.#revocationListeners) listener();
    });
  }

  /** Every manager keeps its keys file wrapped by the cluster's current unlock key. */
  #maybeRewrapKeys(kek: Uint8Array | null): void {
    const same =
      kek === null ? this.#kek === null : this.#kek !== null && constantTimeEqual(kek, this.#kek);
    const file = this.#run?.keysFile;
    if (same || !file) return;
    this.#kek = kek && kek.slice();
    void file.rewrap(this.#kek).catch(() => {}); // a failed write goes to onFatal
  }

  /** Where this node's agent looks for the dispatcher: the leader, then every manager. */
  #managerAddrs(): string[] {
    const raft = this.#run?.raft;
    if (!raft) return [];
    const leader = raft.core.leader;
    const addrs = [...raft.store.nodes()]
      .filter((n) => n.role === 'manager')
      .map((n) => ({ id: n.id as string, addr: n.addr }));
    addrs.sort((a, b) => Number(b.id === leader) - Number(a.id === leader));
    return addrs.map((a) => a.addr);
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
    const raft = this.#run?.raft;
    if (!raft) return false;
    const { voters, learners } = raft.core.conf;
    const id = nodeId as MemberId;
    return voters.includes(id) || learners.includes(id) || this.currentRole(nodeId) !== 'worker';
  }

  /** The role a node may act in now: a certificate's role is worth nothing once the store says otherwise. */
  currentRole(nodeId: string): 'manager' | 'worker' | undefined {
    const node = this.#run?.raft.store.node(nodeId);
    return node && node.role !== 'admin' ? node.role : undefined;
  }

  // --- Raft between managers -----------------------------------------------------------------

  raftReceive(from: Identity, body: Uint8Array): void {
    if (!from.speaksRaft)
      throw new SecretdError('forbidden', 'Permission denied: only managers speak Raft');
    const raft = this.#running().raft;
    for (const message of decodeMessages(body)) {
      // A manager speaks only for itself: the sender named in the message must be the certificate's node.
      if (message.from !== from.nodeId || message.to !== this.state.nodeId)
        throw new SecretdError(
          'forbidden',
          'Permission denied: Raft message addressed or signed for another member',
        );
      raft.step(message);
    }
  }

  openSession(from: Identity, claim?: SessionClaim): ReadableStream<Uint8Array> {
    return this.#activeDispatcher(
      'Not the leader: node sessions are served by the leader',
    ).openSession(from.nodeId, claim);
  }

  sessionHeartbeat(from: Identity): void {
    this.#activeDispatcher('Not the leader').heartbeat(from.nodeId);
  }

  async sessionStatus(from: Identity, updates: readonly TaskStatusUpdate[]): Promise<void> {
    await this.#activeDispatcher('Not the leader').reportStatus(from.nodeId, updates);
  }

  sessionExecResult(from: Identity, id: string, result: ExecResult): void {
    this.#activeDispatcher('Not the leader').execResult(from.nodeId, id, result);
  }

  #activeDispatcher(refusal: string): Dispatcher {
    const dispatcher = this.#run?.dispatcher;
    if (!dispatcher?.active) throw this.#router.notLeader(refusal);
    return dispatcher;
  }

  // --- Who holds what, nodes' certificates and locks: the leader's view (manager/holdings.ts) ---

  async secretHolders(ref: string): Promise<readonly SecretHolderView[]> {
    return this.#router.onLeader(
      async () => {
        const store = await this.#router.read();
        const held = this.#activeDispatcher('Not the leader').holdersOf(
          store.resolveSecret(ref).id,
        );
        return secretHoldersView(store, held);
      },
      { method: 'GET', path: `${holdingsPaths.internalHolders}/${encodeURIComponent(ref)}` },
    );
  }

  async nodeStates(): Promise<readonly NodeStateView[]> {
    return this.#router.onLeader(
      async () => {
        const store = await this.#router.read();
        const peers = this.#running().peers;
        return nodeStatesView(store, {
          selfId: this.state.nodeId,
          selfNotAfterMs:
            this.#certPem === '' ? null : parseIdentity(this.#certPem).notAfter.getTime(),
          sessions: this.#activeDispatcher('Not the leader').sessionCertificates(),
          probeLocked: (addr) => probeLocked(peers, addr),
        });
      },
      { method: 'GET', path: holdingsPaths.internalNodeStates },
    );
  }

  raftStatus(): unknown {
    const run = this.#running();
    return { ...run.raft.core.status(), Encryption: run.dekRotation.status() };
  }

  /**
   * `cluster rotate-keys`: every manager seals its log under a new DEK as it applies the request.
   * Answers once this manager has finished its own rotation.
   */
  async rotateDataKeys(): Promise<{ rotation: number; encryption: EncryptionStatus }> {
    await this.#router.propose({ op: 'dek-rotate', at: this.#now() });
    const cluster = clusterOf(await this.#router.read());
    const run = this.#running();
    await run.dekRotation.idle();
    return { rotation: cluster.dekRotations ?? 0, encryption: run.dekRotation.status() };
  }

  proposeForwarded(command: TaggedCommand): Promise<ApplyResult> {
    return this.#router.proposeForwarded(command);
  }

  /** The root the join tokens' digest is of: the cluster's, not the trust bundle of a rotation. */
  async joinCA(): Promise<string> {
    return (
      this.#run?.raft.store.cluster?.caCertPem ?? readTextFile(this.paths.caCert, this.#ports.fs)
    );
  }

  // --- Root CA rotation (README, "Root CA rotation"; certs/ca-rotation*.ts) --------------------

  /** `secretd ca rotate`, Docker's `swarm ca --rotate`: a new root, cross-signed by the current one. */
  async startRootRotation(options: { forceRotate?: number } = {}): Promise<RootRotationStatus> {
    const cluster = clusterOf(await this.#router.read());
    if (cluster.rootRotation) throw this.#rotationRunning(await this.rootRotationStatus());
    const rotation = await newRotation(cluster, {
      now: this.#options.now(),
      random: this.#options.random,
    });
    const result = await this.#router.propose({
      op: 'ca-rotation-start',
      at: this.#now(),
      rotation,
      ...(options.forceRotate === undefined ? {} : { forceRotate: options.forceRotate }),
    });
    this.#options.log?.(`secretd: root CA rotation ${result.id ?? rotation.id} started`);
    this.#rotationDriver?.pass();
    return this.rootRotationStatus();
  }

  async rootRotationStatus(): Promise<RootRotationStatus> {
    const store = await this.#router.read();
    const rotation = clusterOf(store).rootRotation;
    if (!rotation)
      return { inProgress: false, id: null, startedAt: null, converged: [], pending: [] };
    return {
      inProgress: true,
      id: rotation.id,
      startedAt: rotation.startedAt,
      ...rotationProgress(rotation, store.nodes()),
    };
  }

  /** A node's report (certs/report.ts): records which root signed the certificate it presented. */
  async reportNodeCertificate(from: Identity, presentedDer: Uint8Array | null): Promise<void> {
    if ((from.role !== 'manager' && from.role !== 'worker') || presentedDer === null)
      throw new SecretdError(
        'forbidden',
        'Permission denied: a node reports its certificate over its own mutual-TLS connection',
      );
    await this.#recordIssuer(from.nodeId, (cluster) => issuerKeyOfDer(presentedDer, cluster));
  }

  async #recordIssuer(
    nodeId: string,
    issuerOf: (cluster: ClusterRecord) => Promise<string | null>,
  ): Promise<void> {
    const store = await this.#router.read();
    const cluster = clusterOf(store);
    const node = store.node(nodeId);
    if (!node) throw new SecretdError('not_found', `Node ${nodeId.slice(0, 64)} not found`);
    const issuerKey = await issuerOf(cluster);
    if (issuerKey === null)
      throw new SecretdError(
        'invalid',
        `Node ${node.id}'s certificate is signed by neither the cluster's root nor the new root`,
      );
    if (nodeIssuerKey(node, cluster) === issuerKey) return;
    await this.#router.propose({ op: 'node-cert-issuer', at: this.#now(), id: node.id, issuerKey });
  }

  #rotationRunning(status: RootRotationStatus): SecretdError {
    return new SecretdError(
      'conflict',
      `A root CA rotation is already in progress (started at ${status.startedAt}): ${status.converged.length} of ${status.converged.length + status.pending.length} nodes converged`,
    );
  }

  /** Step 5 too: the leader drives rotations; this manager's own certificate follows the root. */
  #startRootRotation(run: Running): void {
    this.#rotationDriver = new RootRotationDriver({
      store: () => this.#run?.raft.store ?? null,
      leading: () => run.dispatcher.active,
      // This manager renews by itself when it applies a rotation (#followRoot).
      askRenewal: (nodeId, reason) =>
        nodeId === this.state.nodeId || run.dispatcher.askRenewal(nodeId, reason),
      propose: (command) => this.#router.propose(command),
      timers: this.#timers,
      random: this.#options.random,
      now: () => this.#now(),
      log: this.#options.log ?? (() => {}),
      // The roots of a store no event announced (a snapshot installed) are followed here too; a
      // manager renewed for the rotation but whose report was lost reports again.
      everyPass: () => {
        const store = this.#run?.raft.store;
        if (store?.cluster) this.#followRoot(store.cluster);
        const rotation = store?.cluster?.rootRotation;
        const self = store?.node(this.state.nodeId);
        if (!rotation || !self || self.certIssuerKey === rotation.issuerKey) return;
        void issuerKeyOf(this.#certPem, store!.cluster!)
          .then((key) => (key === rotation.issuerKey ? this.#reportOwnCertificate() : undefined))
          .catch(() => {});
      },
    });
    this.#rotationDriver.start();
    const cluster = run.raft.store.cluster;
    if (cluster) this.#followRoot(cluster);
    // A crash between a renewal and its report: the store learns which certificate is in use.
    void this.#reportOwnCertificate().catch(() => {});
  }

  /**
   * The cluster's root changed (a rotation started or finished, or a snapshot said so): this
   * manager trusts what the cluster trusts (certificates/ca.pem, the TLS server, the peer client),
   * and renews its own certificate once per rotation unless it already comes from the new root.
   */
  #followRoot(cluster: ClusterRecord): void {
    const run = this.#run;
    if (!run || this.#certPem === '') return;
    // The TLS server and the peer client opened with the roots read from the file.
    if (this.#trustApplied === '') this.#trustApplied = this.#caPem;
    const bundle = trustBundleOf(cluster);
    if (!samePemSet(bundle, this.#caPem)) {
      this.#caPem = bundle;
      void this.#writeTrust(bundle).catch((error: unknown) =>
        this.#options.log?.(
          `secretd: writing the trusted roots failed: ${(error as Error).message}`,
        ),
      );
    }
    if (this.#trustApplied !== this.#caPem) this.#applyTrust(run);
    const rotation = cluster.rootRotation;
    if (!rotation || !this.#renewer || this.#rootRenewalAsked === rotation.id) return;
    this.#rootRenewalAsked = rotation.id;
    void issuerKeyOf(this.#certPem, cluster).then((key) => {
      if (key !== rotation.issuerKey)
        this.#renewer?.renewNow(`the root CA is rotating (rotation ${rotation.id})`);
    });
  }

  /**
   * The roots into the TLS server and the peer client, with the certificate in use. Skipped while
   * the keys file already holds a renewed key whose certificate is not applied yet (a renewal
   * between persist and apply): applying that renewal takes the roots too.
   */
  #applyTrust(run: Running): void {
    const tlsKey = run.keysFile.keys.tlsKey;
    const key = keyPkcs8ToPem(tlsKey);
    try {
      if (!new X509Certificate(this.#certPem).checkPrivateKey(createPrivateKey(key))) return;
      run.peers.setTls({ ca: this.#caPem, cert: this.#certPem, key });
      for (const listener of this.#certificateListeners)
        listener({ certPem: this.#certPem, tlsKey, caPem: this.#caPem });
      this.#trustApplied = this.#caPem;
    } catch (error) {
      // Tried again on the rotation driver's next pass.
      this.#options.log?.(
        `secretd: taking the new trusted roots failed: ${(error as Error).message}`,
      );
    }
  }

  #writeTrust(bundle: string): Promise<void> {
    const write = this.#trustWrites.then(() =>
      writeFileAtomic(this.paths.caCert, bundle, 0o644, this.#ports.fs),
    );
    this.#trustWrites = write.catch(() => {});
    return write;
  }

  /** Records which root signed this manager's certificate in use (after a renewal, and at start). */
  async #reportOwnCertificate(): Promise<void> {
    const certPem = this.#certPem;
    await this.#recordIssuer(this.state.nodeId, (cluster) => issuerKeyOf(certPem, cluster));
  }

  async join(request: JoinRequest): Promise<JoinAnswer> {
    const store = await this.#router.read();
    const cluster = clusterOf(store);
    const issued = await issueJoin(cluster, request, {
      random: this.#options.random,
      now: this.#options.now(),
      idTaken: (id) => store.node(id) !== undefined || store.isRemovedNode(id),
    });
    await this.#router.propose({
      op: 'node-add',
      at: this.#now(),
      node: {
        id: issued.nodeId,
        role: issued.role,
        hostname: request.hostname,
        addr: issued.addr,
        ...(request.resources ? { resources: request.resources } : {}),
      },
    });
    const managers = [...store.nodes()]
      .filter((n) => n.role === 'manager')
      .map((n) => ({ ID: n.id as string, Addr: n.addr }));
    return {
      NodeID: issued.nodeId,
      Role: issued.role,
      ClusterID: cluster.id,
      Certificate: issued.certPem,
      CA: cluster.caCertPem,
      BootstrapVoters: [...this.state.bootstrapVoters],
      Managers: managers,
      UnlockKey:
        issued.role === 'manager' && cluster.unlockKey ? toBase64(cluster.unlockKey) : null,
    };
  }

  async renewNodeCertificate(
    from: Identity,
    request: RenewalRequest,
  ): Promise<{ certPem: string; caPem: string }> {
    const store = await this.#router.read();
    const cluster = clusterOf(store);
    const certPem = await issueRenewal(request, {
      cluster,
      callerId: from.nodeId,
      node: store.node(from.nodeId),
      removed: store.isRemovedNode(from.nodeId),
      random: this.#options.random,
      now: this.#options.now(),
    });
    // The roots the node trusts from now on: both during a root rotation.
    return { certPem, caPem: trustBundleOf(cluster) };
  }

  isRemovedNode(nodeId: string): boolean {
    return this.#run?.raft.store.isRemovedNode(nodeId) ?? false;
  }

  // --- Services, tasks, exec, images ---------------------------------------------------------

  async listServices(): Promise<readonly ServiceRecord[]> {
    return [...(await this.#router.read()).workloads.services.values()];
  }

  async getService(ref: string): Promise<ServiceRecord> {
    return resolveService(await this.#router.read(), ref);
  }

  async createService(spec: ServiceSpecInput): Promise<string> {
    const store = await this.#router.read();
    if (store.workloads.serviceByName(spec.name))
      throw new SecretdError('conflict', `Service ${spec.name} already exists`);
    const result = await this.#router.propose({
      op: 'service-create',
      at: this.#now(),
      id: newId(this.#options.random),
      spec: resolveSpecSecrets(store, spec),
    });
    return result.id!;
  }

  async updateService(ref: string, expectedIndex: number, spec: ServiceSpecInput): Promise<void> {
    const store = await this.#router.read();
    const service = resolveService(store, ref);
    await this.#router.propose({
      op: 'service-update',
      at: this.#now(),
      id: service.id,
      expectedIndex,
      spec: resolveSpecSecrets(store, spec),
    });
  }

  async removeService(ref: string): Promise<void> {
    const service = resolveService(await this.#router.read(), ref);
    await this.#router.propose({ op: 'service-remove', at: this.#now(), id: service.id });
  }

  async listTasks(filters: ReadonlyMap<string, readonly string[]>): Promise<readonly TaskRecord[]> {
    return filterTasks(await this.#router.read(), filters);
  }

  async getTask(ref: string): Promise<TaskRecord> {
    return resolveTask(await this.#router.read(), ref);
  }

  /** Runs a command in a task's container wherever it runs: here, or relayed over its node's session. */
  async exec(taskRef: string, argv: readonly string[]): Promise<ExecResult> {
    const task = resolveTask(await this.#router.read(), taskRef);
    // exec proposes nothing: its record (the gate's) names the task, never the command run.
    const audit = auditContext.current();
    if (audit) audit.object = { id: task.id };
    if (task.nodeId === null)
      throw new SecretdError('conflict', `Task ${taskRef} is not placed on a node yet`);
    if (task.nodeId === this.state.nodeId && this.#agent) return this.#agent.exec(task.id, argv);
    const dispatcher = this.#run?.dispatcher;
    if (dispatcher?.active) return dispatcher.exec(task.nodeId, task.id, argv, execTimeoutMs);
    return this.#router.onLeader(() => this.exec(task.id, argv), {
      method: 'POST',
      path: peerPaths.internalExec,
      body: { Task: task.id, Cmd: argv },
    });
  }

  async importImage(name: string, path: string): Promise<{ Name: string }> {
    const executor = this.#options.executor;
    if (!executor)
      throw new SecretdError('unimplemented', 'This node runs no tasks, so it keeps no images');
    const image = await executor.images.importImage(name, path);
    return { Name: image.name };
  }

  // --- Nodes ---------------------------------------------------------------------------------

  async listNodes(): Promise<readonly NodeView[]> {
    return this.#router.onLeader(
      async () => {
        const store = await this.#router.read();
        const context = this.#viewContext(store);
        return [...store.nodes()].map((n) =>
          nodeView(n, { ...context, tls: this.#tlsInfo(store, n) }),
        );
      },
      { method: 'GET', path: peerPaths.internalNodes },
    );
  }

  async getNode(ref: string): Promise<NodeView> {
    return this.#router.onLeader(
      async () => {
        const store = await this.#router.read();
        const node = resolveNode(store, ref);
        return nodeView(node, { ...this.#viewContext(store), tls: this.#tlsInfo(store, node) });
      },
      { method: 'GET', path: `${peerPaths.internalNodes}/${encodeURIComponent(ref)}` },
    );
  }

  async updateNode(ref: string, expectedIndex: number, update: NodeUpdate): Promise<void> {
    await this.#router.onLeader(
      async () => {
        const store = await this.#router.read();
        const node = resolveNode(store, ref);
        if (update.role === 'worker' && node.role === 'manager')
          this.#checkCanLoseManager(store, node, 'demote');
        await this.#router.propose({
          op: 'node-update',
          at: this.#now(),
          id: node.id,
          expectedIndex,
          ...update,
        });
        return null;
      },
      {
        method: 'POST',
        path: `${peerPaths.internalNodes}/${encodeURIComponent(ref)}/update`,
        body: { ExpectedIndex: expectedIndex, Update: update },
      },
    );
  }

  async removeNode(ref: string, force: boolean): Promise<void> {
    await this.#router.onLeader(
      async () => {
        const store = await this.#router.read();
        const node = resolveNode(store, ref);
        const view = nodeView(node, this.#viewContext(store));
        if (node.role === 'manager' && !force) {
          throw new SecretdError(
            'invalid',
            `Node ${node.id} is a cluster manager: demote it before removing it (secretd node demote ${node.id}), or use --force if it is gone for good`,
          );
        }
        if (node.role === 'manager') this.#checkCanLoseManager(store, node, 'remove');
        else if (view.state === 'ready' && !force)
          throw new SecretdError(
            'invalid',
            `Node ${node.id} is not down and can't be removed: stop it first, or use --force`,
          );
        await this.#router.propose({ op: 'node-remove', at: this.#now(), ids: [node.id] });
        return null;
      },
      {
        method: 'DELETE',
        path: `${peerPaths.internalNodes}/${encodeURIComponent(ref)}?force=${force}`,
      },
    );
  }

  #checkCanLoseManager(store: Store, node: NodeRecord, action: 'demote' | 'remove'): void {
    const managers = [...store.nodes()].filter((n) => n.role === 'manager');
    if (managers.length <= 1)
      throw new SecretdError(
        'invalid',
        `Cannot ${action} node ${node.id}: it is the last manager of the cluster`,
      );
    const status = this.#running().raft.core.status();
    const progress = this.#activeProgress(status);
    if (
      !progress ||
      !quorumSurvivesRemoval({ self: status.id, conf: status.conf, progress }, node.id)
    ) {
      throw new SecretdError(
        'invalid',
        `Cannot ${action} node ${node.id}: the managers left could not form a quorum (too few of them are reachable)`,
      );
    }
  }

  /** The Raft status and what the transport saw, read once for a whole list of node views. */
  #viewContext(store: Store): NodeViewContext {
    const status = this.#running().raft.core.status();
    return {
      status,
      activeIds: activeIds(this.#activeProgress(status)),
      selfId: this.state.nodeId,
      tls: this.#tlsInfo(store),
    };
  }

  /** The leader's progress, a follower counted active also when the transport exchanged with it within two election timeouts. */
  #activeProgress(status: RaftStatus): ReturnType<typeof activeProgress> {
    const windowMs = 2 * raftElectionTicks * this.#tickMs;
    const transport = this.#run?.transport;
    return activeProgress(status, (id) => transport?.reachable(id, windowMs) === true);
  }

  /** The CA as Docker's node TLS info shows it, worked out once per CA certificate. */
  #tlsInfo(store: Store, node?: NodeRecord): NodeView['tls'] {
    const cluster = clusterOf(store);
    const caPem = cluster.caCertPem;
    if (this.#tlsInfoCache?.caPem !== caPem) {
      const info = issuerInfo(caPem);
      this.#tlsInfoCache = {
        caPem,
        info: {
          trustRoot: caPem,
          issuerSubject: toBase64(info.subjectDer),
          issuerPublicKey: toBase64(info.publicKeyDer),
        },
      };
    }
    // Per node, as Docker's: the key that signed the certificate it reported using (both roots
    // share the subject `secretd-ca`); the trust root is the cluster's.
    const info = this.#tlsInfoCache.info;
    return node ? { ...info, issuerPublicKey: nodeIssuerKey(node, cluster) } : info;
  }

  // --- Backend: cluster and secrets ----------------------------------------------------------

  localContainers(): LocalContainers | null {
    return this.#agent?.containers ?? null;
  }

  localGrants(): readonly GrantedSecretInfo[] | null {
    return this.#agent?.granted.list() ?? null;
  }

  async grantSecret(
    ref: string,
    constraints: readonly string[],
    version: number | null,
  ): Promise<{ secret: SecretRecord; changed: boolean }> {
    const secret = (await this.#router.read()).resolveSecret(ref);
    const result = await this.#router.propose({
      op: 'secret-grant',
      at: this.#now(),
      id: secret.id,
      constraints: [...constraints],
      version,
    });
    return {
      secret: (await this.#router.read()).resolveSecret(secret.id),
      changed: result.changed ?? true,
    };
  }

  async ungrantSecret(ref: string, constraints: readonly string[]): Promise<SecretRecord> {
    const secret = (await this.#router.read()).resolveSecret(ref);
    await this.#router.propose({
      op: 'secret-ungrant',
      at: this.#now(),
      id: secret.id,
      constraints: [...constraints],
    });
    return (await this.#router.read()).resolveSecret(secret.id);
  }

  summary(): NodeSummary {
    return nodeSummary({
      state: this.state,
      store: this.#run?.raft.store,
      locked: this.locked,
      hostname: hostname(),
      agentSecrets: this.#agent?.secretCounts() ?? { received: 0, held: 0 },
    });
  }

  async listSecrets(): Promise<readonly SecretRecord[]> {
    return [...(await this.#router.read()).secrets()];
  }

  async getSecret(ref: string): Promise<SecretRecord> {
    return (await this.#router.read()).resolveSecret(ref);
  }

  /** Zeroes `spec.data` once the write is done (the log entry holds its own copy). */
  async createSecret(spec: SecretSpecInput): Promise<string> {
    try {
      const store = this.#running().raft.store;
      if (store.secretByName(spec.name))
        throw new SecretdError('conflict', `Secret ${spec.name} already exists`);
      // The API's decoded bytes go into the log entry as they are (encodeCommand copies them once).
      const result = await this.#router.propose({
        op: 'secret-create',
        at: this.#now(),
        id: newId(this.#options.random),
        name: spec.name,
        labels: spec.labels,
        data: spec.data,
      });
      return result.id!;
    } finally {
      spec.data.fill(0);
    }
  }

  async updateSecret(
    ref: string,
    expectedIndex: number,
    spec: { name: string; labels: Labels; data: Uint8Array | null },
  ): Promise<void> {
    const secret = (await this.#router.read()).resolveSecret(ref);
    const latest = secret.versions.at(-1)!.data;
    if (
      spec.name !== secret.name ||
      (spec.data !== null && !constantTimeEqual(spec.data, latest))
    ) {
      throw new SecretdError(
        'invalid',
        `Cannot update secret ${secret.name}: only updates to Labels are allowed`,
      );
    }
    await this.#router.propose({
      op: 'secret-update',
      at: this.#now(),
      id: secret.id,
      expectedIndex,
      labels: spec.labels,
    });
  }

  async removeSecret(ref: string): Promise<void> {
    const secret = (await this.#router.read()).resolveSecret(ref);
    await this.#router.propose({ op: 'secret-remove', at: this.#now(), ids: [secret.id] });
  }

  async listSecretVersions(
    ref: string,
  ): Promise<{ secret: SecretRecord; versions: SecretVersionView[] }> {
    const store = await this.#router.read();
    const secret = store.resolveSecret(ref);
    return { secret, versions: secretVersionViews(store, secret) };
  }

  async addSecretVersion(
    ref: string,
    data: Uint8Array,
    ifVersion: number | null,
  ): Promise<VersionOutcome> {
    try {
      const secret = (await this.#router.read()).resolveSecret(ref);
      const newest = secret.versions.at(-1)!;
      // Equal data is a no-op: answered here without a log entry (the store would decide the same).
      if (
        (ifVersion === null || ifVersion === newest.version) &&
        constantTimeEqual(data, newest.data)
      )
        return { version: newest.version, changed: false };
      const result = await this.#router.propose({
        op: 'secret-version-add',
        at: this.#now(),
        id: secret.id,
        data,
        ifVersion,
      });
      return { version: result.version!, changed: result.changed ?? true };
    } finally {
      data.fill(0);
    }
  }

  async rollbackSecret(ref: string, to: number, ifVersion: number | null): Promise<VersionOutcome> {
    const secret = (await this.#router.read()).resolveSecret(ref);
    const result = await this.#router.propose({
      op: 'secret-rollback',
      at: this.#now(),
      id: secret.id,
      to,
      ifVersion,
    });
    return { version: result.version!, changed: result.changed ?? true };
  }

  async removeSecretVersion(ref: string, version: number): Promise<void> {
    const secret = (await this.#router.read()).resolveSecret(ref);
    await this.#router.propose({
      op: 'secret-version-remove',
      at: this.#now(),
      id: secret.id,
      version,
    });
  }

  async secretSettings(): Promise<{ versionsKept: number }> {
    return {
      versionsKept:
        clusterOf(await this.#router.read()).secretVersionsKept ?? secretVersionsKeptDefault,
    };
  }

  async updateSecretSettings(settings: { versionsKept: number }): Promise<void> {
    await this.#router.propose({
      op: 'cluster-update',
      at: this.#now(),
      expectedIndex: null,
      secretVersionsKept: settings.versionsKept,
    });
  }

  async cluster(): Promise<ClusterRecord> {
    return clusterOf(await this.#router.read());
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
    const expiry = update.nodeCertExpiryMs;
    if (expiry !== undefined) checkExpiryWithinCA(expiry, cluster.caCertPem, this.#options.now());
    await this.#router.propose({
      op: 'cluster-update',
      at: this.#now(),
      expectedIndex: update.expectedIndex,
      ...(update.labels ? { labels: update.labels } : {}),
      ...(expiry !== undefined ? { nodeCertExpiryMs: expiry } : {}),
      ...(rotateTokens
        ? {
            joinTokens: {
              worker: update.rotateWorkerToken
                ? generateJoinToken(caDer, random)
                : cluster.joinTokens.worker,
              manager: update.rotateManagerToken
                ? generateJoinToken(caDer, random)
                : cluster.joinTokens.manager,
            },
          }
        : {}),
      ...(unlockKey !== undefined ? { unlockKey } : {}),
    });
    // Docker's `swarm ca --rotate`: after the rest, whose entry checked the version the client read.
    if (update.forceRotate !== undefined)
      await this.startRootRotation({ forceRotate: update.forceRotate });
    // Answer only once this manager has applied the change and re-wrapped its keys file.
    await this.#router.read();
    await this.#running().keysFile.settled();
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

  async issueClientCertificate(
    name: string,
    csrPem: string,
    options: {
      readonly lifetimeMs?: number;
      readonly role?: ClientCertRole;
      readonly scope?: readonly string[];
    } = {},
  ): Promise<IssuedClientCertificate> {
    return issueClientCertificate(this.#clientCertsContext(), {
      name,
      csrPem,
      ...(options.lifetimeMs === undefined ? {} : { lifetimeMs: options.lifetimeMs }),
      ...(options.role === undefined ? {} : { role: options.role }),
      ...(options.scope === undefined ? {} : { scope: options.scope }),
    });
  }

  updateClientCertificate(
    ref: string,
    update: { readonly role: ClientCertRole; readonly scope: readonly string[] },
  ): Promise<ClientCertUpdateOutcome> {
    return updateClientCertificate(this.#clientCertsContext(), ref, update);
  }

  clientCertificate(serial: string): ClientCertRecord | undefined {
    return clientCertificateRecord(this.#run?.raft.store ?? null, serial);
  }

  async listClientCertificates(): Promise<readonly ClientCertRecord[]> {
    return [...(await this.#router.read()).clientCerts.all()];
  }

  revokeClientCertificates(ref: string): Promise<RevocationOutcome> {
    return revokeClientCertificates(this.#clientCertsContext(), ref);
  }

  clientCertificateRefusal(serial: string): string | null {
    return clientCertificateRefusal(this.#run?.raft.store ?? null, serial);
  }

  onRevocations(listener: () => void): () => void {
    this.#revocationListeners.add(listener);
    return () => this.#revocationListeners.delete(listener);
  }

  #clientCertsContext(): ClientCertsContext {
    return {
      read: async () => {
        // Linearizable whatever the request asked: a revocation is confirmed on fresh state only.
        const raft = this.#running().raft;
        await raft.linearizableRead();
        return raft.store;
      },
      propose: (command) => this.#router.propose(command),
      now: () => this.#options.now(),
      random: this.#options.random,
      selfId: this.state.nodeId,
      peers: () => this.#running().peers,
    };
  }

  #now(): string {
    return this.#options.now().toISOString();
  }
}

function clusterOf(store: Store): ClusterRecord {
  if (!store.cluster)
    throw new SecretdError('unavailable', 'This manager has not caught up with the cluster yet');
  return store.cluster;
}

/** A specific IP to originate peer connections from; none for a wildcard or a host name. */
function localAddressOf(advertiseAddr: string): string | undefined {
  const { host } = splitHostPort(advertiseAddr);
  return isIP(host) && host !== '0.0.0.0' && host !== '::' ? host : undefined;
}

/** A number in [0, 1) from four random bytes. */
function unitInterval(random: Random): number {
  const bytes = random(4);
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0) / 2 ** 32;
}
