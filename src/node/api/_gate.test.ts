/**
 * The gate, route by route: which roles reach each route the app registers, what a refused caller
 * is told, what a locked manager still answers, and that Docker's `/v1.NN` prefix changes none of it.
 * The backend is a stub whose every method fails with `unavailable`, so an admitted request is
 * anything but a 403 and nothing behind the gate runs.
 */
import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { peerPaths } from '../peers/index.ts';
import { createApp } from './app.ts';
import type { Backend, Identity } from './backend.ts';

type Role = Identity['role'];
const roles: readonly Role[] = ['anonymous', 'worker', 'manager', 'admin'];
const everyone = roles;
const people = ['admin', 'manager'] as const;
const nodes = ['manager', 'worker'] as const;
const onlyNodes = 'only nodes hold dispatcher sessions';

/** Every route: who is admitted, and the action a refused certificate is told it cannot do. */
const table: ReadonlyArray<
  readonly [method: string, path: string, admitted: readonly Role[], what: string]
> = [
  ['GET', '/_ping', everyone, ''],
  ['HEAD', '/_ping', everyone, ''],
  ['GET', '/version', people, 'read the version'],
  ['GET', '/info', people, 'read the node information'],
  ['POST', '/secretd/ca/client-certificates', ['admin'], 'issue client certificates'],
  ['GET', '/secretd/ca/client-certificates', people, 'list client certificates'],
  ['DELETE', '/secretd/ca/client-certificates/:ref', ['admin'], 'revoke client certificates'],
  ['GET', '/secrets', people, 'list secrets'],
  ['POST', '/secrets/create', people, 'create secrets'],
  ['GET', '/secrets/:id', people, 'inspect secrets'],
  ['POST', '/secrets/:id/update', people, 'update secrets'],
  ['DELETE', '/secrets/:id', people, 'remove secrets'],
  ['GET', '/secretd/secrets/:id/versions', people, 'list secret versions'],
  ['POST', '/secretd/secrets/:id/versions', people, 'update secrets'],
  ['POST', '/secretd/secrets/:id/rollback', people, 'roll back secrets'],
  ['DELETE', '/secretd/secrets/:id/versions/:version', people, 'remove secret versions'],
  ['GET', '/secretd/settings', people, 'read the cluster settings'],
  ['POST', '/secretd/settings', people, 'change the cluster settings'],
  ['GET', '/swarm', people, 'inspect the swarm'],
  ['GET', '/swarm/unlockkey', people, 'read the unlock key'],
  ['POST', '/swarm/update', people, 'update the swarm'],
  ['POST', '/swarm/unlock', people, 'unlock a manager'],
  ['POST', '/secretd/rotate-keys', people, 'rotate the data keys'],
  ['GET', '/nodes', people, 'list nodes'],
  ['GET', '/nodes/:id', people, 'inspect nodes'],
  ['POST', '/nodes/:id/update', people, 'update nodes'],
  ['DELETE', '/nodes/:id', people, 'remove nodes'],
  ['GET', '/services', people, 'list services'],
  ['POST', '/services/create', people, 'create services'],
  ['GET', '/services/:id', people, 'inspect services'],
  ['POST', '/services/:id/update', people, 'update services'],
  ['DELETE', '/services/:id', people, 'remove services'],
  ['GET', '/tasks', people, 'list tasks'],
  ['GET', '/tasks/:id', people, 'inspect tasks'],
  ['POST', '/secretd/exec', ['admin'], 'run commands in tasks'],
  ['POST', '/secretd/images/import', ['admin'], 'import images'],
  ['GET', peerPaths.joinCA, everyone, ''],
  ['POST', peerPaths.join, everyone, ''],
  ['GET', peerPaths.raftStatus, people, 'read the Raft status'],
  ['POST', peerPaths.propose, ['manager'], 'forward writes'],
  ['POST', peerPaths.internalExec, ['manager'], 'use internal routes'],
  ['GET', peerPaths.internalNodes, ['manager'], 'use internal routes'],
  ['GET', `${peerPaths.internalNodes}/:id`, ['manager'], 'use internal routes'],
  ['POST', `${peerPaths.internalNodes}/:id/update`, ['manager'], 'use internal routes'],
  ['DELETE', `${peerPaths.internalNodes}/:id`, ['manager'], 'use internal routes'],
  ['GET', peerPaths.session, nodes, onlyNodes],
  ['POST', peerPaths.heartbeat, nodes, onlyNodes],
  ['POST', peerPaths.status, nodes, onlyNodes],
  ['POST', peerPaths.execResult, nodes, onlyNodes],
  ['POST', peerPaths.renewCertificate, nodes, 'renew a node certificate'],
];

const anonymousRefusal =
  'Permission denied: a client certificate signed by the cluster CA is required';
const lockedRefusal = 'This manager is locked: run `secretd unlock` with the cluster unlock key';

