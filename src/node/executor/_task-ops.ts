/** The executor's task shapes, their checks, secret file changes, and stopping a container (TERM, grace, KILL). */
import { SecretdError } from '../../errors.ts';
import { secretBytesMax } from '../../limits.ts';
import { checkTaskId } from './_task-dir.ts';
import { killWaitMs } from './limits.ts';
import type { Runtime } from './runtime.ts';
import type { SecretMount } from './secret-mount.ts';
import { checkSecretRefs, type SecretFile } from './targets.ts';

export interface TaskSecret {
  readonly secretId: string;
  /** Relative (under /run/secrets) or absolute path in the container. */
  readonly target: string;
  /** Numeric, as Docker's (`"0"` by default). */
  readonly uid: string;
  readonly gid: string;
  /** Permission bits, e.g. 0o444 (Docker's default). */
  readonly mode: number;
  /** The value. The executor takes ownership and zeroes it once written. */
  readonly data: Uint8Array;
  /** The secret's version; an unchanged version (and owner, mode) is not rewritten by setSecrets. */
  readonly version?: number;
}

export interface TaskRun {
  readonly taskId: string;
  readonly image: string;
  readonly command: readonly string[];
  /** `NAME=value` entries; PATH gets a default when absent. */
  readonly env: readonly string[];
  readonly secrets: readonly TaskSecret[];
}

/** Everything about a task that can be checked without touching the system. */
export function checkedTask(context: string, task: TaskRun): { files: SecretFile[] } {
  checkTaskId(task.taskId);
  if (task.command.length === 0)
    throw new SecretdError('invalid', `${context}: the command is empty`);
  if (task.command.some((arg) => arg.includes('\0')))
    throw new SecretdError('invalid', `${context}: the command contains a NUL character`);
  for (const entry of task.env) {
    if (!/^[^=\0]+=/.test(entry) || entry.includes('\0'))
      throw new SecretdError(
        'invalid',
        `${context}: environment entries must be NAME=value without NUL characters`,
      );
  }
  for (const secret of task.secrets) {
    if (!(secret.data instanceof Uint8Array))
      throw new SecretdError('invalid', `${context}: secret ${secret.secretId} has no data`);
    if (secret.data.length > secretBytesMax)
      throw new SecretdError(
        'too_large',
        `${context}: secret ${secret.secretId} is larger than ${secretBytesMax} bytes`,
      );
  }
  return { files: checkSecretRefs(context, task.secrets) };
}

export function bundleFileMounts(
  mount: SecretMount,
  files: readonly SecretFile[],
): Array<{ hostPath: string; target: string }> {
  return files
    .filter((file) => file.placement.kind === 'absolute')
    .map((file) => ({ hostPath: mount.hostPath(file), target: file.target }));
}

type Outcome<T> = { readonly done: true; readonly value: T } | { readonly done: false };

function within<T>(promise: Promise<T>, ms: number): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ done: false }), ms);
    void promise.then((value) => {
      clearTimeout(timer);
      resolve({ done: true, value });
    });
  });
}

/** Resolves true once the container is gone (its runc child exited, or runc no longer runs it). */
async function waitGone(
  runtime: Runtime,
  id: string,
  exited: Promise<number | null> | null,
  timeoutMs: number,
): Promise<boolean> {
  if (exited !== null) return (await within(exited, timeoutMs)).done;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const state = await runtime.state(id);
    if (state === null || state.status === 'stopped') return true;
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * SIGTERM, up to `graceMs` to exit, then SIGKILL, up to killWaitMs. Returns the exit code when the
 * runc child told it, null when unknown, undefined when there was nothing to stop.
 */
export async function stopContainer(
  runtime: Runtime,
  id: string,
  exited: Promise<number | null> | null,
  graceMs: number,
): Promise<number | null | undefined> {
  const state = await runtime.state(id);
  if (state === null || state.status === 'stopped') {
    // Already gone; its runc child may still be about to report the code.
    if (exited === null) return undefined;
    const outcome = await within(exited, 1000);
    return outcome.done ? outcome.value : null;
  }
  if (state.status === 'running' || state.status === 'paused' || state.status === 'pausing') {
    await runtime.kill(id, 'TERM');
    if (await waitGone(runtime, id, exited, graceMs)) return exited === null ? null : await exited;
  }
  await runtime.kill(id, 'KILL');
  if (!(await waitGone(runtime, id, exited, killWaitMs))) {
    throw new SecretdError(
      'unavailable',
      `Container '${id}' did not stop within ${killWaitMs} ms of SIGKILL`,
    );
  }
  return exited === null ? null : await exited;
}

/** Writes files in order. A buffer shared by two references is copied, so zeroing one does not blank the other. */
export async function writeAll(
  mount: SecretMount,
  files: readonly SecretFile[],
  secrets: ReadonlyArray<{ readonly data: Uint8Array }>,
): Promise<void> {
  const seen = new Set<ArrayBufferLike>();
  for (let i = 0; i < files.length; i++) {
    const data = secrets[i]!.data;
    const own = seen.has(data.buffer) ? data.slice() : data;
    seen.add(data.buffer);
    await mount.writeFile(files[i]!, own);
  }
}

/**
 * What setSecrets must write and remove. A file is left alone when its secret, owner and mode are
 * the same and either its version is the same or (no version given) its bytes in the tmpfs are.
 */
export async function planChanges(
  mount: SecretMount,
  wanted: ReadonlyMap<string, { file: SecretFile; data: Uint8Array }>,
): Promise<{ write: Array<{ file: SecretFile; data: Uint8Array }>; remove: SecretFile[] }> {
  const current = new Map(mount.list().map((file) => [file.target, file]));
  const write: Array<{ file: SecretFile; data: Uint8Array }> = [];
  for (const [target, next] of wanted) {
    const now = current.get(target);
    const sameFile =
      now !== undefined &&
      now.secretId === next.file.secretId &&
      now.uid === next.file.uid &&
      now.gid === next.file.gid &&
      now.mode === next.file.mode;
    const same =
      sameFile &&
      (next.file.version !== null
        ? now.version === next.file.version
        : await mount.contentEquals(target, next.data));
    if (!same) write.push(next);
  }
  const remove = [...current.values()].filter((file) => !wanted.has(file.target));
  return { write, remove };
}
