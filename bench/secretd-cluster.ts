/**
 * A throw-away cluster of secretd managers on loopback for benchmarks: `init` on the first, `join`
 * of the others with the manager token (one at a time, each waited for until caught up), an admin
 * client certificate for the mutual-TLS API, and the means to SIGKILL a manager and bring it back
 * with `run` (failover.ts). Every data dir is under one temp dir, removed by stop().
 *
 * What it assumes of the CLI is `secretdCli` in secretd-process.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  once,
  runToEnd,
  spawnCaptured,
  stopProcess,
  waitUntil,
  type CapturedProcess,
} from './child-process.ts';
import { errorReason } from './create-outcome.ts';
import type { ClientTLSFiles } from './secretd-client.ts';
import {
  defaultSecretdCommand,
  freePort,
  pingOK,
  secretdCli,
  SecretdUnavailableError,
} from './secretd-process.ts';

export interface SecretdManager {
  /** m1, m2, …: m1 ran `init`. */
  readonly name: string;
  readonly dataDir: string;
  /** 127.0.0.1:PORT, listen and advertise address alike. */
  readonly addr: string;
  /** https://127.0.0.1:PORT */
  readonly url: string;
  isRunning(): boolean;
  /** The process id while it runs (for its CPU time in /proc). */
  pid(): number | undefined;
  /** Sends SIGKILL now (take the time before calling) and resolves once the process is gone. */
  kill(): Promise<void>;
  /** `secretd run --data-dir …`; resolves once it answers /_ping over mutual TLS. */
  restart(): Promise<void>;
  /** `secretd run --data-dir …` without waiting for anything (a locked manager serves no TLS until unlocked). */
  launch(): void;
  /** Last lines of its stdout and stderr, to explain a failure. */
  output(): string;
}

/** One line of `node ls --format json`, reduced to what the benchmarks read. */
export interface NodeEntry {
  readonly id: string;
  readonly addr: string;
  readonly leader: boolean;
  readonly reachability: string;
}

export interface SecretdCluster extends ClientTLSFiles {
  readonly managers: readonly SecretdManager[];
  /** The executable and leading args every node and CLI command runs with. */
  readonly command: readonly string[];
  /** `secretd node ls --format json` through the admin socket of a running manager. */
  listNodes(): Promise<NodeEntry[]>;
  /** The manager `node ls` marks as leader. */
  leader(): Promise<SecretdManager>;
  /** Until every manager runs and `node ls` shows all of them reachable with one leader. */
  waitHealthy(options: { readonly timeoutMs: number }): Promise<void>;
  /** Stops every manager and removes the temp dir; safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartSecretdClusterOptions {
  /** Default 3. */
  readonly managers?: number;
  /** The secretd executable and leading args; default: this Bun running src/main.ts. */
  readonly command?: readonly string[];
  /** For each node to serve (init) or catch up (join); default 60 000 ms. */
  readonly startTimeoutMs?: number;
  /** After SIGTERM, how long a manager gets before SIGKILL; default 10 000 ms. */
  readonly stopTimeoutMs?: number;
}

export async function startSecretdCluster(
  options: StartSecretdClusterOptions = {},
): Promise<SecretdCluster> {
  const command = options.command ?? defaultSecretdCommand();
  const [executable, ...leadingArgs] = command;
  if (executable === undefined)
    throw new SecretdUnavailableError('Cannot start secretd: empty command');
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const dir = await mkdtemp(join(tmpdir(), 'secretd-bench-cluster-'));
  const files = secretdCli.clientFiles(join(dir, 'client'));
  const cli = (args: readonly string[]): Promise<string> =>
    runToEnd(executable, [...leadingArgs, ...args]);
  const managers: ManagerProcess[] = [];
  for (let i = 1; i <= (options.managers ?? 3); i++) {
    const port = await freePort();
    managers.push(
      new ManagerProcess({
        name: `m${i}`,
        dataDir: join(dir, `m${i}`),
        addr: `127.0.0.1:${port}`,
        command,
        files,
      }),
    );
  }
  const running = (): ManagerProcess => {
    const found = managers.find((m) => m.isRunning());
    if (found === undefined) throw new Error('No secretd manager is running');
    return found;
  };
  const listNodes = async (): Promise<NodeEntry[]> =>
    parseNodeList(await cli(secretdCli.nodeList(running().dataDir)));
  const cluster: SecretdCluster = {
    managers,
    command,
    ...files,
    listNodes,
    leader: async () => {
      const entry = (await listNodes()).find((node) => node.leader);
      const manager = managers.find((m) => m.addr === entry?.addr);
      if (manager === undefined)
        throw new Error(`node ls shows no leader among ${managers.map((m) => m.addr).join(', ')}`);
      return manager;
    },
    waitHealthy: ({ timeoutMs }) =>
      waitUntil(
        async () => managers.every((m) => m.isRunning()) && isHealthy(await listNodes(), managers),
        {
          timeoutMs,
          intervalMs: 200,
          what: 'every manager reachable with one leader in node ls',
        },
      ),
    stop: once(async () => {
      await Promise.all(managers.map((m) => m.stop(stopTimeoutMs)));
      await rm(dir, { recursive: true, force: true });
    }),
    [Symbol.asyncDispose]: () => cluster.stop(),
  };
  try {
    const [first, ...others] = managers;
    if (first === undefined) throw new Error('A cluster needs at least one manager');
    await first.start(
      secretdCli.serve(first.dataDir, first.addr),
      secretdCli.servingLine,
      startTimeoutMs,
    );
    const token = (await cli(secretdCli.managerToken(first.dataDir))).trim();
    for (const manager of others) {
      const joinArgs = secretdCli.join(manager.dataDir, {
        token,
        addr: manager.addr,
        remote: first.addr,
      });
      await manager.start(joinArgs, secretdCli.joinedLine, startTimeoutMs);
    }
    await cli(secretdCli.issueClient(first.dataDir, join(dir, 'client')));
    await cluster.waitHealthy({ timeoutMs: startTimeoutMs });
    return cluster;
  } catch (error) {
    const outputs = managers
      .map((m) => `--- ${m.name} (${m.addr}) output, last lines ---\n${m.output() || '(nothing)'}`)
      .join('\n');
    await cluster.stop();
    throw new SecretdUnavailableError(
      `Cannot start a secretd cluster (${command.join(' ')}): ${errorReason(error)}\n${outputs}`,
      { cause: error },
    );
  }
}

