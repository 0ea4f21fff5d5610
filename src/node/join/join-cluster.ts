/**
 * `secretd join`, the joiner's side: fetch the cluster CA over TLS and pin it against the digest in
 * the token (before trusting a single byte the manager says), then send a CSR with the token over a
 * connection that verifies the manager by that CA and by its certificate's subject (OU
 * `secretd-manager`: a worker's certificate from the same CA does not pass, see peer-client.ts).
 * The private key never leaves this machine.
 *
 * The answer is checked whole before anything is written: ids, role, a certificate the pinned CA
 * signed for this node's key with the identity the answer states, the manager list, the unlock key.
 * Only then is the data dir written, and if writing fails, what this join created is removed: a
 * failed join leaves no half-written data dir behind.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import { connect } from 'node:http2';
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { mkdir, rm } from 'node:fs/promises';
import {
  caMatchesToken,
  certDerFromPem,
  createKeyAndCSR,
  idChars,
  parseIdentity,
  parseJoinToken,
  unlockKeyBytes,
  verifyChain,
  type Random,
} from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { joinAnswerBytesMax, joinAnswerTimeoutMs } from '../../limits.ts';
import { dataDirPaths, exists, writeFileAtomic } from '../data-dir/index.ts';
import { localResources, splitHostPort } from './init-cluster.ts';
import { writeNodeKeys } from '../data-dir/index.ts';
import type { NodeState } from '../data-dir/index.ts';
import { checkManagerIdentity, reasonOf } from '../peers/index.ts';
import { fromBase64 } from '../store/index.ts';
import { peerPaths } from '../peers/index.ts';

export interface JoinOptions {
  readonly dataDir: string;
  readonly token: string;
  /** host:port of any manager. */
  readonly remote: string;
  readonly listenAddr: string;
  readonly advertiseAddr: string;
  readonly random: Random;
  readonly now: Date;
}

export interface JoinAnswer {
  readonly NodeID: string;
  readonly Role: 'manager' | 'worker';
  readonly ClusterID: string;
  readonly Certificate: string;
  readonly CA: string;
  readonly BootstrapVoters: string[];
  readonly Managers: Array<{ ID: string; Addr: string }>;
  readonly UnlockKey: string | null;
}

export const joinCAPath = peerPaths.joinCA;
export const joinPath = peerPaths.join;

export async function joinCluster(
  options: JoinOptions,
): Promise<{ state: NodeState; unlockKey: Uint8Array | null }> {
  const paths = dataDirPaths(options.dataDir);
  if (await exists(paths.nodeState))
    throw new SecretdError(
      'conflict',
      `${options.dataDir} already holds a secretd node: use \`secretd run\`, or choose another --data-dir`,
    );
  const token = parseJoinToken(options.token);
  const localAddress = localAddressFor(options.advertiseAddr);
  const caPem = await fetchCA(options.remote, localAddress);
  if (!caMatchesToken(certDerFromPem(caPem), token)) {
    throw new SecretdError(
      'forbidden',
      `The manager at ${options.remote} presented a CA that does not match the join token's digest: refusing to join`,
    );
  }
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  try {
    const { body, serverClusterId } = await request(
      options.remote,
      { caPem, localAddress },
      'POST',
      joinPath,
      {
        Token: options.token,
        CSR: csrPem,
        Addr: options.advertiseAddr,
        Hostname: hostname(),
        Resources: resourcesJSON(localResources()),
      },
    );
    const answer = await checkJoinAnswer(body, {
      remote: options.remote,
      caPem,
      keyPkcs8,
      serverClusterId,
      now: options.now,
    });
    const unlockKey = answer.UnlockKey === null ? null : fromBase64(answer.UnlockKey);
    await writeJoinedFiles(options, { caPem, certPem: answer.Certificate, keyPkcs8, unlockKey });
    const state: NodeState = {
      format: 1,
      nodeId: answer.NodeID,
      clusterId: answer.ClusterID,
      role: answer.Role,
      listenAddr: options.listenAddr,
      advertiseAddr: options.advertiseAddr,
      createdAt: options.now.toISOString(),
      bootstrapVoters: answer.BootstrapVoters,
      peers: answer.Managers.map((m) => ({ id: m.ID, addr: m.Addr })),
    };
    return { state, unlockKey };
  } finally {
    keyPkcs8.fill(0);
  }
}

