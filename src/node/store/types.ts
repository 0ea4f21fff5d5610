/**
 * The replicated state: what every manager holds in memory, applies from committed Raft entries and
 * writes (sealed) into snapshots. Secret values live only here, in the sealed log and in snapshots.
 */
import type { Role } from '../../crypto/ca.ts';
import { nodeCertLifetimeMs } from '../../limits.ts';
import type { RootRotation } from './root-rotation.ts';
import type { SecretGrant } from './grants.ts';

export type SecretId = string & { readonly __brand: 'SecretId' };
export type NodeId = string & { readonly __brand: 'NodeId' };
export type Labels = Readonly<Record<string, string>>;
export type Availability = 'active' | 'pause' | 'drain';

/**
 * One immutable value of a secret. A secret holds one or more, numbered from 1 without reuse; the
 * newest is what unpinned references follow. No hash of a value is kept anywhere: a hash of a short
 * password is a way to guess it.
 */
export interface SecretVersion {
  readonly version: number;
  readonly data: Uint8Array;
  readonly createdAt: string;
}

export interface SecretRecord {
  readonly id: SecretId;
  readonly name: string;
  readonly labels: Labels;
  readonly createdAt: string;
  readonly updatedAt: string;
  /** The Raft index of the last change: Docker's `Version.Index`, the compare-and-set token. */
  readonly metaIndex: number;
  readonly versions: readonly SecretVersion[];
  /** Which nodes may hold it outside of services (grants.ts); absent: none. */
  readonly grants?: readonly SecretGrant[];
}

export interface NodeRecord {
  readonly id: NodeId;
  readonly role: Role;
  readonly hostname: string;
  readonly addr: string;
  readonly resources?: { readonly nanoCpus: number; readonly memoryBytes: number };
  readonly availability: Availability;
  readonly labels: Labels;
  /** Written by the leader's dispatcher: ready while the node keeps its session, down after missed heartbeats. */
  readonly status: NodeStatus;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly metaIndex: number;
  /**
   * The key (SPKI DER, base64) that signed the certificate the node uses, as it last reported
   * (root-rotation.ts); absent: never reported, a certificate from the cluster's current root.
   */
  readonly certIssuerKey?: string;
}

export type NodeStatus = 'unknown' | 'ready' | 'down';

export interface ClusterRecord {
  readonly id: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly metaIndex: number;
  readonly caCertPem: string;
  /** The root CA's private key, PKCS#8. Only in the sealed store, never in a file of its own. */
  readonly caKey: Uint8Array;
  readonly joinTokens: { readonly worker: string; readonly manager: string };
  /** The KEK that wraps every manager's DEK and TLS key; null when autolock is off. */
  readonly unlockKey: Uint8Array | null;
  readonly labels: Labels;
  /** Versions kept per secret (the newest ones, plus any a pinned reference uses); absent: the default. */
  readonly secretVersionsKept?: number;
  /**
   * DEK rotations asked of every manager (`cluster rotate-keys`, and each time autolock is turned
   * on); absent: 0. A manager whose keys file answers fewer rotates its DEK.
   */
  readonly dekRotations?: number;
  /** How long node certificates issued from now on are valid (`cluster update --cert-expiry`); absent: the default. */
  readonly nodeCertExpiryMs?: number;
  /** Audit records kept (`cluster update --audit-kept`); absent: the default (limits.ts auditKeptDefault). */
  readonly auditKept?: number;
  /** A root CA rotation in progress (root-rotation.ts); absent: none. */
  readonly rootRotation?: RootRotation;
  /** Docker's `Spec.CAConfig.ForceRotate` as last seen: a client sending another value asks for a rotation. */
  readonly forceRotate?: number;
}

/** The validity of node certificates issued now: the cluster's setting, else 90 days. */
export function nodeCertExpiryOf(cluster: ClusterRecord): number {
  return cluster.nodeCertExpiryMs ?? nodeCertLifetimeMs;
}

export type ServiceId = string & { readonly __brand: 'ServiceId' };
export type TaskId = string & { readonly __brand: 'TaskId' };

/**
 * What a running task gets when the version it follows changes: the file changes in place and
 * nothing else (`none`), the file changes and then a signal goes to the container's main process,
 * or the task is replaced (rolling, under the service's update settings).
 */
export type OnUpdate =
  | { readonly kind: 'none' }
  | { readonly kind: 'signal'; readonly signal: string }
  | { readonly kind: 'restart' };

