/**
 * The root CA's rotation as the store holds it (swarmkit's `RootCA.RootRotation`, anchors §5.4):
 *
 *   start    `ca-rotation-start` records the new root (certificate and key, sealed with the store
 *            like the cluster's caKey) and the new root cross-signed by the old one. From then on
 *            every certificate a manager issues comes from the new key with the cross-signed
 *            certificate as its chain, and every node trusts both roots.
 *   converge each node reports the key that signed the certificate it uses (`node-cert-issuer`);
 *            the leader asks the others to renew.
 *   finish   `ca-rotation-finish`, one entry: once every node the store lists (managers and workers,
 *            removed ones are not listed) reports the new root's key, the new root replaces the
 *            old (certificate, key), both join tokens change (their digest is the CA's) and the
 *            rotation is gone. Refused while a node has not converged: the rule is checked again
 *            when the entry is applied, so a node added in between keeps the rotation open.
 *
 * Pure: the proposer computes keys, ids and tokens; applying reads nothing else.
 */
import { issuerInfo } from '../../crypto/index.ts';
import { invalid } from '../../errors.ts';
import type { ClusterRecord, NodeRecord } from './types.ts';

export interface RootRotation {
  /** Names this rotation: a finish for another one is refused. */
  readonly id: string;
  readonly startedAt: string;
  /** The new root (self-signed). */
  readonly caCertPem: string;
  /** The new root's private key, PKCS#8 in base64: only in the sealed log and snapshots. */
  readonly caKey: string;
  /** The new root's subject and key signed by the old root: the chain of every certificate issued during the rotation. */
  readonly crossSignedPem: string;
  /** The new root's public key (SPKI DER, base64): what a converged node's certificate issuer key is. */
  readonly issuerKey: string;
}

/** Where a rotation stands: the nodes whose certificate comes from the new root, and the rest. */
export interface RotationProgress {
  readonly converged: readonly string[];
  readonly pending: readonly string[];
}

/** The base64 SPKI of a root certificate's key: what `NodeRecord.certIssuerKey` holds for a node it signed. */
export function rootKeyOf(caCertPem: string): string {
  return Buffer.from(issuerInfo(caCertPem).publicKeyDer).toString('base64');
}

/**
 * The key that signed a node's certificate as last reported; a node that never reported holds a
 * certificate from the root in force when it joined or last renewed before any rotation: the
 * cluster's current root.
 */
export function nodeIssuerKey(node: NodeRecord, cluster: ClusterRecord): string {
  return node.certIssuerKey ?? rootKeyOf(cluster.caCertPem);
}

/** The convergence rule: every node listed (managers and workers) reports the new root's key. */
export function rotationProgress(
  rotation: RootRotation,
  nodes: Iterable<NodeRecord>,
): RotationProgress {
  const converged: string[] = [];
  const pending: string[] = [];
  for (const node of nodes) {
    if (node.role === 'admin') continue;
    (node.certIssuerKey === rotation.issuerKey ? converged : pending).push(node.id);
  }
  return { converged, pending };
}

/** parseCommand's check of a rotation record: every field present, and the key named the new root's. */
export function checkRootRotation(value: unknown, path: string): RootRotation {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`Invalid command: ${path} must be an object`);
  const r = value as Record<string, unknown>;
  for (const field of ['id', 'startedAt', 'caCertPem', 'caKey', 'crossSignedPem', 'issuerKey'])
    if (typeof r[field] !== 'string' || r[field] === '')
      throw invalid(`Invalid command: ${path}.${field} must be a non-empty string`);
  let key: string;
  try {
    key = rootKeyOf(r.caCertPem as string);
  } catch {
    throw invalid(`Invalid command: ${path}.caCertPem must be one PEM certificate`);
  }
  if (key !== r.issuerKey)
    throw invalid(`Invalid command: ${path}.issuerKey must be the key of ${path}.caCertPem`);
  return r as unknown as RootRotation;
}