/**
 * Writes the CA, the certificate and the keys file. On failure it removes what it created (the
 * data dir itself when it did not exist, else the files and the certificates dir it added) and
 * rethrows.
 */
async function writeJoinedFiles(
  options: JoinOptions,
  files: { caPem: string; certPem: string; keyPkcs8: Uint8Array; unlockKey: Uint8Array | null },
): Promise<void> {
  const paths = dataDirPaths(options.dataDir);
  const created: string[] = [];
  try {
    // Leftovers of a join that crashed before node.json: nothing in them was ever acknowledged.
    await rm(`${options.dataDir}/raft`, { recursive: true, force: true });
    const topCreated = await mkdir(options.dataDir, { recursive: true, mode: 0o700 });
    if (topCreated !== undefined) created.push(topCreated);
    const certificatesDir = `${options.dataDir}/certificates`;
    if ((await mkdir(certificatesDir, { recursive: true, mode: 0o755 })) !== undefined)
      created.push(certificatesDir);
    for (const [path, write] of [
      [paths.caCert, () => writeFileAtomic(paths.caCert, files.caPem, 0o644)],
      [paths.nodeCert, () => writeFileAtomic(paths.nodeCert, files.certPem, 0o644)],
      [
        paths.nodeKeys,
        () =>
          writeNodeKeys(
            paths.nodeKeys,
            {
              dek: options.random(32),
              dekKeyId: 1,
              tlsKey: files.keyPkcs8,
              tlsCert: files.certPem,
            },
            files.unlockKey,
            options.random,
          ),
      ],
    ] as const) {
      created.push(path, `${path}.tmp`);
      await write();
    }
  } catch (error) {
    // Newest first: files before the directories that hold them.
    for (const path of created.reverse())
      await rm(path, { recursive: true, force: true }).catch(() => {});
    const reason = error instanceof Error ? error.message : String(error);
    throw new SecretdError(
      'internal',
      `Cannot write the joined node's files in ${options.dataDir}: ${reason}; nothing of this join was left there`,
      { cause: error },
    );
  }
}

/** The CA is fetched without verifying the server: the token's digest is what makes it trusted. */
async function fetchCA(remote: string, localAddress: string | undefined): Promise<string> {
  const { body } = await request(remote, { caPem: null, localAddress }, 'GET', joinCAPath);
  const ca = isObject(body) ? body.CA : undefined;
  if (typeof ca !== 'string')
    throw new SecretdError(
      'unavailable',
      `The manager at ${remote} did not return a CA certificate`,
    );
  try {
    certDerFromPem(ca);
  } catch {
    throw new SecretdError(
      'unavailable',
      `The manager at ${remote} returned a CA that is not a PEM certificate`,
    );
  }
  return ca;
}

interface CheckContext {
  readonly remote: string;
  readonly caPem: string;
  readonly keyPkcs8: Uint8Array;
  /** The O of the certificate the manager presented: its cluster. */
  readonly serverClusterId: string | null;
  readonly now: Date;
}

const idPattern = new RegExp(`^[0-9a-z]{${idChars}}$`);
const managersMax = 1000;

