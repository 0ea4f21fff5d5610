/**
 * The real `Runtime`: spawns runc (or any binary with runc's command line, given by path) with a
 * state root of our own (`--root`), so `list` and `reconcile` only ever see secretd's containers.
 *
 * Every command has a timeout except the foreground `runc run`, which lives exactly as long as the
 * container (see runtime.ts for why); its start is bounded by `startTimeoutMs` and its end by the
 * executor's stop (TERM, grace, KILL). It runs in its own session with stdio on /dev/null: the
 * container keeps running if the agent dies, and its output is never written anywhere by us.
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { SecretdError } from '../../errors.ts';
import { CommandSpawnError, lastLine, runCommand, type CommandResult } from './_command.ts';
import { commandTimeoutMs } from './limits.ts';
import type {
  ContainerState,
  ExecOptions,
  ExecResult,
  RunOptions,
  Runtime,
  RunningContainer,
} from './runtime.ts';

export interface RuncRuntimeOptions {
  /** runc's state directory (`--root`); ours alone, e.g. `<runDir>/runc`. */
  readonly rootDir: string;
  /** The runtime binary: a name looked up in PATH or a path. Default 'runc'. */
  readonly binary?: string;
}

const startPollMs = 5;

export class RuncRuntime implements Runtime {
  readonly name: string;
  private readonly rootDir: string;
  private checked = false;

  constructor(options: RuncRuntimeOptions) {
    this.name = options.binary ?? 'runc';
    this.rootDir = options.rootDir;
  }

  async check(): Promise<void> {
    if (this.checked) return;
    const result = await this.command(['--version'], false);
    if (result.code !== 0)
      throw new SecretdError(
        'unavailable',
        `OCI runtime '${this.name}' does not work: \`${this.name} --version\` failed: ${lastLine(result.stderr)}`,
      );
    this.checked = true;
  }

