/**
 * The backup room's door: taking a backup from a store (take.ts), reading a backup file's header
 * (inspect.ts) and restoring a new one-manager cluster from a file (restore.ts). The file format
 * itself is pure and lives in crypto/backup-format.ts.
 */
export { backupStream, countsOf, type BackupStream, type BackupStreamOptions } from './take.ts';
export { readBackupFileHeader } from './inspect.ts';
export { restoreCluster, type RestoreOptions, type Restored } from './restore.ts';
export {
  encodeBackupKey,
  parseBackupKey,
  type BackupCounts,
  type BackupHeader,
} from '../../crypto/backup-format.ts';