/** The answer, field by field; any field out of shape refuses the join and names the field. */
async function checkJoinAnswer(body: unknown, context: CheckContext): Promise<JoinAnswer> {
  const bad = (reason: string): SecretdError =>
    new SecretdError(
      'unavailable',
      `The manager at ${context.remote} sent an invalid join answer: ${reason}; nothing was written`,
    );
  if (!isObject(body)) throw bad('it is not a JSON object');
  const id = (value: unknown, field: string): string => {
    if (typeof value !== 'string' || !idPattern.test(value))
      throw bad(`${field} must be an id of ${idChars} base-36 characters`);
    return value;
  };
  const nodeId = id(body.NodeID, 'NodeID');
  const clusterId = id(body.ClusterID, 'ClusterID');
  const role = body.Role;
  if (role !== 'manager' && role !== 'worker') throw bad('Role must be "manager" or "worker"');
  if (context.serverClusterId !== clusterId)
    throw bad(`ClusterID ${clusterId} is not the cluster of the manager's own certificate`);
  if (typeof body.CA !== 'string' || !samePem(body.CA, context.caPem))
    throw bad('CA is not the CA the join token pins');
  const certPem = body.Certificate;
  if (typeof certPem !== 'string') throw bad('Certificate must be a PEM certificate');
  await checkCertificate(certPem, { nodeId, role, clusterId }, context, bad);
  const voters = body.BootstrapVoters;
  if (!Array.isArray(voters) || voters.length > managersMax)
    throw bad(`BootstrapVoters must be a list of at most ${managersMax} ids`);
  voters.forEach((v, i) => id(v, `BootstrapVoters[${i}]`));
  const managers = body.Managers;
  if (!Array.isArray(managers) || managers.length === 0 || managers.length > managersMax)
    throw bad(`Managers must be a list of 1 to ${managersMax} managers`);
  managers.forEach((m: unknown, i) => {
    if (!isObject(m)) throw bad(`Managers[${i}] must be an object`);
    id(m.ID, `Managers[${i}].ID`);
    try {
      if (typeof m.Addr !== 'string' || splitHostPort(m.Addr).host === '') throw new Error();
    } catch {
      throw bad(`Managers[${i}].Addr must be HOST:PORT`);
    }
  });
  const unlockKey = body.UnlockKey;
  if (
    unlockKey !== null &&
    (role === 'worker' || typeof unlockKey !== 'string' || !isBase64Of(unlockKey, unlockKeyBytes))
  ) {
    throw bad(
      role === 'worker'
        ? 'a worker is given no UnlockKey'
        : `UnlockKey must be null or ${unlockKeyBytes} bytes in base64`,
    );
  }
  return {
    NodeID: nodeId,
    Role: role,
    ClusterID: clusterId,
    Certificate: certPem,
    CA: body.CA,
    BootstrapVoters: voters as string[],
    Managers: managers as JoinAnswer['Managers'],
    UnlockKey: unlockKey as string | null,
  };
}

/** Signed by the pinned CA, for this node's key, naming what the answer says. */
async function checkCertificate(
  certPem: string,
  expected: { nodeId: string; role: string; clusterId: string },
  context: CheckContext,
  bad: (reason: string) => SecretdError,
): Promise<void> {
  let signed = false;
  let identity: { nodeId: string; role: string; clusterId: string };
  let ownsKey = false;
  try {
    // During a root CA rotation the certificate comes with the new root cross-signed by the pinned one.
    const [leaf = '', ...chain] = certPem.split(/(?=-----BEGIN CERTIFICATE-----)/);
    signed = (
      await verifyChain(leaf, {
        chainPems: chain,
        trustedRootPems: [context.caPem],
        now: context.now,
      })
    ).ok;
    identity = parseIdentity(certPem);
    ownsKey = new X509Certificate(certPem).checkPrivateKey(
      createPrivateKey({ key: Buffer.from(context.keyPkcs8), format: 'der', type: 'pkcs8' }),
    );
  } catch {
    throw bad('Certificate is not a secretd certificate');
  }
  if (!signed) throw bad('Certificate is not signed by the cluster CA');
  if (!ownsKey) throw bad("Certificate is not for this node's key");
  const named = { nodeId: identity.nodeId, role: identity.role, clusterId: identity.clusterId };
  if (JSON.stringify(named) !== JSON.stringify(expected))
    throw bad(
      `Certificate names ${named.role} ${named.nodeId} of cluster ${named.clusterId}, not the ${expected.role} ${expected.nodeId} of cluster ${expected.clusterId} the answer states`,
    );
}

interface RequestTls {
  /** The pinned CA; null only to fetch it (no verification, nothing secret is sent). */
  readonly caPem: string | null;
  readonly localAddress: string | undefined;
}

