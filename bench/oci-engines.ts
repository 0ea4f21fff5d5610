/**
 * A secretd node and a private dockerd that uses secretd as an OCI runtime, as a user would set
 * them up (`--add-runtime secretd=<dir>/secretd-runc`, the shim `secretd oci-runtime install` writes
 * with this node's data dir), for test/e2e/oci-runtime.test.ts and bench/oci-runtime.ts.
 *
 * Everything runs in one private mount namespace (`unshare --mount`, held by a sleeping process):
 * the node, dockerd (in a network namespace of its own too, as docker-swarm.ts starts it), and
 * whatever the caller runs through `inNamespace` (podman, `secretd spawn`). The agent's tmpfs mounts
 * must be where runc binds them from, as on a real host where all of them share the host's
 * namespace; here nothing they mount reaches the machine's mount table, and it all goes with the
 * namespace when `stop` kills every process left in it. The namespace's mount table and files are
 * read through /proc/<pid>/mountinfo and /proc/<pid>/root.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { join } from 'node:path';
import { findExecutable, privateDockerdArgs } from './docker-swarm.ts';
import { freePort } from './secretd-process.ts';

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface OciEngines {
  /** The temp dir holding everything (mode 0711; `shared/` is writable by anyone). */
  readonly dir: string;
  readonly dataDir: string;
  readonly nodeId: string;
  /** The secretd-runc shim dockerd runs. */
  readonly runtimePath: string;
  readonly dockerSock: string;
  /** The pid holding the mount namespace. */
  readonly nsPid: number;
  /** Everything the node printed so far. */
  nodeOutput(): string;
  /** `argv` run inside the namespace (nsenter execs it: same pid). */
  inNamespace(argv: readonly string[]): string[];
  cli(args: readonly string[], input?: string): Run;
  docker(args: readonly string[]): Run;
  /**
   * Another dockerd like the first (the shim as runtime `secretd`) with `extraArgs` added, e.g.
   * `--default-runtime secretd`; `name` names its socket, data root and log under `dir`.
   */
  startDockerd(name: string, extraArgs: readonly string[]): Promise<DockerdHandle>;
  /** Secrets tmpfs mounts of other engines' containers and spawns, in the namespace. */
  containerMounts(): string[];
  /** Kills dockerd, the node and every process left in the namespace; removes the dir. */
  stop(): Promise<void>;
}

export interface DockerdHandle {
  readonly child: ChildProcess;
  readonly socket: string;
  docker(args: readonly string[]): Run;
  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  stop(): Promise<void>;
}

/** Tools the setup needs; the missing ones, by name. */
export function missingTools(extra: readonly string[] = []): string[] {
  return ['dockerd', 'docker', 'unshare', 'nsenter', 'runc', 'ip', ...extra].filter(
    (tool) => findExecutable(tool) === undefined,
  );
}

