/**
 * A throw-away etcd cluster on loopback to compare secretd's Raft writes with: N members (default
 * 3), each with its own data dir under one temp dir, client and peer URLs on 127.0.0.1 with free
 * ports, and mutual TLS on both (certificates made with openssl in the temp dir), because secretd
 * always speaks mutual TLS, to clients and between managers.
 *
 * Only what the comparison needs is set; everything else is etcd's default, fsync included (no
 * --unsafe-no-fsync): heartbeat 100 ms, election 1000 ms, snapshot every 100 000 entries. Logging
 * is turned down to warnings so that etcd does not spend CPU on a log line per request.
 */
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  once,
  runToEnd,
  spawnCaptured,
  stopProcess,
  waitUntil,
  type CapturedProcess,
} from './child-process.ts';
import { errorReason } from './create-outcome.ts';
import { findExecutable } from './docker-swarm.ts';
import { openSecretdSession, type ClientTLSFiles } from './secretd-client.ts';
import { freePort } from './secretd-process.ts';

export interface EtcdMember {
  readonly name: string;
  /** https://127.0.0.1:PORT: the gRPC API and its HTTP/JSON gateway. */
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
}

export interface EtcdCluster extends ClientTLSFiles {
  readonly members: readonly EtcdMember[];
  /** "3.4.23", from `etcd --version`. */
  readonly version: string;
  /** The flags every member shares, for the report (per-member URLs and paths left out). */
  readonly sharedFlags: readonly string[];
  /** Process ids of the running members (for their CPU time in /proc). */
  pids(): number[];
  /** The member that `/v3/maintenance/status` names as leader. */
  leader(): Promise<EtcdMember>;
  /** Stops every member and removes the temp dir; safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartEtcdClusterOptions {
  /** Default 3. */
  readonly members?: number;
  /** Default: `etcd` on PATH (Debian: apt-get install -y etcd-server). */
  readonly executable?: string;
  /** Default 60 000 ms. */
  readonly startTimeoutMs?: number;
  /**
   * After SIGTERM, how long a member gets before SIGKILL; default 2 000 ms. Members stopped together
   * wait for each other (a leader tries to hand over), and the data is thrown away anyway.
   */
  readonly stopTimeoutMs?: number;
}

/** Expected when etcd or openssl is missing here; the message says what to install. */
export class EtcdUnavailableError extends Error {
  readonly code = 'etcd_unavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EtcdUnavailableError';
  }
}

const sharedFlags = [
  '--client-cert-auth',
  '--peer-client-cert-auth',
  '--initial-cluster-state new',
  '--logger zap',
  '--log-level warn',
] as const;

export async function startEtcdCluster(
  options: StartEtcdClusterOptions = {},
): Promise<EtcdCluster> {
  const executable = options.executable ?? findExecutable('etcd');
  if (executable === undefined)
    throw new EtcdUnavailableError(
      'Cannot start etcd: etcd not found; install it with `apt-get install -y etcd-server etcd-client`',
    );
  if (findExecutable('openssl') === undefined)
    throw new EtcdUnavailableError(
      'Cannot start etcd with TLS: openssl not found; install it with `apt-get install -y openssl`',
    );
  const version = /etcd Version: (\S+)/.exec(await runToEnd(executable, ['--version']))?.[1] ?? '?';
  const dir = await mkdtemp(join(tmpdir(), 'secretd-bench-etcd-'));
  const processes: CapturedProcess[] = [];
  const files = {
    cacert: join(dir, 'ca.pem'),
    cert: join(dir, 'client.pem'),
    key: join(dir, 'client-key.pem'),
  };
  const members: EtcdMember[] = [];
  for (let i = 1; i <= (options.members ?? 3); i++) {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    members.push({
      name: `e${i}`,
      clientUrl: `https://127.0.0.1:${clientPort}`,
      peerUrl: `https://127.0.0.1:${peerPort}`,
      dataDir: join(dir, `e${i}`),
    });
  }
  const cluster: EtcdCluster = {
    members,
    version,
    sharedFlags,
    ...files,
    pids: () =>
      processes.flatMap((p) => (p.hasExited() || p.child.pid === undefined ? [] : [p.child.pid])),
    leader: () => etcdLeader(members, files),
    stop: once(async () => {
      await Promise.all(processes.map((p) => stopProcess(p, options.stopTimeoutMs ?? 2_000)));
      await rm(dir, { recursive: true, force: true });
    }),
    [Symbol.asyncDispose]: () => cluster.stop(),
  };
  try {
    await makeCertificates(dir);
    const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const token = `secretd-bench-${randomBytes(6).toString('hex')}`;
    for (const member of members)
      processes.push(spawnCaptured(executable, memberArgs(member, { dir, initialCluster, token })));
    await waitUntil(
      async () => {
        const gone = processes.find((p) => p.hasExited());
        if (gone !== undefined) throw new Error(`an etcd member exited with ${gone.exitStatus()}`);
        await etcdLeader(members, files);
        return true;
      },
      {
        timeoutMs: options.startTimeoutMs ?? 60_000,
        intervalMs: 200,
        what: 'the etcd members to agree on a leader',
      },
    );
    return cluster;
  } catch (error) {
    const outputs = processes
      .map(
        (p, i) =>
          `--- ${members[i]?.name ?? '?'} output, last lines ---\n${p.output() || '(nothing)'}`,
      )
      .join('\n');
    await cluster.stop();
    throw new EtcdUnavailableError(
      `Cannot start an etcd cluster: ${errorReason(error)}\n${outputs}`,
      { cause: error },
    );
  }
}

