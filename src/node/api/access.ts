/**
 * Who may call what: ONE table, every route of the API (the app's, served over HTTP/2, HTTP/1.1
 * and the admin socket, and the TLS port's stream routes) with the roles that may call it and the
 * words a refused caller is told. Routes take their rule from here (`_gate.ts`'s `allow`), and the
 * matrix test (access.test.ts) calls every registered route as every role against this table, so a
 * route without a row fails it (and `ruleOf` throws when an app is built with one).
 *
 * Roles (README, "Access control and audit"): a client certificate's role is its record's in the
 * store (`admin`, `operator`, `writer`, `reader`, `auditor`); a node certificate's is `manager` or
 * `worker`; a TLS connection without a certificate is `anonymous`; the admin socket is `admin`.
 *
 * A `writer` reaches a secret route only for the secret names its scope globs match (an empty scope:
 * every name): `scope: 'secret'` rows check the secret the route names (`:id`, resolved to its
 * name), `scope: 'secret-in-body'` rows the name in the request's body (checked by the route once
 * read), and `scope: 'secret-list'` rows filter what is listed to the scope.
 */
import type { Identity } from './backend.ts';
import { peerPaths } from '../peers/index.ts';
import { certificateReportPath } from '../certs/index.ts';
import { SecretdError } from '../../errors.ts';
import { inScope } from '../store/index.ts';

export type Role = Identity['role'];

/** How a row narrows a writer to its scope (see the header). */
export type ScopeRule = 'secret' | 'secret-in-body' | 'secret-list';

export interface AccessRule {
  readonly roles: readonly Role[];
  /** The action, as a refused caller is told it ("list secrets"). */
  readonly what: string;
  /** For a scoped row: the action on one secret, followed by its name ("create secret"). */
  readonly whatOne?: string;
  readonly scope?: ScopeRule;
  /** The dispatcher session's routes: node certificates over TLS, refused as "only nodes hold dispatcher sessions". */
  readonly sessions?: true;
}

const everyone: readonly Role[] = [
  'admin',
  'operator',
  'writer',
  'reader',
  'auditor',
  'manager',
  'worker',
  'anonymous',
];
/**
 * Every client certificate, whatever its role, and managers. `GET /version` is theirs: the Docker
 * SDK for Python asks it before anything else when no API version is pinned (its default), so a
 * writer or an auditor refused it could not even make a client. Not a worker's certificate, which
 * opens only its dispatcher session.
 */
const clients: readonly Role[] = ['admin', 'operator', 'writer', 'reader', 'auditor', 'manager'];
/** Reading metadata of everything (never data, tokens or keys). */
const readers: readonly Role[] = ['admin', 'operator', 'reader', 'manager'];
/** Secrets' metadata: readers, and a writer within its scope. */
const secretReaders: readonly Role[] = ['admin', 'operator', 'writer', 'reader', 'manager'];
/** Changing secrets: a writer within its scope. */
const secretWriters: readonly Role[] = ['admin', 'writer', 'manager'];
/** Workloads and nodes: services, tasks, nodes. */
const operators: readonly Role[] = ['admin', 'operator', 'manager'];
/** The cluster's keys, tokens, settings and CA. */
const admins: readonly Role[] = ['admin', 'manager'];
const nodes: readonly Role[] = ['manager', 'worker'];
const internal: AccessRule = { roles: ['manager'], what: 'use internal routes' };
const session: AccessRule = { roles: nodes, what: 'hold dispatcher sessions', sessions: true };
const certificates = peerPaths.clientCertificates;