  async run(id: string, bundleDir: string, options: RunOptions): Promise<RunningContainer> {
    await this.check();
    const pidPath = join(bundleDir, 'init.pid');
    await rm(options.logPath, { force: true });
    await rm(pidPath, { force: true });
    const args = [
      '--root',
      this.rootDir,
      '--log',
      options.logPath,
      '--log-format',
      'json',
      'run',
      '--bundle',
      bundleDir,
      '--pid-file',
      pidPath,
      id,
    ];
    const child = spawn(this.name, args, { detached: true, stdio: 'ignore' });
    // The agent must be able to exit while containers run: do not hold its event loop open.
    child.unref();
    let exitCode: number | null | undefined;
    let spawnError: NodeJS.ErrnoException | undefined;
    const exited = new Promise<number | null>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) => {
        spawnError = error;
        exitCode = null;
        resolve(null);
      });
      child.once('exit', (code, signal) => {
        // runc exits with the container's status; if runc itself was killed we cannot know it.
        exitCode = code ?? (signal === null ? null : 128 + (osConstants.signals[signal] ?? 0));
        resolve(exitCode);
      });
    });
    const deadline = performance.now() + options.startTimeoutMs;
    for (;;) {
      if (spawnError !== undefined) throw this.spawnFailure(spawnError.code ?? spawnError.message);
      const pid = await readPid(pidPath);
      if (pid !== null) return { pid, exited };
      if (exitCode !== undefined) {
        const reason = await runtimeErrors(options.logPath);
        if (reason !== '')
          throw new SecretdError(
            'internal',
            `OCI runtime '${this.name}' could not start container '${id}': ${reason}`,
          );
        // The process started and is already gone (a command that exits at once): a normal exit.
        return { pid: null, exited };
      }
      if (performance.now() > deadline) {
        child.kill('SIGKILL');
        await this.delete(id).catch(() => undefined);
        throw new SecretdError(
          'unavailable',
          `OCI runtime '${this.name}' did not start container '${id}' within ${options.startTimeoutMs} ms`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, startPollMs));
    }
  }

  async state(id: string): Promise<ContainerState | null> {
    const result = await this.command(['state', id]);
    if (result.code === 0) return parseState(JSON.parse(result.stdout));
    if (/does not exist/.test(result.stderr)) return null;
    throw this.failure('state', id, result);
  }

  async kill(id: string, signal: string): Promise<void> {
    const result = await this.command(['kill', id, signal]);
    if (
      result.code === 0 ||
      /not running|does not exist|process already finished/.test(result.stderr)
    )
      return;
    throw this.failure('kill', id, result);
  }

  async delete(id: string): Promise<void> {
    const result = await this.command(['delete', '--force', id]);
    if (result.code === 0 || /does not exist/.test(result.stderr)) return;
    throw this.failure('delete', id, result);
  }

  async exec(id: string, argv: readonly string[], options: ExecOptions): Promise<ExecResult> {
    const user =
      options.uid === undefined ? [] : ['--user', `${options.uid}:${options.gid ?? options.uid}`];
    const result = await this.command(['exec', ...user, id, ...argv], true, options.timeoutMs);
    if (result.timedOut)
      throw new SecretdError(
        'unavailable',
        `Command in container '${id}' did not finish within ${options.timeoutMs} ms`,
      );
    const code =
      result.code ??
      (result.signal === null ? 255 : 128 + (osConstants.signals[result.signal] ?? 0));
    return { code, stdout: result.stdout, stderr: result.stderr };
  }

  async list(): Promise<ContainerState[]> {
    const result = await this.command(['list', '--format', 'json']);
    if (result.code !== 0) throw this.failure('list', '', result);
    // runc prints `null` when there is no container.
    const parsed: unknown = JSON.parse(result.stdout.trim() || 'null');
    return Array.isArray(parsed) ? parsed.map(parseState) : [];
  }

  private async command(
    args: readonly string[],
    withRoot = true,
    timeoutMs = commandTimeoutMs,
  ): Promise<CommandResult> {
    const fullArgs = withRoot ? ['--root', this.rootDir, ...args] : args;
    let result: CommandResult;
    try {
      // exec forwards SIGTERM to the process it runs, so a timed-out exec gets a chance to stop.
      result = await runCommand(this.name, fullArgs, { timeoutMs, gentleKill: args[0] === 'exec' });
    } catch (error) {
      if (error instanceof CommandSpawnError) throw this.spawnFailure(error.errno);
      throw error;
    }
    if (result.timedOut && args[0] !== 'exec')
      throw new SecretdError(
        'unavailable',
        `OCI runtime '${this.name}' did not answer \`${args[0] ?? ''}\` within ${timeoutMs} ms`,
      );
    return result;
  }

  private spawnFailure(errno: string): SecretdError {
    if (errno === 'ENOENT')
      return new SecretdError(
        'unavailable',
        `OCI runtime '${this.name}' not found: install runc or pass --runtime PATH`,
      );
    return new SecretdError(
      'unavailable',
      `OCI runtime '${this.name}' cannot be run (${errno}): install runc or pass --runtime PATH`,
    );
  }

  private failure(action: string, id: string, result: CommandResult): SecretdError {
    const target = id === '' ? '' : ` '${id}'`;
    return new SecretdError(
      'internal',
      `OCI runtime '${this.name}' failed to ${action} container${target}: ${lastLine(result.stderr) || `exit code ${result.code}`}`,
    );
  }
}

function parseState(value: unknown): ContainerState {
  const record = value as { id?: unknown; pid?: unknown; status?: unknown; bundle?: unknown };
  if (typeof record.id !== 'string' || typeof record.status !== 'string')
    throw new SecretdError(
      'internal',
      'OCI runtime printed a container state without id or status',
    );
  return {
    id: record.id,
    pid: typeof record.pid === 'number' ? record.pid : 0,
    status: record.status as ContainerState['status'],
    bundle: typeof record.bundle === 'string' ? record.bundle : '',
  };
}

async function readPid(path: string): Promise<number | null> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    // runc writes the file whole, but a reader may still catch it before the rename lands.
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/** The error-level messages runc wrote to its log (JSON lines, or logfmt from older versions). */
async function runtimeErrors(logPath: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(logPath, 'utf8');
  } catch {
    return '';
  }
  const messages: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const entry = JSON.parse(line) as { level?: unknown; msg?: unknown };
      if ((entry.level === 'error' || entry.level === 'fatal') && typeof entry.msg === 'string')
        messages.push(entry.msg);
    } catch {
      const match = /level=(?:error|fatal) msg="((?:[^"\\]|\\.)*)"/.exec(line);
      if (match?.[1] !== undefined) messages.push(match[1].replace(/\\"/g, '"'));
    }
  }
  return messages[messages.length - 1] ?? '';
}
