/**
 * `secretd join`, the manager's side: check the token (constant time, against both tokens: the
 * token decides the role), then issue a certificate for the CSR's key with a fresh node id.
 *
 * Nothing the joiner says about itself goes into its certificate. A worker's names only its role
 * and id; a manager's adds loopback names and its address only when that address is the one the
 * join request came from (an address it merely claims, or a host name, is left out).
 */
import { isIP } from 'node:net';
import {
  issueCertificateWithChain,
  joinTokenMatches,
  newId,
  type Random,
  type Role,
} from '../../crypto/index.ts';
import { invalid, SecretdError } from '../../errors.ts';
import { loopbackNames, splitHostPort } from './init-cluster.ts';
import type { NodeResources } from '../store/index.ts';
import { fromBase64, nodeCertExpiryOf, type ClusterRecord } from '../store/index.ts';

export interface JoinRequest {
  readonly token: string;
  readonly csrPem: string;
  readonly addr: string;
  readonly hostname: string;
  /** CPUs and memory the joiner has, as it reports them (shown by node inspect). */
  readonly resources: NodeResources | null;
  /** The joiner's address as this manager sees the connection, for an advertise address of 0.0.0.0. */
  readonly observedIp: string | null;
}

export interface IssuedJoin {
  readonly nodeId: string;
  readonly role: Exclude<Role, 'admin'>;
  readonly addr: string;
  /** During a root CA rotation: from the new root's key, followed by the new root cross-signed by the old. */
  readonly certPem: string;
}

const hostnamePattern = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/;

export async function issueJoin(
  cluster: ClusterRecord,
  request: JoinRequest,
  options: { random: Random; now: Date; idTaken: (id: string) => boolean },
): Promise<IssuedJoin> {
  const role = joinTokenMatches(request.token, cluster.joinTokens.manager)
    ? 'manager'
    : joinTokenMatches(request.token, cluster.joinTokens.worker)
      ? 'worker'
      : null;
  if (!role)
    throw new SecretdError('forbidden', 'A valid join token is necessary to join this cluster');
  if (!hostnamePattern.test(request.hostname))
    throw invalid('Invalid join request: Hostname must be a host name');
  let { host, port } = splitHostPort(request.addr);
  const observed = request.observedIp === null ? null : canonicalIp(request.observedIp);
  if (host === '' || host === '0.0.0.0' || host === '::') {
    if (!observed)
      throw invalid('Invalid join request: give an --advertise-addr other nodes can reach');
    host = observed;
  }
  const addr = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  let nodeId = newId(options.random);
  for (let tries = 0; options.idTaken(nodeId); tries++) {
    if (tries > 3) throw new SecretdError('internal', 'Could not find a free node id');
    nodeId = newId(options.random);
  }
  // During a root rotation the new key signs, and the cross-signed root goes with the certificate:
  // the joiner checks it against the old root its token pins (leaf → cross-signed → old root).
  const rotation = cluster.rootRotation;
  const issued = await issueCertificateWithChain(
    rotation
      ? {
          certPem: rotation.caCertPem,
          keyPkcs8: fromBase64(rotation.caKey),
          intermediatePem: rotation.crossSignedPem,
        }
      : { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
    request.csrPem,
    {
      nodeId,
      role,
      clusterId: cluster.id,
      now: options.now,
      lifetimeMs: nodeCertExpiryOf(cluster),
      serial: options.random(16),
      ...(role === 'manager' ? verifiedManagerNames(host, observed) : {}),
    },
  );
  return {
    nodeId,
    role,
    addr,
    certPem: issued.certPem + issued.chainPem,
  };
}

/**
 * The names a manager's certificate carries, for a join and a renewal alike: loopback names, plus
 * its IP when the request came from exactly that IP, plus (renewal) the names of the manager
 * certificate it presented, which the CA verified when it issued that one.
 */
export function verifiedManagerNames(
  host: string,
  observedIp: string | null,
  kept: { readonly dnsNames: readonly string[]; readonly ipAddresses: readonly string[] } = {
    dnsNames: [],
    ipAddresses: [],
  },
): { dnsNames: string[]; ipAddresses: string[] } {
  const ipAddresses = [...loopbackNames.ipAddresses];
  const claimed = isIP(host) ? canonicalIp(host) : null;
  if (claimed !== null && claimed === observedIp && !ipAddresses.includes(claimed))
    ipAddresses.push(claimed);
  for (const ip of kept.ipAddresses) {
    const canonical = canonicalIp(ip);
    if (canonical !== null && !ipAddresses.includes(canonical)) ipAddresses.push(canonical);
  }
  const dnsNames = [...new Set([...loopbackNames.dnsNames, ...kept.dnsNames])];
  return { dnsNames, ipAddresses };
}

/** One text per address: IPv4-mapped IPv6 as IPv4, IPv6 in its shortest form; null for a non-IP. */
export function canonicalIp(text: string): string | null {
  const ip = text.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (isIP(ip) === 4) return ip;
  if (isIP(ip) !== 6) return null;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase(); // a zone index (fe80::1%eth0) is no URL host
  }
}
