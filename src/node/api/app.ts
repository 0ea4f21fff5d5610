/**
 * The HTTP API as a factory: `createApp(options)` returns a hono app, served by the node over HTTP/2
 * mutual TLS and on the local admin socket, and called directly (`app.request`) by unit tests.
 *
 * Composition only: the gate (_gate.ts) first, then one sub-app per file in routes/, mounted with
 * hono's `route()`, then the gate's not-found and error answers. Every sub-app is mounted at `/`
 * and writes its paths whole (Docker's API is one flat set of paths, and the paths between nodes
 * are peers/paths.ts's names, which the clients use too), so a path seen in a log or a curl line
 * leads straight to its route file. A sub-app imports the gate, never this file.
 */
import { Hono, type Context } from 'hono';
import {
  admission,
  allow,
  answerError,
  answerNotFound,
  routePathOf,
  type AppEnv,
} from './_gate.ts';
import type { Backend, Identity } from './backend.ts';
import { caRotationRoutes } from './routes/ca-rotation.ts';
import { auditRoutes } from './routes/audit.ts';
import { backupRoutes } from './routes/backup.ts';
import { certificateRoutes } from './routes/certificates.ts';
import { dispatchRoutes } from './routes/dispatch.ts';
import { joinRoutes } from './routes/join.ts';
import { localContainerRoutes } from './routes/local-containers.ts';
import { grantRoutes, localGrantRoutes, type LocalGrantsRoutesOptions } from './routes/grants.ts';
import { holdingsRoutes } from './routes/holdings.ts';
import { nodeRoutes } from './routes/nodes.ts';
import { peerRoutes } from './routes/peers.ts';
import { secretRoutes } from './routes/secrets.ts';
import { secretVersionRoutes } from './routes/secret-versions.ts';
import { serviceRoutes } from './routes/services.ts';
import { swarmRoutes } from './routes/swarm.ts';
import { systemRoutes } from './routes/system.ts';
import { whoamiRoutes } from './routes/whoami.ts';
import { metricsRoutes } from './routes/metrics.ts';

export interface AppOptions {
  readonly backend: Backend;
  /** Maps the raw request to its caller; throws `forbidden` when the caller has no valid identity. */
  readonly identify: (c: Context) => Identity;
  readonly version: string;
}

export function createApp(options: AppOptions): Hono<AppEnv> {
  const { backend } = options;
  // One router for both `/x` and Docker's versioned `/v1.NN/x`: the prefix is dropped before routing.
  const app = new Hono<AppEnv>({ getPath: routePathOf });
  app.use('*', admission(backend, options.identify));
  app.route('/', systemRoutes({ backend, version: options.version }));
  app.route('/', secretRoutes(backend));
  app.route('/', secretVersionRoutes(backend));
  app.route('/', swarmRoutes(backend));
  app.route('/', nodeRoutes(backend));
  app.route('/', joinRoutes(backend));
  app.route('/', peerRoutes(backend));
  app.route('/', dispatchRoutes(backend));
  app.route('/', certificateRoutes(backend));
  app.route('/', caRotationRoutes(backend));
  app.route('/', serviceRoutes(backend));
  app.route('/', auditRoutes(backend));
  app.route('/', backupRoutes(backend));
  // The node-local routes (also on a worker's socket, worker-app.ts): the access table, socket only.
  const local: Pick<LocalGrantsRoutesOptions, 'guard' | 'viaSocket'> = {
    guard: (key) => allow(key),
    viaSocket: (c) => c.get('identity').via === 'socket',
  };
  app.route(
    '/',
    localContainerRoutes({ containers: () => backend.localContainers?.() ?? null, ...local }),
  );
  app.route('/', grantRoutes(backend));
  app.route('/', holdingsRoutes(backend));
  app.route('/', localGrantRoutes({ grants: () => backend.localGrants?.() ?? null, ...local }));
  app.route('/', whoamiRoutes());
  app.route('/', metricsRoutes());
  app.notFound(answerNotFound);
  app.onError(answerError);
  return app;
}
