/**
 * Nodes that run services, for end-to-end tests: real secretd processes on loopback (a manager
 * from `init`, workers from `join`), each with a data dir of its own and so an executor run
 * directory of its own (`/run/secretd/<hash of the data dir>`), and what a test looks at from
 * outside the product: the secrets tmpfs mounts under that run directory (from /proc/mounts), the
 * files under it and under the data dir, and the node's `/info` on its admin socket.
 *
 * Teardown removes every service, waits (bounded) for every node to erase its tasks, stops the
 * processes, and only then sweeps what is left (containers, mounts, directories) so nothing
 * outlives the test. It fails the test if it had to sweep a mount: a node that leaves a secret
 * behind is a bug, not untidiness.
 *
 * Other tests may run nodes on this machine at the same time; everything here looks only under
 * the run directories of its own nodes.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runDirOf } from '../../src/io/run-dir.ts';
import { cgroupParentOf } from '../../src/node/executor/index.ts';
import { Daemon, freePort, secretd, type RunResult } from './process.ts';

export { runDirOf };

/** The task command of these tests: an idle shell that exits at once on SIGTERM (PID 1 ignores it otherwise). */
// One polling helper and one admin-socket client for every e2e suite.
import { adminRequest, until, type ApiAnswer as AdminAnswer } from './cluster.ts';
export { adminRequest, until, type AdminAnswer };

export const idleCommand = ['sh', '-c', 'trap "exit 0" TERM; sleep 100000 & wait'];

/** Secrets tmpfs mount points under a run directory, from /proc/mounts (the kernel's view). */
export function secretMounts(runDir: string): string[] {
  const prefix = `${runDir}/tasks/`;
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields[2] === 'tmpfs' && fields[1]!.startsWith(prefix))
    .map((fields) => fields[1]!.replace(/\\040/g, ' '))
    .sort();
}

/** Regular files under `dir`, not following links and not descending into `skip` (e.g. live tmpfs mounts). */
export function filesUnder(dir: string, skip: readonly string[] = []): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const out: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    if (skip.includes(path)) continue;
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isDirectory()) out.push(...filesUnder(path, skip));
    else if (stat?.isFile()) out.push(path);
  }
  return out;
}

/** Which files under `dirs` hold any of `values`, raw or in base64 (as `file: value#i`); none is the answer wanted. */
export function filesHolding(
  dirs: readonly string[],
  values: readonly string[],
  skip: readonly string[] = [],
): string[] {
  const found: string[] = [];
  for (const file of dirs.flatMap((dir) => filesUnder(dir, skip))) {
    // A live node removes files while we look (runc state, erased task directories): gone is not held.
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    values.forEach((value, i) => {
      if (bytes.includes(value) || bytes.includes(Buffer.from(value).toString('base64')))
        found.push(`${file}: value#${i}`);
    });
  }
  return found;
}

export interface TaskJSON {
  readonly ID: string;
  readonly ServiceID: string;
  readonly Slot?: number;
  readonly NodeID?: string;
  readonly DesiredState: string;
  readonly Spec: {
    readonly ContainerSpec: {
      readonly Secrets: ReadonlyArray<{
        readonly SecretName: string;
        readonly File: { readonly Name: string };
      }>;
    };
  };
  readonly Status: {
    readonly State: string;
    readonly Message: string;
    readonly Err?: string;
    readonly SecretVersions: Record<string, number>;
  };
}

export interface SecretCounts {
  readonly SecretsReceived: number;
  readonly SecretsHeld: number;
}

export class ServiceNode {
  daemon: Daemon;
  id = '';

  constructor(
    readonly name: string,
    readonly dataDir: string,
    readonly role: 'manager' | 'worker',
    daemon: Daemon,
    /** Every process this node ever ran (restarts included), for the checks on their output. */
    readonly spawned: Daemon[] = [daemon],
  ) {
    this.daemon = daemon;
  }

  get runDir(): string {
    return runDirOf(this.dataDir);
  }

  get running(): boolean {
    return this.daemon.proc.exitCode === null && this.daemon.proc.signalCode === null;
  }

  /** A client command against this node (its data dir through the environment, so no flag lands after the task command). */
  cli(args: readonly string[], input?: string): RunResult {
    return secretd(args, {
      env: { SECRETD_DATA_DIR: this.dataDir },
      ...(input === undefined ? {} : { input }),
    });
  }

