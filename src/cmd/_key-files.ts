/**
 * Keys read from files: the backup key (`restore --key-file`), and the unlock key of an autolocked
 * manager (`run --unlock-key-file FILE`, or systemd's `$CREDENTIALS_DIRECTORY/secretd-unlock-key`).
 * An unlock key file must be a regular file owned by root and readable by no group and no one else
 * (as ssh insists on for its keys); anything else is refused with the reason. Never a key from an
 * argument or an environment variable: both are readable by others (/proc/PID/cmdline, environ of
 * children) for the life of the process.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { SecretdError } from '../errors.ts';
import { keyFileBytesMax } from '../limits.ts';

/** The credential name systemd hands the unit (`LoadCredentialEncrypted=secretd-unlock-key:…`). */
export const unlockCredentialName = 'secretd-unlock-key';

/** Where the unlock key comes from: the flag, else systemd's credential when there is one, else nowhere. */
export async function unlockKeyFileOf(
  flag: string | undefined,
  credentialsDirectory: string | undefined,
): Promise<string | null> {
  if (flag !== undefined) return flag;
  if (credentialsDirectory === undefined || credentialsDirectory === '') return null;
  const path = join(credentialsDirectory, unlockCredentialName);
  try {
    await stat(path);
    return path;
  } catch {
    return null;
  }
}

/** The unlock key's text from `path`, after the ownership and mode checks; throws naming why not. */
export async function readUnlockKeyFile(path: string): Promise<string> {
  const refuse = (why: string): SecretdError =>
    new SecretdError('invalid', `Not reading the unlock key from ${path}: ${why}`);
  let info;
  try {
    info = await stat(path);
  } catch (error) {
    throw refuse(reasonOf(error));
  }
  if (!info.isFile()) throw refuse('it is not a regular file');
  if (info.uid !== 0) throw refuse(`it is owned by uid ${info.uid}, not root (chown root: it)`);
  if ((info.mode & 0o077) !== 0)
    throw refuse(
      `it is readable or writable by its group or others (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}; chmod 600 it)`,
    );
  return readSmallKeyFile(path, 'unlock key');
}

/** A key file's text (trimmed), at most `keyFileBytesMax` bytes; the buffer read is zeroed. */
export async function readSmallKeyFile(path: string, what: string): Promise<string> {
  let bytes: Buffer;
  try {
    const info = await stat(path);
    if (!info.isFile())
      throw new SecretdError(
        'invalid',
        `Cannot read the ${what} from ${path}: it is not a regular file`,
      );
    if (info.size > keyFileBytesMax)
      throw new SecretdError(
        'invalid',
        `Cannot read the ${what} from ${path}: ${info.size} bytes is no key file (at most ${keyFileBytesMax})`,
      );
    bytes = await readFile(path);
  } catch (error) {
    if (error instanceof SecretdError) throw error;
    throw new SecretdError('invalid', `Cannot read the ${what} from ${path}: ${reasonOf(error)}`);
  }
  const text = bytes.toString('utf8').trim();
  bytes.fill(0);
  if (text === '') throw new SecretdError('invalid', `The ${what} file ${path} is empty`);
  return text;
}

function reasonOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT'
    ? 'no such file'
    : code === 'EACCES'
      ? 'permission denied'
      : (error as Error).message;
}

/**
 * `secretd run`: unlocks a locked manager with the key from `--unlock-key-file`, or from systemd's
 * credential. A refused file, a wrong key (which counts toward the unlock back-off like any wrong
 * key) or a missing one leaves the manager locked, serving `unlock`, and says why on `log`.
 */
export async function unlockFromFile(
  manager: UnlockTarget | null,
  flag: string | undefined,
  credentialsDirectory: string | undefined,
  log: (line: string) => void,
): Promise<void> {
  const path = await unlockKeyFileOf(flag, credentialsDirectory);
  if (path === null || manager === null) return;
  if (!manager.locked) {
    if (flag !== undefined)
      log(`secretd: --unlock-key-file ${path} not needed: this manager is not locked`);
    return;
  }
  let keyText: string;
  try {
    keyText = await readUnlockKeyFile(path);
  } catch (error) {
    log(`secretd: ${messageOf(error)}; this manager stays locked (run \`secretd unlock\`)`);
    record(manager, path, error);
    return;
  }
  try {
    await manager.unlock(keyText);
    log(`secretd: unlocked with the key from ${path}`);
    record(manager, path, null);
  } catch (error) {
    log(
      `secretd: the key in ${path} did not unlock this manager: ${messageOf(error)}; it stays locked (run \`secretd unlock\`)`,
    );
    record(manager, path, error);
  }
}

/** What unlocking from a file needs of a manager; its audit sink records the attempt. */
export interface UnlockTarget {
  readonly locked: boolean;
  unlock(keyText: string): Promise<void>;
  readonly state?: { readonly nodeId: string };
  readonly audit?: {
    readonly sink: {
      record(entry: UnlockAttemptRecord): void;
      now(): string;
      requestId(): string;
    };
  };
}

interface UnlockAttemptRecord {
  readonly at: string;
  readonly actor: { readonly kind: 'node'; readonly name: string; readonly role: 'manager' };
  readonly source: string;
  readonly action: 'unlock';
  readonly detail: string;
  readonly result: string;
  readonly requestId: string;
}

/**
 * An unlock attempt from a file, in the audit trail as the API's are (held in memory while the
 * manager is locked, proposed once it is unlocked): the node itself, source `unlock-key-file`, the
 * path and, for a failure, the reason (never the key).
 */
function record(manager: UnlockTarget, path: string, error: unknown): void {
  const sink = manager.audit?.sink;
  if (sink === undefined) return;
  const code = error === null ? 'ok' : error instanceof SecretdError ? error.code : 'internal';
  sink.record({
    at: sink.now(),
    actor: { kind: 'node', name: manager.state?.nodeId ?? '', role: 'manager' },
    source: 'unlock-key-file',
    action: 'unlock',
    detail: error === null ? path : `${path}: ${messageOf(error)}`.slice(0, 200),
    result: code,
    requestId: sink.requestId(),
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
