/**
 * The gate: what every request passes before its route, and what it is told when it does not.
 *
 *   1. `admission`   (the app's first middleware) who the caller is; a connection without a
 *                    certificate reaches only the join routes and /_ping; a locked manager answers
 *                    nothing but what unlocking needs; the read consistency asked for.
 *   2. `allow`       (per route) its row of the access table (access.ts): the roles that may call
 *                    it, the action a refused caller is told it may not do, a writer's scope.
 *   3. `answerError` / `answerNotFound`: domain errors become `{"message": …}` with Docker's status
 *                    codes (src/errors.ts maps code → status), here and only here.
 *
 * Routes import this file and nothing above them; app.ts imports the routes and this file. The
 * TLS port's stream routes (stream-routes.ts) answer through the same functions.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { getPath } from 'hono/utils/url';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { httpStatusByCode, NotLeaderError, SecretdError } from '../../errors.ts';
import { peerPaths } from '../peers/index.ts';
import { checkAccess, checkSecretScope, ruleOf, scopeOf, type AccessRule } from './access.ts';
import type { Backend, Identity } from './backend.ts';
import { notImplemented } from './not-implemented.ts';
import {
  auditForwardParam,
  auditRefusedCaller,
  auditRequest,
  type AuditedRequest,
} from '../audit/index.ts';
import { consistencyHeader, readConsistency, type ReadConsistency } from './read-consistency.ts';

/** What the gate leaves on the context for the routes: the caller. */
export interface AppEnv {
  Variables: { identity: Identity };
}

export type { Role } from './access.ts';

/** The only routes a TLS connection without a client certificate may reach. */
const anonymousRoutes = new Set<string>(['/_ping', peerPaths.joinCA, peerPaths.join]);

/** Routes a locked manager still answers: enough to see that it is locked and to unlock it. */
const allowedWhileLocked = new Set(['/_ping', '/version', '/info', '/swarm/unlock']);

/** A path without Docker's optional `/v1.NN` prefix: one route serves both `/x` and `/v1.NN/x`. */
export function routePath(path: string): string {
  return path.startsWith('/v1.') ? path.replace(/^\/v1\.[0-9]{1,3}(?=\/)/, '') : path;
}

/** The app's `getPath`: the request's path with the version prefix dropped, before routing. */
export function routePathOf(request: Request): string {
  return routePath(getPath(request));
}

/**
 * The app's first middleware: identifies the caller (`identify` throws `forbidden` for a caller
 * with no valid identity), admits it, and runs the rest at the read consistency it asked for.
 */
export function admission(
  backend: Backend,
  identify: (c: Context) => Identity,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const request = identifyAudited(
      backend,
      {
        method: c.req.method,
        path: routePath(c.req.path),
        source: () => peerAddressOf(c),
        forwarded: () => c.req.query(auditForwardParam),
      },
      () => identify(c),
    );
    const identity = request.identity;
    c.set('identity', identity);
    // The request runs in its audit context (audit/audited.ts): a denial, or a change that proposed nothing, is recorded.
    await auditRequest(
      backend.audit?.sink,
      request,
      async () => {
        if (
          admit(backend, identity, c.req.path, c.req.header(consistencyHeader)) === 'linearizable'
        )
          return next();
        await readConsistency.run('local', next);
      },
      () => c.error,
    );
  };
}

/**
 * Who the caller of `request` is (`identify`), as the request the audit log records; a caller
 * refused before it has an identity (`identify` throws) is recorded as a denial. The app's
 * admission and the TLS port's stream routes (stream-routes.ts) both identify through here.
 */
export function identifyAudited(
  backend: Backend,
  request: Omit<AuditedRequest, 'identity'>,
  identify: () => Identity,
): AuditedRequest & { readonly identity: Identity } {
  let identity: Identity;
  try {
    identity = identify();
  } catch (error) {
    auditRefusedCaller(backend.audit?.sink, request, error);
    throw error;
  }
  return { ...request, identity };
}