export function runSync(
  argv: readonly string[],
  options: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Run {
  const result = spawnSync(argv[0]!, argv.slice(1), {
    input: options.input ?? '',
    env: { ...process.env, ...options.env },
    timeout: options.timeoutMs ?? 60_000,
  });
  return {
    code: result.status,
    stdout: result.stdout.toString(),
    stderr: result.stderr.toString(),
  };
}

export function ok(result: Run, what: string): Run {
  if (result.code !== 0)
    throw new Error(
      `${what} exited with ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
    );
  return result;
}

async function poll<T>(
  what: string,
  timeoutMs: number,
  check: () => T | undefined,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

function killAndWait(child: ChildProcess | null, timeoutMs: number): Promise<void> {
  if (child === null || child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  return Promise.race([
    exited,
    new Promise<void>((resolve) => setTimeout(resolve, timeoutMs)),
  ]).then(() => {
    child.kill('SIGKILL');
  });
}

export async function startOciEngines(secretdBin: string): Promise<OciEngines> {
  // Under /tmp: containerd's socket paths must stay short.
  const dir = mkdtempSync('/tmp/secretd-oci-');
  chmodSync(dir, 0o711);
  mkdirSync(join(dir, 'shared'), { mode: 0o777 });
  chmodSync(join(dir, 'shared'), 0o777);
  const anchor = spawn(
    'unshare',
    ['--mount', '--propagation', 'private', '--', 'sleep', '1000000'],
    {
      stdio: 'ignore',
    },
  );
  const nsPid = anchor.pid!;
  let node: ChildProcess | null = null;
  let dockerd: ChildProcess | null = null;
  let output = '';
  const inNamespace = (argv: readonly string[]): string[] => [
    'nsenter',
    `--mount=/proc/${nsPid}/ns/mnt`,
    '--',
    ...argv,
  ];
  const dataDir = join(dir, 'node');
  const dockerSock = join(dir, 'docker.sock');
  const extraDockerds: ChildProcess[] = [];
  const stop = async (): Promise<void> => {
    for (const extra of extraDockerds) await killAndWait(extra, 15_000);
    await killAndWait(dockerd, 15_000);
    await killAndWait(node, 15_000);
    // Whatever the engine left in the namespace (containerd, shims) goes with it.
    let ns: string | null = null;
    try {
      ns = readlinkSync(`/proc/${nsPid}/ns/mnt`);
    } catch {
      // already gone
    }
    if (ns !== null)
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          if (readlinkSync(`/proc/${pid}/ns/mnt`) === ns && Number(pid) !== process.pid)
            process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const own = readlinkSync('/proc/self/ns/mnt');
    await poll('the private mount namespace', 5000, () => {
      try {
        return readlinkSync(`/proc/${nsPid}/ns/mnt`) !== own ? true : undefined;
      } catch {
        return undefined;
      }
    });
    const init = inNamespace([
      secretdBin,
      'init',
      '--data-dir',
      dataDir,
      '--listen-addr',
      `127.0.0.1:${await freePort()}`,
    ]);
    const started = spawn(init[0]!, init.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    node = started;
    started.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    started.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const waitOutput = (pattern: RegExp): Promise<RegExpExecArray> =>
      poll(`secretd init to print ${pattern}`, 30_000, () => {
        if (started.exitCode !== null)
          throw new Error(`secretd init exited (${started.exitCode})\n${output}`);
        return pattern.exec(output) ?? undefined;
      });
    const nodeId = (await waitOutput(/current node \((\w+)\) is now a manager/))[1]!;
    await waitOutput(/Data directory:/);
    // The runtime, set up as a user would: `secretd oci-runtime install` writes the secretd-runc
    // shim (runc for containers without references, secretd for the rest) with this data dir.
    mkdirSync(join(dir, 'bin'));
    ok(
      runSync([
        secretdBin,
        'oci-runtime',
        'install',
        '--dir',
        join(dir, 'bin'),
        '--data-dir',
        dataDir,
      ]),
      'secretd oci-runtime install',
    );
    const runtimePath = join(dir, 'bin', 'secretd-runc');
    // A dockerd in the namespace (and a network namespace of its own, loopback only) with the
    // shim as the `secretd` runtime; `name` keeps its data root, exec root and socket apart.
    const startDockerd = async (
      name: string,
      extraArgs: readonly string[],
    ): Promise<DockerdHandle> => {
      const sock = join(dir, `${name}.sock`);
      const log = openSync(join(dir, `${name}.log`), 'a');
      const child = spawn(
        'nsenter',
        [
          ...inNamespace([]).slice(1),
          'unshare',
          '--net',
          '--',
          'sh',
          '-c',
          'ip link set lo up && exec "$0" "$@"',
          findExecutable('dockerd')!,
          ...privateDockerdArgs(
            {
              dataRoot: join(dir, `${name}-data`),
              execRoot: join(dir, `${name}-exec`),
              pidFile: join(dir, `${name}.pid`),
              socket: sock,
            },
            `secretd-oci-${dir.slice(-6)}-${name}`,
          ),
          '--add-runtime',
          `secretd=${runtimePath}`,
          ...extraArgs,
        ],
        { stdio: ['ignore', log, log] },
      );
      closeSync(log);
      const run = (args: readonly string[]): Run =>
        runSync(['docker', '-H', `unix://${sock}`, ...args]);
      await poll(
        `dockerd ${name} to answer`,
        60_000,
        () => {
          if (child.exitCode !== null)
            throw new Error(
              `dockerd ${name} exited (${child.exitCode}): ${readFileSync(
                join(dir, `${name}.log`),
                'utf8',
              )
                .split('\n')
                .slice(-20)
                .join('\n')}`,
            );
          return run(['version']).code === 0 ? true : undefined;
        },
        200,
      );
      return { child, socket: sock, docker: run, stop: () => killAndWait(child, 15_000) };
    };
    const first = await startDockerd('docker', []);
    dockerd = first.child;
    const docker = first.docker;
    return {
      dir,
      dataDir,
      nodeId,
      runtimePath,
      dockerSock,
      nsPid,
      nodeOutput: () => output,
      inNamespace,
      cli: (args, input) =>
        runSync([secretdBin, ...args], {
          env: { SECRETD_DATA_DIR: dataDir },
          ...(input === undefined ? {} : { input }),
        }),
      docker,
      startDockerd: async (name, extraArgs) => {
        const started = await startDockerd(name, extraArgs);
        extraDockerds.push(started.child);
        return started;
      },
      containerMounts: () =>
        readFileSync(`/proc/${nsPid}/mountinfo`, 'utf8')
          .split('\n')
          .map((line) => line.split(' '))
          .filter(
            (fields) =>
              fields.includes('secretd-secrets') && (fields[4] ?? '').includes('/containers/'),
          )
          .map((fields) => fields[4]!)
          .sort(),
      stop,
    };
  } catch (error) {
    const log = (() => {
      try {
        return readFileSync(join(dir, 'docker.log'), 'utf8').split('\n').slice(-20).join('\n');
      } catch {
        return '';
      }
    })();
    await stop();
    throw new Error(
      `${(error as Error).message}\n--- node ---\n${output}\n--- dockerd (last lines) ---\n${log}`,
      { cause: error },
    );
  }
}