/** A backend that admits nothing past the gate: every method fails, `locked` is as given. */
function stubBackend(locked: boolean): Backend {
  return new Proxy({} as Backend, {
    get: (_target, name) => {
      if (name === 'locked') return locked;
      return () => {
        throw new SecretdError('unavailable', `Stub backend: ${String(name)}`);
      };
    },
  });
}

function appFor(role: Role, locked = false): ReturnType<typeof createApp> {
  const identity: Identity = {
    role,
    nodeId: role === 'anonymous' ? '' : `${role}-node`,
    via: 'tls',
  };
  return createApp({ backend: stubBackend(locked), version: 'test', identify: () => identity });
}

const concrete = (path: string): string => path.replace(':id', 'x').replace(':version', '1');

/** `admitted`, or what the caller was told: `403 <message>` or `503 <message>`. */
async function outcome(
  app: ReturnType<typeof createApp>,
  method: string,
  path: string,
): Promise<string> {
  const response = await app.request(path, { method });
  if (response.status !== 403 && response.status !== 503) return 'admitted';
  const message = method === 'HEAD' ? '' : ((await response.json()) as { message: string }).message;
  if (response.status === 503 && message !== lockedRefusal) return 'admitted';
  return `${response.status} ${message}`;
}

function expected(role: Role, admitted: readonly Role[], what: string): string {
  if (admitted.includes(role)) return 'admitted';
  if (role === 'anonymous') return `403 ${anonymousRefusal}`;
  return what === onlyNodes
    ? `403 Permission denied: ${onlyNodes}`
    : `403 Permission denied: a ${role} certificate cannot ${what}`;
}

describe('the gate', () => {
  test('every route the app registers is in the table above, and only those', () => {
    const registered = new Set(
      appFor('admin')
        .routes.filter((r) => r.method !== 'ALL')
        .map((r) => `${r.method} ${r.path}`),
    );
    expect([...registered].sort()).toEqual(
      table.map(([method, path]) => `${method} ${path}`).sort(),
    );
  });

  test('each role reaches exactly the routes its certificate allows; the others are told which action it cannot do', async () => {
    const got: Record<string, Record<string, string>> = {};
    const want: Record<string, Record<string, string>> = {};
    for (const role of roles) {
      const app = appFor(role);
      for (const [method, path, admitted, what] of table) {
        const key = `${method} ${path}`;
        (got[key] ??= {})[role] = await outcome(app, method, concrete(path));
        (want[key] ??= {})[role] = expected(role, admitted, what);
      }
    }
    expect(got).toEqual(want);
  });

  test('the /v1.NN prefix goes through the same gate as the bare path, for every role and route', async () => {
    const bare: string[] = [];
    const versioned: string[] = [];
    for (const role of roles) {
      const app = appFor(role);
      for (const [method, path] of table) {
        bare.push(`${role} ${method} ${path}: ${await outcome(app, method, concrete(path))}`);
        versioned.push(
          `${role} ${method} ${path}: ${await outcome(app, method, `/v1.41${concrete(path)}`)}`,
        );
      }
    }
    expect(versioned).toEqual(bare);
  });

  test('a locked manager answers only /_ping, /version, /info and /swarm/unlock; everything else is 503 locked', async () => {
    const open = new Set([
      'GET /_ping',
      'HEAD /_ping',
      'GET /version',
      'GET /info',
      'POST /swarm/unlock',
    ]);
    const app = appFor('admin', true);
    const got: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const [method, path] of table) {
      got[`${method} ${path}`] = await outcome(app, method, concrete(path));
      want[`${method} ${path}`] = open.has(`${method} ${path}`)
        ? 'admitted'
        : `503 ${lockedRefusal}`;
    }
    expect(got).toEqual(want);
  });

  test('a connection without a certificate is refused before the lock is checked, except on the join routes', async () => {
    const app = appFor('anonymous', true);
    expect(await outcome(app, 'GET', '/secrets')).toBe(`403 ${anonymousRefusal}`);
    expect(await outcome(app, 'POST', peerPaths.join)).toBe(`503 ${lockedRefusal}`);
    expect(await outcome(app, 'GET', '/_ping')).toBe('admitted');
  });

  test('an unknown path is 404 naming it, and a Docker endpoint secretd lacks is 501, after the gate', async () => {
    const admin = appFor('admin');
    const missing = await admin.request('/v1.41/nope/x', { method: 'PUT' });
    expect({ status: missing.status, body: await missing.json() }).toEqual({
      status: 404,
      body: { message: 'Page not found: PUT /nope/x' },
    });
    const logs = await admin.request('/v1.41/services/x/logs');
    expect({ status: logs.status, body: await logs.json() }).toEqual({
      status: 501,
      body: { message: 'secretd does not collect container logs (GET /services/x/logs)' },
    });
    // A role gate guards the routes that exist: a worker on a path nobody serves gets the same 404.
    expect((await appFor('worker').request('/secrets/x', { method: 'PUT' })).status).toBe(404);
    expect(await outcome(appFor('anonymous'), 'PUT', '/nope')).toBe(`403 ${anonymousRefusal}`);
  });
});
