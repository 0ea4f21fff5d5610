/**
 * The gate, route by route: what a locked manager still answers, that Docker's `/v1.NN` prefix
 * changes nothing, and the answers before any route (which roles reach each route, and what a
 * refused caller is told, is the access table's matrix: access.test.ts).
 * The backend is a stub whose every method fails with `unavailable`, so an admitted request is
 * anything but a 403 and nothing behind the gate runs.
 */
import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { peerPaths } from '../peers/index.ts';
import { createApp } from './app.ts';
import type { Backend, Identity } from './backend.ts';

type Role = Identity['role'];
const roles: readonly Role[] = ['anonymous', 'worker', 'reader', 'writer', 'manager', 'admin'];

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

const concrete = (path: string): string =>
  path.replace(':id', 'x').replace(':version', '1').replace(':ref', 'r');

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

/** Every route the app registers, `[method, path]`. */
const table: ReadonlyArray<readonly [string, string]> = [
  ...new Set(
    appFor('admin')
      .routes.filter((r) => r.method !== 'ALL')
      .map((r) => `${r.method} ${r.path}`),
  ),
].map((key) => key.split(' ') as [string, string]);

describe('the gate', () => {
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
