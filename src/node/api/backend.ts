/** What the HTTP API needs from a node. The manager implements it; API tests may use a real manager. */
import type { LocalContainers } from '../task-dispatch/index.ts';
import type { GrantedSecretInfo } from '../task-dispatch/index.ts';
import type { Role } from '../../crypto/ca.ts';
import type { ApplyResult, ClientCertRecord, ClientCertRole } from '../store/index.ts';
import type { RenewalRequest } from '../certs/index.ts';
import type { TaggedCommand, TaskStatusUpdate } from '../store/index.ts';
import type { ExecResult, SessionClaim } from '../task-dispatch/index.ts';
import type { JoinRequest } from '../join/index.ts';
import type { JoinAnswer } from '../join/index.ts';
import type {
  Availability,
  ClusterRecord,
  Labels,
  SecretRecord,
  ServiceRecord,
  TaskRecord,
} from '../store/index.ts';
import type { ServiceSpecInput } from './service-shapes.ts';
import type { AuditBackend } from '../audit/index.ts';
import type { NodeStateView, SecretHolderView } from './routes/holdings.ts';

/**
 * Who is calling: a node's certificate (manager, worker), a client certificate (its role and scope
 * are its record's in the store, read on every request: `ca update` takes effect on the next one;
 * one issued before records existed has none and stays admin), root on the local admin socket
 * (admin), or a TLS connection without a certificate (anonymous: allowed only to join).
 */
export interface Identity {
  readonly role: ClientCertRole | Exclude<Role, 'admin'> | 'anonymous';
  /** The certificate's CN (a node's id, a client certificate's name); 'local' on the admin socket. */
  readonly nodeId: string;
  readonly via: 'socket' | 'tls';
  /**
   * Raft frames from this caller reach the Raft core (Backend.speaksRaft): a manager certificate,
   * not removed, whose node is in this manager's Raft configuration (a manager being demoted keeps
   * speaking Raft until it leaves: its vote may be needed to remove it) or not known as a worker.
   */
  readonly speaksRaft?: boolean;
  /** A client certificate's serial (lower-case hex), checked against revocations on every request. */
  readonly serial?: string;
  /** A client certificate's name (its CN). */
  readonly name?: string;
  /** A writer's scope globs (access.ts): empty or absent, every name. */
  readonly scope?: readonly string[];
}

/** A client certificate just issued (and recorded), with its CA. */
export interface IssuedClientCertificate {
  readonly certPem: string;
  readonly caPem: string;
  readonly record: ClientCertRecord;
  /** Managers that could not confirm, in time, that they list its record (they may take it for admin until they do). */
  readonly unconfirmed: RevocationOutcome['unconfirmed'];
}

/** What `ca update` did: the records after, and the managers that could not confirm them in time. */
export interface ClientCertUpdateOutcome {
  readonly certificates: readonly ClientCertRecord[];
  readonly unconfirmed: RevocationOutcome['unconfirmed'];
}

/** What a revocation did: the certificates it names, and the managers that could not confirm it. */
export interface RevocationOutcome {
  readonly certificates: readonly ClientCertRecord[];
  readonly unconfirmed: ReadonlyArray<{
    readonly nodeId: string;
    readonly addr: string;
    readonly reason: string;
  }>;
}

export interface SecretSpecInput {
  readonly name: string;
  readonly labels: Labels;
  readonly data: Uint8Array;
}

/** One version of a secret as the API shows it: never its data. */
export interface SecretVersionView {
  readonly version: number;
  readonly createdAt: string;
  /** Services whose reference pins this version, or follows the newest (when this is it). */
  readonly services: ReadonlyArray<{
    readonly id: string;
    readonly name: string;
    readonly pinned: boolean;
  }>;
  /** Live tasks that hold this version now (as their status reports). */
  readonly tasks: ReadonlyArray<{ readonly id: string; readonly name: string }>;
}

export interface VersionOutcome {
  /** The newest version afterwards. */
  readonly version: number;
  /** False: the data equalled the newest version's, nothing was written. */
  readonly changed: boolean;
}

/** Where the root CA's rotation stands: every node listed (managers and workers) counts. */
export interface RootRotationStatus {
  readonly inProgress: boolean;
  readonly id: string | null;
  readonly startedAt: string | null;
  /** Nodes whose certificate comes from the new root. */
  readonly converged: readonly string[];
  readonly pending: readonly string[];
}

export interface SwarmUpdate {
  readonly expectedIndex: number;
  readonly labels?: Labels;
  readonly autolock?: boolean;
  readonly rotateWorkerToken: boolean;
  readonly rotateManagerToken: boolean;
  readonly rotateUnlockKey: boolean;
  /** A new validity for node certificates issued from now on (Docker's CAConfig.NodeCertExpiry). */
  readonly nodeCertExpiryMs?: number;
  /** Docker's CAConfig.ForceRotate when it changed: start a root CA rotation. */
  readonly forceRotate?: number;
}

