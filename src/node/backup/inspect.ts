/** `secretd backup inspect FILE`: the readable header of a backup, without the key. */
import { open, type FileHandle } from 'node:fs/promises';
import { readBackupHeader, type BackupHeader } from '../../crypto/backup-format.ts';
import { SecretdError } from '../../errors.ts';
import { backupHeaderBytesMax } from '../../limits.ts';

/** A backup file opened for reading (inspect and restore); `invalid` naming the path and why not. */
export async function openBackupFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new SecretdError(
      'invalid',
      `Cannot read the backup ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (error as Error).message}`,
    );
  }
}

export async function readBackupFileHeader(path: string): Promise<BackupHeader> {
  const handle = await openBackupFile(path);
  try {
    const buffer = new Uint8Array(backupHeaderBytesMax);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const read = readBackupHeader(buffer.subarray(0, bytesRead));
    if (read === null)
      throw new SecretdError(
        'corrupt',
        `Cannot read the backup ${path}: it ends inside its header`,
      );
    return read.header;
  } finally {
    await handle.close();
  }
}
