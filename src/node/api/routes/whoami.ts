/**
 * GET /secretd/whoami: the caller as this manager sees it — its role, its name, a writer's scope,
 * and the routes of the access table (access.ts) its role reaches — so a client (the web console)
 * can offer only what would not be refused. It tells nothing the caller could not learn by calling
 * the routes and reading their 403s.
 */
import { Hono } from 'hono';
import { allow, type AppEnv } from '../_gate.ts';
import { accessRules } from '../access.ts';

export function whoamiRoutes(): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get('/secretd/whoami', allow('GET /secretd/whoami'), (c) => {
    const identity = c.get('identity');
    const allowed = Object.entries(accessRules)
      .filter(([, rule]) => rule.roles.includes(identity.role) && !rule.sessions)
      .map(([key]) => key)
      .sort();
    return c.json({
      Role: identity.role,
      Name: identity.name ?? identity.nodeId,
      Via: identity.via,
      Scope: identity.scope ?? [],
      Allowed: allowed,
    });
  });
  return api;
}