  /**
   * `service create --name NAME FLAG… busybox` running idleCommand, through this node; checks that
   * it printed the new service's id (and nothing else) and returns it.
   */
  createIdleService(name: string, flags: readonly string[] = []): string {
    const args = ['service', 'create', '--name', name, ...flags, 'busybox', ...idleCommand];
    return expectRun(this.cli(args), { stdout: /^\w{25}\n$/ }).stdout.trim();
  }

  admin(method: string, path: string, body?: unknown): Promise<AdminAnswer> {
    return adminRequest(this.dataDir, method, path, body);
  }

  /** The last `count` lines this node's process printed (stdout, then stderr), for a failure's message. */
  lastLines(count: number): string {
    const lines = `${this.daemon.stdout}\n${this.daemon.stderr}`
      .split('\n')
      .filter((l) => l !== '');
    return lines
      .slice(-count)
      .map((l) => (l.length > 300 ? `${l.slice(0, 300)}…` : l))
      .join('\n');
  }

  /** Task ids whose secrets tmpfs is mounted on this node. */
  mountedTasks(): string[] {
    return secretMounts(this.runDir).map(
      (mount) => mount.slice(`${this.runDir}/tasks/`.length).split('/')[0]!,
    );
  }

  /** Task ids with a directory under this node's run directory (bundle, manifest, tmpfs mount point). */
  taskDirs(): string[] {
    const tasks = join(this.runDir, 'tasks');
    return existsSync(tasks) ? readdirSync(tasks).sort() : [];
  }

  /** The agent's counters from `/info` (counts only: the answer never carries a value). */
  async secretCounts(): Promise<SecretCounts> {
    const answer = await this.admin('GET', '/info');
    if (answer.status !== 200)
      throw new Error(`${this.name}: GET /info answered ${answer.status} ${answer.text}`);
    const info = JSON.parse(answer.text) as SecretCounts;
    return { SecretsReceived: info.SecretsReceived, SecretsHeld: info.SecretsHeld };
  }

  /** `secretd run` on this node's data dir (after a kill); waits until its admin socket answers. */
  async restart(): Promise<void> {
    this.daemon = new Daemon(['run', '--data-dir', this.dataDir]);
    this.spawned.push(this.daemon);
    await this.daemon.waitFor(this.role === 'worker' ? /worker \w+ running/ : /serving the API on/);
    await until(`${this.name} to answer on its admin socket`, 10_000, async () =>
      (await this.admin('GET', '/_ping')).status === 200 ? true : undefined,
    );
  }
}

/**
 * Checks a client command's exit code, stdout and stderr together: the code must be `code` (0),
 * stdout must match `stdout` when given, and stderr must match `stderr` (default: empty).
 */