export interface NodeSummary {
  readonly nodeId: string;
  readonly clusterId: string | null;
  readonly addr: string;
  readonly state: 'active' | 'locked' | 'inactive';
  readonly isManager: boolean;
  readonly hostname: string;
  readonly managers: number;
  readonly nodes: number;
  readonly secrets: number;
  /** This node's agent: secret deliveries received since it started, and secrets held in memory now (counts only). */
  readonly secretsReceived: number;
  readonly secretsHeld: number;
  /** Every manager's id and address (Docker's `Swarm.RemoteManagers`). */
  readonly remoteManagers: readonly { readonly nodeId: string; readonly addr: string }[];
  /** This node's tasks: not yet finished, and running (Docker's container counts, for `docker info`). */
  readonly tasks: { readonly live: number; readonly running: number };
  /** The cluster record (without keys, tokens or the CA key) when this manager has one and is unlocked. */
  readonly cluster: ClusterRecord | null;
}

export interface NodeView {
  readonly id: string;
  readonly metaIndex: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly role: Role;
  readonly availability: Availability;
  readonly labels: Labels;
  readonly hostname: string;
  readonly addr: string;
  readonly state: 'ready' | 'down' | 'unknown';
  readonly manager: {
    readonly leader: boolean;
    readonly reachability: 'reachable' | 'unreachable' | 'unknown';
  } | null;
  /** CPUs and memory as the node reported them when it joined; null for nodes that did not. */
  readonly resources: { readonly nanoCpus: number; readonly memoryBytes: number } | null;
  /** The cluster CA the node's certificate chains to (Docker's `Description.TLSInfo`), base64 DER. */
  readonly tls: {
    readonly trustRoot: string;
    readonly issuerSubject: string;
    readonly issuerPublicKey: string;
  };
}

export interface NodeUpdate {
  readonly role?: 'manager' | 'worker';
  readonly availability?: Availability;
  readonly labels?: Labels;
}

export interface Backend {
  readonly locked: boolean;
  /** The audit trail: where requests' own records go, and reading it (absent: nothing is audited, as in API tests without a manager). */
  readonly audit?: AuditBackend;
  summary(): NodeSummary;
  /** This node's agent's service for other engines' containers (local-containers.ts); null while no agent runs. */
  localContainers?(): LocalContainers | null;
  /** What this node's agent holds by grant (names and versions, never values); null while no agent runs. */
  localGrants?(): readonly GrantedSecretInfo[] | null;
  /**
   * A grant of the secret to the nodes matching every one of `constraints` (normalized), at
   * `version` or the newest; the same constraints again change only the version. The secret after it.
   */
  grantSecret(
    ref: string,
    constraints: readonly string[],
    version: number | null,
  ): Promise<{ readonly secret: SecretRecord; readonly changed: boolean }>;
  /** Removes the grant with exactly these constraints (`not_found` naming them); the secret after it. */
  ungrantSecret(ref: string, constraints: readonly string[]): Promise<SecretRecord>;
  /** Who holds secret `ref` now, as the leader's dispatcher sent it (routes/holdings.ts); metadata only. */
  secretHolders?(ref: string): Promise<readonly SecretHolderView[]>;
  /** Every node's session and certificate end, every manager's lock state (routes/holdings.ts). */
  nodeStates?(): Promise<readonly NodeStateView[]>;
  listSecrets(): Promise<readonly SecretRecord[]>;
  getSecret(ref: string): Promise<SecretRecord>;
  createSecret(spec: SecretSpecInput): Promise<string>;
  /** Docker's rule: only labels change; `data`, when given, must equal the current value. */
  updateSecret(
    ref: string,
    expectedIndex: number,
    spec: { name: string; labels: Labels; data: Uint8Array | null },
  ): Promise<void>;
  removeSecret(ref: string): Promise<void>;
  listSecretVersions(
    ref: string,
  ): Promise<{ readonly secret: SecretRecord; readonly versions: readonly SecretVersionView[] }>;
  /** A new version; `ifVersion` makes it compare-and-set (409 if the newest is another). */
  addSecretVersion(
    ref: string,
    data: Uint8Array,
    ifVersion: number | null,
  ): Promise<VersionOutcome>;
  rollbackSecret(ref: string, to: number, ifVersion: number | null): Promise<VersionOutcome>;
  removeSecretVersion(ref: string, version: number): Promise<void>;
  secretSettings(): Promise<{ readonly versionsKept: number }>;
  updateSecretSettings(settings: { readonly versionsKept: number }): Promise<void>;
  cluster(): Promise<ClusterRecord>;
  updateSwarm(update: SwarmUpdate): Promise<void>;
  /**
   * `cluster rotate-keys`: every manager rotates its DEK as it applies the request; answers once
   * this one has (Encryption as in the Raft status: the key id records are sealed with, and the
   * oldest key id left on disk).
   */
  rotateDataKeys(): Promise<{
    readonly rotation: number;
    readonly encryption: { readonly KeyId: number; readonly OldestKeyIdOnDisk: number };
  }>;
  unlockKey(): Promise<string>;
  unlock(keyText: string): Promise<void>;
  /**
   * Signs and records a client certificate valid `lifetimeMs` (default 90 days), with a role
   * (default admin) and a writer's scope globs (default none: every name).
   */
  issueClientCertificate(
    name: string,
    csrPem: string,
    options?: {
      readonly lifetimeMs?: number;
      readonly role?: ClientCertRole;
      readonly scope?: readonly string[];
    },
  ): Promise<IssuedClientCertificate>;
  /**
   * `ca update`: a new role and scope for the certificate with serial `ref`, or every live one named
   * `ref`; `not_found` naming an unknown one, `conflict` for a revoked one. Returns once every
   * manager lists the change (those that did not confirm in time are reported).
   */
  updateClientCertificate(
    ref: string,
    update: { readonly role: ClientCertRole; readonly scope: readonly string[] },
  ): Promise<ClientCertUpdateOutcome>;
  /** A client certificate's record by serial, or undefined: cheap (a Map lookup), called on every request. */
  clientCertificate(serial: string): ClientCertRecord | undefined;
  listClientCertificates(): Promise<readonly ClientCertRecord[]>;
  /** Revokes the certificate with serial `ref`, or every one named `ref`; returns once every manager refuses them. */
  revokeClientCertificates(ref: string): Promise<RevocationOutcome>;
  /** The refusal for a revoked client certificate serial, or null: cheap, called on every request. */
  clientCertificateRefusal(serial: string): string | null;
  /**
   * `listener` runs (outside the Raft loop) whenever revocations may have changed on this manager:
   * a revocation or a node removal applied, a snapshot installed. Returns how to stop listening.
   */
  onRevocations(listener: () => void): () => void;
  /** A node id whose node was removed: its certificate is refused from then on. */
  isRemovedNode(nodeId: string): boolean;
  /** The role the store gives a node now (a demoted manager's certificate still says manager). */
  currentRole(nodeId: string): 'manager' | 'worker' | undefined;
  /** Whether Raft frames from this node (holding a manager certificate, not removed) may reach the Raft core. */
  speaksRaft(nodeId: string): boolean;
  /** A node's new certificate for a new key, asked over its own mTLS connection (certs/issue-renewal.ts). */
  renewNodeCertificate(
    from: Identity,
    request: RenewalRequest,
  ): Promise<{ readonly certPem: string; readonly caPem: string }>;
  /**
   * Calls `listener` with each renewed certificate of this node, for the TLS server's new
   * connections, and with the roots to trust (`caPem`) whenever they change (a root CA rotation).
   */
  onNodeCertificate?(
    listener: (pair: {
      readonly certPem: string;
      readonly tlsKey: Uint8Array;
      readonly caPem?: string;
    }) => void,
  ): void;

