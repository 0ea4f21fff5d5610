/**
 * `secretd console`'s web server (node:http, loopback by default): the page, its script and its
 * style (all in the executable: assets/), the views' data as JSON under /api/, changes, and live
 * updates (/api/events). Security (README, "Console"):
 *   - a request's Host must be the address the console listens on (no DNS rebinding);
 *   - the printed URL's token opens a session (HttpOnly, SameSite=Strict cookie) and the browser is
 *     sent to the same page without it; every other request needs the cookie (401 without);
 *   - every change (POST, DELETE) needs the session's CSRF token in a header and an Origin equal to
 *     the console's own (403 otherwise), and a JSON body;
 *   - a strict Content-Security-Policy on every answer (no inline script, no eval, nothing but self);
 *   - no secret value in any answer: the cluster's API never returns one, and a value posted to
 *     create a secret or add a version is passed on in that one call and dropped.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SecretdError, httpStatusByCode } from '../errors.ts';
import { requestBodyBytesMax } from '../limits.ts';
import type { Random } from '../crypto/random.ts';
import type { Timers } from '../io/timers.ts';
import { appScript } from './assets/app.ts';
import { pageHtml } from './assets/page.ts';
import { styleSheet } from './assets/style.ts';
import { Cluster, type ClusterClient, type SecretSpecParser, type Whoami } from './_cluster.ts';
import { EventHub } from './_events.ts';
import {
  csrfHeader,
  csrfMatches,
  securityHeaders,
  sessionCookie,
  Sessions,
  type Session,
} from './_session.ts';

export interface ConsoleOptions {
  /** The cluster, through the CLI's client (closed by the caller). */
  readonly client: ClusterClient;
  readonly parseSecretSpec: SecretSpecParser;
  /** `host:port` to listen on; port 0 picks one. */
  readonly listen: { readonly host: string; readonly port: number };
  readonly random: Random;
  readonly timers: Timers;
  readonly now: () => Date;
}

export interface RunningConsole extends AsyncDisposable {
  /** The URL with the token, to print. */
  readonly url: string;
  /** The role the console acts with (its certificate's, or admin on the admin socket). */
  readonly whoami: Whoami;
}