function memberArgs(
  member: EtcdMember,
  context: { readonly dir: string; readonly initialCluster: string; readonly token: string },
): string[] {
  const { dir } = context;
  return [
    '--name',
    member.name,
    '--data-dir',
    member.dataDir,
    '--listen-client-urls',
    member.clientUrl,
    '--advertise-client-urls',
    member.clientUrl,
    '--listen-peer-urls',
    member.peerUrl,
    '--initial-advertise-peer-urls',
    member.peerUrl,
    '--initial-cluster',
    context.initialCluster,
    '--initial-cluster-token',
    context.token,
    '--initial-cluster-state',
    'new',
    '--cert-file',
    join(dir, 'member.pem'),
    '--key-file',
    join(dir, 'member-key.pem'),
    '--trusted-ca-file',
    join(dir, 'ca.pem'),
    '--client-cert-auth',
    '--peer-cert-file',
    join(dir, 'member.pem'),
    '--peer-key-file',
    join(dir, 'member-key.pem'),
    '--peer-trusted-ca-file',
    join(dir, 'ca.pem'),
    '--peer-client-cert-auth',
    '--logger',
    'zap',
    '--log-level',
    'warn',
  ];
}

/**
 * ECDSA P-256 like secretd's CA, so both handshakes cost alike: a CA, one certificate for every
 * member (server and client use, for the peer links, SAN 127.0.0.1) and one client certificate.
 */
async function makeCertificates(dir: string): Promise<void> {
  const openssl = (args: readonly string[]): Promise<string> => runToEnd('openssl', args);
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const at = (name: string): string => join(dir, name);
  await openssl([
    'req',
    '-x509',
    ...newKey,
    '-keyout',
    at('ca-key.pem'),
    '-out',
    at('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=secretd-bench etcd CA',
  ]);
  const issue = async (name: string, subject: string, extensions: string): Promise<void> => {
    await writeFile(at(`${name}.ext`), extensions);
    await openssl([
      'req',
      ...newKey,
      '-keyout',
      at(`${name}-key.pem`),
      '-out',
      at(`${name}.csr`),
      '-subj',
      subject,
    ]);
    await openssl([
      'x509',
      '-req',
      '-in',
      at(`${name}.csr`),
      '-CA',
      at('ca.pem'),
      '-CAkey',
      at('ca-key.pem'),
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      at(`${name}.pem`),
      '-extfile',
      at(`${name}.ext`),
    ]);
  };
  await issue(
    'member',
    '/CN=etcd-member',
    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n',
  );
  await issue('client', '/CN=bench', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
}

interface StatusJSON {
  readonly header?: { readonly member_id?: unknown };
  readonly leader?: unknown;
}

/** Asks every member; the leader is the one whose own id is the leader id they agree on. */
async function etcdLeader(
  members: readonly EtcdMember[],
  files: ClientTLSFiles,
): Promise<EtcdMember> {
  const statuses = await Promise.all(
    members.map(async (member) => {
      const session = await openSecretdSession(member.clientUrl, files, {
        requestTimeoutMs: 5_000,
      });
      try {
        const answer = await session.request('POST', '/v3/maintenance/status', '{}');
        if (answer.status !== 200)
          throw new Error(
            `${member.name}: /v3/maintenance/status answered ${answer.status}: ${answer.body.slice(0, 200)}`,
          );
        const status = JSON.parse(answer.body) as StatusJSON;
        return {
          member,
          id: String(status.header?.member_id),
          leader: String(status.leader ?? '0'),
        };
      } finally {
        await session.close();
      }
    }),
  );
  const leaderIds = new Set(statuses.map((s) => s.leader));
  const [leaderId] = leaderIds;
  if (leaderIds.size !== 1 || leaderId === undefined || leaderId === '0')
    throw new Error(`etcd members do not agree on a leader: ${[...leaderIds].join(', ')}`);
  const leader = statuses.find((s) => s.id === leaderId);
  if (leader === undefined) throw new Error(`etcd leader ${leaderId} is none of the members`);
  return leader.member;
}
