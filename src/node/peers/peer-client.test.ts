/**
 * What a node checks of the manager it dials (Raft, forwarded writes, the agent's dispatcher
 * session): the cluster CA, and a manager's subject (OU secretd-manager, its own cluster id as O),
 * not only the `secretd-manager` name, which a certificate's SANs can carry whatever its role.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { once } from 'node:events';
import { createSecureServer, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { until } from '../../../test/helpers/cluster.ts';
import {
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  keyPkcs8ToPem,
  type Role,
} from '../../crypto/index.ts';
import {
  serveImpostor,
  workerCertificateNamedAsManager,
  type Impostor,
} from '../../../test/helpers/impostor.ts';
import { managerSubjectProblem, PeerClient } from './peer-client.ts';
import type { PeerStream } from './link.ts';

const clusterId = 'k3x9c2lq0v8w1m5n7p4r6t2y0';
const otherClusterId = 'z9y8x7w6v5u4t3s2r1q0p9o8n';
const ca = await createRootCA({ now: new Date() });

async function certificate(
  role: Role,
  nodeId: string,
  cluster = clusterId,
): Promise<{ cert: string; key: string }> {
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const cert = await issueCertificate(ca, csrPem, {
    nodeId,
    role,
    clusterId: cluster,
    now: new Date(),
    lifetimeMs: 3_600_000,
    serial: crypto.getRandomValues(new Uint8Array(16)),
    ...(role === 'manager' ? { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] } : {}),
  });
  return { cert, key: keyPkcs8ToPem(keyPkcs8) };
}

const self = await certificate('manager', 'selfselfselfselfselfself0');
const client = new PeerClient({ ca: ca.certPem, ...self });
afterAll(() => client.closeAll());

const ok = () => ({ status: 200, body: '{}' });

describe('managerSubjectProblem', () => {
  test('managerSubjectProblem() accepts a manager of the expected cluster, and of any cluster when none is expected', () => {
    const subject = { O: clusterId, OU: 'secretd-manager', CN: 'n1' };
    expect([
      managerSubjectProblem(subject, clusterId),
      managerSubjectProblem(subject, undefined),
    ]).toEqual([null, null]);
  });

  test('managerSubjectProblem() refuses other roles, another cluster, repeated fields and no subject', () => {
    expect([
      managerSubjectProblem({ O: clusterId, OU: 'secretd-worker', CN: 'n1' }, clusterId),
      managerSubjectProblem(
        { O: clusterId, OU: 'secretd-admin', CN: 'secretd-manager' },
        undefined,
      ),
      managerSubjectProblem({ O: otherClusterId, OU: 'secretd-manager', CN: 'n1' }, clusterId),
      managerSubjectProblem(
        { O: clusterId, OU: ['secretd-manager', 'secretd-worker'], CN: 'n1' },
        clusterId,
      ),
      managerSubjectProblem({ O: clusterId, OU: 'secretd-manager' }, clusterId),
      managerSubjectProblem(undefined, undefined),
    ]).toEqual([
      `its certificate is not a manager's (role "secretd-worker", not secretd-manager)`,
      `its certificate is not a manager's (role "secretd-admin", not secretd-manager)`,
      `its certificate belongs to another cluster ("${otherClusterId}", not ${clusterId})`,
      `its certificate is not a manager's (role ["secretd-manager","secretd-worker"], not secretd-manager)`,
      'its certificate names no node id',
      "its certificate is not a manager's (role null, not secretd-manager)",
    ]);
  });
});

describe('PeerClient', () => {
  test('PeerClient.request() refuses a server holding a worker certificate named secretd-manager, sending it nothing', async () => {
    await using impostor = await serveImpostor(
      {
        ca: ca.certPem,
        ...(await workerCertificateNamedAsManager(ca, clusterId, 'workerworkerworkerworker0')),
      },
      ok,
    );
    const error = await refusal(
      client.request(
        `127.0.0.1:${impostor.port}`,
        'POST',
        '/secretd/raft/propose',
        new TextEncoder().encode('{"Command":{}}'),
        { timeoutMs: 20_000 },
      ),
    );
    expect(error).toBe(
      `Cannot reach manager at 127.0.0.1:${impostor.port}: the server is not a secretd manager: its certificate is not a manager's (role "secretd-worker", not secretd-manager)`,
    );
    expect(impostor.seen).toEqual([]);
  });

  test("PeerClient.openLines() (an agent's dispatcher session) refuses a worker certificate named secretd-manager", async () => {
    await using impostor = await serveImpostor(
      {
        ca: ca.certPem,
        ...(await workerCertificateNamedAsManager(ca, clusterId, 'workerworkerworkerworker0')),
      },
      ok,
    );
    const error = await refusal(
      client.openLines(`127.0.0.1:${impostor.port}`, '/secretd/dispatcher/session', {
        onLine: () => {},
        onEnd: () => {},
      }),
    );
    expect(error).toContain(
      'the server is not a secretd manager: its certificate is not a manager',
    );
    expect(impostor.seen).toEqual([]);
  });

  test('PeerClient.request() refuses a manager certificate that names another cluster', async () => {
    await using impostor = await serveImpostor(
      {
        ca: ca.certPem,
        ...(await certificate('manager', 'strangerstrangerstranger0', otherClusterId)),
      },
      ok,
    );
    const error = await refusal(
      client.request(`127.0.0.1:${impostor.port}`, 'GET', '/secretd/raft/status', null, {
        timeoutMs: 20_000,
      }),
    );
    expect(error).toBe(
      `Cannot reach manager at 127.0.0.1:${impostor.port}: the server is not a secretd manager: its certificate belongs to another cluster ("${otherClusterId}", not ${clusterId})`,
    );
    expect(impostor.seen).toEqual([]);
  });

  test('PeerClient.request() reaches a manager of its own cluster', async () => {
    await using manager = await serveImpostor(
      { ca: ca.certPem, ...(await certificate('manager', 'peerpeerpeerpeerpeerpeer0')) },
      ok,
    );
    const answer = await client.request(
      `127.0.0.1:${manager.port}`,
      'GET',
      '/secretd/raft/status',
      null,
      { timeoutMs: 20_000 },
    );
    expect([answer.status, new TextDecoder().decode(answer.body), manager.seen]).toEqual([
      200,
      '{}',
      [{ method: 'GET', path: '/secretd/raft/status', body: '' }],
    ]);
  });
});

/** A manager-like server whose `/lines` streams a numbered line every 10 ms; others answer `{}`. */
async function linesServer() {
  const server = createSecureServer({
    ca: ca.certPem,
    ...(await certificate('manager', 'peerpeerpeerpeerpeerpeer0')),
    requestCert: true,
    rejectUnauthorized: false,
  });
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session) => sessions.add(session));
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => {});
    stream.respond({ ':status': 200 });
    if (headers[':path'] !== '/lines') return void stream.end('{}');
    let n = 0;
    const writing = setInterval(() => stream.write(`line ${n++}\n`), 10);
    stream.on('close', () => clearInterval(writing));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    addr: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessions,
    async [Symbol.asyncDispose]() {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Opens `/lines` and a Raft-like stream, then `retire` (a renewal: setTls with a new certificate
 * and `ca`, or the server's GOAWAY) once three lines came, then makes a request; says whether the
 * lines stream ended, how often it was told of the retirement, which streams count as retired
 * (the one opened before, and one opened after), and how many sessions the server saw.
 */
type Retire = (
  client: PeerClient,
  server: Awaited<ReturnType<typeof linesServer>>,
  raft: PeerStream,
) => Promise<void>;

async function retireWhileStreaming(retire: Retire) {
  await using server = await linesServer();
  const renewing = new PeerClient({ ca: ca.certPem, ...self });
  try {
    const lines: string[] = [];
    let ended = false;
    let told = 0;
    await renewing.openLines(server.addr, '/lines', {
      onLine: (line) => lines.push(line),
      onEnd: () => (ended = true),
      onRetired: () => told++,
    });
    const raft = renewing.openStream(server.addr, '/raft');
    raft.on('error', () => {});
    await until('three lines', 10_000, () => (lines.length >= 3 ? true : undefined));
    const retiredBefore = renewing.retired(raft);
    await retire(renewing, server, raft);
    const before = lines.length;
    const answer = await renewing.request(server.addr, 'GET', '/other', null, {
      timeoutMs: 10_000,
    });
    await until('ten more lines, or the end', 10_000, () =>
      lines.length >= before + 10 || ended ? true : undefined,
    );
    const after = renewing.openStream(server.addr, '/raft');
    after.on('error', () => {});
    const inOrder = lines.every((line, i) => line === `line ${i}`);
    return {
      ended,
      inOrder,
      told,
      retired: {
        before: retiredBefore,
        opened: renewing.retired(raft),
        after: renewing.retired(after),
      },
      status: answer.status,
      sessions: server.sessions.size,
    };
  } finally {
    renewing.closeAll();
  }
}

/** What retireWhileStreaming gives when its owners were told and new streams went on a new session. */
const moved = (ended: boolean) => ({
  ended,
  inOrder: true,
  told: 1,
  retired: { before: false, opened: true, after: false },
  status: 200,
  sessions: 2,
});

const renewal =
  (caPem: string): Retire =>
  async (client) =>
    client.setTls({ ca: caPem, ...(await certificate('manager', 'selfselfselfselfselfself0')) });

describe('PeerClient.setTls', () => {
  test('a renewed certificate: what an open session carries runs on, its owners are told to move (onRetired, retired()), and the next request opens a new session', async () => {
    expect(await retireWhileStreaming(renewal(ca.certPem))).toEqual(moved(false));
  });

  test('new trusted roots (a root CA rotation): open sessions are cut, so their owners reconnect under the new trust', async () => {
    const next = await createRootCA({ now: new Date() });
    expect(await retireWhileStreaming(renewal(`${ca.certPem}${next.certPem}`))).toEqual(
      moved(true),
    );
  });

  test("the server's GOAWAY (a graceful close) retires the session as a renewal does: open streams run on, their owners are told, new ones go on a new session", async () => {
    const goaway: Retire = async (client, server, raft) => {
      for (const session of server.sessions) session.close();
      await until('the GOAWAY to reach the client', 10_000, () =>
        client.retired(raft) ? true : undefined,
      );
    };
    expect(await retireWhileStreaming(goaway)).toEqual(moved(false));
  });
});

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected a refusal, got an answer');
}
