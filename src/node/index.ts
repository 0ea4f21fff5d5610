/**
 * The door of src/node for the CLI (src/cmd): starting and running a node, and the input checks
 * the CLI shares with the API so that both refuse the same things with the same words.
 */
export { parseSecretFlag, readServiceSpec, type SecretFlag } from './api/index.ts';
export {
  type Daemon,
  fatalExit,
  initDaemon,
  joinDaemon,
  runDaemon,
  secretdVersion,
} from './daemon.ts';
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
