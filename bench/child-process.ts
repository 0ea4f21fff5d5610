/**
 * Child processes for benchmarks: spawned with their output kept (a bounded tail, enough to explain
 * a failure), waited for by a line they print, run to the end with a deadline, and stopped politely
 * then firmly. Shared by the secretd and etcd helpers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { errorReason } from './create-outcome.ts';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));

export interface CapturedProcess {
  readonly child: ChildProcess;
  /** Resolves when the process has exited (or failed to spawn); never rejects. */
  readonly exited: Promise<void>;
  hasExited(): boolean;
  exitStatus(): string;
  /** The last few KiB of stdout and stderr together: enough to explain a failure, bounded. */
  output(): string;
  /** All of stdout, up to stdoutCharsMax: what a short command printed. */
  stdout(): string;
  /**
   * The first stdout line matching `pattern`, printed before or after the call. Rejects when the
   * process exits first or after `timeoutMs`.
   */
  waitForLine(pattern: RegExp, options: { readonly timeoutMs: number }): Promise<string>;
}

const outputTailChars = 8 * 1024;
/** Stdout kept whole for short commands (node ls of a few nodes is a few KiB). */
const stdoutCharsMax = 1024 * 1024;
/** Lines kept for waitForLine calls made after the line was printed. */
const stdoutLinesKept = 200;

export interface SpawnCapturedOptions {
  /** Default: the repository root. */
  readonly cwd?: string;
  /** Added to this process's environment for the child. */
  readonly env?: Readonly<Record<string, string>>;
}

export function spawnCaptured(
  executable: string,
  args: readonly string[],
  options: SpawnCapturedOptions = {},
): CapturedProcess {
  const child = spawn(executable, args, {
    cwd: options.cwd ?? repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let tail = '';
  let stdout = '';
  let partialLine = '';
  const lines: string[] = [];
  const lineWaiters = new Set<(line: string) => boolean>();
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-outputTailChars);
  };
  child.stderr?.on('data', keep);
  child.stdout?.on('data', (chunk: Buffer) => {
    keep(chunk);
    const text = chunk.toString('utf8');
    if (stdout.length < stdoutCharsMax) stdout += text.slice(0, stdoutCharsMax - stdout.length);
    const split = (partialLine + text).split('\n');
    partialLine = split.pop() ?? '';
    for (const line of split) {
      lines.push(line);
      if (lines.length > stdoutLinesKept) lines.shift();
      for (const waiter of lineWaiters) if (waiter(line)) lineWaiters.delete(waiter);
    }
  });
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      keep(Buffer.from(`spawn failed: ${error.message}\n`));
      exited = true;
      resolve();
    });
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  const exitStatus = (): string =>
    child.signalCode !== null ? `signal ${child.signalCode}` : `code ${child.exitCode ?? '?'}`;
  const waitForLine = (
    pattern: RegExp,
    waitOptions: { readonly timeoutMs: number },
  ): Promise<string> => {
    const seen = lines.find((line) => pattern.test(line));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        lineWaiters.delete(waiter);
        reject(new Error(`no line matching ${pattern} after ${waitOptions.timeoutMs} ms`));
      }, waitOptions.timeoutMs);
      const waiter = (line: string): boolean => {
        if (!pattern.test(line)) return false;
        clearTimeout(timer);
        resolve(line);
        return true;
      };
      lineWaiters.add(waiter);
      void exitedPromise.then(() => {
        if (!lineWaiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`exited with ${exitStatus()} before printing a line matching ${pattern}`));
      });
    });
  };
  return {
    child,
    exited: exitedPromise,
    hasExited: () => exited,
    exitStatus,
    output: () => tail.trimEnd(),
    stdout: () => stdout,
    waitForLine,
  };
}

export interface RunToEndOptions {
  /** Default 30 000 ms; then the command is killed and this throws. */
  readonly timeoutMs?: number;
}

/** Runs a short command; resolves with its stdout when it exits 0, else throws with its output. */
export async function runToEnd(
  executable: string,
  args: readonly string[],
  options: RunToEndOptions = {},
): Promise<string> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const what = [executable.split('/').pop(), ...args.slice(0, 2)].join(' ');
  const run = spawnCaptured(executable, args);
  // The timer is cancelled once the command exits: left pending, it kept a script that had
  // finished its work alive until the timeout (fan-out.ts --docker waited 35 minutes).
  const timer = new AbortController();
  const finished = await Promise.race([
    run.exited.then(() => true),
    delay(timeoutMs, false, { signal: timer.signal }).catch(() => true),
  ]);
  timer.abort();
  if (!finished) {
    run.child.kill('SIGKILL');
    await run.exited;
    throw new Error(`${what} did not finish in ${timeoutMs / 1000} s`);
  }
  if (run.child.exitCode !== 0)
    throw new Error(`${what} exited with ${run.exitStatus()}: ${run.output() || '(no output)'}`);
  return run.stdout();
}

/** SIGTERM, then SIGKILL if the process is still there after `stopTimeoutMs`. */
export async function stopProcess(target: CapturedProcess, stopTimeoutMs: number): Promise<void> {
  if (target.hasExited()) return;
  target.child.kill('SIGTERM');
  const stopped = await Promise.race([
    target.exited.then(() => true),
    delay(stopTimeoutMs).then(() => false),
  ]);
  if (!stopped) {
    target.child.kill('SIGKILL');
    await target.exited;
  }
}

/** Retries `attempt` every 200 ms; `check` throws to stop (process gone, deadline passed). */
export async function retry<T>(attempt: () => Promise<T>, check: () => void): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      try {
        check();
      } catch (fatal) {
        throw new Error(`${errorReason(fatal)}; last attempt: ${errorReason(error)}`, {
          cause: error,
        });
      }
    }
    await delay(200);
  }
}

/** Polls `condition` every `intervalMs` until it is true; throws after `timeoutMs` with `what`. */
export async function waitUntil(
  condition: () => Promise<boolean>,
  options: { readonly timeoutMs: number; readonly intervalMs?: number; readonly what: string },
): Promise<void> {
  const deadlineMs = performance.now() + options.timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await condition()) return;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (performance.now() > deadlineMs) {
      const last = lastError === undefined ? '' : ` (last error: ${errorReason(lastError)})`;
      throw new Error(
        `timed out after ${options.timeoutMs / 1000} s waiting for ${options.what}${last}`,
      );
    }
    await delay(options.intervalMs ?? 100);
  }
}

/** Runs `action` once; later calls get the same promise. */
export function once(action: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= action());
}
