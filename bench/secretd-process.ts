/**
 * A throw-away one-node secretd for benchmarks: a temp data dir, a free loopback port, and a client
 * certificate for its mutual-TLS API.
 *
 * The CLI is written in parallel with this file, so everything this helper assumes about it is in
 * `secretdCli` below; when the CLI changes, adapt that object and nothing else.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { once, repoRoot, retry, runToEnd, spawnCaptured, stopProcess } from './child-process.ts';
import { errorReason } from './create-outcome.ts';
import { openSecretdSession, type ClientTLSFiles } from './secretd-client.ts';

/** The executor's run dir of a node: its tasks' bundles and tmpfs mounts (one rule, in src). */
export { runDirOf } from '../src/io/run-dir.ts';

/**
 * The CLI contract: `init`, `join` and `run` serve in the foreground; `init` prints a line starting
 * "Data directory:" once it serves, `join` one starting "This node joined the cluster as a manager"
 * once caught up; `cluster join-token manager -q` prints the token alone; `ca issue-client` writes
 * three PEM files; `node ls --format json` prints one node per line, as Docker's API shapes it.
 */
export const secretdCli = {
  serve: (dataDir: string, listenAddr: string): string[] => [
    'init',
    '--data-dir',
    dataDir,
    '--listen-addr',
    listenAddr,
  ],
  servingLine: /^Data directory: /,
  join: (
    dataDir: string,
    options: { readonly token: string; readonly addr: string; readonly remote: string },
  ): string[] => [
    'join',
    '--data-dir',
    dataDir,
    '--token',
    options.token,
    '--listen-addr',
    options.addr,
    '--advertise-addr',
    options.addr,
    options.remote,
  ],
  joinedLine: /^This node joined the cluster as a manager \((\S+)\)\./,
  restart: (dataDir: string): string[] => ['run', '--data-dir', dataDir],
  managerToken: (dataDir: string): string[] => [
    'cluster',
    'join-token',
    'manager',
    '-q',
    '--data-dir',
    dataDir,
  ],
  nodeList: (dataDir: string): string[] => [
    'node',
    'ls',
    '--format',
    'json',
    '--data-dir',
    dataDir,
  ],
  version: (): string[] => ['--version'],
  issueClient: (dataDir: string, outDir: string): string[] => [
    'ca',
    'issue-client',
    '--name',
    'bench',
    '--out',
    outDir,
    '--data-dir',
    dataDir,
  ],
  clientFiles: (outDir: string): ClientTLSFiles => ({
    cacert: join(outDir, 'ca.pem'),
    cert: join(outDir, 'cert.pem'),
    key: join(outDir, 'key.pem'),
  }),
} as const;

export interface StartSecretdOptions {
  /** The secretd executable and leading args; default: this Bun running src/main.ts. */
  readonly command?: readonly string[];
  /** Give up when not serving /_ping after this long; default 30 000 ms. */
  readonly startTimeoutMs?: number;
  /** After SIGTERM, how long secretd gets before SIGKILL; default 10 000 ms. */
  readonly stopTimeoutMs?: number;
}

export interface SecretdProcess extends ClientTLSFiles {
  /** https://127.0.0.1:PORT */
  readonly url: string;
  /** The server's process id (its CPU time is what a benchmark counts as the server's). */
  readonly pid: number | undefined;
  /** Stops secretd and removes its data dir; safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Expected while the CLI does not exist yet, or when it fails to start; the message says why. */
export class SecretdUnavailableError extends Error {
  readonly code = 'secretd_unavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SecretdUnavailableError';
  }
}

export async function startSecretd(options: StartSecretdOptions = {}): Promise<SecretdProcess> {
  const command = options.command ?? defaultSecretdCommand();
  const [executable, ...leadingArgs] = command;
  if (executable === undefined)
    throw new SecretdUnavailableError('Cannot start secretd: empty command');
  const port = await freePort();
  const listenAddr = `127.0.0.1:${port}`;
  const dir = await mkdtemp(join(tmpdir(), 'secretd-bench-'));
  const dataDir = join(dir, 'data');
  const files = secretdCli.clientFiles(join(dir, 'client'));
  const server = spawnCaptured(executable, [
    ...leadingArgs,
    ...secretdCli.serve(dataDir, listenAddr),
  ]);
  const secretd: SecretdProcess = {
    url: `https://${listenAddr}`,
    pid: server.child.pid,
    ...files,
    stop: once(() =>
      stopProcess(server, options.stopTimeoutMs ?? 10_000).then(() =>
        rm(dir, { recursive: true, force: true }),
      ),
    ),
    [Symbol.asyncDispose]: () => secretd.stop(),
  };
  try {
    const deadlineMs = performance.now() + (options.startTimeoutMs ?? 30_000);
    const failIfGone = (): void => {
      if (server.hasExited())
        throw new Error(`secretd exited with ${server.exitStatus()} while starting`);
      if (performance.now() > deadlineMs) throw new Error('secretd did not become ready in time');
    };
    // Listening means init has created the cluster, so the CA can issue a client certificate.
    while (!(await acceptsTcp(port))) {
      failIfGone();
      await delay(50);
    }
    await retry(
      () =>
        runToEnd(executable, [
          ...leadingArgs,
          ...secretdCli.issueClient(dataDir, join(dir, 'client')),
        ]),
      failIfGone,
    );
    await retry(() => pingOK(secretd.url, files), failIfGone);
    return secretd;
  } catch (error) {
    await secretd.stop();
    throw new SecretdUnavailableError(
      `Cannot start secretd (${[executable, ...leadingArgs].join(' ')}): ${errorReason(error)}` +
        `\n--- secretd stderr (last lines) ---\n${server.output() || '(nothing)'}`,
      { cause: error },
    );
  }
}

/** This Bun running src/main.ts: the secretd of the working tree. */
export function defaultSecretdCommand(): string[] {
  const main = join(repoRoot, 'src', 'main.ts');
  if (!existsSync(main))
    throw new SecretdUnavailableError(`Cannot start secretd: ${main} does not exist yet`);
  return [process.execPath, main];
}

/** Binds port 0 and releases it: another process could take it meanwhile, which is rare on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('Cannot find a free port'))));
    });
  });
}

export function acceptsTcp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** GET /_ping over a fresh mutual-TLS session; throws unless it answers 200. */
export async function pingOK(url: string, files: ClientTLSFiles): Promise<void> {
  const session = await openSecretdSession(url, files, { requestTimeoutMs: 2_000 });
  try {
    const answer = await session.request('GET', '/_ping');
    if (answer.status !== 200) throw new Error(`GET /_ping answered ${answer.status}`);
  } finally {
    await session.close();
  }
}
