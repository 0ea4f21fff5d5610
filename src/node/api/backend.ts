/** What the HTTP API needs from a node. The manager implements it; API tests may use a real manager. */
import type { Role } from '../../crypto/ca.ts';
import type { ClusterRecord, Labels, SecretRecord } from '../store/types.ts';

/** Who is calling, from the client certificate (or root on the local admin socket). */
export interface Identity {
  readonly role: Role;
  readonly nodeId: string;
  readonly via: 'socket' | 'tls';
}

export interface SecretSpecInput {
  readonly name: string;
  readonly labels: Labels;
  readonly data: Uint8Array;
}

export interface SwarmUpdate {
  readonly expectedIndex: number;
  readonly labels?: Labels;
  readonly autolock?: boolean;
  readonly rotateWorkerToken: boolean;
  readonly rotateManagerToken: boolean;
  readonly rotateUnlockKey: boolean;
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
}

export interface Backend {
  readonly locked: boolean;
  summary(): NodeSummary;
  listSecrets(): Promise<readonly SecretRecord[]>;
  getSecret(ref: string): Promise<SecretRecord>;
  createSecret(spec: SecretSpecInput): Promise<string>;
  /** Docker's rule: only labels change; `data`, when given, must equal the current value. */
  updateSecret(ref: string, expectedIndex: number, spec: { name: string; labels: Labels; data: Uint8Array | null }): Promise<void>;
  removeSecret(ref: string): Promise<void>;
  cluster(): Promise<ClusterRecord>;
  updateSwarm(update: SwarmUpdate): Promise<void>;
  unlockKey(): Promise<string>;
  unlock(keyText: string): Promise<void>;
  issueClientCertificate(name: string, csrPem: string): Promise<{ certPem: string; caPem: string }>;
}
