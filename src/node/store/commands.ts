/**
 * Commands are what the store's Raft log carries. The proposer fills in everything that is not
 * deterministic (ids, timestamps, random tokens and keys) so that applying a command gives the same
 * state on every manager. Encoded as JSON with bytes in base64; the log seals it on disk.
 */
import type { Role } from '../../crypto/ca.ts';
import type { ContainerSpec, DesiredState, NodeStatus, ServiceSpec, TaskState } from './types.ts';
import { SecretdError } from '../../errors.ts';

export interface NodeSpec {
  readonly id: string;
  readonly role: Role;
  readonly hostname: string;
  readonly addr: string;
  /** What the node reported when it joined (absent for nodes of older versions). */
  readonly resources?: NodeResources;
}

export interface NodeResources {
  readonly nanoCpus: number;
  readonly memoryBytes: number;
}

export type Command =
  | {
      readonly op: 'cluster-init';
      readonly at: string;
      readonly clusterId: string;
      readonly caCertPem: string;
      readonly caKey: string; // base64 PKCS#8
      readonly joinTokens: { readonly worker: string; readonly manager: string };
      readonly unlockKey: string | null; // base64
      readonly node: NodeSpec;
    }
  | {
      readonly op: 'cluster-update';
      readonly at: string;
      readonly expectedIndex: number | null;
      readonly labels?: Readonly<Record<string, string>>;
      readonly joinTokens?: { readonly worker: string; readonly manager: string };
      /** Present to change it: base64 of a new KEK, or null to turn autolock off. */
      readonly unlockKey?: string | null;
      /** Present to change the version retention of every secret. */
      readonly secretVersionsKept?: number;
    }
  | {
      readonly op: 'secret-create';
      readonly at: string;
      readonly id: string;
      readonly name: string;
      readonly labels: Readonly<Record<string, string>>;
      readonly data: string; // base64
    }
  | { readonly op: 'secret-update'; readonly at: string; readonly id: string; readonly expectedIndex: number; readonly labels: Readonly<Record<string, string>> }
  | { readonly op: 'secret-remove'; readonly at: string; readonly ids: readonly string[] }
  /**
   * A new version of a secret's data. Data equal to the newest version's changes nothing (so a
   * deploy script can run again); `ifVersion` makes it compare-and-set against the newest version.
   */
  | { readonly op: 'secret-version-add'; readonly at: string; readonly id: string; readonly data: string; readonly ifVersion: number | null }
  /** Version `to`'s data becomes the newest version (a new number: history only grows). */
  | { readonly op: 'secret-rollback'; readonly at: string; readonly id: string; readonly to: number; readonly ifVersion: number | null }
  /** Drops one old version; refused for the newest and for one a pinned reference uses. */
  | { readonly op: 'secret-version-remove'; readonly at: string; readonly id: string; readonly version: number }
  | { readonly op: 'node-add'; readonly at: string; readonly node: NodeSpec }
  | {
      readonly op: 'node-update';
      readonly at: string;
      readonly id: string;
      readonly expectedIndex: number | null;
      readonly role?: Role;
      readonly availability?: 'active' | 'pause' | 'drain';
      readonly labels?: Readonly<Record<string, string>>;
      /** Set when a manager is recovered alone (--force-new-cluster): its new address, if it changed. */
      readonly addr?: string;
    }
  /** Removed nodes' ids are never reused and their certificates stop working at once. */
  | { readonly op: 'node-remove'; readonly at: string; readonly ids: readonly string[] }
  | { readonly op: 'node-status'; readonly at: string; readonly id: string; readonly status: NodeStatus }
  | { readonly op: 'service-create'; readonly at: string; readonly id: string; readonly spec: ServiceSpec }
  | { readonly op: 'service-update'; readonly at: string; readonly id: string; readonly expectedIndex: number; readonly spec: ServiceSpec }
  | { readonly op: 'service-remove'; readonly at: string; readonly id: string }
  /** The orchestrator's and scheduler's decisions: new tasks, placements, desired-state changes. */
  | { readonly op: 'tasks-put'; readonly at: string; readonly tasks: readonly TaskPut[] }
  /** What agents report about their tasks. */
  | { readonly op: 'task-status'; readonly at: string; readonly nodeId: string; readonly updates: readonly TaskStatusUpdate[] }
  | { readonly op: 'tasks-remove'; readonly at: string; readonly ids: readonly string[] };

export interface TaskPut {
  readonly id: string;
  readonly serviceId: string;
  readonly slot: number;
  readonly nodeId: string | null;
  readonly specVersion: number;
  readonly container: ContainerSpec;
  readonly desiredState: DesiredState;
  /** Set when the orchestrator or scheduler decides a state (new, pending, assigned, orphaned…). */
  readonly state?: TaskState;
  readonly message?: string;
}

export interface TaskStatusUpdate {
  readonly id: string;
  readonly state: TaskState;
  readonly message: string;
  readonly error: string;
  readonly exitCode: number | null;
  readonly secretVersions: Readonly<Record<string, number>>;
}

export type CommandOp = Command['op'];

/**
 * Any command may carry a request id; a command whose id the store has already applied is not
 * applied again and gets the first outcome (a retried write lands once).
 */
export type TaggedCommand = Command & { readonly requestId?: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeCommand(command: TaggedCommand): Uint8Array {
  return encoder.encode(JSON.stringify(command));
}

export function decodeCommand(bytes: Uint8Array): TaggedCommand {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new SecretdError('corrupt', 'Log entry is not a valid command');
  }
  if (typeof value !== 'object' || value === null || typeof (value as { op?: unknown }).op !== 'string') {
    throw new SecretdError('corrupt', 'Log entry is not a valid command');
  }
  return value as TaggedCommand;
}
