/**
 * The TLS port, for real: a real manager behind `serveTls`, real client certificates, HTTP/2 and
 * HTTP/1.1. `POST /secrets/create` over HTTP/2 is served off the stream (api/stream-routes.ts) while HTTP/1.1
 * goes through the app; every request here is sent both ways and must get the same answer.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import type { Http2SecureServer } from 'node:http2';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { createKeyAndCSR, issueCertificate, keyPkcs8ToPem, type Role } from '../../crypto/index.ts';
import {
  joinRequestBytesMax,
  raftBatchBytesMax,
  requestBodyBytesMax,
  certifiedSessionWindowBytes,
  certifiedStreamWindowBytes,
  secretBytesMax,
} from '../../limits.ts';
import type { Message } from '../../raft/types.ts';
import { frame } from '../raft-io/index.ts';
import { encodeMessages } from '../raft-io/index.ts';
import { startTestManager, type TestManager } from '../../../test/helpers/manager.ts';
import { freePort } from '../../../test/helpers/process.ts';
import { AttackPool, closesWithin, type Target } from '../../../test/helpers/attack-clients.ts';
import { until } from '../../../test/helpers/cluster.ts';
import type { ConnectionLimits } from './connection-guard.ts';
import { connectionCounts, serveTls } from './server.ts';

interface Credentials {
  readonly cert?: string;
  readonly key?: string;
}

interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown> | null;
}

let tm: TestManager;
let server: Http2SecureServer;
let url: string;
let caPem: string;
const sessions: ClientHttp2Session[] = [];
const credentials = new Map<Role, Credentials>();

async function certificateFor(role: Role, name: string): Promise<Credentials> {
  const cluster = await tm.manager.cluster();
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const cert = await issueCertificate(
    { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
    csrPem,
    {
      nodeId: name,
      role,
      clusterId: cluster.id,
      now: new Date(),
      lifetimeMs: 3_600_000,
      serial: crypto.getRandomValues(new Uint8Array(16)),
    },
  );
  return { cert, key: keyPkcs8ToPem(keyPkcs8) };
}

/** The TLS port of the test's manager on `port`, serving `backend` (the manager, or a stand-in for it). */
async function serveManager(backend: typeof tm.manager, port: number): Promise<Http2SecureServer> {
  return serveTls({
    backend,
    version: 'test',
    clusterId: tm.manager.state.clusterId,
    listenAddr: `127.0.0.1:${port}`,
    caPem,
    certPem: await readFile(tm.manager.paths.nodeCert, 'utf8'),
    tlsKey: tm.manager.tlsKey,
  });
}

beforeAll(async () => {
  tm = await startTestManager();
  const port = await freePort();
  caPem = (await tm.manager.cluster()).caCertPem;
  server = await serveManager(tm.manager, port);
  url = `https://127.0.0.1:${port}`;
  credentials.set('admin', await certificateFor('admin', 'tester'));
  credentials.set('worker', await certificateFor('worker', 'w1'));
  // A manager certificate counts as one only for a node the store lists as a manager.
  credentials.set('manager', await certificateFor('manager', tm.manager.state.nodeId));
});

afterAll(async () => {
  for (const session of sessions) session.destroy();
  await new Promise((resolve) => server.close(resolve));
  await tm[Symbol.asyncDispose]();
});

function parse(text: string): Record<string, unknown> | null {
  try {
    return text ? (JSON.parse(text) as Record<string, unknown>) : null;
  } catch {
    return { unparsed: text };
  }
}

function overHttp2(
  who: Credentials,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const session = connect(url, { ca: caPem, servername: 'secretd-manager', ...who });
  sessions.push(session);
  session.on('error', () => {});
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/json',
      ...headers,
    });
    let status = 0;
    let text = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('end', () => resolve({ status, json: parse(text) }));
    stream.on('error', reject);
    stream.end(body);
  });
}

