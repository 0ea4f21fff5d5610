/**
 * Secret file references checked before any byte is written: where each file goes in the
 * container, and under which safe name it lives on the host. Pure.
 *
 * - A relative target (`db_pass`, `app/key`) lands under /run/secrets. On the host it lives at the
 *   same relative path inside the tmpfs's `run/` directory, which is bind-mounted (read-only) at
 *   /run/secrets: binding the directory rather than each file is what lets an atomic rename reach
 *   readers in the container (a single-file bind pins the old inode). `/run/secrets/x` is read as `x`.
 * - An absolute target (`/etc/app/key.pem`) is bound file by file; on the host it is named
 *   `abs/<sha-256 of the target, 16 hex>`, so the target's characters never reach a host path.
 * Components may not be empty, `.` or `..`, so nothing escapes `run/` (and files are created
 * with O_NOFOLLOW under directories only we create).
 */
import { createHash } from 'node:crypto';
import { SecretdError } from '../../errors.ts';
import {
  secretTargetCharsMax,
  secretTargetComponentCharsMax,
  secretsPerTaskMax,
} from './limits.ts';

/** What the caller gives for one secret file (the executor's TaskSecret without its data). */
export interface SecretRef {
  readonly secretId: string;
  readonly target: string;
  readonly uid: string;
  readonly gid: string;
  readonly mode: number;
  readonly version?: number;
}

export type SecretPlacement =
  | { readonly kind: 'relative'; readonly path: string }
  | { readonly kind: 'absolute'; readonly path: string };

/** A checked secret file: numeric owner, mode, where it goes, and its host path inside the tmpfs. */
export interface SecretFile {
  readonly secretId: string;
  /** The normalized target: `a/b` (under /run/secrets) or `/etc/x`. */
  readonly target: string;
  readonly placement: SecretPlacement;
  /** Relative to the tmpfs root: `run/<target>` or `abs/<hash>`. */
  readonly hostName: string;
  readonly uid: number;
  readonly gid: number;
  readonly mode: number;
  readonly version: number | null;
}

export const secretsDirInContainer = '/run/secrets';
/** Container paths an absolute target may not be, or be under (the runtime owns them). */
const reservedExact = new Set([
  '/',
  '/proc',
  '/sys',
  '/dev',
  '/tmp',
  '/run',
  secretsDirInContainer,
]);
const reservedTrees = ['/proc/', '/sys/', '/dev/'];
const secretIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const numericIdMax = 2 ** 32 - 2;

export function placeTarget(target: string, fail: (why: string) => SecretdError): SecretPlacement {
  if (target.length === 0) throw fail('must not be empty');
  if (target.length > secretTargetCharsMax)
    throw fail(`must be at most ${secretTargetCharsMax} characters`);
  if (/[\u0000-\u001f\u007f]/.test(target)) throw fail('must not contain control characters');
  const absolute = target.startsWith('/');
  const components = (absolute ? target.slice(1) : target).split('/');
  for (const component of components) {
    if (component === '') throw fail("must not contain empty components ('//' or a trailing '/')");
    if (component === '.' || component === '..')
      throw fail("must not contain '.' or '..' components");
    if (component.length > secretTargetComponentCharsMax)
      throw fail(`must have components of at most ${secretTargetComponentCharsMax} characters`);
  }
  if (!absolute) return { kind: 'relative', path: components.join('/') };
  const path = '/' + components.join('/');
  if (path.startsWith(secretsDirInContainer + '/'))
    return { kind: 'relative', path: path.slice(secretsDirInContainer.length + 1) };
  if (reservedExact.has(path) || reservedTrees.some((tree) => path.startsWith(tree)))
    throw fail(
      'is reserved: an absolute target may not be /, /tmp, /run or /run/secrets, nor /proc, /sys, /dev or under them',
    );
  return { kind: 'absolute', path };
}