/** The caller's `address:port` (HTTP/2 or HTTP/1.1 over TLS); `unknown` without a socket (tests). */
function peerAddressOf(c: Context): string {
  const incoming = (
    c.env as { incoming?: { socket?: { remoteAddress?: string; remotePort?: number } } } | undefined
  )?.incoming;
  const socket = incoming?.socket;
  if (!socket?.remoteAddress) return 'unknown';
  return `${socket.remoteAddress}:${socket.remotePort ?? 0}`;
}

/**
 * Who may call what before any route, nothing but unlocking while locked, and the read
 * consistency asked for. Throws the refusal; returns the consistency.
 */
export function admit(
  backend: Backend,
  identity: Identity,
  path: string,
  consistency: string | undefined,
): ReadConsistency {
  const route = routePath(path);
  if (identity.role === 'anonymous' && !anonymousRoutes.has(route)) throw forbiddenAnonymous();
  if (backend.locked && !allowedWhileLocked.has(route)) {
    throw new SecretdError(
      'locked',
      'This manager is locked: run `secretd unlock` with the cluster unlock key',
    );
  }
  if (consistency === undefined || consistency === 'linearizable') return 'linearizable';
  if (consistency !== 'local')
    throw new SecretdError(
      'invalid',
      `Invalid ${consistencyHeader} header: expected linearizable (the default) or local`,
    );
  return 'local';
}

export function forbiddenAnonymous(): SecretdError {
  return new SecretdError(
    'forbidden',
    'Permission denied: a client certificate signed by the cluster CA is required',
  );
}

/**
 * A route's middleware: its rule in the access table (access.ts, `METHOD path` as registered);
 * only the rule's roles reach the handler, anyone else gets 403 naming the role and the action.
 * A rule scoped to one secret (`scope: 'secret'`) resolves the route's `:id` through `backend`
 * (when the caller is a writer with a scope) and refuses a secret outside it.
 */
export function allow(key: string, backend?: Backend): MiddlewareHandler<AppEnv> {
  const rule = ruleOf(key);
  if (rule.scope === 'secret' && !backend)
    throw new Error(`The access rule for ${key} checks a secret's scope: give allow() the backend`);
  return async (c, next) => {
    const identity = c.get('identity');
    checkAccess(identity, rule);
    if (rule.scope === 'secret' && scopeOf(identity) !== null) {
      const secret = await backend!.getSecret(c.req.param('id') ?? '');
      checkSecretScope(identity, rule, secret.name);
    }
    await next();
  };
}

/** The access check of a route served outside the app (stream-routes.ts): its rule, role only. */
export function checkRoute(identity: Identity, key: string): AccessRule {
  const rule = ruleOf(key);
  checkAccess(identity, rule);
  return rule;
}

/** Domain errors in Docker's shape and status; anything unexpected is logged without details. */
export function errorAnswer(
  error: unknown,
  method: string,
  path: string,
): { status: ContentfulStatusCode; body: Record<string, unknown> } {
  if (error instanceof NotLeaderError)
    return { status: 503, body: { message: error.message, Leader: error.leaderAddr } };
  if (error instanceof SecretdError)
    return { status: httpStatusByCode[error.code], body: { message: error.message } };
  // Unexpected: never echo internals (they could hold request data); the node logs them.
  console.error(
    `secretd: internal error on ${method} ${path.slice(0, 200)}: ${error instanceof Error ? error.name : 'error'}`,
  );
  return { status: 500, body: { message: 'Internal error' } };
}

/** The app's `onError`. */
export function answerError(error: Error, c: Context<AppEnv>): Response {
  const answer = errorAnswer(error, c.req.method, c.req.path);
  return c.json(answer.body, answer.status);
}

/** The app's `notFound`: 501 for a Docker endpoint secretd has nothing behind, else 404 naming the path. */
export function answerNotFound(c: Context<AppEnv>): Response {
  const unimplemented = notImplemented(c.req.method, routePath(c.req.path));
  if (unimplemented) return c.json({ message: unimplemented.message }, 501);
  return c.json({ message: `Page not found: ${c.req.method} ${c.req.path.slice(0, 200)}` }, 404);
}