function overHttp1(
  who: Credentials,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      `${url}${path}`,
      {
        method: 'POST',
        ca: caPem,
        servername: 'secretd-manager',
        ...who,
        headers: { 'content-type': 'application/json', ...headers },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, json: parse(text) }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** Sends the request both ways, with a name unique to each way, and returns both answers. */
async function bothWays(
  who: Credentials,
  path: string,
  body: (name: string) => string,
  headers?: Record<string, string>,
): Promise<[Answer, Answer]> {
  const tag = crypto.randomUUID().slice(0, 8);
  return [
    await overHttp2(who, path, body(`h2-${tag}`), headers),
    await overHttp1(who, path, body(`h1-${tag}`), headers),
  ];
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const admin = (): Credentials => credentials.get('admin')!;

describe('POST /secrets/create on the TLS port (stream route over HTTP/2, the app over HTTP/1.1)', () => {
  test('creates the secret, at the plain and the versioned path and with a query string', async () => {
    for (const path of ['/secrets/create', '/v1.41/secrets/create', '/v1.47/secrets/create?x=1']) {
      const [h2, h1] = await bothWays(admin(), path, (name) =>
        JSON.stringify({ Name: name, Labels: { env: 'prod' }, Data: b64('s3cr3t') }),
      );
      expect(h2.status).toBe(201);
      expect(h1.status).toBe(201);
      expect(Object.keys(h2.json ?? {})).toEqual(['ID']);
      const stored = await tm.manager.getSecret(String(h2.json?.ID));
      expect(stored.labels).toEqual({ env: 'prod' });
      expect(new TextDecoder().decode(stored.versions.at(-1)!.data)).toBe('s3cr3t');
    }
  });

  test('a value over 4 KiB, read from the body bytes, is stored exactly as sent, and refused as before', async () => {
    const value = new Uint8Array(48 * 1024).map((_, i) => (i * 31 + (i >> 8)) % 256);
    const [h2, h1] = await bothWays(admin(), '/secrets/create', (name) =>
      JSON.stringify({
        name,
        labels: { size: 'large' },
        DATA: Buffer.from(value).toString('base64'),
      }),
    );
    for (const answer of [h2, h1]) {
      expect(answer.status).toBe(201);
      const stored = await tm.manager.getSecret(String(answer.json?.ID));
      expect(stored.labels).toEqual({ size: 'large' });
      expect(Buffer.from(stored.versions.at(-1)!.data).equals(Buffer.from(value))).toBe(true);
    }
    // A bad name with a large value: the name's error, as for a small one, and nothing stored.
    const before = (await tm.manager.listSecrets()).length;
    const [bad2, bad1] = await bothWays(admin(), '/secrets/create', () =>
      JSON.stringify({ Name: 'bad name', Data: Buffer.from(value).toString('base64') }),
    );
    expect(bad2.status).toBe(400);
    expect(bad2).toEqual(bad1);
    expect(String(bad2.json?.message)).toContain('Invalid secret name');
    expect((await tm.manager.listSecrets()).length).toBe(before);
  });

  const refusals: [string, (name: string) => string, number, string][] = [
    ['invalid JSON', () => '{not json', 400, 'not valid JSON'],
    ['an empty body', () => '', 400, 'body is empty'],
    ['a JSON array', () => '[1]', 400, 'expected a JSON object'],
    [
      'an unknown field',
      (name) => JSON.stringify({ Name: name, Data: 'eA==', Colour: 'red' }),
      400,
      'unknown field "Colour"',
    ],
    [
      'an invalid name',
      () => JSON.stringify({ Name: 'bad name', Data: 'eA==' }),
      400,
      'Invalid secret name',
    ],
    [
      'missing data',
      (name) => JSON.stringify({ Name: name }),
      400,
      'Data (base64) must be provided',
    ],
    [
      'data that is not base64',
      (name) => JSON.stringify({ Name: name, Data: '!!!' }),
      400,
      'not valid base64',
    ],
    [
      'a driver',
      (name) => JSON.stringify({ Name: name, Data: 'eA==', Driver: { Name: 'vault' } }),
      400,
      'drivers',
    ],
    ['invalid UTF-8', () => '\u00ff', 400, ''],
    [
      'data over 1 MiB',
      (name) =>
        JSON.stringify({ Name: name, Data: Buffer.alloc(secretBytesMax + 1).toString('base64') }),
      413,
      'over the limit',
    ],
    [
      'a body over the request limit',
      (name) => JSON.stringify({ Name: name, Data: 'A'.repeat(requestBodyBytesMax) }),
      413,
      'over the limit',
    ],
  ];
  test.each(refusals)(
    '%s is refused the same way, and nothing is stored',
    async (_what, body, status, message) => {
      const before = (await tm.manager.listSecrets()).length;
      const [h2, h1] = await bothWays(admin(), '/secrets/create', body);
      expect(h2.status).toBe(status);
      expect(h2).toEqual(h1);
      expect(String(h2.json?.message)).toContain(message);
      expect((await tm.manager.listSecrets()).length).toBe(before);
    },
  );

  test('a declared Content-Length over the limit is refused before any body is sent; one not a number is reset', async () => {
    const session = connect(url, { ca: caPem, servername: 'secretd-manager', ...admin() });
    sessions.push(session);
    session.on('error', () => {});
    for (const [length, status] of [[String(requestBodyBytesMax + 1), 413]] as const) {
      // Headers only: the answer must come while the client still holds the whole body back.
      const answer = await new Promise<number>((resolve, reject) => {
        const stream = session.request(
          { ':method': 'POST', ':path': '/secrets/create', 'content-length': length },
          { endStream: false },
        );
        stream.on('response', (h) => {
          resolve(Number(h[':status']));
          stream.close();
        });
        stream.on('error', reject);
      });
      expect(answer).toBe(status);
    }
    // One that is not a number never reaches a route over HTTP/2: the protocol layer resets it.
    const bogus = await overHttp2(
      admin(),
      '/secrets/create',
      JSON.stringify({ Name: 'bogus', Data: 'eA==' }),
      { 'content-length': 'lots' },
    ).catch((error: Error) => error.message);
    expect(String(bogus)).toContain('PROTOCOL_ERROR');
    expect((await tm.manager.listSecrets()).some((s) => s.name === 'bogus')).toBe(false);
  });

  test('a duplicate name is 409 both ways and the first secret is untouched', async () => {
    const first = await overHttp2(
      admin(),
      '/secrets/create',
      JSON.stringify({ Name: 'dup', Data: b64('one') }),
    );
    expect(first.status).toBe(201);
    const h2 = await overHttp2(
      admin(),
      '/secrets/create',
      JSON.stringify({ Name: 'DUP', Data: b64('two') }),
    );
    const h1 = await overHttp1(
      admin(),
      '/secrets/create',
      JSON.stringify({ Name: 'Dup', Data: b64('two') }),
    );
    expect([h2.status, h1.status]).toEqual([409, 409]);
    expect(h2.json?.message).toBe('Secret DUP already exists');
    const stored = await tm.manager.getSecret('dup');
    expect(new TextDecoder().decode(stored.versions.at(-1)!.data)).toBe('one');
  });

  test('a bad consistency header is refused the same way', async () => {
    const [h2, h1] = await bothWays(
      admin(),
      '/secrets/create',
      (name) => JSON.stringify({ Name: name, Data: 'eA==' }),
      { 'secretd-consistency': 'eventually' },
    );
    expect(h2.status).toBe(400);
    expect(h2).toEqual(h1);
  });

  test('a worker certificate and a connection without one are refused (403) and store nothing', async () => {
    const before = (await tm.manager.listSecrets()).length;
    for (const who of [credentials.get('worker')!, {}]) {
      const [h2, h1] = await bothWays(who, '/secrets/create', (name) =>
        JSON.stringify({ Name: name, Data: 'eA==' }),
      );
      expect(h2.status).toBe(403);
      expect(h2).toEqual(h1);
      expect(String(h2.json?.message)).toContain('Permission denied');
    }
    expect((await tm.manager.listSecrets()).length).toBe(before);
  });

  test('other routes on the same HTTP/2 session still reach the app', async () => {
    const session = connect(url, { ca: caPem, servername: 'secretd-manager', ...admin() });
    sessions.push(session);
    const get = (path: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':method': 'GET', ':path': path });
        let status = 0;
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', () => {});
        stream.on('end', () => resolve(status));
        stream.on('error', reject);
        stream.end();
      });
    expect(await get('/secrets')).toBe(200);
    expect(await get('/_ping')).toBe(200);
    expect(await get('/secrets/create')).toBe(404);
  });
});

