/**
 * The HTTP API as a factory: `createApp(options)` returns a hono app, served by the node over HTTP/2
 * mutual TLS and on the local admin socket, and called directly (`app.request`) by unit tests.
 * Domain errors become `{"message": …}` with Docker's status codes here, and only here.
 */
import { Hono, type Context } from 'hono';
import { getPath } from 'hono/utils/url';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { httpStatusByCode, NotLeaderError, SecretdError, type ErrorCode } from '../../errors.ts';
import type { Backend, Identity } from './backend.ts';
import { dispatchRoutes } from './routes/dispatch.ts';
import { consistencyHeader, readConsistency, type ReadConsistency } from './read-consistency.ts';
import { nodeRoutes } from './routes/nodes.ts';
import { notImplemented } from './not-implemented.ts';
import { forbiddenAnonymous, raftRoutes } from './routes/peers.ts';
import { secretRoutes } from './routes/secrets.ts';
import { secretVersionRoutes } from './routes/secret-versions.ts';
import { serviceRoutes } from './routes/services.ts';
import { swarmRoutes } from './routes/swarm.ts';
import { systemRoutes } from './routes/system.ts';
import { peerPaths } from '../peers/index.ts';

export interface AppEnv {
  Variables: { identity: Identity };
}

export interface AppOptions {
  readonly backend: Backend;
  /** Maps the raw request to its caller; throws `forbidden` when the caller has no valid identity. */
  readonly identify: (c: Context) => Identity;
  readonly version: string;
}

const statusByCode: Record<ErrorCode, ContentfulStatusCode> = httpStatusByCode;

/** The only routes a TLS connection without a client certificate may reach. */
const anonymousRoutes = new Set<string>(['/_ping', peerPaths.joinCA, peerPaths.join]);

/** Routes a locked manager still answers: enough to see that it is locked and to unlock it. */
const allowedWhileLocked = new Set(['/_ping', '/version', '/info', '/swarm/unlock']);

export function createApp(options: AppOptions): Hono<AppEnv> {
  // One router for both `/x` and Docker's versioned `/v1.NN/x`: the prefix is dropped before routing.
  const app = new Hono<AppEnv>({ getPath: (request) => routePath(getPath(request)) });
  app.use('*', async (c, next) => {
    const identity = options.identify(c);
    c.set('identity', identity);
    if (admit(options.backend, identity, c.req.path, c.req.header(consistencyHeader)) === 'linearizable') return next();
    await readConsistency.run('local', next);
  });
  systemRoutes(app, options);
  secretRoutes(app, options.backend);
  secretVersionRoutes(app, options.backend);
  swarmRoutes(app, options.backend);
  nodeRoutes(app, options.backend);
  raftRoutes(app, options.backend);
  dispatchRoutes(app, options.backend);
  serviceRoutes(app, options.backend);
  app.notFound((c) => {
    const unimplemented = notImplemented(c.req.method, routePath(c.req.path));
    if (unimplemented) return c.json({ message: unimplemented.message }, 501);
    return c.json({ message: `Page not found: ${c.req.method} ${c.req.path.slice(0, 200)}` }, 404);
  });
  app.onError((error, c) => {
    const answer = errorAnswer(error, c.req.method, c.req.path);
    return c.json(answer.body, answer.status);
  });
  return app;
}

/**
 * The gate every request passes before its route: who may call what, nothing but unlocking while
 * locked, and the read consistency asked for. Throws the refusal; returns the consistency.
 */
export function admit(backend: Backend, identity: Identity, path: string, consistency: string | undefined): ReadConsistency {
  const route = routePath(path);
  if (identity.role === 'anonymous' && !anonymousRoutes.has(route)) throw forbiddenAnonymous();
  if (backend.locked && !allowedWhileLocked.has(route)) {
    throw new SecretdError('locked', 'This manager is locked: run `secretd unlock` with the cluster unlock key');
  }
  if (consistency === undefined || consistency === 'linearizable') return 'linearizable';
  if (consistency !== 'local') throw new SecretdError('invalid', `Invalid ${consistencyHeader} header: expected linearizable (the default) or local`);
  return 'local';
}

/** Domain errors in Docker's shape and status; anything unexpected is logged without details. */
export function errorAnswer(error: unknown, method: string, path: string): { status: ContentfulStatusCode; body: Record<string, unknown> } {
  if (error instanceof NotLeaderError) return { status: 503, body: { message: error.message, Leader: error.leaderAddr } };
  if (error instanceof SecretdError) return { status: statusByCode[error.code], body: { message: error.message } };
  // Unexpected: never echo internals (they could hold request data); the node logs them.
  console.error(`secretd: internal error on ${method} ${path.slice(0, 200)}: ${error instanceof Error ? error.name : 'error'}`);
  return { status: 500, body: { message: 'Internal error' } };
}

export function routePath(path: string): string {
  return path.startsWith('/v1.') ? path.replace(/^\/v1\.[0-9]{1,3}(?=\/)/, '') : path;
}

export function requireRole(c: Context<AppEnv>, roles: readonly Identity['role'][], what: string): void {
  checkRole(c.get('identity'), roles, what);
}

export function checkRole(identity: Identity, roles: readonly Identity['role'][], what: string): void {
  if (!roles.includes(identity.role)) {
    throw new SecretdError('forbidden', `Permission denied: a ${identity.role} certificate cannot ${what}`);
  }
}
