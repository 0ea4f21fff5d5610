/**
 * The door of src/node for the CLI (src/cmd): starting and running a node, and the input checks
 * the CLI shares with the API so that both refuse the same things with the same words.
 *
 * The node itself (daemon.ts, and with it the manager, the worker and the API server on hono) is
 * loaded when a command starts one: initDaemon, joinDaemon and runDaemon import it then. A command
 * that only reaches a node through the client never evaluates it (hono and its adapter alone take
 * about 6 ms); scripts/check-imports.ts holds the door to that.
 */
import type * as DaemonModule from './daemon.ts';

export type { Daemon } from './daemon.ts';
export { fatalExit, secretdVersion } from './fatal.ts';

export const initDaemon: typeof DaemonModule.initDaemon = async (...args) =>
  (await import('./daemon.ts')).initDaemon(...args);
export const joinDaemon: typeof DaemonModule.joinDaemon = async (...args) =>
  (await import('./daemon.ts')).joinDaemon(...args);
export const runDaemon: typeof DaemonModule.runDaemon = async (...args) =>
  (await import('./daemon.ts')).runDaemon(...args);

export { parseSecretFlag, type SecretFlag } from './store/index.ts';

/**
 * The API's reader of a service spec (api/service-shapes.ts), with the API room it is loaded in:
 * `stack deploy` checks each service of a compose file as the API would, before sending any.
 */
export async function loadServiceSpecReader(): Promise<(spec: Record<string, unknown>) => unknown> {
  return (await import('./api/index.ts')).readServiceSpec;
}
export { dataDirPaths, defaultDataDir } from './data-dir/index.ts';
export {
  encodeBackupKey,
  parseBackupKey,
  readBackupFileHeader,
  restoreCluster,
  type BackupHeader,
  type Restored,
} from './backup/index.ts';
export { splitHostPort } from './join/index.ts';
export { checkManagerIdentity, reasonOf, wasRefused } from './peers/index.ts';
export {
  auditQueryFields,
  parseAuditQuery,
  verifyExport,
  type AuditRecord,
} from './audit/index.ts';
export { checkAuditKept } from './store/index.ts';
export {
  checkNodeCertExpiry,
  checkRoleAndScope,
  checkSecretData,
  checkSecretName,
  checkVersionNumber,
  nodeCertExpiryText,
  onUpdateText,
  parseOnUpdate,
  toBase64,
} from './store/index.ts';
