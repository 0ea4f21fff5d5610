/** The api room's door: what other parts of secretd may use of it. */
export { createApp, type AppOptions } from './app.ts';
export {
  type Backend,
  type Identity,
  type ClientCertUpdateOutcome,
  type IssuedClientCertificate,
  type RevocationOutcome,
  type NodeSummary,
  type NodeUpdate,
  type NodeView,
  type SecretSpecInput,
  type SecretVersionView,
  type RootRotationStatus,
  type SwarmUpdate,
  type VersionOutcome,
} from './backend.ts';
export { readConsistency } from './read-consistency.ts';
export { serveAdminSocket, serveTls, serveWorkerSocket } from './server.ts';
export { readServiceSpec, type ServiceSpecInput } from './service-shapes.ts';
export { createWorkerApp, type WorkerBackend } from './worker-app.ts';
export { secretVersionViews } from './secret-usage.ts';
export { holdingsPaths, type NodeStateView, type SecretHolderView } from './routes/holdings.ts';
