/**
 * A private, throw-away one-node Docker Swarm for benchmarks to compare against.
 *
 * dockerd runs in new network and mount namespaces (`unshare --net --mount`), reached only through
 * its unix socket, which lives on the shared filesystem. Without them, on this machine, `swarm
 * init` creates `docker_gwbridge` (172.17.0.1/16) in the host's network namespace and leaves it
 * there after dockerd exits; it binds 127.0.0.1:2377 and :7946, where another swarm may listen;
 * and it leaves a bind mount of the data root and nsfs mounts of its sandboxes in the host's mount
 * table. In private namespaces all of that disappears with the processes.
 *
 * The other flags keep it off shared state: every path under one temp dir, no iptables rules, no
 * ip_forward sysctl, no docker0 bridge, and its own containerd namespace in case a system
 * containerd is running (dockerd would use it rather than start its own).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { dockerApiPrefix, dockerRequest } from './docker-client.ts';

export interface DockerSwarm {
  /** Path of the unix socket dockerd listens on. */
  readonly socket: string;
  /** dockerd's process id and its containerd's, while they run (for their CPU time). */
  pids(): number[];
  /** SIGKILLs dockerd and the containerd it started (a crash of the host's engine); resolves once both are gone. */
  kill(): Promise<void>;
  /** Starts dockerd again on the same data root after kill(); resolves once it answers /_ping. */
  restart(): Promise<void>;
  /** Stops dockerd and removes everything it wrote; safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface StartDockerSwarmOptions {
  /** Give up when dockerd or the swarm is not ready after this long; default 60 000 ms. */
  readonly startTimeoutMs?: number;
  /** After SIGTERM, how long dockerd gets before SIGKILL; default 15 000 ms. */
  readonly stopTimeoutMs?: number;
}

/** Expected when Docker cannot be used here; the message says what to do about it. */
export class DockerUnavailableError extends Error {
  readonly code = 'docker_unavailable';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DockerUnavailableError';
  }
}

/** PATH of a non-login root shell may lack the sbin dirs where Debian puts dockerd. */
const extraBinDirs = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export function findExecutable(name: string): string | undefined {
  const dirs = [
    ...(process.env['PATH'] ?? '').split(':').filter((dir) => dir !== ''),
    ...extraBinDirs,
  ];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next dir.
    }
  }
  return undefined;
}

export async function startDockerSwarm(
  options: StartDockerSwarmOptions = {},
): Promise<DockerSwarm> {
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  const dockerd = findExecutable('dockerd');
  if (dockerd === undefined) {
    throw new DockerUnavailableError(
      'Cannot start Docker: dockerd not found; install it with `apt-get install -y docker.io`',
    );
  }
  if (process.getuid?.() !== 0)
    throw new DockerUnavailableError('Cannot start Docker: dockerd needs root');
  for (const tool of ['unshare', 'ip']) {
    if (findExecutable(tool) === undefined)
      throw new DockerUnavailableError(`Cannot start Docker: ${tool} not found`);
  }
  // Under /tmp, not $TMPDIR: containerd's socket paths nest four levels below the exec root and
  // must stay within the 107-byte limit of a unix socket path.
  const dir = await mkdtemp('/tmp/secretd-bench-docker-');
  const socket = join(dir, 'docker.sock');
  const logPath = join(dir, 'dockerd.log');
  const launch = (): { child: ChildProcess; exited: Promise<void> } => {
    const child = spawnDockerd(dockerd, dir, logPath);
    return { child, exited: new Promise<void>((resolve) => child.once('exit', () => resolve())) };
  };
  let current = launch();
  const { child, exited } = current;
  const swarm: DockerSwarm = {
    socket,
    pids: () =>
      [current.child.pid, containerdPidIn(dir)].filter((pid): pid is number => pid !== undefined),
    kill: async () => {
      const containerdPid = containerdPidIn(dir);
      if (current.child.exitCode === null && current.child.signalCode === null)
        current.child.kill('SIGKILL');
      await current.exited;
      if (containerdPid !== undefined) await killIfOurs(containerdPid, dir);
      // Runtime state only (a host's /run): a stale containerd socket and pid file stop the next start.
      unmountUnder(join(dir, 'exec'));
      await rm(join(dir, 'exec'), { recursive: true, force: true });
    },
    restart: async () => {
      current = launch();
      try {
        await waitFor(() => ping(socket), {
          deadlineMs: performance.now() + startTimeoutMs,
          exited: current.exited,
          what: 'dockerd to answer /_ping after a restart',
        });
      } catch (error) {
        const log = await readFile(logPath, 'utf8').catch(() => '');
        throw new Error(
          `${error instanceof Error ? error.message : String(error)}\n--- dockerd log (last lines) ---\n${lastLines(log, 20)}`,
          { cause: error },
        );
      }
    },
    stop: once(() =>
      stopDockerd({
        child: current.child,
        exited: current.exited,
        dir,
        stopTimeoutMs: options.stopTimeoutMs ?? 15_000,
      }),
    ),
    [Symbol.asyncDispose]: () => swarm.stop(),
  };
  try {
    const deadlineMs = performance.now() + startTimeoutMs;
    await waitFor(() => ping(socket), { deadlineMs, exited, what: 'dockerd to answer /_ping' });
    await initSwarm(socket);
    await waitFor(() => isSwarmManager(socket), {
      deadlineMs,
      exited,
      what: 'the swarm to accept writes',
    });
    return swarm;
  } catch (error) {
    const log = await readFile(logPath, 'utf8').catch(() => '');
    await swarm.stop();
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(
      `Cannot start Docker Swarm: ${message}\n--- dockerd log (last lines) ---\n${lastLines(log, 20)}`,
      { cause: error },
    );
  }
}

