/** Real processes for end-to-end tests: the compiled secretd, temp dirs, ports, an HTTP/2 mTLS client. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, type Dirent } from 'node:fs';
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDirOf } from '../../src/io/run-dir.ts';

export const repoRoot = join(import.meta.dir, '..', '..');
/** The compiled executable (scripts/test.ts compiles it before the tests run). */
export const secretdBin = join(repoRoot, 'dist', 'secretd');

export function requireBinary(): void {
  if (!existsSync(secretdBin))
    throw new Error(`${secretdBin} is missing: run \`bun scripts/compile.ts\` (npm test does)`);
}

export interface TempDir extends Disposable {
  readonly path: string;
}

export function tempDir(prefix = 'secretd-test-'): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return {
    path,
    [Symbol.dispose]: () => {
      removeRunDirsOf(path);
      rmSync(path, { recursive: true, force: true });
    },
  };
}

/**
 * Removes the run directories (/run/secretd/…, kept by a node across restarts) of the data dirs
 * that were `dir` or lay in it, two levels down: gone with their data dirs, no node comes back for
 * them. One with a mount under it is left for the test's own checks to find.
 */
function removeRunDirsOf(dir: string): void {
  const children = (parent: string): string[] =>
    safeEntries(parent)
      .filter((entry) => entry.isDirectory())
      .map((entry) => join(parent, entry.name));
  const below = children(dir);
  const candidates = [dir, ...below, ...below.flatMap(children)];
  const mounts = readFileSync('/proc/mounts', 'utf8');
  for (const candidate of candidates) {
    const runDir = runDirOf(candidate);
    if (existsSync(runDir) && !mounts.includes(` ${runDir}/`))
      rmSync(runDir, { recursive: true, force: true });
  }
}

function safeEntries(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a short secretd command (a client command) to completion. */
export function secretd(
  args: readonly string[],
  options: { input?: string | Uint8Array; env?: Record<string, string> } = {},
): RunResult {
  const result = spawnSync(secretdBin, args, {
    input: options.input ?? '',
    env: { ...process.env, ...options.env },
    timeout: 30_000,
  });
  return {
    code: result.status,
    stdout: result.stdout.toString(),
    stderr: result.stderr.toString(),
  };
}

/** A process's environment as the kernel shows it (/proc/PID/environ: what it was started or last execve'd with). */
export function environOf(pid: number): Record<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
  return Object.fromEntries(
    entries.map((entry) => [
      entry.slice(0, entry.indexOf('=')),
      entry.slice(entry.indexOf('=') + 1),
    ]),
  );
}

/** A process's arguments after its executable (/proc/PID/cmdline). */
export function argumentsOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1, -1);
}

/** A long-running secretd (init / run) whose output is collected as it comes. */
export class Daemon implements AsyncDisposable {
  readonly proc: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  /** `env`: added to this process's environment for the daemon. */
  constructor(args: readonly string[], env: Readonly<Record<string, string>> = {}) {
    this.proc = spawn(secretdBin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.proc.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.proc.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))),
    );
  }

  /** Waits until the output matches, failing with everything printed if the process exits first. */
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const match = pattern.exec(this.stdout + this.stderr);
      if (match) return match;
      if (exited)
        throw new Error(
          `secretd exited before printing ${pattern}:\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
        );
      if (Date.now() > deadline)
        throw new Error(
          `timed out waiting for ${pattern}:\nstdout: ${this.stdout}\nstderr: ${this.stderr}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal);
    return this.exited;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill('SIGKILL');
  }
}

export interface H2Response {
  readonly status: number;
  readonly text: string;
  json<T = unknown>(): T;
}

export interface ClientCerts {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export function readCerts(dir: string): ClientCerts {
  return {
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    key: readFileSync(join(dir, 'key.pem'), 'utf8'),
  };
}

/** An HTTP/2 mutual-TLS client, as curl --http2 --cacert --cert --key would be. */
export class H2Client implements Disposable {
  readonly session: ClientHttp2Session;
  readonly connected: Promise<void>;

  /** `localAddress`: the loopback IP to connect from (cluster tests tell callers apart by it). */
  constructor(url: string, certs: ClientCerts, options: { localAddress?: string } = {}) {
    this.session = connect(url, {
      ...certs,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    this.connected = new Promise((resolve, reject) => {
      this.session.once('connect', () => resolve());
      this.session.once('error', reject);
    });
    // Whoever awaits `connected` still sees the failure; nobody awaiting it is not an error.
    this.connected.catch(() => {});
    this.session.on('error', () => {});
  }

  /** `timeoutMs`: give up (cancelling the stream) when no complete answer came by then. */
  request(
    method: string,
    path: string,
    body?: unknown,
    options: { timeoutMs?: number } = {},
  ): Promise<H2Response> {
    return new Promise((resolve, reject) => {
      const payload =
        body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
      let stream: ReturnType<ClientHttp2Session['request']>;
      try {
        stream = this.session.request({
          ':method': method,
          ':path': path,
          ...(payload ? { 'content-type': 'application/json' } : {}),
        });
      } catch (error) {
        reject(error as Error);
        return;
      }
      let status = 0;
      let text = '';
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              stream.close(constants.NGHTTP2_CANCEL);
              reject(new Error(`no answer to ${method} ${path} within ${options.timeoutMs} ms`));
            }, options.timeoutMs);
      let ended = false;
      const settle = (): void => clearTimeout(timer);
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
      stream.on('end', () => {
        ended = true;
        settle();
        if (status === 0) reject(new Error('stream ended without a response'));
        else resolve({ status, text, json: <T>() => JSON.parse(text) as T });
      });
      stream.on('close', () => {
        settle();
        if (!ended)
          reject(
            new Error(
              `stream closed ${status === 0 ? 'without a response' : 'before the response ended'} (rst ${stream.rstCode})`,
            ),
          );
      });
      stream.on('error', (error) => {
        settle();
        reject(error);
      });
      stream.end(payload);
    });
  }

  get usable(): boolean {
    return !this.session.closed && !this.session.destroyed;
  }

  [Symbol.dispose](): void {
    this.session.destroy();
  }
}
