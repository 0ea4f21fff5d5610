/**
 * Fan-out at scale (issue 17): one secret used by a global service on `--nodes` workers (default
 * 100); from `secret update` to every node holding the new version, with the leader's CPU and
 * memory while the workers' sessions are connected.
 *
 * The workers are real `secretd join` processes, each with a dispatcher session to the manager,
 * but no containers: each runs with `--runtime` pointing at a recording OCI runtime this script
 * writes (a shell script with runc's command line: `run` records the container and idles, `state`,
 * `kill`, `delete` and `list` answer from its records). `--runtime` is the node's ordinary flag for
 * another OCI runtime; nothing in secretd knows of this one, so no user reaches it by accident.
 * The executor does everything else for real: the bundle, the task's secrets tmpfs and its files;
 * a node "holds the new version" once the file in its task's secrets mount (the `/run/secrets`
 * source of the recorded bundle) has the new content.
 *
 *   bun bench/fan-out.ts [--nodes 100] [--idle-seconds 10] [--secretd-bin dist/secretd] [--docker]
 *
 * Printed: the leader's RSS and CPU (user + system, per second) with no workers, and with every
 * session connected and idle for `--idle-seconds`; the time from `POST /secretd/secrets/NAME/
 * versions` to the last node holding it (median and max of `--rounds`), and the leader's CPU
 * during it.
 *
 * With `--docker`, Docker's nearest equivalent in the same run, once the workers are stopped: a
 * private one-node Docker Swarm running one service of `--nodes` replicas (busybox containers) that
 * uses one secret, rotated by the documented rolling `--secret-rm/--secret-add`
 * (`bench/secret-rotation.ts --no-secretd`, one run), timed until every replica runs and prints
 * the new value, given up after `--docker-max-seconds` (default 900).
 *
 * Needs root (the executor mounts a tmpfs per task). Memory: each worker is a Bun process (about
 * 60–80 MB), so 100 of them need about 8 GB.
 */
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { busyboxRootfsTarball } from '../test/helpers/busybox-image.ts';
import {
  runToEnd,
  spawnCaptured,
  stopProcess,
  waitUntil,
  type CapturedProcess,
} from './child-process.ts';
import { cpuTimeMs } from './cpu-time.ts';
import { optionsOrExit, positiveInteger, readFlags } from './create-secrets-options.ts';
import { dockerRequest } from './docker-client.ts';
import { busyWarning, describeMachine, machineFacts } from './machine.ts';
import { defaultSecretdCommand, freePort, runDirOf, secretdCli } from './secretd-process.ts';
import { formatNumber } from './stats.ts';

const usage = `Usage: bun bench/fan-out.ts [options]

Starts one secretd manager and N workers (\`secretd join\`, with a recording OCI runtime instead
of containers) running one global service that uses one secret; prints the leader's RSS and CPU
with the workers' sessions idle, and the time from a secret update to every node holding it.
Needs root.

  --nodes N              workers (default 100)
  --rounds R             secret updates timed (default 3)
  --idle-seconds T       CPU measured with every session connected and idle (default 10)
  --secretd-bin PATH     run this secretd executable (e.g. dist/secretd) instead of src/main.ts
  --docker               also time Docker's rolling secret rotation on one service of N replicas
  --docker-max-seconds T give Docker's rotation up after T seconds (default 900)
`;

interface FanOutOptions {
  readonly nodeCount: number;
  readonly rounds: number;
  readonly idleSeconds: number;
  readonly dockerMaxSeconds: number;
  readonly docker: boolean;
  readonly command: readonly string[];
}

/** Undefined for --help. */
function parseOptions(argv: readonly string[]): FanOutOptions | undefined {
  const values = readFlags(argv, {
    nodes: { type: 'string' },
    rounds: { type: 'string' },
    'idle-seconds': { type: 'string' },
    'secretd-bin': { type: 'string' },
    docker: { type: 'boolean' },
    'docker-max-seconds': { type: 'string' },
  });
  if (values === undefined) return undefined;
  const bin = values['secretd-bin'];
  return {
    nodeCount: positiveInteger('--nodes', values.nodes ?? '100'),
    rounds: positiveInteger('--rounds', values.rounds ?? '3'),
    idleSeconds: positiveInteger('--idle-seconds', values['idle-seconds'] ?? '10'),
    dockerMaxSeconds: positiveInteger(
      '--docker-max-seconds',
      values['docker-max-seconds'] ?? '900',
    ),
    docker: values.docker === true,
    command: bin === undefined ? defaultSecretdCommand() : [bin],
  };
}

