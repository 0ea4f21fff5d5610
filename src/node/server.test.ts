/**
 * The TLS port, for real: a real manager behind `serveTls`, real client certificates, HTTP/2 and
 * HTTP/1.1. `POST /secrets/create` over HTTP/2 is served off the stream (api/stream-routes.ts) while HTTP/1.1
 * goes through the app; every request here is sent both ways and must get the same answer.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import type { Http2SecureServer } from 'node:http2';
import { createKeyAndCSR, issueCertificate, keyPkcs8ToPem, type Role } from '../crypto/index.ts';
import { raftBatchBytesMax, requestBodyBytesMax, secretBytesMax } from '../limits.ts';
import type { Message } from '../raft/types.ts';
import { frame } from './raft-frames.ts';
import { encodeMessages } from './raft-wire.ts';
import { startTestManager, type TestManager } from '../../test/helpers/manager.ts';
import { freePort } from '../../test/helpers/process.ts';
import { serveTls } from './server.ts';

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
  const cert = await issueCertificate({ certPem: cluster.caCertPem, keyPkcs8: cluster.caKey }, csrPem, {
    nodeId: name,
    role,
    clusterId: cluster.id,
    now: new Date(),
    lifetimeMs: 3_600_000,
    serial: crypto.getRandomValues(new Uint8Array(16)),
  });
  return { cert, key: keyPkcs8ToPem(keyPkcs8) };
}

beforeAll(async () => {
  tm = await startTestManager();
  const port = await freePort();
  caPem = (await tm.manager.cluster()).caCertPem;
  server = await serveTls({
    backend: tm.manager,
    version: 'test',
    clusterId: tm.manager.state.clusterId,
    listenAddr: `127.0.0.1:${port}`,
    caPem,
    certPem: await readFile(tm.manager.paths.nodeCert, 'utf8'),
    tlsKey: tm.manager.tlsKey,
  });
  url = `https://127.0.0.1:${port}`;
  credentials.set('admin', await certificateFor('admin', 'tester'));
  credentials.set('worker', await certificateFor('worker', 'w1'));
  credentials.set('manager', await certificateFor('manager', 'm-stranger'));
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

function overHttp2(who: Credentials, path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const session = connect(url, { ca: caPem, servername: 'secretd-manager', ...who });
  sessions.push(session);
  session.on('error', () => {});
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json', ...headers });
    let status = 0;
    let text = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('end', () => resolve({ status, json: parse(text) }));
    stream.on('error', reject);
    stream.end(body);
  });
}

function overHttp1(who: Credentials, path: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(`${url}${path}`, { method: 'POST', ca: caPem, servername: 'secretd-manager', ...who, headers: { 'content-type': 'application/json', ...headers } }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, json: parse(text) }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Sends the request both ways, with a name unique to each way, and returns both answers. */
async function bothWays(who: Credentials, path: string, body: (name: string) => string, headers?: Record<string, string>): Promise<[Answer, Answer]> {
  const tag = crypto.randomUUID().slice(0, 8);
  return [await overHttp2(who, path, body(`h2-${tag}`), headers), await overHttp1(who, path, body(`h1-${tag}`), headers)];
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const admin = (): Credentials => credentials.get('admin')!;

describe('POST /secrets/create on the TLS port (stream route over HTTP/2, the app over HTTP/1.1)', () => {
  test('creates the secret, at the plain and the versioned path and with a query string', async () => {
    for (const path of ['/secrets/create', '/v1.41/secrets/create', '/v1.47/secrets/create?x=1']) {
      const [h2, h1] = await bothWays(admin(), path, (name) => JSON.stringify({ Name: name, Labels: { env: 'prod' }, Data: b64('s3cr3t') }));
      expect(h2.status).toBe(201);
      expect(h1.status).toBe(201);
      expect(Object.keys(h2.json ?? {})).toEqual(['ID']);
      const stored = await tm.manager.getSecret(String(h2.json?.ID));
      expect(stored.labels).toEqual({ env: 'prod' });
      expect(new TextDecoder().decode(stored.versions.at(-1)!.data)).toBe('s3cr3t');
    }
  });

  const refusals: [string, (name: string) => string, number, string][] = [
    ['invalid JSON', () => '{not json', 400, 'not valid JSON'],
    ['an empty body', () => '', 400, 'body is empty'],
    ['a JSON array', () => '[1]', 400, 'expected a JSON object'],
    ['an unknown field', (name) => JSON.stringify({ Name: name, Data: 'eA==', Colour: 'red' }), 400, 'unknown field "Colour"'],
    ['an invalid name', () => JSON.stringify({ Name: 'bad name', Data: 'eA==' }), 400, 'Invalid secret name'],
    ['missing data', (name) => JSON.stringify({ Name: name }), 400, 'Data (base64) must be provided'],
    ['data that is not base64', (name) => JSON.stringify({ Name: name, Data: '!!!' }), 400, 'not valid base64'],
    ['a driver', (name) => JSON.stringify({ Name: name, Data: 'eA==', Driver: { Name: 'vault' } }), 400, 'drivers'],
    ['invalid UTF-8', () => '\u00ff', 400, ''],
    ['data over 1 MiB', (name) => JSON.stringify({ Name: name, Data: Buffer.alloc(secretBytesMax + 1).toString('base64') }), 413, 'over the limit'],
    ['a body over the request limit', (name) => JSON.stringify({ Name: name, Data: 'A'.repeat(requestBodyBytesMax) }), 413, 'over the limit'],
  ];
  test.each(refusals)('%s is refused the same way, and nothing is stored', async (_what, body, status, message) => {
    const before = (await tm.manager.listSecrets()).length;
    const [h2, h1] = await bothWays(admin(), '/secrets/create', body);
    expect(h2.status).toBe(status);
    expect(h2).toEqual(h1);
    expect(String(h2.json?.message)).toContain(message);
    expect((await tm.manager.listSecrets()).length).toBe(before);
  });

  test('a declared Content-Length over the limit is refused before any body is sent; one not a number is reset', async () => {
    const session = connect(url, { ca: caPem, servername: 'secretd-manager', ...admin() });
    sessions.push(session);
    session.on('error', () => {});
    for (const [length, status] of [[String(requestBodyBytesMax + 1), 413]] as const) {
      // Headers only: the answer must come while the client still holds the whole body back.
      const answer = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/secrets/create', 'content-length': length }, { endStream: false });
        stream.on('response', (h) => {
          resolve(Number(h[':status']));
          stream.close();
        });
        stream.on('error', reject);
      });
      expect(answer).toBe(status);
    }
    // One that is not a number never reaches a route over HTTP/2: the protocol layer resets it.
    const bogus = await overHttp2(admin(), '/secrets/create', JSON.stringify({ Name: 'bogus', Data: 'eA==' }), { 'content-length': 'lots' }).catch((error: Error) => error.message);
    expect(String(bogus)).toContain('PROTOCOL_ERROR');
    expect((await tm.manager.listSecrets()).some((s) => s.name === 'bogus')).toBe(false);
  });

  test('a duplicate name is 409 both ways and the first secret is untouched', async () => {
    const first = await overHttp2(admin(), '/secrets/create', JSON.stringify({ Name: 'dup', Data: b64('one') }));
    expect(first.status).toBe(201);
    const h2 = await overHttp2(admin(), '/secrets/create', JSON.stringify({ Name: 'DUP', Data: b64('two') }));
    const h1 = await overHttp1(admin(), '/secrets/create', JSON.stringify({ Name: 'Dup', Data: b64('two') }));
    expect([h2.status, h1.status]).toEqual([409, 409]);
    expect(h2.json?.message).toBe('Secret DUP already exists');
    const stored = await tm.manager.getSecret('dup');
    expect(new TextDecoder().decode(stored.versions.at(-1)!.data)).toBe('one');
  });

  test('a bad consistency header is refused the same way', async () => {
    const [h2, h1] = await bothWays(admin(), '/secrets/create', (name) => JSON.stringify({ Name: name, Data: 'eA==' }), { 'secretd-consistency': 'eventually' });
    expect(h2.status).toBe(400);
    expect(h2).toEqual(h1);
  });

  test('a worker certificate and a connection without one are refused (403) and store nothing', async () => {
    const before = (await tm.manager.listSecrets()).length;
    for (const who of [credentials.get('worker')!, {}]) {
      const [h2, h1] = await bothWays(who, '/secrets/create', (name) => JSON.stringify({ Name: name, Data: 'eA==' }));
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
  function raftStream(who: Credentials, chunks: Uint8Array[]): Promise<{ status: number; ended: 'closed' | 'open'; rstCode: number }> {
    const session = connect(url, { ca: caPem, servername: 'secretd-manager', ...who });
    sessions.push(session);
    session.on('error', () => {});
    return new Promise((resolve) => {
      const stream = session.request({ ':method': 'POST', ':path': '/secretd/raft/stream' }, { endStream: false });
      let status = 0;
      stream.on('error', () => {});
      stream.on('response', (h) => {
        status = Number(h[':status']);
        for (const chunk of chunks) stream.write(chunk);
        // Still open a while after the writes: the receiver took them.
        setTimeout(() => resolve({ status, ended: 'open', rstCode: 0 }), 300);
      });
      stream.on('close', () => resolve({ status, ended: 'closed', rstCode: stream.rstCode ?? 0 }));
    });
  }

  test('an admin or worker certificate, or none, is refused before any frame', async () => {
    for (const who of [admin(), credentials.get('worker')!, {}]) expect((await raftStream(who, [])).status).toBe(403);
  });

  test('a manager certificate gets the stream; a malformed frame, one over the limit, or a message signed for another member closes it', async () => {
    const manager = credentials.get('manager')!;
    expect(await raftStream(manager, [])).toEqual({ status: 200, ended: 'open', rstCode: 0 });
    const garbage = frame(new TextEncoder().encode('not a batch'));
    const huge = new Uint8Array(4);
    new DataView(huge.buffer).setUint32(0, raftBatchBytesMax + 1);
    const forged = frame(encodeMessages([{ type: 'heartbeat', from: 'someone-else', to: tm.manager.state.nodeId, term: 1, commit: 0 } as unknown as Message]));
    for (const chunk of [garbage, huge, forged]) {
      const result = await raftStream(manager, [chunk]);
      expect(result.status).toBe(200);
      expect(result.ended).toBe('closed');
      expect(result.rstCode).toBe(constants.NGHTTP2_REFUSED_STREAM);
    }
  });
});
