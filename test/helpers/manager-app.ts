/**
 * The fixture of an API test file: one real manager (startTestManager: real sealed WAL, real Raft
 * core) for the whole file, and its app (createApp) answering as whatever identity the test sets,
 * through `app.request()` with no socket. Call it at the top level of the file: it registers the
 * file's beforeAll and afterAll.
 */
import { afterAll, beforeAll } from 'bun:test';
import { createApp } from '../../src/node/api/app.ts';
import type { Identity } from '../../src/node/api/backend.ts';
import { callApp, type AppAnswer } from './app-request.ts';
import { startTestManager, type TestManager } from './manager.ts';

/** An admin over TLS: the identity requests come from unless a test sets another. */
export const adminIdentity: Identity = { role: 'admin', nodeId: 'tester', via: 'tls' };

export interface ManagerApp {
  /** The manager (from the file's beforeAll on). */
  readonly tm: TestManager;
  /** Its app, for requests callApp cannot make (headers of their own). */
  readonly app: ReturnType<typeof createApp>;
  /** Who the next requests come from (default: adminIdentity). */
  identity: Identity;
  call(method: string, path: string, body?: unknown): Promise<AppAnswer>;
}

const notStarted = 'The test manager is not started yet (use it from a test or a hook)';

export function useManagerApp(): ManagerApp {
  let tm: TestManager | undefined;
  let app: ReturnType<typeof createApp> | undefined;
  const fixture: ManagerApp = {
    get tm(): TestManager {
      if (!tm) throw new Error(notStarted);
      return tm;
    },
    get app(): ReturnType<typeof createApp> {
      if (!app) throw new Error(notStarted);
      return app;
    },
    identity: adminIdentity,
    call: (method, path, body) => callApp(fixture.app, method, path, body),
  };
  beforeAll(async () => {
    tm = await startTestManager();
    app = createApp({ backend: tm.manager, version: 'test', identify: () => fixture.identity });
  });
  afterAll(async () => {
    await tm?.[Symbol.asyncDispose]();
  });
  return fixture;
}

/** Docker's swarm inspect (`GET /swarm`), as the fixture's manager answers it. */
export async function inspectSwarm(
  api: ManagerApp,
): Promise<{ Version: { Index: number }; Spec: Record<string, any> } & Record<string, any>> {
  return (await api.call('GET', '/swarm')).json;
}

/** Sends back what inspect returned, with `ca` merged into its CAConfig, as the docker CLI does. */
export async function updateSwarmCA(
  api: ManagerApp,
  ca: Record<string, unknown>,
): Promise<{ status: number; message: string }> {
  const current = await inspectSwarm(api);
  const spec = { ...current.Spec, CAConfig: { ...current.Spec.CAConfig, ...ca } };
  const answer = await api.call('POST', `/swarm/update?version=${current.Version.Index}`, spec);
  return { status: answer.status, message: answer.json?.message ?? '' };
}
