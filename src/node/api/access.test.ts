/**
 * The route × role matrix: every route the app registers (and the TLS port's stream routes) called
 * as every role, through the real app and its gate, against the one table (access.ts): allowed, or
 * 403 naming the role and what it lacks. A route without a rule fails here. The backend is a stub
 * whose every method fails with `unavailable` (so an admitted request is anything but a 403 and
 * nothing behind the gate runs), but for the secret lookups a writer's scope needs: a secret's name
 * is the ref it is asked by.
 *
 * Then the issue's role semantics, checked against the table rather than from it, and the scoped
 * routes' behaviour (list filtered, inspect out of scope 403, join tokens hidden) on a real manager.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { callApp } from '../../../test/helpers/app-request.ts';
import { startTestManager, type TestManager } from '../../../test/helpers/manager.ts';
import { createKeyAndCSR } from '../../crypto/index.ts';
import { peerPaths } from '../peers/index.ts';
import type { SecretRecord } from '../store/index.ts';
import { accessRules, checkAccess, ruleOf, streamRouteKeys, type Role } from './access.ts';
import { createApp } from './app.ts';
import type { Backend, Identity } from './backend.ts';
import { clientIdentity } from './peer-certificate.ts';

const roles: readonly Role[] = [
  'admin',
  'operator',
  'writer',
  'reader',
  'auditor',
  'manager',
  'worker',
  'anonymous',
];
const clientRoles = new Set<Role>(['admin', 'operator', 'writer', 'reader', 'auditor']);

function identityOf(role: Role): Identity {
  if (role === 'anonymous') return { role, nodeId: '', via: 'tls' };
  if (!clientRoles.has(role)) return { role, nodeId: `${role}-node`, via: 'tls', speaksRaft: true };
  return {
    role,
    nodeId: `${role}-cn`,
    name: `${role}-cn`,
    serial: '4a',
    via: 'tls',
    scope: role === 'writer' ? ['app_*'] : [],
  };
}

const secretOf = (ref: string): SecretRecord =>
  ({
    id: ref,
    name: ref,
    labels: {},
    createdAt: '2026-12-06T00:00:00.000Z',
    updatedAt: '2026-12-06T00:00:00.000Z',
    metaIndex: 1,
    versions: [],
  }) as unknown as SecretRecord;

/** Fails every call with `unavailable` but the secret lookups a writer's scope check needs. */
function stubBackend(): Backend {
  return new Proxy({} as Backend, {
    get: (_target, name) => {
      if (name === 'locked') return false;
      if (name === 'getSecret') return async (ref: string) => secretOf(ref);
      if (name === 'listSecrets') return async () => [secretOf('app_x'), secretOf('db_x')];
      return () => {
        throw new SecretdError('unavailable', `Stub backend: ${String(name)}`);
      };
    },
  });
}

const appFor = (role: Role): ReturnType<typeof createApp> => {
  const identity = identityOf(role);
  return createApp({ backend: stubBackend(), version: 'test', identify: () => identity });
};

const anonymousRefusal =
  'Permission denied: a client certificate signed by the cluster CA is required';

/** Every registered route of the app, `METHOD path`. */
function registeredRoutes(): string[] {
  const keys = appFor('admin')
    .routes.filter((r) => r.method !== 'ALL')
    .map((r) => `${r.method} ${r.path}`);
  return [...new Set(keys)].sort();
}

/** A request to `path` with its parameters filled: `:id` names the secret `target`. */
const concrete = (path: string, target: string): string =>
  path.replace(':id', target).replace(':version', '1').replace(':ref', '4a');

/** `admitted`, or `403 <message>`: what the gate answered. */
async function outcome(role: Role, key: string, target: string): Promise<string> {
  const [method, path] = key.split(' ') as [string, string];
  const body = key === 'POST /secrets/create' ? { Name: target, Data: btoa('value') } : undefined;
  const answer = await callApp(appFor(role), method, concrete(path, target), body);
  if (answer.status !== 403) return 'admitted';
  return `403 ${method === 'HEAD' ? '' : answer.json.message}`;
}

/** What the table says `role` gets on `key` for the secret named `target` (written out, not the gate's words). */
function expected(role: Role, key: string, target: string): string {
  const rule = ruleOf(key);
  const scoped = rule.scope === 'secret' || rule.scope === 'secret-in-body';
  if (rule.roles.includes(role)) {
    if (role === 'writer' && scoped && !target.startsWith('app_'))
      return `403 Permission denied: role writer (scope app_*) may not ${rule.whatOne} ${target}`;
    return 'admitted';
  }
  if (role === 'anonymous') return `403 ${anonymousRefusal}`;
  if (rule.sessions) return '403 Permission denied: only nodes hold dispatcher sessions';
  if (clientRoles.has(role))
    return `403 Permission denied: role ${role}${role === 'writer' ? ' (scope app_*)' : ''} may not ${rule.what}`;
  return `403 Permission denied: a ${role} certificate cannot ${rule.what}`;
}