export function expectRun(
  result: RunResult,
  expected: { code?: number; stdout?: RegExp | string; stderr?: RegExp | string },
): RunResult {
  const matches = (actual: string, want: RegExp | string | undefined): boolean =>
    want === undefined || (typeof want === 'string' ? actual === want : want.test(actual));
  const problems: string[] = [];
  if (result.code !== (expected.code ?? 0))
    problems.push(`exit code ${result.code}, expected ${expected.code ?? 0}`);
  if (!matches(result.stdout, expected.stdout))
    problems.push(`stdout does not match ${String(expected.stdout)}`);
  if (!matches(result.stderr, expected.stderr ?? ''))
    problems.push(`stderr does not match ${JSON.stringify(String(expected.stderr ?? ''))}`);
  if (problems.length > 0)
    throw new Error(
      `secretd command failed: ${problems.join('; ')}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
    );
  return result;
}

export interface ServiceClusterOptions {
  /** Extra flags for `init` (e.g. --runtime). */
  readonly initFlags?: readonly string[];
}

/** A manager (which also runs tasks) and any number of workers, all on 127.0.0.1. */
export class ServiceCluster implements AsyncDisposable {
  readonly nodes: ServiceNode[] = [];
  /** Everything teardown had to remove by force; empty when the product cleaned up after itself. */
  readonly swept: string[] = [];

  private constructor(
    readonly dir: string,
    /** Where the manager listens (workers join through it). */
    readonly managerAddr: string,
  ) {}

  static async init(dir: string, options: ServiceClusterOptions = {}): Promise<ServiceCluster> {
    const cluster = new ServiceCluster(dir, `127.0.0.1:${await freePort()}`);
    const dataDir = join(dir, 'manager');
    const daemon = new Daemon([
      'init',
      '--data-dir',
      dataDir,
      '--listen-addr',
      cluster.managerAddr,
      ...(options.initFlags ?? []),
    ]);
    const node = new ServiceNode('manager', dataDir, 'manager', daemon);
    cluster.nodes.push(node);
    try {
      node.id = (await daemon.waitFor(/current node \((\w+)\) is now a manager/))[1]!;
      await daemon.waitFor(/Data directory:/);
    } catch (error) {
      await cluster[Symbol.asyncDispose]().catch(() => undefined);
      throw error;
    }
    return cluster;
  }

  get manager(): ServiceNode {
    return this.nodes[0]!;
  }

  node(name: string): ServiceNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node) throw new Error(`no node ${name}`);
    return node;
  }

  nodeById(id: string | undefined): ServiceNode {
    const node = this.nodes.find((n) => n.id === id);
    if (!node) throw new Error(`no node with id ${id}`);
    return node;
  }

  async joinWorker(name: string): Promise<ServiceNode> {
    return this.#join(name, 'worker');
  }

  /** Joins another manager (it runs tasks too, as every manager does). */
  async joinManager(name: string): Promise<ServiceNode> {
    const node = await this.#join(name, 'manager');
    await node.daemon.waitFor(/serving the API on/, 30_000);
    return node;
  }

  async #join(name: string, role: 'manager' | 'worker'): Promise<ServiceNode> {
    const token = expectRun(this.manager.cli(['cluster', 'join-token', role, '-q']), {
      stdout: /^SDTKN-/,
    }).stdout.trim();
    const addr = `127.0.0.1:${await freePort()}`;
    const dataDir = join(this.dir, name);
    const daemon = new Daemon([
      'join',
      '--data-dir',
      dataDir,
      '--token',
      token,
      '--listen-addr',
      addr,
      '--advertise-addr',
      addr,
      this.managerAddr,
    ]);
    const node = new ServiceNode(name, dataDir, role, daemon);
    this.nodes.push(node);
    const joined = new RegExp(`This node joined the cluster as a ${role} \\((\\w+)\\)\\.`);
    node.id = (await daemon.waitFor(joined, role === 'manager' ? 45_000 : 30_000))[1]!;
    return node;
  }

  /** `image import` on every node (each keeps its own images). */
  importImage(name: string, tarball: string): void {
    for (const node of this.nodes)
      expectRun(node.cli(['image', 'import', name, tarball]), { stdout: `${name}:latest\n` });
  }

  /** The tasks of a service, as the manager answers `GET /tasks`. */
  async tasks(service: string, desiredState?: string): Promise<TaskJSON[]> {
    const filters = {
      service: [service],
      ...(desiredState ? { 'desired-state': [desiredState] } : {}),
    };
    const answer = await this.manager.admin(
      'GET',
      `/tasks?filters=${encodeURIComponent(JSON.stringify(filters))}`,
    );
    if (answer.status !== 200)
      throw new Error(`GET /tasks answered ${answer.status} ${answer.text}`);
    return JSON.parse(answer.text) as TaskJSON[];
  }

  /** Waits until the service has exactly `count` tasks desired running, all running, none of them in `not`. */
  async runningTasks(
    service: string,
    count: number,
    options: { not?: readonly string[]; timeoutMs?: number } = {},
  ): Promise<TaskJSON[]> {
    let seen = '';
    try {
      return await until(
        `${count} running task(s) of ${service}`,
        options.timeoutMs ?? 20_000,
        async () => {
          const tasks = await this.tasks(service, 'running');
          seen = tasks
            .map(
              (t) =>
                `${t.ID.slice(0, 8)}@${t.NodeID?.slice(0, 6)}:${t.Status.State}${t.Status.Err ? ` (${t.Status.Err})` : ''}`,
            )
            .join(', ');
          const ok =
            tasks.length === count &&
            tasks.every((t) => t.Status.State === 'running' && !(options.not ?? []).includes(t.ID));
          return ok ? tasks.sort((a, b) => (a.Slot ?? 0) - (b.Slot ?? 0)) : undefined;
        },
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; last seen: ${seen || 'none'}`);
    }
  }

  /**
   * Per node: the tasks whose secrets tmpfs is mounted there, the tasks with a directory there, and
   * how many secrets its agent holds in memory (-1 for a node that is not running).
   */
  async secretsByNode(): Promise<Record<string, NodeSecrets>> {
    const out: Record<string, NodeSecrets> = {};
    for (const node of this.nodes)
      out[node.name] = {
        mounted: node.mountedTasks(),
        dirs: node.taskDirs(),
        held: node.running ? (await node.secretCounts()).SecretsHeld : -1,
      };
    return out;
  }

  /**
   * Waits until each node has exactly `tasks` mounted and as task directories, and holds `held`
   * secrets in memory; returns how long that took.
   */
  async waitForSecrets(
    expected: Record<string, { tasks: string[]; held: number }>,
    what: string,
    timeoutMs = 15_000,
  ): Promise<number> {
    const start = Date.now();
    const want = JSON.stringify(
      sortedTasks(
        Object.fromEntries(
          Object.entries(expected).map(([name, e]) => [
            name,
            { mounted: e.tasks, dirs: e.tasks, held: e.held },
          ]),
        ),
      ),
    );
    let seen = '';
    try {
      await until(what, timeoutMs, async () => {
        seen = JSON.stringify(sortedTasks(await this.secretsByNode()));
        return seen === want ? true : undefined;
      });
    } catch (error) {
      throw new Error(`${(error as Error).message}\nwanted: ${want}\nseen:   ${seen}`);
    }
    return Date.now() - start;
  }

  /** Every daemon's output so far, restarts included (to check that no value was ever printed). */
  output(): string {
    return this.nodes.flatMap((n) => n.spawned.map((d) => `${d.stdout}\n${d.stderr}`)).join('\n');
  }

  /** Lines the daemons printed that mean a crash or a broken invariant. */
  daemonErrors(): string[] {
    return this.output()
      .split('\n')
      .filter((line) => /fatal|uncaught|panic|TypeError|AssertionError/i.test(line));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const manager = this.manager;
    if (manager.running) {
      const services = manager
        .cli(['service', 'ls', '-q'])
        .stdout.split('\n')
        .filter((id) => id !== '');
      if (services.length > 0) manager.cli(['service', 'rm', ...services]);
      // The running nodes erase their tasks; a killed node's tasks are swept below.
      await until('every running node to erase its tasks', 15_000, () =>
        this.nodes.every((n) => !n.running || n.mountedTasks().length === 0) ? true : undefined,
      ).catch(() => undefined);
    }
    await Promise.all(this.nodes.map((node) => stopDaemon(node.daemon)));
    for (const node of this.nodes) this.swept.push(...sweep(node.runDir));
    if (this.swept.some((item) => item.startsWith('mount ')))
      throw new Error(
        `secrets were left mounted after the test (removed now):\n${this.swept.join('\n')}`,
      );
  }
}