describe('POST /secretd/raft/stream on the TLS port', () => {
  /** Opens the Raft stream, writes `chunks`, and reports the status and how the stream ended. */
  function raftStream(
    who: Credentials,
    chunks: Uint8Array[],
    openMs = 300,
  ): Promise<{ status: number; ended: 'closed' | 'open'; rstCode: number }> {
    const session = connect(url, { ca: caPem, servername: 'secretd-manager', ...who });
    sessions.push(session);
    session.on('error', () => {});
    return new Promise((resolve) => {
      const stream = session.request(
        { ':method': 'POST', ':path': '/secretd/raft/stream' },
        { endStream: false },
      );
      let status = 0;
      stream.on('error', () => {});
      stream.on('response', (h) => {
        status = Number(h[':status']);
        for (const chunk of chunks) stream.write(chunk);
        // Still open a while after the writes: the receiver took them.
        setTimeout(() => resolve({ status, ended: 'open', rstCode: 0 }), openMs);
      });
      stream.on('close', () => resolve({ status, ended: 'closed', rstCode: stream.rstCode ?? 0 }));
    });
  }

  /** A frame holding a heartbeat signed for another member: the receiver closes the stream on it. */
  const forgedFrame = (): Uint8Array =>
    frame(
      encodeMessages([
        {
          type: 'heartbeat',
          from: 'someone-else',
          to: tm.manager.state.nodeId,
          term: 1,
          commit: 0,
        } as unknown as Message,
      ]),
    );

  test('an admin or worker certificate, or none, is refused before any frame', async () => {
    for (const who of [admin(), credentials.get('worker')!, {}])
      expect((await raftStream(who, [])).status).toBe(403);
  });

  test('a manager certificate gets the stream; a malformed frame, one over the limit, or a message signed for another member closes it', async () => {
    const manager = credentials.get('manager')!;
    expect(await raftStream(manager, [])).toEqual({ status: 200, ended: 'open', rstCode: 0 });
    const garbage = frame(new TextEncoder().encode('not a batch'));
    const huge = new Uint8Array(4);
    new DataView(huge.buffer).setUint32(0, raftBatchBytesMax + 1);
    for (const chunk of [garbage, huge, forgedFrame()]) {
      const result = await raftStream(manager, [chunk]);
      expect(result.status).toBe(200);
      expect(result.ended).toBe('closed');
      expect(result.rstCode).toBe(constants.NGHTTP2_REFUSED_STREAM);
    }
  });

  test("one stream carries more than its own and its connection's flow-control windows", async () => {
    // Empty batches well past both windows, then a forged one: the server closes the stream only
    // once it has read its way to the last frame, which a stalled window would never let through.
    const empty = frame(encodeMessages([]));
    const total = 3 * certifiedSessionWindowBytes;
    const filler = new Uint8Array(Math.ceil(total / empty.length) * empty.length);
    for (let at = 0; at < filler.length; at += empty.length) filler.set(empty, at);
    const forged = forgedFrame();
    const result = await raftStream(credentials.get('manager')!, [filler, forged], 15_000);
    expect(filler.length).toBeGreaterThan(certifiedSessionWindowBytes + certifiedStreamWindowBytes);
    expect(result).toEqual({
      status: 200,
      ended: 'closed',
      rstCode: constants.NGHTTP2_REFUSED_STREAM,
    });
  });
});