describe('the access table', () => {
  test('every route the app registers has a rule, and every rule is a registered or stream route', () => {
    const routes = registeredRoutes();
    expect(routes.filter((key) => accessRules[key] === undefined)).toEqual([]);
    const served = new Set([...routes, ...streamRouteKeys]);
    expect(Object.keys(accessRules).filter((key) => !served.has(key))).toEqual([]);
  });

  test('each role reaches exactly the routes the table gives it, and is told its role and what it lacks elsewhere', async () => {
    const got: Record<string, Record<string, string>> = {};
    const want: Record<string, Record<string, string>> = {};
    for (const key of registeredRoutes()) {
      for (const role of roles) {
        for (const target of ['app_x', 'db_x']) {
          const cell = `${role} on ${target}`;
          (got[key] ??= {})[cell] = await outcome(role, key, target);
          (want[key] ??= {})[cell] = expected(role, key, target);
        }
      }
    }
    expect(got).toEqual(want);
  });

  test('the stream routes check the same rules as the app', () => {
    const got: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const key of streamRouteKeys) {
      for (const role of roles.filter((r) => r !== 'anonymous')) {
        const cell = `${key} as ${role}`;
        try {
          checkAccess(identityOf(role), ruleOf(key));
          got[cell] = 'admitted';
        } catch (error) {
          got[cell] = `403 ${(error as Error).message}`;
        }
        want[cell] = expected(role, key, 'app_x');
      }
    }
    expect(got).toEqual(want);
  });

  test('a route without a rule cannot be built', () => {
    expect(() => ruleOf('GET /nowhere')).toThrow(
      'No access rule for GET /nowhere: add it to src/node/api/access.ts',
    );
  });
});

/** The routes a role reaches, by the table. */
const reached = (role: Role): string[] =>
  Object.entries(accessRules)
    .filter(([, rule]) => rule.roles.includes(role))
    .map(([key]) => key)
    .sort();

/**
 * Routes every client role reaches: the ping, the join routes, whoami (who the caller is, for the
 * console) and the version (the Docker SDK for Python asks it before anything else).
 */
const ping = [
  'GET /_ping',
  'HEAD /_ping',
  `GET ${peerPaths.joinCA}`,
  `POST ${peerPaths.join}`,
  'GET /secretd/whoami',
  'GET /version',
];

describe('the roles, as the issue defines them', () => {
  test('admin reaches every route but those of nodes and of managers between themselves', () => {
    const nodeOnly = Object.entries(accessRules)
      .filter(([, rule]) => !rule.roles.includes('admin'))
      .map(([key]) => key);
    expect(nodeOnly.every((key) => key.includes('/secretd/') && !key.includes('/secrets'))).toBe(
      true,
    );
    expect(nodeOnly.filter((key) => ruleOf(key).roles.some((r) => clientRoles.has(r)))).toEqual([]);
  });

  test('a reader reaches only reads (GET, HEAD) and never the unlock key or data', () => {
    const reader = reached('reader').filter((key) => !ping.includes(key));
    expect(reader.filter((key) => !key.startsWith('GET '))).toEqual([]);
    expect(reader).not.toContain('GET /swarm/unlockkey');
    expect(reader).not.toContain('POST /secretd/exec');
  });

  test('an operator reaches services, tasks and nodes, and no secret write, exec, CA, unlock key or settings', () => {
    const writes = reached('operator').filter(
      (key) => !key.startsWith('GET ') && !ping.includes(key),
    );
    expect(writes).toEqual([
      'DELETE /nodes/:id',
      'DELETE /services/:id',
      'POST /nodes/:id/update',
      'POST /services/:id/update',
      'POST /services/create',
    ]);
    expect(reached('operator')).not.toContain('GET /swarm/unlockkey');
  });

  test('a writer reaches only the secret routes, every one scoped', () => {
    const writer = reached('writer').filter((key) => !ping.includes(key));
    expect(writer.every((key) => ruleOf(key).scope !== undefined)).toBe(true);
    expect(writer).toEqual([
      'DELETE /secretd/secrets/:id/grants',
      'DELETE /secretd/secrets/:id/versions/:version',
      'DELETE /secrets/:id',
      'GET /secretd/secrets/:id/grants',
      'GET /secretd/secrets/:id/holders',
      'GET /secretd/secrets/:id/versions',
      'GET /secrets',
      'GET /secrets/:id',
      'POST /secretd/secrets/:id/grants',
      'POST /secretd/secrets/:id/rollback',
      'POST /secretd/secrets/:id/versions',
      'POST /secrets/:id/update',
      'POST /secrets/create',
    ]);
  });

  test('every client role reads the version, as the Docker SDK for Python asks it first; a worker does not', () => {
    for (const role of ['admin', 'operator', 'writer', 'reader', 'auditor'] as const)
      expect({ role, reaches: reached(role).includes('GET /version') }).toEqual({
        role,
        reaches: true,
      });
    expect(reached('worker')).not.toContain('GET /version');
    expect(reached('anonymous')).not.toContain('GET /version');
  });

  test('an auditor reaches nothing but the audit routes', () => {
    const auditor = reached('auditor').filter((key) => !ping.includes(key));
    expect(auditor.filter((key) => !key.includes('/secretd/audit'))).toEqual([]);
  });
});