function isHealthy(nodes: readonly NodeEntry[], managers: readonly SecretdManager[]): boolean {
  const listed = managers.map((m) => nodes.find((node) => node.addr === m.addr));
  return (
    listed.every((node) => node?.reachability === 'reachable') &&
    nodes.filter((node) => node.leader).length === 1
  );
}

interface NodeJSONLine {
  readonly ID?: unknown;
  readonly ManagerStatus?: {
    readonly Leader?: unknown;
    readonly Reachability?: unknown;
    readonly Addr?: unknown;
  };
}

function parseNodeList(stdout: string): NodeEntry[] {
  return stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .flatMap((line) => {
      const node = JSON.parse(line) as NodeJSONLine;
      const status = node.ManagerStatus;
      if (status === undefined || typeof node.ID !== 'string' || typeof status.Addr !== 'string')
        return [];
      return [
        {
          id: node.ID,
          addr: status.Addr,
          leader: status.Leader === true,
          reachability: String(status.Reachability),
        },
      ];
    });
}

interface ManagerProcessOptions {
  readonly name: string;
  readonly dataDir: string;
  readonly addr: string;
  readonly command: readonly string[];
  readonly files: ClientTLSFiles;
}

class ManagerProcess implements SecretdManager {
  readonly name: string;
  readonly dataDir: string;
  readonly addr: string;
  readonly url: string;
  readonly #command: readonly string[];
  readonly #files: ClientTLSFiles;
  #process: CapturedProcess | undefined;
  /** Output of processes this manager ran before the current one (restarts), for failures. */
  #earlierOutput = '';

  constructor(options: ManagerProcessOptions) {
    this.name = options.name;
    this.dataDir = options.dataDir;
    this.addr = options.addr;
    this.url = `https://${options.addr}`;
    this.#command = options.command;
    this.#files = options.files;
  }

  isRunning(): boolean {
    return this.#process !== undefined && !this.#process.hasExited();
  }

  pid(): number | undefined {
    return this.isRunning() ? this.#process?.child.pid : undefined;
  }

  /** Spawns `args` and waits for the stdout line that says it serves. */
  async start(args: readonly string[], readyLine: RegExp, timeoutMs: number): Promise<void> {
    const spawned = this.#spawn(args);
    await spawned.waitForLine(readyLine, { timeoutMs });
  }

  async restart(): Promise<void> {
    const spawned = this.#spawn(secretdCli.restart(this.dataDir));
    await waitUntil(
      async () => {
        if (spawned.hasExited()) throw new Error(`secretd run exited with ${spawned.exitStatus()}`);
        await pingOK(this.url, this.#files);
        return true;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 50,
        what: `${this.name} to answer /_ping after secretd run`,
      },
    );
  }

  launch(): void {
    this.#spawn(secretdCli.restart(this.dataDir));
  }

  kill(): Promise<void> {
    const current = this.#process;
    if (current === undefined || current.hasExited()) return Promise.resolve();
    current.child.kill('SIGKILL');
    return current.exited;
  }

  async stop(stopTimeoutMs: number): Promise<void> {
    if (this.#process !== undefined) await stopProcess(this.#process, stopTimeoutMs);
  }

  output(): string {
    return `${this.#earlierOutput}${this.#process?.output() ?? ''}`.slice(-8 * 1024);
  }

  #spawn(args: readonly string[]): CapturedProcess {
    if (this.isRunning()) throw new Error(`${this.name} is already running`);
    if (this.#process !== undefined)
      this.#earlierOutput += `${this.#process.output()}\n[exited with ${this.#process.exitStatus()}]\n`;
    const [executable, ...leadingArgs] = this.#command;
    if (executable === undefined) throw new Error('Cannot start secretd: empty command');
    this.#process = spawnCaptured(executable, [...leadingArgs, ...args]);
    return this.#process;
  }
}
