/**
 * A worker's local admin socket: what only this machine can do. Everything about the cluster is
 * asked of a manager, as Docker answers on a worker ("This node is not a swarm manager").
 */
import { Hono } from 'hono';
import { httpStatusByCode, invalid, SecretdError } from '../../errors.ts';
import type { ExecResult } from '../task-dispatch/index.ts';
import { apiVersion } from './routes/system.ts';
import { readJsonObject } from './request.ts';
import { localContainerCounts, localContainerRoutes } from './routes/local-containers.ts';
import type { LocalContainers } from '../task-dispatch/index.ts';
import type { GrantedSecretInfo } from '../task-dispatch/index.ts';
import { localGrantRoutes, type LocalGrantsRoutesOptions } from './routes/grants.ts';

export interface WorkerBackend {
  readonly nodeId: string;
  readonly hostname: string;
  importImage(name: string, path: string): Promise<{ Name: string }>;
  exec(taskId: string, argv: readonly string[]): Promise<ExecResult>;
  /** The agent's secret deliveries received and secrets held now: counts only, never values. */
  secretCounts(): { received: number; held: number };
  /** The agent's service for other engines' containers and spawned processes. */
  localContainers?(): LocalContainers | null;
  /** What the agent holds by grant: names and versions, never values. */
  localGrants?(): readonly GrantedSecretInfo[];
}

export function createWorkerApp(backend: WorkerBackend, version: string): Hono {
  const app = new Hono();
  app.get('/_ping', (c) =>
    c.text('OK', 200, { 'API-Version': apiVersion, Swarm: 'active/worker' }),
  );
  app.get('/info', (c) => {
    const secrets = backend.secretCounts();
    return c.json({
      ID: backend.nodeId,
      Name: backend.hostname,
      ServerVersion: version,
      Swarm: {
        NodeID: backend.nodeId,
        LocalNodeState: 'active',
        ControlAvailable: false,
        Error: '',
      },
      SecretsReceived: secrets.received,
      SecretsHeld: secrets.held,
      ...localContainerCounts(backend.localContainers?.() ?? null),
    });
  });
  app.post('/secretd/images/import', async (c) => {
    const body = await readJsonObject(c, 'image import', ['Name', 'Path']);
    if (typeof body.Name !== 'string' || typeof body.Path !== 'string')
      throw invalid('Invalid image import: Name and Path must be provided');
    return c.json(await backend.importImage(body.Name, body.Path), 201);
  });
  app.post('/secretd/exec', async (c) => {
    const body = await readJsonObject(c, 'exec request', ['Task', 'Cmd']);
    if (
      typeof body.Task !== 'string' ||
      !Array.isArray(body.Cmd) ||
      body.Cmd.some((a) => typeof a !== 'string')
    )
      throw invalid('Invalid exec request');
    const result = await backend.exec(body.Task, body.Cmd as string[]);
    return c.json({ ExitCode: result.code, Stdout: result.stdout, Stderr: result.stderr });
  });
  // The admin socket is the only way in: every caller is root on this machine.
  const local: Pick<LocalGrantsRoutesOptions, 'guard' | 'viaSocket'> = {
    guard: () => async (_c, next) => {
      await next();
    },
    viaSocket: () => true,
  };
  app.route(
    '/',
    localContainerRoutes({ containers: () => backend.localContainers?.() ?? null, ...local }),
  );
  app.route('/', localGrantRoutes({ grants: () => backend.localGrants?.() ?? null, ...local }));
  app.all('*', (c) =>
    c.json(
      {
        message:
          'This node is a worker: worker nodes cannot be used to view or modify cluster state; ask a manager (secretd --host https://MANAGER:4377 …)',
      },
      503,
    ),
  );
  app.onError((error, c) => {
    if (error instanceof SecretdError)
      return c.json({ message: error.message }, httpStatusByCode[error.code]);
    return c.json({ message: 'Internal error' }, 500);
  });
  return app;
}