/** A service's reference to a secret: which one, and where and how it appears in the container. */
export interface SecretReference {
  readonly secretId: string;
  readonly secretName: string;
  /**
   * A pinned version (`source=db_pass@3`): it never changes. Absent: the reference follows the
   * newest version. In a task's copy of the spec, the store also pins references that cannot change
   * under a running task (on-update restart, absolute targets) to the version the task started with.
   */
  readonly version?: number;
  /** Absent means `none` (Docker clients never send it). */
  readonly onUpdate?: OnUpdate;
  /** A file name under /run/secrets, or an absolute path. */
  readonly target: string;
  readonly uid: string;
  readonly gid: string;
  readonly mode: number;
}

/** What a task runs; copied into each task so a running task never changes under it. */
export interface ContainerSpec {
  readonly image: string;
  readonly command: readonly string[];
  readonly args: readonly string[];
  readonly env: readonly string[];
  readonly secrets: readonly SecretReference[];
}

export type ServiceMode =
  { readonly kind: 'replicated'; readonly replicas: number } | { readonly kind: 'global' };

export interface UpdateConfig {
  /** Tasks replaced at once (0: all). */
  readonly parallelism: number;
  /** The wait between batches as the orchestrator counts it: Docker's Delay rounded up to whole milliseconds. */
  readonly delayMs: number;
  /** Docker's Delay exactly as sent, in nanoseconds, when it is not a whole number of milliseconds (absent: delayMs × 10⁶). */
  readonly delayNs?: number;
  /**
   * Docker's FailureAction as sent, when it is `continue` (absent: `pause`). secretd does the same
   * for both: a batch waits while a failing task restarts with back-off, and goes on once it runs.
   */
  readonly failureAction?: 'continue';
}

export interface ServiceSpec {
  readonly name: string;
  readonly labels: Labels;
  readonly container: ContainerSpec;
  readonly mode: ServiceMode;
  readonly update: UpdateConfig;
  /** Docker's `TaskTemplate.ForceUpdate`: a counter whose change alone rolls the tasks (`service update --force`). */
  readonly forceUpdate?: number;
  /**
   * Docker's `TaskTemplate.Placement.Constraints`, normalized (node-constraints.ts), in the order
   * given: every one must hold on a node for the scheduler to place a task there. Absent: none.
   */
  readonly constraints?: readonly string[];
}

export interface ServiceRecord {
  readonly id: ServiceId;
  readonly spec: ServiceSpec;
  /** Bumped on every spec change: tasks of an older spec version are rolled. */
  readonly specVersion: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly metaIndex: number;
}

export type TaskState =
  | 'new'
  | 'pending'
  | 'assigned'
  | 'preparing'
  | 'starting'
  | 'running'
  | 'complete'
  | 'shutdown'
  | 'failed'
  | 'rejected'
  | 'orphaned';
export type DesiredState = 'running' | 'shutdown';

export interface TaskStatus {
  readonly state: TaskState;
  readonly message: string;
  readonly error: string;
  readonly exitCode: number | null;
  readonly at: string;
  /** Which version of each secret (by id) the task holds; never the data. */
  readonly secretVersions: Readonly<Record<string, number>>;
}

export interface TaskRecord {
  readonly id: TaskId;
  readonly serviceId: ServiceId;
  /** Replica slot (1…N) of a replicated service; 0 for a global service's tasks. */
  readonly slot: number;
  /** Where it runs: chosen by the scheduler (null until then), fixed for a global task. */
  readonly nodeId: string | null;
  readonly specVersion: number;
  readonly container: ContainerSpec;
  readonly desiredState: DesiredState;
  readonly status: TaskStatus;
  readonly createdAt: string;
  readonly metaIndex: number;
}

/** Terminal states: the task will not run again (the orchestrator makes a new one if needed). */
export const terminalTaskStates: ReadonlySet<TaskState> = new Set([
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'orphaned',
]);

/** A service spec as a client gives it: its secret references by name, their ids not yet resolved. */
export type ServiceSpecInput = Omit<ServiceSpec, 'container'> & {
  container: Omit<ServiceSpec['container'], 'secrets'> & { secrets: SecretRefInput[] };
};
export interface SecretRefInput {
  readonly secretId: string | null;
  readonly secretName: string;
  readonly target: string;
  readonly uid: string;
  readonly gid: string;
  readonly mode: number;
  readonly version?: number;
  readonly onUpdate?: OnUpdate;
}
