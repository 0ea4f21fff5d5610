/**
 * Grants (store/grants.ts): which nodes may hold a secret outside of services, in Docker's
 * placement-constraint syntax. Changing them is a secret write (admin, and a writer in scope);
 * reading them is metadata. What a node holds by grant is listed on its own admin socket only.
 *
 *   GET    /secretd/secrets/{id}/grants  → {ID, Name, Grants: [{Constraints, Version, CreatedAt}]}
 *   POST   /secretd/secrets/{id}/grants  {Constraints: [EXPR…], Version?: N} → 201 (200 unchanged), the same
 *   DELETE /secretd/secrets/{id}/grants?constraint=EXPR[&constraint=EXPR…] (or body {Constraints}) → the same
 *   GET    /secretd/local/grants         (admin socket) → [{ID, Name, Version}], never a value
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import { invalid } from '../../../errors.ts';
import { checkGrantConstraints, checkVersionNumber, type SecretRecord } from '../../store/index.ts';
import { grantListJSON } from '../shapes.ts';
import type { GrantedSecretInfo } from '../../task-dispatch/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend } from '../backend.ts';
import { requestBodyBytesMax } from '../../../limits.ts';
import { parseJsonObject, readBodyBytes, readJsonObject } from '../request.ts';

export const localGrantsPath = '/secretd/local/grants';

export function grantRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  const path = '/secretd/secrets/:id/grants';

  api.get(path, allow(`GET ${path}`, backend), async (c) => {
    return c.json(grantsJSON(await backend.getSecret(c.req.param('id'))));
  });

  api.post(path, allow(`POST ${path}`, backend), async (c) => {
    const body = await readJsonObject(c, 'grant', ['Constraints', 'Version']);
    const constraints = checkGrantConstraints(body.Constraints);
    const version =
      body.Version === undefined || body.Version === null
        ? null
        : checkVersionNumber(body.Version, 'grant Version');
    const outcome = await backend.grantSecret(c.req.param('id'), constraints, version);
    return c.json(grantsJSON(outcome.secret), outcome.changed ? 201 : 200);
  });

  api.delete(path, allow(`DELETE ${path}`, backend), async (c) => {
    const constraints = checkGrantConstraints(await constraintsToRemove(c), 'ungrant');
    return c.json(grantsJSON(await backend.ungrantSecret(c.req.param('id'), constraints)));
  });

  return api;
}

/** `?constraint=EXPR` (repeatable), else a JSON body's `Constraints`. */
async function constraintsToRemove(c: Context<AppEnv>): Promise<unknown> {
  const query = c.req.queries('constraint');
  if (query !== undefined && query.length > 0) return query;
  const bytes = await readBodyBytes(c, requestBodyBytesMax);
  if (bytes.length === 0)
    throw invalid(
      'Invalid ungrant: give the grant\'s node constraints (?constraint=EXPR, repeatable, or a body {"Constraints": [...]})',
    );
  return parseJsonObject(bytes, 'ungrant', ['Constraints']).Constraints;
}

export function grantsJSON(secret: SecretRecord): object {
  return { ID: secret.id, Name: secret.name, Grants: grantListJSON(secret.grants) };
}

export interface LocalGrantsRoutesOptions {
  /** What this node's agent holds by grant; null while it runs no agent (a locked manager). */
  readonly grants: () => readonly GrantedSecretInfo[] | null;
  /** The access check (the manager's app) or nothing (the worker's socket). */
  readonly guard: (key: string) => MiddlewareHandler<AppEnv>;
  readonly viaSocket: (c: Context<AppEnv>) => boolean;
}

/** `GET /secretd/local/grants`, for both the manager's app and the worker's admin socket. */
export function localGrantRoutes(options: LocalGrantsRoutesOptions): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get(localGrantsPath, options.guard(`GET ${localGrantsPath}`), (c) => {
    if (!options.viaSocket(c))
      // As image import: a 400 (not a role's 403), since no certificate ever may.
      throw invalid(
        "A node's granted secrets are listed on the node itself, through its admin socket",
      );
    const held = options.grants() ?? [];
    return c.json(held.map((g) => ({ ID: g.secretId, Name: g.name, Version: g.version })));
  });
  return api;
}