describe('a renewed certificate on the TLS port', () => {
  test('open sessions keep their handshake (a Raft stream on one runs on), and new connections are served with the new certificate', async () => {
    type Renewed = (pair: { readonly certPem: string; readonly tlsKey: Uint8Array }) => void;
    let renew: Renewed | null = null;
    // The manager, but its certificate listener is the test's: it renews when the test says.
    const backend = new Proxy(tm.manager, {
      get(target, key) {
        if (key === 'onNodeCertificate') return (listener: Renewed) => void (renew = listener);
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const port = await freePort();
    const renewing = await serveManager(backend, port);
    const at = `https://127.0.0.1:${port}`;
    const old = connect(at, {
      ca: caPem,
      servername: 'secretd-manager',
      ...credentials.get('manager')!,
    });
    try {
      old.on('error', () => {});
      let goaway = false;
      old.on('goaway', () => (goaway = true));
      const stream = old.request(
        { ':method': 'POST', ':path': '/secretd/raft/stream' },
        { endStream: false },
      );
      stream.on('error', () => {});
      let closed = false;
      stream.on('close', () => (closed = true));
      await new Promise((resolve) => stream.once('response', resolve));

      const cluster = await tm.manager.cluster();
      const { keyPkcs8, csrPem } = await createKeyAndCSR();
      const serial = crypto.getRandomValues(new Uint8Array(16));
      const certPem = await issueCertificate(
        { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
        csrPem,
        {
          nodeId: tm.manager.state.nodeId,
          role: 'manager',
          clusterId: cluster.id,
          now: new Date(),
          lifetimeMs: 3_600_000,
          serial,
        },
      );
      renew!({ certPem, tlsKey: keyPkcs8 });
      // The open session keeps its handshake (its client moves when it renews, PeerClient): the
      // Raft stream on it still takes frames, and no GOAWAY came.
      stream.write(frame(encodeMessages([])));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect({ goaway, closed }).toEqual({ goaway: false, closed: false });

      const served = await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({
          host: '127.0.0.1',
          port,
          ca: caPem,
          servername: 'secretd-manager',
          ALPNProtocols: ['h2'],
          ...credentials.get('manager')!,
        });
        socket.once('secureConnect', () => {
          resolve(socket.getPeerCertificate().serialNumber.toLowerCase());
          socket.destroy();
        });
        socket.once('error', reject);
      });
      expect(served).toBe(new X509Certificate(certPem).serialNumber.toLowerCase());
      stream.close();
    } finally {
      old.destroy();
      await new Promise((resolve) => renewing.close(resolve));
    }
  });
});

describe('who may read /version and /info on the TLS port', () => {
  function get(who: Credentials, path: string): Promise<number> {
    const session = connect(url, { ca: caPem, servername: 'secretd-manager', ...who });
    sessions.push(session);
    session.on('error', () => {});
    return new Promise((resolve, reject) => {
      const stream = session.request({ ':method': 'GET', ':path': path });
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', () => {});
      stream.on('end', () => resolve(status));
      stream.on('error', reject);
    });
  }

  test('a worker certificate gets 403 on /version and /info and 200 on /_ping; admin and manager certificates read them', async () => {
    const worker = credentials.get('worker')!;
    expect([
      await get(worker, '/version'),
      await get(worker, '/v1.41/info'),
      await get(worker, '/_ping'),
    ]).toEqual([403, 403, 200]);
    // The manager's own node certificate (one the store knows as a manager's).
    const manager = {
      cert: await readFile(tm.manager.paths.nodeCert, 'utf8'),
      key: keyPkcs8ToPem(tm.manager.tlsKey),
    };
    for (const who of [admin(), manager])
      expect([await get(who, '/version'), await get(who, '/info')]).toEqual([200, 200]);
    expect([await get({}, '/version'), await get({}, '/info'), await get({}, '/_ping')]).toEqual([
      403, 403, 200,
    ]);
  });
});

/** A second TLS server on the same manager, with `limits` instead of the defaults. */
async function limitedServer(
  limits: Partial<ConnectionLimits>,
): Promise<{ server: Http2SecureServer; target: Target; url: string }> {
  const port = await freePort();
  const limited = await serveTls({
    backend: tm.manager,
    version: 'test',
    clusterId: tm.manager.state.clusterId,
    listenAddr: `127.0.0.1:${port}`,
    caPem,
    certPem: await readFile(tm.manager.paths.nodeCert, 'utf8'),
    tlsKey: tm.manager.tlsKey,
    limits,
  });
  return {
    server: limited,
    target: { host: '127.0.0.1', port, ca: caPem },
    url: `https://127.0.0.1:${port}`,
  };
}

const nothingHeld = { handshaking: 0, anonymous: 0, certified: 0, anonymousBodyBytes: 0 };

/** Waits until the server holds no connection (what a test left behind is gone). */
async function drained(limited: Http2SecureServer): Promise<void> {
  await until('the server to hold no connection', 10_000, () =>
    JSON.stringify(connectionCounts(limited)) === JSON.stringify(nothingHeld) ? true : undefined,
  );
}

/** Reads an HTTP/1.1 answer's status line off a raw TLS socket. */
function statusLine(socket: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      const line = /^HTTP\/1\.1 \d{3}/.exec(text);
      if (line) resolve(line[0]);
    });
    socket.once('close', () => resolve(text.slice(0, 12)));
  });
}