/** The table: `METHOD path` as the route registers it → its rule. */
export const accessRules: Readonly<Record<string, AccessRule>> = {
  'GET /_ping': { roles: everyone, what: 'ping' },
  'HEAD /_ping': { roles: everyone, what: 'ping' },
  'GET /version': { roles: clients, what: 'read the version' },
  'GET /info': { roles: readers, what: 'read the node information' },

  [`POST ${certificates}`]: { roles: ['admin'], what: 'issue client certificates' },
  // Managers read the list too: one that revokes confirms on the others that they refuse it.
  [`GET ${certificates}`]: { roles: readers, what: 'list client certificates' },
  [`POST ${certificates}/:ref/update`]: { roles: ['admin'], what: 'update client certificates' },
  [`DELETE ${certificates}/:ref`]: { roles: ['admin'], what: 'revoke client certificates' },

  'GET /secrets': { roles: secretReaders, what: 'list secrets', scope: 'secret-list' },
  'POST /secrets/create': {
    roles: secretWriters,
    what: 'create secrets',
    whatOne: 'create secret',
    scope: 'secret-in-body',
  },
  'GET /secrets/:id': {
    roles: secretReaders,
    what: 'inspect secrets',
    whatOne: 'inspect secret',
    scope: 'secret',
  },
  'POST /secrets/:id/update': {
    roles: secretWriters,
    what: 'update secrets',
    whatOne: 'update secret',
    scope: 'secret',
  },
  'DELETE /secrets/:id': {
    roles: secretWriters,
    what: 'remove secrets',
    whatOne: 'remove secret',
    scope: 'secret',
  },
  'GET /secretd/secrets/:id/versions': {
    roles: secretReaders,
    what: 'list secret versions',
    whatOne: 'list the versions of secret',
    scope: 'secret',
  },
  'POST /secretd/secrets/:id/versions': {
    roles: secretWriters,
    what: 'update secrets',
    whatOne: 'update secret',
    scope: 'secret',
  },
  'POST /secretd/secrets/:id/rollback': {
    roles: secretWriters,
    what: 'roll back secrets',
    whatOne: 'roll back secret',
    scope: 'secret',
  },
  'DELETE /secretd/secrets/:id/versions/:version': {
    roles: secretWriters,
    what: 'remove secret versions',
    whatOne: 'remove a version of secret',
    scope: 'secret',
  },
  // Grants (routes/grants.ts): changing one is a secret write; reading them is metadata.
  'GET /secretd/secrets/:id/grants': {
    roles: secretReaders,
    what: 'list secret grants',
    whatOne: 'list the grants of secret',
    scope: 'secret',
  },
  'POST /secretd/secrets/:id/grants': {
    roles: secretWriters,
    what: 'grant secrets',
    whatOne: 'grant secret',
    scope: 'secret',
  },
  'DELETE /secretd/secrets/:id/grants': {
    roles: secretWriters,
    what: 'ungrant secrets',
    whatOne: 'ungrant secret',
    scope: 'secret',
  },
  // Who holds a secret now, and the nodes' certificates and lock state (routes/holdings.ts): metadata.
  'GET /secretd/secrets/:id/holders': {
    roles: secretReaders,
    what: 'list secret holders',
    whatOne: 'list the holders of secret',
    scope: 'secret',
  },
  'GET /secretd/nodes/state': { roles: readers, what: "read the nodes' state" },
  'GET /secretd/settings': { roles: readers, what: 'read the cluster settings' },
  'POST /secretd/settings': { roles: admins, what: 'change the cluster settings' },

  // GET /swarm answers without JoinTokens to a role that may not see them (`seesJoinTokens`).
  'GET /swarm': { roles: readers, what: 'inspect the swarm' },
  'GET /swarm/unlockkey': { roles: admins, what: 'read the unlock key' },
  'POST /swarm/update': { roles: admins, what: 'update the swarm' },
  'POST /swarm/unlock': { roles: admins, what: 'unlock a manager' },
  'POST /secretd/rotate-keys': { roles: admins, what: 'rotate the data keys' },
  'POST /secretd/ca/rotate': { roles: admins, what: 'rotate the root CA' },
  'GET /secretd/ca/rotation': { roles: readers, what: 'read the root CA rotation' },

  'GET /nodes': { roles: readers, what: 'list nodes' },
  'GET /nodes/:id': { roles: readers, what: 'inspect nodes' },
  'POST /nodes/:id/update': { roles: operators, what: 'update nodes' },
  'DELETE /nodes/:id': { roles: operators, what: 'remove nodes' },

  'GET /services': { roles: readers, what: 'list services' },
  'POST /services/create': { roles: operators, what: 'create services' },
  'GET /services/:id': { roles: readers, what: 'inspect services' },
  'POST /services/:id/update': { roles: operators, what: 'update services' },
  'DELETE /services/:id': { roles: operators, what: 'remove services' },
  'GET /tasks': { roles: readers, what: 'list tasks' },
  'GET /tasks/:id': { roles: readers, what: 'inspect tasks' },
  // exec reads what a task's files hold, its secrets too: admins only.
  'POST /secretd/exec': { roles: ['admin'], what: 'run commands in tasks' },
  // The audit trail (routes/audit.ts): admins and auditors read it; retention is an admin's setting.
  'GET /secretd/audit': { roles: ['admin', 'auditor'], what: 'read the audit trail' },
  'GET /secretd/audit/export': { roles: ['admin', 'auditor'], what: 'export the audit trail' },
  'GET /secretd/audit/verify': { roles: ['admin', 'auditor'], what: 'verify the audit trail' },
  'GET /secretd/audit/settings': { roles: ['admin', 'auditor'], what: 'read the audit retention' },
  'POST /secretd/audit/settings': { roles: ['admin'], what: 'change the audit retention' },
  // A backup holds every secret, the CA key and the join tokens (sealed with the key the caller gets): admins only.
  'POST /secretd/backup': { roles: ['admin'], what: 'take backups' },
  'GET /secretd/backup': { roles: ['admin'], what: 'take backups' },
  // Who the caller is and which of these routes its role reaches (routes/whoami.ts; the console asks).
  'GET /secretd/metrics': {
    roles: ['admin', 'reader', 'manager'],
    what: 'read the metrics',
  },
  'GET /secretd/whoami': {
    roles: everyone.filter((role) => role !== 'anonymous'),
    what: 'read who it is',
  },
  // Served on the admin socket only (the route refuses TLS), where the caller is always admin.
  'POST /secretd/images/import': { roles: ['admin'], what: 'import images' },
  // Containers' granted secrets on this node (secretd-runc, spawn): the admin socket only (the
  // routes refuse TLS), where the caller is always admin.
  'POST /secretd/local/containers': { roles: ['admin'], what: "prepare containers' secrets" },
  'DELETE /secretd/local/containers/:id': { roles: ['admin'], what: "erase containers' secrets" },
  'GET /secretd/local/containers': { roles: ['admin'], what: "list containers' secrets" },
  // What this node holds by grant: the admin socket only (the route refuses TLS).
  'GET /secretd/local/grants': {
    roles: ['admin'],
    what: 'list the secrets this node holds by grant',
  },

  [`GET ${peerPaths.joinCA}`]: { roles: everyone, what: 'read the join CA' },
  [`POST ${peerPaths.join}`]: { roles: everyone, what: 'join' },
  [`GET ${peerPaths.raftStatus}`]: { roles: readers, what: 'read the Raft status' },
  [`POST ${peerPaths.propose}`]: { roles: ['manager'], what: 'forward writes' },
  [`POST ${peerPaths.internalExec}`]: internal,
  [`GET ${peerPaths.internalNodes}`]: internal,
  [`GET ${peerPaths.internalNodes}/:id`]: internal,
  'GET /secretd/internal/holders/:id': internal,
  'GET /secretd/internal/node-states': internal,
  [`POST ${peerPaths.internalNodes}/:id/update`]: internal,
  [`DELETE ${peerPaths.internalNodes}/:id`]: internal,
  [`GET ${peerPaths.session}`]: session,
  [`POST ${peerPaths.heartbeat}`]: session,
  [`POST ${peerPaths.status}`]: session,
  [`POST ${peerPaths.execResult}`]: session,
  [`POST ${peerPaths.renewCertificate}`]: { roles: nodes, what: 'renew a node certificate' },
  [`POST ${certificateReportPath}`]: { roles: nodes, what: 'report a node certificate' },
  // A stream route (stream-routes.ts): Raft frames, also checked against Backend.speaksRaft (a
  // manager being demoted still speaks Raft under its worker role until it leaves).
  [`POST ${peerPaths.raftStream}`]: { roles: nodes, what: 'speak Raft' },
};