  // The root CA's rotation (README, "Root CA rotation"; routes/ca-rotation.ts).
  /** Starts one; `conflict` naming the progress while one runs. `forceRotate`: Docker's counter that asked. */
  startRootRotation?(options?: { readonly forceRotate?: number }): Promise<RootRotationStatus>;
  rootRotationStatus?(): Promise<RootRotationStatus>;
  /** A node reports the certificate its connection presented as the one it uses now. */
  reportNodeCertificate?(from: Identity, presentedDer: Uint8Array | null): Promise<void>;

  // Joining and Raft between managers.
  joinCA(): Promise<string>;
  join(request: JoinRequest): Promise<JoinAnswer>;
  raftReceive(from: Identity, body: Uint8Array): void;
  /** This member's view of Raft, for operators: term, role, leader, commit, configuration, followers' progress. */
  raftStatus(): unknown;
  proposeForwarded(command: TaggedCommand): Promise<ApplyResult>;

  // The dispatcher (node certificates only; served by the leader).
  /** Throws `conflict` (409) while another process holds a live session for the same node id. */
  openSession(from: Identity, claim?: SessionClaim): ReadableStream<Uint8Array>;
  sessionHeartbeat(from: Identity): void;
  sessionStatus(from: Identity, updates: readonly TaskStatusUpdate[]): Promise<void>;
  sessionExecResult(from: Identity, id: string, result: ExecResult): void;

  // Services, tasks, exec, images.
  listServices(): Promise<readonly ServiceRecord[]>;
  getService(ref: string): Promise<ServiceRecord>;
  createService(spec: ServiceSpecInput): Promise<string>;
  updateService(ref: string, expectedIndex: number, spec: ServiceSpecInput): Promise<void>;
  removeService(ref: string): Promise<void>;
  listTasks(filters: ReadonlyMap<string, readonly string[]>): Promise<readonly TaskRecord[]>;
  getTask(ref: string): Promise<TaskRecord>;
  exec(taskRef: string, argv: readonly string[]): Promise<ExecResult>;
  importImage(name: string, path: string): Promise<{ Name: string }>;

  // Nodes.
  listNodes(): Promise<readonly NodeView[]>;
  getNode(ref: string): Promise<NodeView>;
  updateNode(ref: string, expectedIndex: number, update: NodeUpdate): Promise<void>;
  removeNode(ref: string, force: boolean): Promise<void>;
}
