/**
 * The console's server on a real loopback socket, with a recorded cluster client in place of the
 * CLI's: the token exchange, the refusals (no session, wrong Origin, no CSRF token, another Host),
 * the headers, what a change passes to the cluster (and that it never comes back), and the
 * cluster's own refusals passed on. The browser side is test/e2e/console.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { request } from 'node:http';
import { systemNow, systemRandom } from '../io/system.ts';
import { systemTimers } from '../io/timers.ts';
import type { ClusterClient } from './_cluster.ts';
import { startConsole, type RunningConsole } from './server.ts';

interface Call {
  readonly method: string;
  readonly path: string;
  readonly body: unknown;
}

/** Answers as a reader's or an admin's cluster would; records every call. */
function recordingClient(role: 'admin' | 'reader', calls: Call[]): ClusterClient {
  const allowed =
    role === 'admin' ? ['GET /secrets', 'POST /secrets/create'] : ['GET /secrets', 'GET /nodes'];
  return {
    async request(method, path, body) {
      calls.push({ method, path, body });
      if (path === '/secretd/whoami')
        return {
          status: 200,
          body: { Role: role, Name: `${role}-cert`, Scope: [], Allowed: allowed },
        };
      if (method === 'POST' && path === '/secrets/create')
        return role === 'admin'
          ? { status: 201, body: { ID: 'secret-id-1' } }
          : {
              status: 403,
              body: { message: 'Permission denied: role reader may not create secrets' },
            };
      if (path.startsWith('/secretd/secrets/db/grants')) {
        const grants =
          method === 'POST' ? [{ Constraints: ['node.role==manager'], Version: 2 }] : [];
        return {
          status: method === 'POST' ? 201 : 200,
          body: { ID: 'id-db', Name: 'db', Grants: grants },
        };
      }
      return { status: 200, body: [] };
    },
    close() {},
  };
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
}

function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

async function session(
  running: RunningConsole,
): Promise<{ origin: string; cookie: string; csrf: string }> {
  const origin = new URL(running.url).origin;
  const opened = await send(running.url);
  const cookie = String(opened.headers['set-cookie']).split(';')[0]!;
  const who = await send(`${origin}/api/whoami`, { headers: { cookie } });
  return { origin, cookie, csrf: (JSON.parse(who.text) as { Csrf: string }).Csrf };
}

const value = Buffer.from('the-value-7d1e').toString('base64');