/** The routes served off the HTTP/2 stream, not registered in the app (stream-routes.ts). */
export const streamRouteKeys: readonly string[] = [
  'POST /secrets/create',
  `POST ${peerPaths.raftStream}`,
];

/** The rule of `METHOD path` as the route registers it; a route without one is a programming error. */
export function ruleOf(key: string): AccessRule {
  const rule = accessRules[key];
  if (!rule) throw new Error(`No access rule for ${key}: add it to src/node/api/access.ts`);
  return rule;
}

/** The roles that see the join tokens in `GET /swarm`. */
export function seesJoinTokens(identity: Identity): boolean {
  return identity.role === 'admin' || identity.role === 'manager';
}

/** How a refused caller is named: a client role with its scope, or a node's certificate. */
function callerWords(identity: Identity): string {
  const scope = identity.scope ?? [];
  return `role ${identity.role}${scope.length > 0 ? ` (scope ${scope.join(', ')})` : ''}`;
}

const nodeRoles: ReadonlySet<Role> = new Set(['manager', 'worker', 'anonymous']);

/** The 403 a caller gets for an action (`what`) its role lacks: never any value but names. */
export function denied(identity: Identity, what: string): SecretdError {
  return new SecretdError(
    'forbidden',
    nodeRoles.has(identity.role)
      ? `Permission denied: a ${identity.role} certificate cannot ${what}`
      : `Permission denied: ${callerWords(identity)} may not ${what}`,
  );
}

/** Throws the refusal when the caller's role is not among the rule's (scope aside). */
export function checkAccess(identity: Identity, rule: AccessRule): void {
  const node = identity.role === 'manager' || identity.role === 'worker';
  if (rule.sessions && (!node || identity.via !== 'tls'))
    throw new SecretdError('forbidden', 'Permission denied: only nodes hold dispatcher sessions');
  if (!rule.roles.includes(identity.role)) throw denied(identity, rule.what);
}

/** Whether the caller is narrowed to a scope on secret routes (a writer with scope globs). */
export function scopeOf(identity: Identity): readonly string[] | null {
  return identity.role === 'writer' && (identity.scope ?? []).length > 0 ? identity.scope! : null;
}

/**
 * Throws the refusal when a writer's scope does not hold `name` (the secret a scoped route acts
 * on); anyone else passes.
 */
export function checkSecretScope(identity: Identity, rule: AccessRule, name: string): void {
  const scope = scopeOf(identity);
  if (scope === null || inScope(scope, name)) return;
  throw denied(identity, `${rule.whatOne ?? rule.what} ${name}`);
}

/** The secrets a caller may see of `secrets`: a writer's scope filters them; anyone else sees all. */
export function visibleSecrets<T extends { readonly name: string }>(
  identity: Identity,
  secrets: readonly T[],
): readonly T[] {
  const scope = scopeOf(identity);
  return scope === null ? secrets : secrets.filter((s) => inScope(scope, s.name));
}
