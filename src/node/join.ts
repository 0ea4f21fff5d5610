/**
 * `secretd join`, the joiner's side: fetch the cluster CA over TLS and pin it against the digest in
 * the token (before trusting a single byte the manager says), then send a CSR with the token over a
 * connection that verifies the manager by that CA. The private key never leaves this machine.
 */
import { hostname } from 'node:os';
import { connect } from 'node:http2';
import { rm } from 'node:fs/promises';
import { caMatchesToken, certDerFromPem, createKeyAndCSR, parseJoinToken, type Random } from '../crypto/index.ts';
import { SecretdError } from '../errors.ts';
import { dataDirPaths, ensureDir, exists, writeFileAtomic } from './data-dir.ts';
import { localResources } from './bootstrap.ts';
import { writeNodeKeys } from './node-keys.ts';
import type { NodeState } from './node-state.ts';
import { fromBase64 } from './store/store.ts';

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

export const joinCAPath = '/secretd/join/ca';
export const joinPath = '/secretd/join';

export async function joinCluster(options: JoinOptions): Promise<{ state: NodeState; unlockKey: Uint8Array | null }> {
  const paths = dataDirPaths(options.dataDir);
  if (await exists(paths.nodeState)) throw new SecretdError('conflict', `${options.dataDir} already holds a secretd node: use \`secretd run\`, or choose another --data-dir`);
  const token = parseJoinToken(options.token);
  const caPem = await fetchCA(options.remote);
  if (!caMatchesToken(certDerFromPem(caPem), token)) {
    throw new SecretdError('forbidden', `The manager at ${options.remote} presented a CA that does not match the join token's digest: refusing to join`);
  }
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const answer = (await request(options.remote, caPem, 'POST', joinPath, { Token: options.token, CSR: csrPem, Addr: options.advertiseAddr, Hostname: hostname(), Resources: resourcesJSON(localResources()) })) as JoinAnswer;
  await rm(`${options.dataDir}/raft`, { recursive: true, force: true });
  await ensureDir(options.dataDir);
  await ensureDir(`${options.dataDir}/certificates`, 0o755);
  const unlockKey = answer.UnlockKey ? fromBase64(answer.UnlockKey) : null;
  await writeFileAtomic(paths.caCert, caPem, 0o644);
  await writeFileAtomic(paths.nodeCert, answer.Certificate, 0o644);
  await writeNodeKeys(paths.nodeKeys, { dek: options.random(32), dekKeyId: 1, tlsKey: keyPkcs8 }, unlockKey, options.random);
  keyPkcs8.fill(0);
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
}

/** The CA is fetched without verifying the server: the token's digest is what makes it trusted. */
async function fetchCA(remote: string): Promise<string> {
  const body = (await request(remote, null, 'GET', joinCAPath)) as { CA?: unknown };
  if (typeof body.CA !== 'string') throw new SecretdError('unavailable', `The manager at ${remote} did not return a CA certificate`);
  return body.CA;
}

function request(remote: string, caPem: string | null, method: string, path: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const session = connect(`https://${remote}`, caPem ? { ca: caPem, servername: 'secretd-manager' } : { rejectUnauthorized: false });
    const fail = (error: Error): void => {
      session.destroy();
      reject(error instanceof SecretdError ? error : new SecretdError('unavailable', `Cannot reach the manager at ${remote}: ${error.message}`));
    };
    session.on('error', fail);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const stream = session.request({ ':method': method, ':path': path, ...(payload ? { 'content-type': 'application/json' } : {}) });
    const timer = setTimeout(() => fail(new Error('no answer within 30 s')), 30_000);
    let status = 0;
    let text = '';
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('error', fail);
    stream.on('end', () => {
      clearTimeout(timer);
      session.close();
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(text);
      } catch {}
      if (status >= 200 && status < 300) resolve(parsed);
      else {
        const message = (parsed as { message?: string } | null)?.message ?? `HTTP ${status}`;
        reject(new SecretdError(status === 400 ? 'invalid' : status === 403 ? 'forbidden' : 'unavailable', `The manager at ${remote} refused to let this node join: ${message}`));
      }
    });
    stream.end(payload);
  });
}

/** Resources in the join request's (Docker's) field names. */
function resourcesJSON(resources: { nanoCpus: number; memoryBytes: number }): { NanoCPUs: number; MemoryBytes: number } {
  return { NanoCPUs: resources.nanoCpus, MemoryBytes: resources.memoryBytes };
}