function request(
  remote: string,
  tls: RequestTls,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ body: unknown; serverClusterId: string | null }> {
  return new Promise((resolve, reject) => {
    let serverClusterId: string | null = null;
    const checkManager = checkManagerIdentity(undefined);
    const verify = tls.caPem
      ? {
          ca: tls.caPem,
          servername: 'secretd-manager',
          checkServerIdentity: (host: string, cert: PeerCertificate): Error | undefined => {
            const error = checkManager(host, cert);
            if (!error)
              serverClusterId = typeof cert.subject?.O === 'string' ? cert.subject.O : null;
            return error;
          },
        }
      : { rejectUnauthorized: false };
    const session = connect(`https://${remote}`, {
      ...verify,
      ...(tls.localAddress ? { localAddress: tls.localAddress } : {}),
    });
    let settled = false;
    const fail = (error: Error): void => {
      clearTimeout(timer);
      session.destroy();
      if (settled) return;
      settled = true;
      reject(
        error instanceof SecretdError
          ? error
          : new SecretdError(
              'unavailable',
              `Cannot reach the manager at ${remote}: ${reasonOf(error)}`,
            ),
      );
    };
    const timer = setTimeout(
      () => fail(new Error(`no answer within ${joinAnswerTimeoutMs / 1000} s`)),
      joinAnswerTimeoutMs,
    );
    session.on('error', fail);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const stream = session.request({
      ':method': method,
      ':path': path,
      ...(payload ? { 'content-type': 'application/json' } : {}),
    });
    let status = 0;
    const chunks: Buffer[] = [];
    let received = 0;
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > joinAnswerBytesMax)
        fail(
          new SecretdError(
            'unavailable',
            `The manager at ${remote} sent an answer over ${joinAnswerBytesMax} bytes: it is not a join answer`,
          ),
        );
      else chunks.push(chunk);
    });
    stream.on('error', fail);
    stream.on('end', () => {
      clearTimeout(timer);
      session.close();
      if (settled) return;
      settled = true;
      let parsed: unknown;
      let json = true;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        json = false;
      }
      if (status >= 200 && status < 300) {
        if (json) resolve({ body: parsed, serverClusterId });
        else
          reject(
            new SecretdError(
              'unavailable',
              `The manager at ${remote} answered ${method} ${path} with something that is not JSON`,
            ),
          );
        return;
      }
      const message =
        json && isObject(parsed) && typeof parsed.message === 'string'
          ? parsed.message
          : `HTTP ${status}`;
      reject(
        new SecretdError(
          status === 400 ? 'invalid' : status === 403 ? 'forbidden' : 'unavailable',
          `The manager at ${remote} refused to let this node join: ${message}`,
        ),
      );
    });
    stream.end(payload);
  });
}

/**
 * Join from the advertised IP when it is this machine's, so the manager sees the join come from
 * the address it will put in a manager's certificate (it checks; see join-service.ts).
 */
function localAddressFor(advertiseAddr: string): string | undefined {
  const { host } = splitHostPort(advertiseAddr);
  if (!isIP(host) || host === '0.0.0.0' || host === '::') return undefined;
  if (isIP(host) === 4 && host.startsWith('127.')) return host; // all of 127/8 is this machine's
  const local = Object.values(networkInterfaces()).some((addresses) =>
    (addresses ?? []).some((a) => a.address === host),
  );
  return local ? host : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function samePem(a: string, b: string): boolean {
  try {
    return Buffer.from(certDerFromPem(a)).equals(Buffer.from(certDerFromPem(b)));
  } catch {
    return false;
  }
}

function isBase64Of(text: string, bytes: number): boolean {
  return /^[A-Za-z0-9+/]*={0,2}$/.test(text) && Buffer.from(text, 'base64').length === bytes;
}

/** Resources in the join request's (Docker's) field names. */
function resourcesJSON(resources: { nanoCpus: number; memoryBytes: number }): {
  NanoCPUs: number;
  MemoryBytes: number;
} {
  return { NanoCPUs: resources.nanoCpus, MemoryBytes: resources.memoryBytes };
}