/** Starts the console: asks the cluster who it is first (so a wrong certificate fails at once). */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const cluster = new Cluster(options.client, options.parseSecretSpec);
  const whoami = await cluster.whoami();
  const sessions = new Sessions(options.random);
  const events = new EventHub(cluster, whoami.Allowed, options.timers, options.now);
  let origin = '';
  const server = createServer((req, res) => {
    void handle(req, res).catch((error: unknown) => answerError(res, error));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    if (req.headers.host !== url.host)
      return answer(res, 421, {
        message: `Refused: Host ${JSON.stringify(req.headers.host ?? '')} is not ${url.host}`,
      });
    const token = url.searchParams.get('token');
    if (token !== null && req.method === 'GET') {
      const opened = sessions.open(token);
      if (!opened) return answer(res, 401, { message: 'Refused: the token is not this console’s' });
      url.searchParams.delete('token');
      res.writeHead(303, {
        ...securityHeaders,
        location: `${url.pathname}${url.search}`,
        'set-cookie': sessionCookie(opened),
      });
      return void res.end();
    }
    const session = sessions.of(req.headers.cookie);
    if (!session) {
      if (url.pathname.startsWith('/api/'))
        return answer(res, 401, {
          message: 'Refused: no console session (open the URL secretd console printed)',
        });
      return text(
        res,
        401,
        'text/plain; charset=utf-8',
        'Open the URL that secretd console printed (with its token) to start a session.\n',
      );
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      if (req.headers.origin !== origin)
        return answer(res, 403, {
          message: `Refused: Origin ${JSON.stringify(req.headers.origin ?? '')} is not ${origin}`,
        });
      if (!csrfMatches(session, header(req, csrfHeader)))
        return answer(res, 403, { message: 'Refused: missing or wrong CSRF token' });
    }
    return route(req, res, url, session);
  }

  async function route(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    session: Session,
  ): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      if (path === '/') return text(res, 200, 'text/html; charset=utf-8', pageHtml);
      if (path === '/assets/app.js')
        return text(res, 200, 'text/javascript; charset=utf-8', appScript);
      if (path === '/assets/style.css')
        return text(res, 200, 'text/css; charset=utf-8', styleSheet);
      if (path === '/favicon.ico') return void res.writeHead(204, securityHeaders).end();
      if (path === '/api/whoami') return answer(res, 200, { ...whoami, Csrf: session.csrf });
      if (path === '/api/cluster') return answer(res, 200, await cluster.cluster(whoami.Allowed));
      if (path === '/api/workload')
        return answer(res, 200, await cluster.workloadWithVersions(whoami.Allowed));
      if (path === '/api/audit')
        return answer(res, 200, await cluster.audit(Object.fromEntries(url.searchParams)));
      if (path === '/api/audit/verify') return answer(res, 200, await cluster.verifyAudit());
      if (path === '/api/events') {
        if (!events.add(res))
          answer(res, 503, { message: 'Too many pages listen to this console' });
        return;
      }
      const secret = /^\/api\/secrets\/([^/]+)$/.exec(path);
      if (secret)
        return answer(
          res,
          200,
          await cluster.secret(whoami.Allowed, decodeURIComponent(secret[1]!)),
        );
      return answer(res, 404, { message: `Not found: ${path}` });
    }
    // A DELETE carries a body only for ungrant (its constraints).
    const withBody = method === 'POST' || req.headers['content-type'] !== undefined;
    const body = withBody ? await readJson(req) : {};
    const one =
      /^\/api\/(secrets|services)\/([^/]+)(?:\/(versions|rollback|update|grants)(?:\/(\d+))?)?$/.exec(
        path,
      );
    if (method === 'POST' && path === '/api/secrets')
      return answer(
        res,
        201,
        await cluster.createSecret({
          Name: str(body.Name, 'Name'),
          Labels: labels(body.Labels),
          Data: str(body.Data, 'Data'),
        }),
      );
    if (one) {
      const [, kind, rawRef, action, version] = one;
      const ref = decodeURIComponent(rawRef!);
      if (kind === 'secrets' && method === 'POST' && action === 'versions' && !version)
        return answer(
          res,
          200,
          await cluster.addVersion(ref, {
            Data: str(body.Data, 'Data'),
            ...optionalInt(body.IfVersion, 'IfVersion'),
          }),
        );
      if (kind === 'secrets' && method === 'POST' && action === 'rollback')
        return answer(
          res,
          200,
          await cluster.rollback(ref, {
            To: int(body.To, 'To'),
            ...optionalInt(body.IfVersion, 'IfVersion'),
          }),
        );
      if (kind === 'secrets' && method === 'DELETE' && action === 'versions' && version)
        return answer(res, 200, (await cluster.removeVersion(ref, Number(version))) ?? {});
      if (kind === 'secrets' && method === 'POST' && action === 'grants' && !version)
        return answer(
          res,
          201,
          await cluster.grant(
            ref,
            strings(body.Constraints, 'Constraints'),
            body.Version === undefined || body.Version === null || body.Version === ''
              ? null
              : int(body.Version, 'Version'),
          ),
        );
      if (kind === 'secrets' && method === 'DELETE' && action === 'grants' && !version)
        return answer(
          res,
          200,
          await cluster.ungrant(ref, strings(body.Constraints, 'Constraints')),
        );
      if (kind === 'secrets' && method === 'DELETE' && action === undefined)
        return answer(res, 200, (await cluster.removeSecret(ref)) ?? {});
      if (kind === 'services' && method === 'POST' && action === 'update')
        return answer(
          res,
          200,
          (await cluster.updateService(ref, {
            ...(body.Replicas === undefined ? {} : { replicas: int(body.Replicas, 'Replicas') }),
            ...(body.SecretAdd === undefined
              ? {}
              : { secretAdd: str(body.SecretAdd, 'SecretAdd') }),
            ...(body.SecretRm === undefined ? {} : { secretRm: str(body.SecretRm, 'SecretRm') }),
          })) ?? {},
        );
    }
    return answer(res, 404, { message: `Not found: ${method} ${path}` });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.listen.port, options.listen.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  origin = `http://${host}:${address.port}`;
  return {
    url: `${origin}/?token=${sessions.token}`,
    whoami,
    async [Symbol.asyncDispose]() {
      events.close();
      sessions.clear();
      await closeServer(server);
    },
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function text(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { ...securityHeaders, 'content-type': type });
  res.end(body);
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  text(res, status, 'application/json; charset=utf-8', JSON.stringify(body));
}

function answerError(res: ServerResponse, error: unknown): void {
  if (res.headersSent) return void res.end();
  if (error instanceof SecretdError)
    return answer(res, httpStatusByCode[error.code], { message: error.message });
  answer(res, 500, { message: `Console error: ${(error as Error).message}` });
}

/** A JSON object body, at most requestBodyBytesMax (a secret's value in base64 and its envelope). */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/json'))
    throw new SecretdError(
      'invalid',
      'Invalid request: the body must be JSON (content-type application/json)',
    );
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > requestBodyBytesMax)
      throw new SecretdError(
        'too_large',
        `Invalid request: the body is over ${requestBodyBytesMax} bytes`,
      );
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks);
  try {
    const parsed: unknown = JSON.parse(raw.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new SecretdError('invalid', 'Invalid request: the body must be a JSON object');
    return parsed as Record<string, unknown>;
  } catch (error) {
    if (error instanceof SecretdError) throw error;
    throw new SecretdError('invalid', 'Invalid request: the body is not JSON');
  } finally {
    // The body may hold a value: zero what this process read of it (best effort under a GC).
    raw.fill(0);
    for (const chunk of chunks) chunk.fill(0);
  }
}

function str(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '')
    throw new SecretdError('invalid', `Invalid request: ${field} must be a non-empty string`);
  return value;
}

function int(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0)
    throw new SecretdError('invalid', `Invalid request: ${field} must be a whole number`);
  return value;
}

function optionalInt(value: unknown, field: string): { IfVersion?: number } {
  return value === undefined || value === null || value === ''
    ? {}
    : { IfVersion: int(value, field) };
}

/** A list of strings (empty ones dropped): a grant's node constraints. */
function strings(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))
    throw new SecretdError('invalid', `Invalid request: ${field} must be a list of strings`);
  return (value as string[]).map((v) => v.trim()).filter((v) => v !== '');
}

function labels(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new SecretdError('invalid', 'Invalid request: Labels must be an object of strings');
  for (const v of Object.values(value))
    if (typeof v !== 'string')
      throw new SecretdError('invalid', 'Invalid request: Labels must be an object of strings');
  return value as Record<string, string>;
}