export interface NodeSecrets {
  readonly mounted: readonly string[];
  readonly dirs: readonly string[];
  readonly held: number;
}

function sortedTasks(state: Record<string, NodeSecrets>): Record<string, NodeSecrets> {
  return Object.fromEntries(
    Object.entries(state)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, s]) => [
        name,
        { mounted: [...s.mounted].sort(), dirs: [...s.dirs].sort(), held: s.held },
      ]),
  );
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s. */
async function stopDaemon(daemon: Daemon): Promise<void> {
  if (daemon.proc.exitCode !== null || daemon.proc.signalCode !== null) return;
  daemon.proc.kill('SIGTERM');
  const timer = setTimeout(() => daemon.proc.kill('SIGKILL'), 5000);
  await daemon.exited;
  clearTimeout(timer);
}

/** Removes what a node left under its run directory: containers (via runc), mounts, the directory, its cgroup parent. */
function sweep(runDir: string): string[] {
  const swept: string[] = [];
  const runcRoot = join(runDir, 'runc');
  if (existsSync(runcRoot)) {
    const list = spawnSync('runc', ['--root', runcRoot, 'list', '-q'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    for (const id of (list.stdout ?? '').split('\n').filter((line) => line !== '')) {
      spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id], { timeout: 10_000 });
      swept.push(`container ${id}`);
    }
  }
  for (const mount of secretMounts(runDir).reverse()) {
    spawnSync('umount', [mount], { timeout: 10_000 });
    swept.push(`mount ${mount}`);
  }
  if (secretMounts(runDir).length === 0) rmSync(runDir, { recursive: true, force: true });
  // The executor's cgroup parent, named after the run directory.
  const cgroup = join('/sys/fs/cgroup', cgroupParentOf(runDir));
  try {
    rmdirSync(cgroup);
  } catch {
    // absent (removed by the node) or in use
  }
  return swept;
}