describe('deadlines on the TLS port (short ones, through the real server)', () => {
  let limited: { server: Http2SecureServer; target: Target; url: string };
  beforeAll(async () => {
    limited = await limitedServer({
      tlsHandshakeTimeoutMs: 300,
      requestHeadersTimeoutMs: 300,
      requestBodyIdleTimeoutMs: 300,
      requestBodyTimeoutMs: 3000,
      idleConnectionTimeoutMs: 600,
      anonymousIdleTimeoutMs: 300,
      anonymousConnectionLifetimeMs: 2000,
    });
  });
  afterAll(async () => {
    await drained(limited.server);
    await new Promise((resolve) => limited.server.close(resolve));
  });

  test('a connection that never starts its TLS handshake is closed', async () => {
    await using pool = new AttackPool();
    await closesWithin(pool.stalledHandshake(limited.target), 10_000, 'a stalled handshake');
  });

  test('HTTP/1.1: headers that never end, and a kept-alive connection between requests, are closed', async () => {
    await using pool = new AttackPool();
    const slow = pool.tls(limited.target, { alpn: 'http/1.1', ...admin() });
    await slow.ready;
    slow.socket.write('GET /_ping HTTP/1.1\r\nHost: x\r\n');
    const kept = pool.tls(limited.target, { alpn: 'http/1.1', ...admin() });
    await kept.ready;
    const answered = statusLine(kept.socket);
    kept.socket.write('GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    expect(await answered).toBe('HTTP/1.1 200');
    await closesWithin(slow, 10_000, 'a request whose headers never end');
    await closesWithin(kept, 10_000, 'an idle kept-alive connection');
  });

  test('HTTP/2: a certified session with no open stream gets GOAWAY and is closed; an anonymous one too', async () => {
    await using pool = new AttackPool();
    const certified = pool.session(limited.target, admin());
    const anonymous = pool.session(limited.target);
    await Promise.all([certified.ready, anonymous.ready]);
    let goaway = false;
    certified.socket.once('goaway', () => (goaway = true));
    await closesWithin(certified, 10_000, 'an idle certified session');
    await closesWithin(anonymous, 10_000, 'an idle anonymous session');
    expect(goaway).toBe(true);
  });

  test('a Raft stream keeps its connection past the idle deadline; a session opened after it is closed first', async () => {
    await using pool = new AttackPool();
    const raft = pool.session(limited.target, credentials.get('manager')!);
    const stream = pool.stalledBody(raft.socket, '/secretd/raft/stream', 0);
    expect(await stream.status).toBe(200);
    const later = pool.session(limited.target, admin());
    await later.ready;
    await closesWithin(later, 10_000, 'an idle session');
    expect([stream.isClosed(), raft.isClosed()]).toEqual([false, false]);
  });

  test('an anonymous connection is closed after its lifetime, even while it keeps asking', async () => {
    await using pool = new AttackPool();
    const session = pool.session(limited.target);
    await session.ready;
    const statuses = new Set<number>();
    const timer = setInterval(() => {
      if (session.isClosed()) return;
      const stream = session.socket.request({ ':path': '/_ping' });
      stream.on('response', (h) => statuses.add(Number(h[':status'])));
      stream.on('data', () => {});
      stream.on('error', () => {});
    }, 100);
    try {
      await closesWithin(session, 10_000, 'a busy anonymous session');
    } finally {
      clearInterval(timer);
    }
    expect([...statuses]).toEqual([200]);
  });

  test('a POST whose body never comes is answered 400 and its HTTP/2 stream closed, on the join route and the create route', async () => {
    await using pool = new AttackPool();
    const anonymous = pool.session(limited.target);
    const certified = pool.session(limited.target, admin());
    const join = pool.stalledBody(anonymous.socket, '/secretd/join', 10);
    const create = pool.stalledBody(certified.socket, '/secrets/create', 10);
    expect([await join.status, await create.status]).toEqual([400, 400]);
    await closesWithin(join, 10_000, 'a join stream whose body never ends');
    await closesWithin(create, 10_000, 'a create stream whose body never ends');
  });

  test('HTTP/1.1: a POST whose body never comes is answered 400 and its connection closed', async () => {
    await using pool = new AttackPool();
    const socket = pool.tls(limited.target, { alpn: 'http/1.1' });
    await socket.ready;
    const answered = statusLine(socket.socket);
    socket.socket.write(
      'POST /secretd/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"To',
    );
    expect(await answered).toBe('HTTP/1.1 400');
    await closesWithin(socket, 10_000, 'a connection whose request body never ends');
  });
});

describe('caps on the TLS port (small ones, through the real server)', () => {
  let limited: { server: Http2SecureServer; target: Target; url: string };
  beforeAll(async () => {
    limited = await limitedServer({
      handshakingConnectionsMax: 5,
      handshakingConnectionsPerAddressMax: 3,
      anonymousConnectionsMax: 4,
      anonymousConnectionsPerAddressMax: 2,
      certifiedConnectionsPerAddressMax: 3,
      anonymousStreamsMax: 2,
      anonymousStreamWindowBytes: 16 * 1024,
      connectionBodyBytesMax: 20 * 1024,
      anonymousBodyBytesMax: 12 * 1024,
    });
  });
  afterEach(async () => drained(limited.server));
  afterAll(async () => {
    await new Promise((resolve) => limited.server.close(resolve));
  });

  /** A certified request from `localAddress`, as the anonymous ones fill their budget. */
  async function certifiedPing(pool: AttackPool, localAddress: string): Promise<number> {
    const session = pool.session(limited.target, admin(), localAddress);
    await session.ready;
    const stream = session.socket.request({ ':path': '/secrets' });
    stream.on('data', () => {});
    return new Promise((resolve) => {
      stream.once('response', (h) => resolve(Number(h[':status'])));
      stream.once('close', () => resolve(0));
    });
  }

  test('anonymous connections past the per-address cap and past the total cap are closed at once; certified ones still get through', async () => {
    await using pool = new AttackPool();
    const first = [
      pool.tls(limited.target, { localAddress: '127.0.0.2' }),
      pool.tls(limited.target, { localAddress: '127.0.0.2' }),
    ];
    await Promise.all(first.map((s) => s.ready));
    const overAddress = pool.tls(limited.target, { localAddress: '127.0.0.2' });
    await closesWithin(overAddress, 10_000, 'a third anonymous connection from one address');
    const second = [
      pool.tls(limited.target, { localAddress: '127.0.0.3' }),
      pool.tls(limited.target, { localAddress: '127.0.0.3' }),
    ];
    await Promise.all(second.map((s) => s.ready));
    const overTotal = pool.tls(limited.target, { localAddress: '127.0.0.4' });
    await closesWithin(overTotal, 10_000, 'a fifth anonymous connection');
    expect([...first, ...second].map((s) => s.isClosed())).toEqual([false, false, false, false]);
    expect(connectionCounts(limited.server)).toMatchObject({ anonymous: 4 });
    expect(await certifiedPing(pool, '127.0.0.2')).toBe(200);
  });

  test('stalled handshakes past the per-address and the total cap close the oldest one, and a certified peer still connects', async () => {
    await using pool = new AttackPool();
    const stalled = [pool.stalledHandshake(limited.target, '127.0.0.5')];
    await until('the first stalled handshake to be held', 10_000, () =>
      connectionCounts(limited.server)?.handshaking === 1 ? true : undefined,
    );
    stalled.push(
      pool.stalledHandshake(limited.target, '127.0.0.5'),
      pool.stalledHandshake(limited.target, '127.0.0.5'),
    );
    await until('three stalled handshakes to be held', 10_000, () =>
      connectionCounts(limited.server)?.handshaking === 3 ? true : undefined,
    );
    stalled.push(pool.stalledHandshake(limited.target, '127.0.0.5'));
    await closesWithin(stalled[0]!, 10_000, 'the oldest stalled handshake from the address');
    const elsewhere = [
      pool.stalledHandshake(limited.target, '127.0.0.6'),
      pool.stalledHandshake(limited.target, '127.0.0.6'),
    ];
    await until('five stalled handshakes to be held', 10_000, () =>
      connectionCounts(limited.server)?.handshaking === 5 ? true : undefined,
    );
    expect(stalled.map((s) => s.isClosed())).toEqual([true, false, false, false]);
    // The sixth: the oldest left goes, in all.
    expect(await certifiedPing(pool, '127.0.0.5')).toBe(200);
    await closesWithin(stalled[1]!, 10_000, 'the oldest stalled handshake in all');
    expect([...stalled.slice(2), ...elsewhere].map((s) => s.isClosed())).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });

  test('past the total cap of handshakes, the one closed is the oldest of the address holding the most, not an older one from elsewhere', async () => {
    await using pool = new AttackPool();
    const lone = pool.stalledHandshake(limited.target, '127.0.0.8');
    await until('the lone stalled handshake to be held', 10_000, () =>
      connectionCounts(limited.server)?.handshaking === 1 ? true : undefined,
    );
    const flood = [1, 2, 3].map(() => pool.stalledHandshake(limited.target, '127.0.0.9'));
    const other = pool.stalledHandshake(limited.target, '127.0.0.10');
    await until('five stalled handshakes to be held', 10_000, () =>
      connectionCounts(limited.server)?.handshaking === 5 ? true : undefined,
    );
    // The sixth, from a third address: the flood's oldest goes, though the lone one is older.
    const sixth = pool.stalledHandshake(limited.target, '127.0.0.11');
    await closesWithin(flood[0]!, 10_000, "the flooding address's oldest stalled handshake");
    expect([lone, ...flood.slice(1), other, sixth].map((s) => s.isClosed())).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
  });

  test('certified connections past the per-address cap are closed', async () => {
    await using pool = new AttackPool();
    const held = [0, 1, 2].map(() =>
      pool.tls(limited.target, { localAddress: '127.0.0.7', ...admin() }),
    );
    await Promise.all(held.map((s) => s.ready));
    const over = pool.tls(limited.target, { localAddress: '127.0.0.7', ...admin() });
    await closesWithin(over, 10_000, 'a fourth certified connection from one address');
    expect(held.map((s) => s.isClosed())).toEqual([false, false, false]);
  });

  test('an anonymous HTTP/2 session is told its small stream and window budget', async () => {
    await using pool = new AttackPool();
    const session = pool.session(limited.target);
    await session.ready;
    await until('the anonymous settings', 10_000, () =>
      session.socket.remoteSettings.maxConcurrentStreams === 2 ? true : undefined,
    );
    expect(session.socket.remoteSettings.initialWindowSize).toBe(16 * 1024);
    const certified = pool.session(limited.target, admin());
    await certified.ready;
    await until('the certified settings', 10_000, () =>
      certified.socket.remoteSettings.maxConcurrentStreams === 1000 ? true : undefined,
    );
  });

  test('request bodies buffered past the connection budget, or past the anonymous budget, are refused (503) and their streams closed', async () => {
    await using pool = new AttackPool();
    const certified = pool.session(limited.target, admin());
    const creates = [
      pool.stalledBody(certified.socket, '/secrets/create', 12 * 1024),
      pool.stalledBody(certified.socket, '/secrets/create', 12 * 1024),
    ];
    const joins = [
      pool.stalledBody(
        pool.session(limited.target, {}, '127.0.0.8').socket,
        '/secretd/join',
        7 * 1024,
      ),
      pool.stalledBody(
        pool.session(limited.target, {}, '127.0.0.9').socket,
        '/secretd/join',
        7 * 1024,
      ),
    ];
    // One of each pair fits its budget and waits for the rest of its body; the other is refused.
    const refused = await Promise.all([
      Promise.race(creates.map((s) => s.status)),
      Promise.race(joins.map((s) => s.status)),
    ]);
    expect(refused).toEqual([503, 503]);
    await Promise.race(creates.map((s) => s.closed));
    await Promise.race(joins.map((s) => s.closed));
    expect([
      creates.filter((s) => s.isClosed()).length,
      joins.filter((s) => s.isClosed()).length,
    ]).toEqual([1, 1]);
  });

  test('a join body over its limit is refused (413) and its stream closed without reading the rest; declared, before any of it', async () => {
    await using pool = new AttackPool();
    const session = pool.session(limited.target);
    const undeclared = pool.stalledBody(session.socket, '/secretd/join', joinRequestBytesMax + 1);
    expect(await undeclared.status).toBe(413);
    await closesWithin(undeclared, 10_000, 'a join stream over the limit');
    const declared = pool.stalledBody(
      pool.session(limited.target, {}, '127.0.0.10').socket,
      '/secretd/join',
      0,
      { 'content-length': String(joinRequestBytesMax + 1) },
    );
    expect(await declared.status).toBe(413);
    await closesWithin(declared, 10_000, 'a join stream declaring too much');
  });

  test('HTTP/1.1: a join body over its limit is refused (413) and its connection closed', async () => {
    await using pool = new AttackPool();
    const socket = pool.tls(limited.target, { alpn: 'http/1.1' });
    await socket.ready;
    const answered = statusLine(socket.socket);
    socket.socket.write(
      `POST /secretd/join HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${(joinRequestBytesMax + 1).toString(16)}\r\n${'{'.repeat(joinRequestBytesMax + 1)}\r\n`,
    );
    expect(await answered).toBe('HTTP/1.1 413');
    await closesWithin(socket, 10_000, 'a connection whose join body is over the limit');
  });
});