const { nodeCount, rounds, idleSeconds, dockerMaxSeconds, docker, command } = optionsOrExit(
  usage,
  () => parseOptions(process.argv.slice(2)),
);
const secretName = 'fanned';

/** runc's command line, recording instead of running (see the header). */
const recordingRuntime = `#!/bin/sh
# bench/fan-out.ts's recording OCI runtime: runc's command line, no container.
root=/tmp
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --log|--log-format) shift 2 ;;
    *) break ;;
  esac
done
mkdir -p "$root"
cmd="$1"; shift
state() { # id
  [ -f "$root/$1" ] || return 1
  read -r pid bundle < "$root/$1"
  if kill -0 "$pid" 2>/dev/null; then status=running; else status=stopped; pid=0; fi
  printf '{"id":"%s","pid":%s,"status":"%s","bundle":"%s"}' "$1" "$pid" "$status" "$bundle"
}
case "$cmd" in
  run)
    bundle=""; pidfile=""
    while [ $# -gt 1 ]; do
      case "$1" in
        --bundle) bundle="$2"; shift 2 ;;
        --pid-file) pidfile="$2"; shift 2 ;;
        *) shift ;;
      esac
    done
    id="$1"
    echo "$$ $bundle" > "$root/$id"
    [ -n "$pidfile" ] && echo "$$" > "$pidfile"
    trap 'rm -f "$root/$id"; exit 0' TERM INT
    while :; do sleep 3600 & wait $!; done ;;
  state) state "$1" || { echo "container $1 does not exist" >&2; exit 1; } ;;
  kill)
    [ -f "$root/$1" ] || exit 1
    read -r pid bundle < "$root/$1"; kill -"\${2:-TERM}" "$pid" 2>/dev/null; exit 0 ;;
  delete)
    [ "$1" = "--force" ] && shift
    if [ -f "$root/$1" ]; then read -r pid bundle < "$root/$1"; kill -KILL "$pid" 2>/dev/null; rm -f "$root/$1"; fi
    exit 0 ;;
  exec) echo "recording runtime: no exec" >&2; exit 1 ;;
  list)
    printf '['; first=1
    for f in "$root"/*; do
      [ -f "$f" ] || continue
      [ $first = 1 ] || printf ','; first=0
      state "$(basename "$f")"
    done
    printf ']\\n' ;;
  --version|-v) echo "recording-runtime 1" ;;
  *) echo "recording runtime: unknown command $cmd" >&2; exit 1 ;;
esac
`;

interface Node {
  readonly dataDir: string;
  readonly process: CapturedProcess;
}