export function hostNameFor(placement: SecretPlacement): string {
  if (placement.kind === 'relative') return `run/${placement.path}`;
  return `abs/${createHash('sha256').update(placement.path).digest('hex').slice(0, 16)}`;
}

function parseNumericId(value: string, what: string, fail: (why: string) => SecretdError): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) > numericIdMax)
    throw fail(`has ${what} '${value}': it must be a number from 0 to ${numericIdMax}`);
  return Number(value);
}

/** One secret file as a service spec gives it: where it goes and who owns it. */
export interface SecretFileSpec {
  readonly target: string;
  readonly uid: string;
  readonly gid: string;
  readonly mode: number;
}

/** A checked secret file without its secret: placement, host name and numeric owner and mode. */
export type PlacedFile = Omit<SecretFile, 'secretId' | 'version'>;

/**
 * The rules every secret file of one task passes: the manager's API checks a service spec's
 * references with them before storing it, and the executor checks them again before writing a byte
 * (one copy of the rule, so a spec the API takes never loops on a refused start). Throws
 * SecretdError('invalid') naming the first offending target; `context` starts the message.
 */
export function checkSecretFiles(context: string, refs: readonly SecretFileSpec[]): PlacedFile[] {
  if (refs.length > secretsPerTaskMax)
    throw new SecretdError(
      'invalid',
      `${context}: ${refs.length} secret files is more than the ${secretsPerTaskMax} allowed per task`,
    );
  const files = refs.map((ref): PlacedFile => {
    const fail = (why: string): SecretdError =>
      new SecretdError('invalid', `${context}: secret target '${ref.target}' ${why}`);
    const placement = placeTarget(ref.target, fail);
    const uid = parseNumericId(ref.uid, 'uid', fail);
    const gid = parseNumericId(ref.gid, 'gid', fail);
    if (!Number.isInteger(ref.mode) || ref.mode < 0 || ref.mode > 0o777)
      throw fail(`has mode ${String(ref.mode)}: it must be permission bits from 0 to 0777`);
    return {
      target: placement.path,
      placement,
      hostName: hostNameFor(placement),
      uid,
      gid,
      mode: ref.mode,
    };
  });
  refuseOverlaps(context, files);
  return files;
}

/**
 * Checks every reference of one task and returns them normalized, or throws SecretdError('invalid')
 * naming the first offending target. `context` starts the message ("Cannot start task 't1'").
 */
export function checkSecretRefs(context: string, refs: readonly SecretRef[]): SecretFile[] {
  for (const ref of refs) {
    if (!secretIdPattern.test(ref.secretId))
      throw new SecretdError(
        'invalid',
        `${context}: secret target '${ref.target}' has an invalid secret id: it must match ${secretIdPattern.source}`,
      );
  }
  return checkSecretFiles(context, refs).map((file, i) => ({
    ...file,
    secretId: refs[i]!.secretId,
    version: refs[i]!.version ?? null,
  }));
}

/** Two files at one path, or a file where another needs a directory, cannot both be mounted. */
function refuseOverlaps(context: string, files: readonly PlacedFile[]): void {
  const containerPath = (file: PlacedFile): string =>
    file.placement.kind === 'relative'
      ? `${secretsDirInContainer}/${file.placement.path}`
      : file.placement.path;
  const paths = files.map(containerPath).sort();
  for (let i = 1; i < paths.length; i++) {
    const previous = paths[i - 1]!;
    const current = paths[i]!;
    if (current === previous)
      throw new SecretdError('invalid', `${context}: secret target '${current}' is used twice`);
  }
  const all = new Set(paths);
  for (const path of paths) {
    for (let cut = path.indexOf('/', 1); cut !== -1; cut = path.indexOf('/', cut + 1)) {
      const parent = path.slice(0, cut);
      if (all.has(parent))
        throw new SecretdError(
          'invalid',
          `${context}: secret target '${parent}' is a file, so '${path}' cannot be under it`,
        );
    }
  }
}
