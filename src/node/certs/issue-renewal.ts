/**
 * A node's certificate renewed, the manager's side: over the node's own mTLS connection, no token.
 * The connection's certificate says who asks; the store says what it is now. Refused (403, and
 * the node's certificate keeps working): a request naming another node than the connection's
 * certificate, a node the store does not list (removed, or never admitted), and a CSR for the key
 * the node already holds (a renewal is a new key, so a stolen old key dies with its certificate).
 *
 * The new certificate: CN = the node id, OU = the role the store gives the node now (so a promotion
 * or a demotion changes it), O = the cluster id, valid for the cluster's setting (backdated 1 h),
 * and the SANs a join gives (join/admit-joiner.ts `verifiedManagerNames`): a manager keeps the
 * names of the manager certificate it presented, which the CA verified when it issued that one.
 * During a root rotation it comes from the new root's key, followed by the new root cross-signed
 * by the old (certs/ca-rotation.ts): the answer is then a PEM chain, leaf first.
 */
import { X509Certificate } from 'node:crypto';
import { issueCertificateWithChain, type Random } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { splitHostPort, verifiedManagerNames } from '../join/index.ts';
import { nodeCertExpiryOf, type ClusterRecord, type NodeRecord } from '../store/index.ts';
import { signingCAOf } from './ca-rotation.ts';

export interface RenewalRequest {
  /** The node the request names (its body's NodeID). */
  readonly nodeId: string;
  readonly csrPem: string;
  /** The certificate the connection presented (DER), whose key the new one must not reuse; null: none (refused). */
  readonly presentedCertDer: Uint8Array | null;
  /** The address the request came from, as this manager sees the connection. */
  readonly observedIp: string | null;
}

export interface RenewalContext {
  readonly cluster: ClusterRecord;
  /** The connection's node id (its certificate's CN). */
  readonly callerId: string;
  /** The store's record of the caller (undefined: not listed). */
  readonly node: NodeRecord | undefined;
  readonly removed: boolean;
  readonly random: Random;
  readonly now: Date;
}

export async function issueRenewal(
  request: RenewalRequest,
  context: RenewalContext,
): Promise<string> {
  const { callerId, node, cluster } = context;
  if (request.nodeId !== callerId)
    throw refused(
      `this connection's certificate is node ${callerId}'s, not node ${request.nodeId}'s`,
      request.nodeId,
    );
  if (context.removed) throw refused(`node ${callerId} was removed from the cluster`, callerId);
  if (node === undefined || node.role === 'admin')
    throw refused(`node ${callerId} is not a member of this cluster`, callerId);
  const presented = parsePresented(request.presentedCertDer);
  const role = node.role;
  const keptNames = role === 'manager' && presented.manager ? presented.names : undefined;
  // During a root rotation: the new key signs, and the cross-signed root follows as the chain.
  const issued = await issueCertificateWithChain(signingCAOf(cluster), request.csrPem, {
    nodeId: callerId,
    role,
    clusterId: cluster.id,
    now: context.now,
    lifetimeMs: nodeCertExpiryOf(cluster),
    serial: context.random(16),
    ...(role === 'manager'
      ? verifiedManagerNames(hostOf(node.addr), request.observedIp, keptNames)
      : {}),
  });
  const certPem = issued.certPem + issued.chainPem;
  // The key is compared on what was signed: the CSR's key as the CA read it.
  if (spkiOf(new X509Certificate(issued.certPem)).equals(presented.spki))
    throw refused(
      'the certificate request is for the key this node already holds; a renewal needs a new key',
      callerId,
    );
  return certPem;
}

function refused(reason: string, nodeId: string): SecretdError {
  return new SecretdError(
    'forbidden',
    `Permission denied: cannot renew the certificate of node ${nodeId.slice(0, 64)}: ${reason}`,
  );
}

interface Presented {
  readonly spki: Buffer;
  readonly manager: boolean;
  readonly names: { dnsNames: string[]; ipAddresses: string[] };
}

function parsePresented(der: Uint8Array | null): Presented {
  let cert: X509Certificate;
  try {
    if (der === null) throw new Error('no certificate');
    cert = new X509Certificate(der);
  } catch {
    throw new SecretdError(
      'forbidden',
      'Permission denied: a node renews its certificate over its own mutual-TLS connection, presenting the certificate it renews',
    );
  }
  const manager = /(^|\n)OU=secretd-manager(\n|$)/.test(cert.subject);
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1];
  for (const entry of (cert.subjectAltName ?? '').split(/,\s*/)) {
    const dns = /^DNS:(.+)$/.exec(entry)?.[1];
    const ip = /^IP Address:(.+)$/.exec(entry)?.[1];
    // The role and the node id are every certificate's, added by the CA whatever is kept.
    if (dns !== undefined && dns !== 'secretd-manager' && dns !== cn) dnsNames.push(dns);
    if (ip !== undefined) ipAddresses.push(ip);
  }
  return { spki: spkiOf(cert), manager, names: { dnsNames, ipAddresses } };
}

function spkiOf(cert: X509Certificate): Buffer {
  return cert.publicKey.export({ type: 'spki', format: 'der' });
}

function hostOf(addr: string): string {
  try {
    return splitHostPort(addr).host;
  } catch {
    return '';
  }
}
