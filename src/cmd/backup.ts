/**
 * `secretd backup`:
 *
 *   backup --out FILE [--key-file F]   POST /secretd/backup with a key drawn here; the stream is
 *                                      written to FILE (0600, through FILE.tmp, renamed once it is
 *                                      whole and reads back with the key); the key is printed once,
 *                                      or written to F (0600, never over an existing file)
 *   backup inspect FILE                the file's readable header, without the key
 */
import type { CAC } from 'cac';
import {
  closeSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { BackupOpener } from '../crypto/backup-format.ts';
import { SecretdError } from '../errors.ts';
import { systemRandom } from '../io/system.ts';
import { backupChunkBytes } from '../limits.ts';
import { encodeBackupKey, readBackupFileHeader, type BackupHeader } from '../node/index.ts';
import { withClient, type GlobalFlags, type Io } from './_common.ts';

interface BackupFlags extends GlobalFlags {
  out?: string;
  keyFile?: string;
  format?: string;
}

export function registerBackup(cli: CAC, io: Io): void {
  cli
    .command('', 'Take an encrypted backup of the whole cluster, without stopping it')
    .option('--out <file>', 'Where to write the backup (created 0600)')
    .option('--key-file <file>', 'Write the backup key here (0600) instead of printing it')
    .action(async (flags: BackupFlags) => takeBackup(flags, io));

  cli
    .command('inspect <file>', "Print a backup's readable header (no key needed)")
    .option('--format <format>', 'json: the header as JSON')
    .action(async (file: string, flags: BackupFlags) => {
      const header = await readBackupFileHeader(file);
      if (flags.format === 'json') io.out(JSON.stringify(header, null, 2));
      else io.out(headerText(header));
      return 0;
    });
}

async function takeBackup(flags: BackupFlags, io: Io): Promise<number> {
  if (typeof flags.out !== 'string' || flags.out === '')
    throw new SecretdError('invalid', 'Missing --out FILE: where to write the backup');
  const out = flags.out;
  const keyFile = typeof flags.keyFile === 'string' ? flags.keyFile : undefined;
  const key = systemRandom(32);
  const keyText = encodeBackupKey(key);
  const tmp = `${out}.tmp`;
  let keyWritten = false;
  try {
    if (keyFile !== undefined) {
      try {
        writeFileSync(keyFile, `${keyText}\n`, { mode: 0o600, flag: 'wx' });
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new SecretdError(
          'invalid',
          `Cannot write the backup key to ${keyFile}: ${code === 'EEXIST' ? 'the file exists (a key is never written over another)' : (error as Error).message}`,
        );
      }
      keyWritten = true;
    }
    rmSync(tmp, { force: true });
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      await withClient(flags, async (client) => {
        const response = await client.request(
          'POST',
          '/secretd/backup',
          { Key: keyText },
          (chunk) => {
            for (let at = 0; at < chunk.length;) at += writeSync(fd, chunk, at);
          },
        );
        if (response.status >= 300) {
          const body = response.body as { message?: string } | null;
          throw new SecretdError(
            response.status === 403 ? 'forbidden' : 'unavailable',
            `Cannot take a backup: ${body?.message ?? `HTTP ${response.status}`}`,
          );
        }
      });
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // Read back before it takes the name: a file cut short by a dropped connection never does.
    const header = checkFile(tmp, key);
    renameSync(tmp, out);
    io.out(`Backup written to ${out}: ${summary(header)}.`);
    if (keyFile !== undefined) io.out(`Backup key written to ${keyFile}.`);
    else
      io.out(
        `Backup key (shown once; keep it apart from the file, which is useless without it):\n\n    ${keyText}\n`,
      );
    return 0;
  } catch (error) {
    rmSync(tmp, { force: true });
    if (keyWritten && keyFile !== undefined) rmSync(keyFile, { force: true });
    throw error;
  } finally {
    key.fill(0);
  }
}

/** Opens the whole file with the key, chunk by chunk; its header, or the reason it does not open. */
function checkFile(path: string, key: Uint8Array): BackupHeader {
  const opener = new BackupOpener(key);
  const fd = openSync(path, 'r');
  try {
    const buffer = new Uint8Array(backupChunkBytes);
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, null);
      if (read === 0) break;
      for (const plain of opener.push(buffer.subarray(0, read))) plain.fill(0);
    }
    opener.finish();
  } catch (error) {
    if (error instanceof SecretdError)
      throw new SecretdError(
        error.code,
        `The backup read back from ${path} is not whole: ${error.message}`,
      );
    throw error;
  } finally {
    closeSync(fd);
  }
  return opener.header!;
}

function summary(header: BackupHeader): string {
  const c = header.counts;
  return `cluster ${header.clusterId} at index ${header.index}, ${c.secrets} secrets (${c.versions} versions), ${c.services} services, ${c.nodes} nodes`;
}

function headerText(header: BackupHeader): string {
  const c = header.counts;
  return [
    `Format:        ${header.format}`,
    `Cluster:       ${header.clusterId}`,
    `Raft index:    ${header.index}`,
    `Taken at:      ${header.createdAt}`,
    `Secrets:       ${c.secrets} (${c.versions} versions)`,
    `Services:      ${c.services}`,
    `Nodes:         ${c.nodes}`,
    `Client certs:  ${c.clientCerts}`,
    `Audit records: ${c.auditRecords}`,
  ].join('\n');
}