async function api(
  socket: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<unknown> {
  const answer = await dockerRequest({
    socketPath: socket,
    method,
    path,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    timeoutMs: 60_000,
  });
  if (answer.status >= 300)
    throw new Error(`${method} ${path} answered ${answer.status}: ${answer.body.slice(0, 300)}`);
  return answer.body === '' ? null : (JSON.parse(answer.body) as unknown);
}

/** What the node's task sees in /run/secrets/NAME, read host-side from the recorded bundle; null: no task yet. */
async function heldValue(dataDir: string): Promise<string | null> {
  const root = join(runDirOf(dataDir), 'runc');
  let ids: string[];
  try {
    ids = await readdir(root);
  } catch {
    return null;
  }
  for (const id of ids) {
    try {
      const [, bundle] = (await readFile(join(root, id), 'utf8')).trim().split(' ');
      const config = JSON.parse(await readFile(join(bundle!, 'config.json'), 'utf8')) as {
        mounts?: Array<{ destination: string; source: string }>;
      };
      const mount = config.mounts?.find((m) => m.destination === '/run/secrets');
      if (mount) return await readFile(join(mount.source, secretName), 'utf8');
    } catch {
      // Not running yet, or being replaced: look again.
    }
  }
  return null;
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

async function cpuPerSecond(pid: number, seconds: number): Promise<number> {
  const before = cpuTimeMs([pid]);
  const start = performance.now();
  await delay(seconds * 1000);
  return ((cpuTimeMs([pid]) - before) / (performance.now() - start)) * 1000;
}

const facts = machineFacts();
console.log(`fan-out: ${nodeCount} workers, ${rounds} rounds; ${describeMachine(facts)}`);
const warning = busyWarning(facts);
if (warning) console.log(warning);

const [executable, ...leading] = command;
const dir = await mkdtemp(join(tmpdir(), 'secretd-bench-fanout-'));
const runtimePath = join(dir, 'recording-runtime');
await writeFile(runtimePath, recordingRuntime);
await chmod(runtimePath, 0o755);
const nodes: Node[] = [];
/** secretd's median time from update to every node holding it, for the Docker comparison. */
let secretdMedianMs = Number.NaN;
const start = (args: string[], dataDir: string): Node => {
  const node = {
    dataDir,
    process: spawnCaptured(executable!, [...leading, ...args]),
  };
  nodes.push(node);
  return node;
};
try {
  const managerAddr = `127.0.0.1:${await freePort()}`;
  const managerDir = join(dir, 'manager');
  const manager = start(secretdCli.serve(managerDir, managerAddr), managerDir);
  await manager.process.waitForLine(/^Data directory: /, { timeoutMs: 60_000 });
  const socket = join(manager.dataDir, 'admin.sock');
  const leaderPid = manager.process.child.pid!;
  const { JoinTokens } = (await api(socket, 'GET', '/swarm')) as { JoinTokens: { Worker: string } };
  const alone = {
    rss: rssBytes(leaderPid),
    cpu: await cpuPerSecond(leaderPid, Math.min(idleSeconds, 5)),
  };
  const rootfs = busyboxRootfsTarball();
  for (let i = 1; i <= nodeCount; i++) {
    const addr = `127.0.0.1:${await freePort()}`;
    const workerDir = join(dir, `w${i}`);
    const worker = start(
      [
        ...secretdCli.join(workerDir, { token: JoinTokens.Worker, addr, remote: managerAddr }),
        '--runtime',
        runtimePath,
      ],
      workerDir,
    );
    await worker.process.waitForLine(/joined the cluster as a worker/, { timeoutMs: 120_000 });
    await api(join(worker.dataDir, 'admin.sock'), 'POST', '/secretd/images/import', {
      Name: 'busybox',
      Path: resolve(rootfs),
    });
    if (i % 10 === 0 || i === nodeCount) console.log(`${i} workers joined`);
  }
  await waitUntil(
    async () =>
      ((await api(socket, 'GET', '/nodes')) as Array<{ Status: { State: string } }>).filter(
        (n) => n.Status.State === 'ready',
      ).length ===
      nodeCount + 1,
    { timeoutMs: 120_000, what: `${nodeCount + 1} ready nodes` },
  );
  const connected = { rss: rssBytes(leaderPid), cpu: await cpuPerSecond(leaderPid, idleSeconds) };
  await api(socket, 'POST', '/secrets/create', {
    Name: secretName,
    Data: Buffer.from('v0').toString('base64'),
  });
  // The manager runs no task here (its node is drained): the global service lands on the workers only.
  const managerNode = (
    (await api(socket, 'GET', '/nodes')) as Array<{
      ID: string;
      Version: { Index: number };
      Spec: Record<string, unknown>;
      ManagerStatus?: unknown;
    }>
  ).find((n) => n.ManagerStatus !== undefined)!;
  await api(
    socket,
    'POST',
    `/nodes/${managerNode.ID}/update?version=${managerNode.Version.Index}`,
    {
      ...managerNode.Spec,
      Availability: 'drain',
    },
  );
  await api(socket, 'POST', '/services/create', {
    Name: 'fanout',
    Mode: { Global: {} },
    TaskTemplate: {
      ContainerSpec: {
        Image: 'busybox',
        Args: ['true'],
        Secrets: [{ SecretName: secretName, File: { Name: secretName } }],
      },
    },
  });
  const workers = nodes.slice(1);
  const allHold = (value: string) =>
    waitUntil(
      async () =>
        (await Promise.all(workers.map((w) => heldValue(w.dataDir)))).every((v) => v === value),
      {
        timeoutMs: 300_000,
        intervalMs: 20,
        what: `every worker to hold ${JSON.stringify(value)}`,
      },
    );
  await allHold('v0');
  const times: number[] = [];
  const cpus: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    const value = `v${round}`;
    const cpuBefore = cpuTimeMs([leaderPid]);
    const startedAt = performance.now();
    await api(socket, 'POST', `/secretd/secrets/${secretName}/versions`, {
      Data: Buffer.from(value).toString('base64'),
    });
    await allHold(value);
    const ms = performance.now() - startedAt;
    times.push(ms);
    cpus.push(cpuTimeMs([leaderPid]) - cpuBefore);
    console.log(
      `round ${round}: all ${nodeCount} hold ${value} after ${formatNumber(ms, 0)} ms (leader CPU ${formatNumber(cpus.at(-1)!, 0)} ms)`,
    );
  }
  const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;
  console.log(`\nleader, no workers: RSS ${mb(alone.rss)}, CPU ${formatNumber(alone.cpu, 1)} ms/s`);
  console.log(
    `leader, ${nodeCount} sessions idle: RSS ${mb(connected.rss)}, CPU ${formatNumber(connected.cpu, 1)} ms/s`,
  );
  console.log(`leader after the rounds: RSS ${mb(rssBytes(leaderPid))}`);
  const sorted = [...times].sort((a, b) => a - b);
  secretdMedianMs = sorted[Math.floor(sorted.length / 2)]!;
  console.log(
    `secret update → all ${nodeCount} hold it: median ${formatNumber(sorted[Math.floor(sorted.length / 2)]!, 0)} ms, max ${formatNumber(sorted.at(-1)!, 0)} ms (bar: < 1 s); leader CPU per update: median ${formatNumber([...cpus].sort((a, b) => a - b)[Math.floor(cpus.length / 2)]!, 0)} ms`,
  );
  await api(socket, 'DELETE', '/services/fanout').catch(() => undefined);
  await waitUntil(
    async () =>
      (await Promise.all(workers.map((w) => heldValue(w.dataDir)))).every((v) => v === null),
    {
      timeoutMs: 120_000,
      what: 'the workers to remove their tasks',
    },
  ).catch(() => undefined);
} finally {
  for (const node of [...nodes].reverse()) await stopProcess(node.process, 10_000);
  for (const node of nodes)
    if (!readFileSync('/proc/mounts', 'utf8').includes(` ${runDirOf(node.dataDir)}/`))
      await rm(runDirOf(node.dataDir), { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
}

if (docker) await dockerRotation();

/**
 * Docker's nearest equivalent, run by secret-rotation.ts with secretd left out: one service of
 * `nodeCount` replicas on a one-node swarm, its secret swapped by a rolling update.
 */
async function dockerRotation(): Promise<void> {
  console.log(
    `\nDocker: one service of ${nodeCount} replicas on a one-node swarm, its secret rotated by the documented rolling --secret-rm/--secret-add (secret-rotation.ts --no-secretd)…`,
  );
  const args = [
    join(import.meta.dir, 'secret-rotation.ts'),
    '--no-secretd',
    '--replicas',
    String(nodeCount),
    '--runs',
    '1',
    '--warmup',
    '0',
    '--max-seconds',
    String(dockerMaxSeconds),
    '--json',
  ];
  let dockerMs: number;
  try {
    // Starting the replicas and the rotation each get up to --docker-max-seconds.
    const out = await runToEnd(process.execPath, args, {
      timeoutMs: (2 * dockerMaxSeconds + 300) * 1000,
    });
    const result = JSON.parse(out.trim().split('\n').at(-1)!) as {
      runs: { docker?: Array<{ ms: number; restarts: number }> };
    };
    const run = result.runs.docker?.[0];
    if (run === undefined) throw new Error('secret-rotation.ts measured no Docker run');
    dockerMs = run.ms;
    console.log(
      `Docker: all ${nodeCount} replicas print the new value after ${formatNumber(run.ms, 0)} ms (${run.restarts} containers replaced)`,
    );
  } catch (error) {
    console.log(`Docker: ${error instanceof Error ? error.message.slice(0, 600) : String(error)}`);
    return;
  }
  console.log(
    `docker/secretd: ${formatNumber(dockerMs / secretdMedianMs, 1)}× (secretd's median ${formatNumber(secretdMedianMs, 0)} ms over ${nodeCount} nodes)`,
  );
}