/**
 * dockerd's flags for a private engine beside the host's: its own data and exec roots, pid file,
 * socket and containerd namespaces; no iptables, forwarding, masquerading or bridge (it runs in a
 * network namespace of its own); vfs storage. Shared with oci-engines.ts.
 */
export function privateDockerdArgs(
  paths: { dataRoot: string; execRoot: string; pidFile: string; socket: string },
  namespace: string,
): string[] {
  return [
    '--data-root',
    paths.dataRoot,
    '--exec-root',
    paths.execRoot,
    '--pidfile',
    paths.pidFile,
    '--host',
    `unix://${paths.socket}`,
    '--containerd-namespace',
    namespace,
    '--containerd-plugins-namespace',
    `${namespace}-plugins`,
    '--iptables=false',
    '--ip-forward=false',
    '--ip-masq=false',
    '--bridge=none',
    // No image is pulled; vfs needs no kernel support and mounts nothing.
    '--storage-driver=vfs',
  ];
}

function spawnDockerd(dockerd: string, dir: string, logPath: string): ChildProcess {
  const namespace = `secretd-bench-${dir.slice(-6)}`;
  const args = privateDockerdArgs(
    {
      dataRoot: join(dir, 'data'),
      execRoot: join(dir, 'exec'),
      pidFile: join(dir, 'docker.pid'),
      socket: join(dir, 'docker.sock'),
    },
    namespace,
  );
  // dockerd's output goes to a file: a pipe nobody reads would fill and block it.
  const log = openSync(logPath, 'a');
  try {
    // `exec` keeps one pid: the child we signal is dockerd itself. The new namespace's loopback
    // starts down, and the swarm dials itself on 127.0.0.1.
    return spawn(
      'unshare',
      [
        '--net',
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        'ip link set lo up && exec "$0" "$@"',
        dockerd,
        ...args,
      ],
      { stdio: ['ignore', log, log] },
    );
  } finally {
    closeSync(log);
  }
}

async function initSwarm(socket: string): Promise<void> {
  const answer = await dockerRequest({
    socketPath: socket,
    method: 'POST',
    path: `${dockerApiPrefix}/swarm/init`,
    body: JSON.stringify({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1:2377' }),
    timeoutMs: 30_000,
  });
  if (answer.status !== 200)
    throw new Error(`swarm init answered ${answer.status}: ${answer.body.trim()}`);
}

async function ping(socket: string): Promise<boolean> {
  const answer = await dockerRequest({
    socketPath: socket,
    method: 'GET',
    path: '/_ping',
    timeoutMs: 2_000,
  }).catch(() => undefined);
  return answer?.status === 200;
}

/** A swarm manager that can take writes: what `--docker-socket` must point at too. */
export async function isSwarmManager(socket: string): Promise<boolean> {
  const answer = await dockerRequest({
    socketPath: socket,
    method: 'GET',
    path: `${dockerApiPrefix}/info`,
    timeoutMs: 5_000,
  });
  if (answer.status !== 200) return false;
  const swarm = (
    JSON.parse(answer.body) as { Swarm?: { LocalNodeState?: unknown; ControlAvailable?: unknown } }
  ).Swarm;
  return swarm?.LocalNodeState === 'active' && swarm.ControlAvailable === true;
}

interface WaitForOptions {
  readonly deadlineMs: number;
  readonly exited: Promise<void>;
  readonly what: string;
}

/** Polls `condition` until true; fails at once if the process exits, or at the deadline. */
async function waitFor(condition: () => Promise<boolean>, options: WaitForOptions): Promise<void> {
  let hasExited = false;
  void options.exited.then(() => (hasExited = true));
  while (!(await condition().catch(() => false))) {
    if (hasExited) throw new Error(`dockerd exited while waiting for ${options.what}`);
    if (performance.now() > options.deadlineMs)
      throw new Error(`timed out waiting for ${options.what}`);
    await delay(100);
  }
}

interface StopDockerdOptions {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly dir: string;
  readonly stopTimeoutMs: number;
}

async function stopDockerd(options: StopDockerdOptions): Promise<void> {
  const { child, exited, dir } = options;
  // Read before dockerd stops: it deletes the file when it stops containerd cleanly.
  const containerdPid = containerdPidIn(dir);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    const stopped = await Promise.race([
      exited.then(() => true),
      delay(options.stopTimeoutMs).then(() => false),
    ]);
    if (!stopped) {
      child.kill('SIGKILL');
      await exited;
    }
  }
  // A SIGKILLed dockerd leaves its containerd running, holding the namespaces alive.
  if (containerdPid !== undefined) await killIfOurs(containerdPid, dir);
  unmountUnder(dir);
  await rm(dir, { recursive: true, force: true });
}

/** The pid of the containerd a dockerd with data under `dir` started, while its pid file is there. */
function containerdPidIn(dir: string): number | undefined {
  return readPid(join(dir, 'exec', 'containerd', 'containerd.pid'));
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Only a process whose command line names our temp dir: the pid may have been reused. */
async function killIfOurs(pid: number, dir: string): Promise<void> {
  const isOurs = (): boolean => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false;
    }
  };
  if (!isOurs()) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return; // Exited between the check and the signal.
  }
  while (isOurs()) await delay(50);
}

/** Normally nothing is left (the mount namespace went with dockerd); this is the safety net. */
function unmountUnder(dir: string): void {
  const mountPoints = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const mountPoint of mountPoints) {
    if (spawnSync('umount', [mountPoint]).status !== 0) spawnSync('umount', ['-l', mountPoint]);
  }
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

function once(action: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= action());
}
