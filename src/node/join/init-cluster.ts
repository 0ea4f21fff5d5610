/**
 * `secretd init`: everything a new cluster needs before its first Raft entry — the root CA, this
 * manager's identity and certificate, its DEK, join tokens and (with autolock) the unlock key.
 * The cluster's secrets (CA key, tokens, unlock key) go into the first log entry; the node's own
 * keys into its keys file. node.json is written last: its presence means "initialized".
 */
import { availableParallelism, hostname, totalmem } from 'node:os';
import { rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import {
  createKeyAndCSR,
  createRootCA,
  generateJoinTokens,
  issueCertificate,
  newId,
  type Random,
} from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { nodeCertLifetimeMs } from '../../limits.ts';
import {
  dataDirPaths,
  ensureDir,
  exists,
  writeFileAtomic,
  type DataDirPaths,
} from '../data-dir/index.ts';
import { writeNodeKeys } from '../data-dir/index.ts';
import type { NodeState } from '../data-dir/index.ts';
import type { Command, NodeResources } from '../store/index.ts';
import { toBase64 } from '../store/index.ts';

export interface InitOptions {
  readonly dataDir: string;
  /** host:port to listen on for mTLS (default 0.0.0.0:4377). */
  readonly listenAddr: string;
  /** host:port other nodes and clients use to reach this one (default: listen address, or this host). */
  readonly advertiseAddr: string;
  readonly autolock: boolean;
  readonly random: Random;
  readonly now: Date;
}

export interface Bootstrapped {
  readonly paths: DataDirPaths;
  readonly state: NodeState;
  readonly firstCommand: Command;
  readonly unlockKey: Uint8Array | null;
}

export async function bootstrapCluster(options: InitOptions): Promise<Bootstrapped> {
  const paths = dataDirPaths(options.dataDir);
  if (await exists(paths.nodeState)) {
    throw new SecretdError(
      'conflict',
      `${options.dataDir} already holds a secretd node: use \`secretd run\` to restart it, or choose another --data-dir`,
    );
  }
  // Leftovers of an init that crashed before node.json: nothing in them was ever acknowledged.
  await rm(`${options.dataDir}/raft`, { recursive: true, force: true });
  await ensureDir(options.dataDir);
  await ensureDir(`${options.dataDir}/certificates`, 0o755);
  const at = options.now.toISOString();
  const nodeId = newId(options.random);
  const clusterId = newId(options.random);
  const ca = await createRootCA({ now: options.now });
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const certPem = await issueCertificate(ca, csrPem, {
    nodeId,
    role: 'manager',
    clusterId,
    now: options.now,
    lifetimeMs: nodeCertLifetimeMs,
    serial: options.random(16),
    ...initAddressNames(options.listenAddr, options.advertiseAddr),
  });
  const unlockKey = options.autolock ? options.random(32) : null;
  await writeFileAtomic(paths.caCert, ca.certPem, 0o644);
  await writeFileAtomic(paths.nodeCert, certPem, 0o644);
  await writeNodeKeys(
    paths.nodeKeys,
    { dek: options.random(32), dekKeyId: 1, tlsKey: keyPkcs8, tlsCert: certPem },
    unlockKey,
    options.random,
  );
  keyPkcs8.fill(0);
  const state: NodeState = {
    format: 1,
    nodeId,
    clusterId,
    role: 'manager',
    listenAddr: options.listenAddr,
    advertiseAddr: options.advertiseAddr,
    createdAt: at,
    bootstrapVoters: [nodeId],
    peers: [],
  };
  const firstCommand: Command = {
    op: 'cluster-init',
    at,
    clusterId,
    caCertPem: ca.certPem,
    caKey: toBase64(ca.keyPkcs8),
    joinTokens: generateJoinTokens(ca.certDer, options.random),
    unlockKey: unlockKey && toBase64(unlockKey),
    node: {
      id: nodeId,
      role: 'manager',
      hostname: hostname(),
      addr: options.advertiseAddr,
      resources: localResources(),
    },
  };
  ca.keyPkcs8.fill(0);
  return { paths, state, firstCommand, unlockKey };
}

/** Names every manager certificate carries so that curl and the CLI work on the manager itself. */
export const loopbackNames: {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
} = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] };

/**
 * SANs for the first manager, so that clients (curl included) can verify it by any name it is
 * reached by: loopback, this machine's host name, and the listen and advertise hosts the operator
 * gave `secretd init` on this machine (a wildcard listen address names nothing).
 */
export function initAddressNames(
  listenAddr: string,
  advertiseAddr: string,
): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames = new Set([...loopbackNames.dnsNames, hostname()]);
  const ipAddresses = new Set(loopbackNames.ipAddresses);
  for (const addr of [advertiseAddr, listenAddr]) {
    const host = splitHostPort(addr).host;
    if (isIP(host)) {
      if (host !== '0.0.0.0' && host !== '::') ipAddresses.add(host);
    } else if (host) dnsNames.add(host);
  }
  return { dnsNames: [...dnsNames], ipAddresses: [...ipAddresses] };
}

export function splitHostPort(addr: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  if (!match)
    throw new SecretdError(
      'invalid',
      `Invalid address ${JSON.stringify(addr)}: expected HOST:PORT`,
    );
  const port = Number(match[3]);
  if (port > 65535)
    throw new SecretdError(
      'invalid',
      `Invalid address ${JSON.stringify(addr)}: port must be at most 65535`,
    );
  return { host: match[1] ?? match[2] ?? '', port };
}

/** This machine's CPUs and memory, as Docker's node description gives them. */
export function localResources(): NodeResources {
  return { nanoCpus: availableParallelism() * 1e9, memoryBytes: totalmem() };
}
