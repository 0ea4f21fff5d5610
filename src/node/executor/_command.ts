/**
 * Runs a short external command (runc, mount, umount, tar) to completion with a hard timeout and
 * bounded output. Nothing here logs: callers decide what of stderr may appear in an error message
 * (runc's and mount's own messages name paths and ids, never file contents).
 */
import { spawn } from 'node:child_process';
import { commandOutputBytesMax } from './limits.ts';

export interface CommandOptions {
  /** Killed with SIGKILL after this long; the result then has `timedOut: true`. */
  readonly timeoutMs: number;
  /** Sent to SIGTERM first when the timeout hits, SIGKILL a second later (runc exec forwards it). */
  readonly gentleKill?: boolean;
}

export interface CommandResult {
  /** Exit code, or null when killed by a signal. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Thrown (as is) when the binary itself cannot be run, so callers can map ENOENT precisely. */
export class CommandSpawnError extends Error {
  readonly errno: string;
  constructor(file: string, errno: string) {
    super(`Cannot run ${file}: ${errno}`);
    this.name = 'CommandSpawnError';
    this.errno = errno;
  }
}

class BoundedText {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  add(chunk: Buffer): void {
    const room = commandOutputBytesMax - this.bytes;
    if (room <= 0) return;
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(kept);
    this.bytes += kept.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

export function runCommand(
  file: string,
  args: readonly string[],
  options: CommandOptions,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = new BoundedText();
    const stderr = new BoundedText();
    let timedOut = false;
    let settled = false;
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    timers.push(
      setTimeout(() => {
        timedOut = true;
        if (options.gentleKill === true) {
          child.kill('SIGTERM');
          timers.push(setTimeout(() => child.kill('SIGKILL'), 1000));
        } else {
          child.kill('SIGKILL');
        }
      }, options.timeoutMs),
    );
    const finish = (): void => {
      settled = true;
      for (const timer of timers) clearTimeout(timer);
    };
    child.stdout.on('data', (chunk: Buffer) => stdout.add(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.add(chunk));
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      finish();
      reject(new CommandSpawnError(file, error.code ?? error.message));
    });
    const done = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (settled) return;
      finish();
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ code, signal, stdout: stdout.text(), stderr: stderr.text(), timedOut });
    };
    // 'close' (not 'exit') so every byte of both pipes has arrived; but a process left behind (what
    // runc exec ran, if it ignored the signal) may hold the pipes open: then do not wait past a second.
    child.once('close', done);
    child.once('exit', (code, signal) => {
      if (!settled) timers.push(setTimeout(() => done(code, signal), 1000));
    });
  });
}

/** The last non-empty line of a command's stderr, trimmed: runc and mount put their reason there. */
export function lastLine(text: string): string {
  const lines = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  return lines[lines.length - 1] ?? '';
}