describe('scoped routes on a real manager', () => {
  let tm: TestManager;
  let identity: Identity;
  let app: ReturnType<typeof createApp>;
  const admin: Identity = { role: 'admin', nodeId: 'tester', via: 'tls' };

  beforeAll(async () => {
    tm = await startTestManager();
    identity = admin;
    app = createApp({ backend: tm.manager, version: 'test', identify: () => identity });
    for (const name of ['app_one', 'db_password'])
      expect(
        (await callApp(app, 'POST', '/secrets/create', { Name: name, Data: btoa('v') })).status,
      ).toBe(201);
  });
  afterAll(async () => {
    await tm[Symbol.asyncDispose]();
  });

  const as = (who: Identity) => {
    identity = who;
    return (method: string, path: string, body?: unknown) => callApp(app, method, path, body);
  };
  const writer: Identity = { ...identityOf('writer'), scope: ['app_*', 'ci-?'] };

  test('a writer lists only the secrets in its scope', async () => {
    const list = await as(writer)('GET', '/secrets');
    expect(list.json.map((s: { Spec: { Name: string } }) => s.Spec.Name)).toEqual(['app_one']);
    const all = await as(admin)('GET', '/secrets');
    expect(all.json.map((s: { Spec: { Name: string } }) => s.Spec.Name).sort()).toEqual([
      'app_one',
      'db_password',
    ]);
  });

  test('a writer is refused a secret out of its scope, by name in the body or by id, with 403 naming role, scope and secret', async () => {
    const call = as(writer);
    const create = await call('POST', '/secrets/create', { Name: 'db_x', Data: btoa('v') });
    expect({ status: create.status, message: create.json.message }).toEqual({
      status: 403,
      message: 'Permission denied: role writer (scope app_*, ci-?) may not create secret db_x',
    });
    const inspect = await call('GET', '/secrets/db_password');
    expect({ status: inspect.status, message: inspect.json.message }).toEqual({
      status: 403,
      message:
        'Permission denied: role writer (scope app_*, ci-?) may not inspect secret db_password',
    });
    const version = await call('POST', '/secretd/secrets/db_password/versions', {
      Data: btoa('new'),
    });
    expect(version.json.message).toBe(
      'Permission denied: role writer (scope app_*, ci-?) may not update secret db_password',
    );
    expect((await call('GET', '/secrets?filters=%7B%7D')).status).toBe(200);
    // Within its scope, the same writer creates, versions, inspects and removes.
    const created = await call('POST', '/secrets/create', { Name: 'APP_two', Data: btoa('v') });
    expect(created.status).toBe(201);
    expect(
      (await call('POST', '/secretd/secrets/app_two/versions', { Data: btoa('w') })).status,
    ).toBe(201);
    expect((await call('GET', '/secrets/app_two')).json.Spec.Name).toBe('APP_two');
    expect((await call('DELETE', '/secrets/app_two')).status).toBe(204);
    expect((await call('GET', '/secrets/nothing_here')).status).toBe(404);
  });

  test('GET /swarm shows the join tokens to admins only', async () => {
    const tokens = async (who: Identity): Promise<unknown> =>
      (await as(who)('GET', '/swarm')).json.JoinTokens;
    expect(await tokens(admin)).toEqual({
      Worker: expect.stringMatching(/^SDTKN-/),
      Manager: expect.stringMatching(/^SDTKN-/),
    });
    expect(await tokens(identityOf('reader'))).toBeUndefined();
    expect(await tokens(identityOf('operator'))).toBeUndefined();
    expect((await as(identityOf('reader'))('GET', '/swarm')).status).toBe(200);
  });

  test('ca update changes what a certificate may do on the next request, without reissue', async () => {
    const { csrPem } = await createKeyAndCSR({ commonName: 'ci' });
    const issued = await as(admin)('POST', peerPaths.clientCertificates, {
      Name: 'ci',
      CSR: csrPem,
      Role: 'reader',
    });
    expect({ status: issued.status, role: issued.json.Role, scope: issued.json.Scope }).toEqual({
      status: 201,
      role: 'reader',
      scope: [],
    });
    const serial: string = issued.json.Serial;
    // As server.ts identifies a client certificate: its record by serial, on every request.
    const base: Identity = { role: 'admin', nodeId: 'ci', name: 'ci', serial, via: 'tls' };
    const ci = (): Identity => clientIdentity(base, tm.manager.clientCertificate(serial));
    const createAsCi = async () =>
      as(ci())('POST', '/secrets/create', { Name: 'app_ci', Data: btoa('v') });
    expect((await createAsCi()).json.message).toBe(
      'Permission denied: role reader may not create secrets',
    );
    const updated = await as(admin)('POST', `${peerPaths.clientCertificates}/ci/update`, {
      Role: 'writer',
      Scope: ['app_*'],
    });
    expect(updated.status).toBe(200);
    expect(
      updated.json.Updated.map((c: { Role: string; Scope: string[] }) => [c.Role, c.Scope]),
    ).toEqual([['writer', ['app_*']]]);
    expect((await createAsCi()).status).toBe(201);
    // A certificate without a record (issued before records existed) stays admin.
    expect(clientIdentity(base, undefined).role).toBe('admin');
  });

  test('ca update refuses an unknown certificate (404), a revoked one (409) and a bad role or scope (400), changing nothing', async () => {
    const call = as(admin);
    const { csrPem } = await createKeyAndCSR({ commonName: 'gone' });
    const gone = await call('POST', peerPaths.clientCertificates, { Name: 'gone', CSR: csrPem });
    await call('DELETE', `${peerPaths.clientCertificates}/gone`);
    const before = (await call('GET', peerPaths.clientCertificates)).json;
    const cases: Array<[string, unknown, number, string]> = [
      ['nobody', { Role: 'reader' }, 404, 'Client certificate "nobody" not found'],
      ['gone', { Role: 'reader' }, 409, `Cannot update client certificate gone: it was revoked at`],
      ['ci', { Role: 'root' }, 400, `unknown role "root"`],
      ['ci', {}, 400, 'Role must be given'],
      ['ci', { Role: 'reader', Scope: ['app_*'] }, 400, 'role reader takes no scope'],
      ['ci', { Role: 'writer', Scope: [''] }, 400, 'a scope glob must not be empty'],
      ['ci', { Role: 'writer', Scope: ['app/*'] }, 400, 'invalid scope glob "app/*"'],
      [gone.json.Serial, { Role: 'reader' }, 409, 'it was revoked at'],
    ];
    for (const [ref, body, status, message] of cases) {
      const answer = await call('POST', `${peerPaths.clientCertificates}/${ref}/update`, body);
      expect({ ref, body, status: answer.status }).toEqual({ ref, body, status });
      expect(answer.json.message).toContain(message);
    }
    expect((await call('GET', peerPaths.clientCertificates)).json).toEqual(before);
  });

  test('issuing refuses an unknown role, a bad glob or a scope on a role without one, and records nothing', async () => {
    const call = as(admin);
    const { csrPem } = await createKeyAndCSR({ commonName: 'x' });
    const before = (await call('GET', peerPaths.clientCertificates)).json;
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ Role: 'superuser' }, 'unknown role "superuser"'],
      [{ Role: 'operator', Scope: ['app_*'] }, 'role operator takes no scope'],
      [{ Role: 'writer', Scope: [''] }, 'a scope glob must not be empty'],
      [{ Role: 'writer', Scope: ['app_[0-9]'] }, 'invalid scope glob "app_[0-9]"'],
      [{ Role: 'writer', Scope: 'app_*' }, 'the scope must be a list of globs'],
    ];
    for (const [extra, message] of cases) {
      const answer = await call('POST', peerPaths.clientCertificates, {
        Name: 'x',
        CSR: csrPem,
        ...extra,
      });
      expect({ extra, status: answer.status }).toEqual({ extra, status: 400 });
      expect(answer.json.message).toContain(message);
    }
    expect((await call('GET', peerPaths.clientCertificates)).json).toEqual(before);
  });
});
