/**
 * The replicated state: what every manager holds in memory, applies from committed Raft entries and
 * writes (sealed) into snapshots. Secret values live only here, in the sealed log and in snapshots.
 */
import type { Role } from '../../crypto/ca.ts';

export type SecretId = string & { readonly __brand: 'SecretId' };
export type NodeId = string & { readonly __brand: 'NodeId' };
export type Labels = Readonly<Record<string, string>>;
export type Availability = 'active' | 'pause' | 'drain';

/** One immutable value of a secret. A secret holds one or more; the newest is what tasks follow. */
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
}

export interface NodeRecord {
  readonly id: NodeId;
  readonly role: Role;
  readonly hostname: string;
  readonly addr: string;
  readonly availability: Availability;
  readonly labels: Labels;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly metaIndex: number;
}

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
}