describe('the console server', () => {
  const calls: Call[] = [];
  let admin: RunningConsole;
  let reader: RunningConsole;

  beforeAll(async () => {
    const options = {
      parseSecretSpec: () => ({ File: { Name: 'x' } }),
      listen: { host: '127.0.0.1', port: 0 },
      random: systemRandom,
      timers: systemTimers,
      now: systemNow,
    };
    admin = await startConsole({ ...options, client: recordingClient('admin', calls) });
    reader = await startConsole({ ...options, client: recordingClient('reader', []) });
  });
  afterAll(async () => {
    await admin?.[Symbol.asyncDispose]();
    await reader?.[Symbol.asyncDispose]();
  });

  test('the token URL sets an HttpOnly SameSite=Strict cookie and redirects without the token', async () => {
    expect(admin.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/);
    const opened = await send(admin.url);
    expect(opened.status).toBe(303);
    expect(opened.headers.location).toBe('/');
    expect(String(opened.headers['set-cookie'])).toMatch(
      /^secretd_console=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict$/,
    );
    expect(String(opened.headers['set-cookie'])).not.toContain(
      new URL(admin.url).searchParams.get('token')!,
    );
  });

  test('a wrong token, no cookie or another Host is refused', async () => {
    const origin = new URL(admin.url).origin;
    expect((await send(`${origin}/?token=${'0'.repeat(64)}`)).status).toBe(401);
    expect(await send(`${origin}/api/workload`)).toMatchObject({
      status: 401,
      text: '{"message":"Refused: no console session (open the URL secretd console printed)"}',
    });
    expect((await send(`${origin}/`)).status).toBe(401);
    const { cookie } = await session(admin);
    const rebound = await send(`${origin}/api/workload`, {
      headers: { cookie, host: `attacker.example:${new URL(origin).port}` },
    });
    expect(rebound.status).toBe(421);
  });

  test('every answer carries the strict policy and no caching', async () => {
    const { origin, cookie } = await session(admin);
    for (const path of ['/', '/assets/app.js', '/assets/style.css', '/api/whoami', '/nowhere']) {
      const answer = await send(`${origin}${path}`, { headers: { cookie } });
      expect(answer.headers['content-security-policy']).toBe(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
      );
      expect(answer.headers['cache-control']).toBe('no-store');
    }
    const page = await send(`${origin}/`, { headers: { cookie } });
    // No inline script: the one script tag names a file.
    expect(page.text.match(/<script[^>]*>/g)).toEqual(['<script src="/assets/app.js" defer>']);
  });

  test('a change without the CSRF token or from another Origin reaches nothing', async () => {
    const { origin, cookie, csrf } = await session(admin);
    const body = JSON.stringify({ Name: 'db', Data: value });
    const post = (headers: Record<string, string>) =>
      send(`${origin}/api/secrets`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', cookie, ...headers },
        body,
      });
    calls.length = 0;
    expect(await post({ origin })).toMatchObject({
      status: 403,
      text: '{"message":"Refused: missing or wrong CSRF token"}',
    });
    expect(await post({ origin, 'x-csrf-token': 'f'.repeat(64) })).toMatchObject({ status: 403 });
    expect(await post({ origin: 'http://127.0.0.1:1', 'x-csrf-token': csrf })).toMatchObject({
      status: 403,
      text: `{"message":"Refused: Origin \\"http://127.0.0.1:1\\" is not ${origin}"}`,
    });
    expect(await post({ 'x-csrf-token': csrf })).toMatchObject({ status: 403 });
    expect(calls).toEqual([]);
  });

  test('a create passes the value to the cluster once and answers without it', async () => {
    const { origin, cookie, csrf } = await session(admin);
    calls.length = 0;
    const answer = await send(`${origin}/api/secrets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, origin, 'x-csrf-token': csrf },
      body: JSON.stringify({ Name: 'db', Labels: { env: 'prod' }, Data: value }),
    });
    expect(answer).toMatchObject({ status: 201, text: '{"ID":"secret-id-1"}' });
    expect(calls).toEqual([
      {
        method: 'POST',
        path: '/secrets/create',
        body: { Name: 'db', Labels: { env: 'prod' }, Data: value },
      },
    ]);
  });

  test('bad input is refused before the cluster is asked', async () => {
    const { origin, cookie, csrf } = await session(admin);
    calls.length = 0;
    const post = (body: string, type = 'application/json') =>
      send(`${origin}/api/secrets`, {
        method: 'POST',
        headers: { 'content-type': type, cookie, origin, 'x-csrf-token': csrf },
        body,
      });
    expect(await post('{"Name":"db"}')).toMatchObject({
      status: 400,
      text: '{"message":"Invalid request: Data must be a non-empty string"}',
    });
    expect(await post('not json')).toMatchObject({ status: 400 });
    expect(await post('Name=db', 'application/x-www-form-urlencoded')).toMatchObject({
      status: 400,
      text: '{"message":"Invalid request: the body must be JSON (content-type application/json)"}',
    });
    expect(calls).toEqual([]);
  });

  test('grant and ungrant make the CLI’s calls and answer with its lines; no constraint is the CLI’s error, before the cluster', async () => {
    const { origin, cookie, csrf } = await session(admin);
    const change = (method: string, body: unknown) => {
      const text = JSON.stringify(body);
      // A DELETE's body needs its length (node:http sends none chunked); browsers send it.
      const length = String(Buffer.byteLength(text));
      return send(`${origin}/api/secrets/db/grants`, {
        method,
        headers: {
          'content-type': 'application/json',
          'content-length': length,
          cookie,
          origin,
          'x-csrf-token': csrf,
        },
        body: text,
      });
    };
    calls.length = 0;
    expect(
      JSON.parse((await change('POST', { Constraints: [' node.role==manager '], Version: 2 })).text)
        .Message,
    ).toBe('db: granted to nodes where node.role==manager (version 2)');
    expect(
      JSON.parse((await change('DELETE', { Constraints: ['node.role==manager'] })).text).Message,
    ).toBe('db: grant removed (0 left)');
    expect(calls).toEqual([
      {
        method: 'POST',
        path: '/secretd/secrets/db/grants',
        body: { Constraints: ['node.role==manager'], Version: 2 },
      },
      {
        method: 'DELETE',
        path: '/secretd/secrets/db/grants?constraint=node.role%3D%3Dmanager',
        body: undefined,
      },
    ]);
    calls.length = 0;
    expect(await change('POST', { Constraints: ['', ' '] })).toMatchObject({
      status: 400,
      text: '{"message":"Missing --node-constraint: say which nodes the grant is for (e.g. --node-constraint node.labels.role==db)"}',
    });
    expect(await change('DELETE', { Constraints: 'node.role==manager' })).toMatchObject({
      status: 400,
      text: '{"message":"Invalid request: Constraints must be a list of strings"}',
    });
    expect(calls).toEqual([]);
  });

  test('a reader console passes the cluster’s 403 on, and its whoami lists only its routes', async () => {
    const { origin, cookie, csrf } = await session(reader);
    const who = JSON.parse((await send(`${origin}/api/whoami`, { headers: { cookie } })).text);
    expect({ ...who, Csrf: typeof who.Csrf }).toEqual({
      Role: 'reader',
      Name: 'reader-cert',
      Scope: [],
      Allowed: ['GET /secrets', 'GET /nodes'],
      Csrf: 'string',
    });
    const forged = await send(`${origin}/api/secrets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, origin, 'x-csrf-token': csrf },
      body: JSON.stringify({ Name: 'db', Data: value }),
    });
    expect(forged).toMatchObject({
      status: 403,
      text: '{"message":"Permission denied: role reader may not create secrets"}',
    });
  });
});
