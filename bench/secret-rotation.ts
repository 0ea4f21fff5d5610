/**
 * How long does rotating a secret take, from the command to the new value visible in every
 * container that uses it? secretd (one manager and two workers on this machine, runc) next to
 * Docker Swarm (a private one-node swarm on this machine: Debian's dockerd cannot run three swarm
 * nodes here without network namespaces, and one node is Docker's quickest case), the same busybox
 * root filesystem, ten running tasks of one service using one secret. Each run:
 *
 *   secretd  `secret update` (POST /secretd/secrets/NAME/versions) until `cat /run/secrets/NAME`
 *            prints the new value in all ten containers;
 *   docker   the documented rotation: create NAME_vN, then `service update --secret-rm NAME_vN-1
 *            --secret-add source=NAME_vN,target=NAME` (one service update), until every task
 *            desired running runs and prints the new value (Docker's default update settings:
 *            one task at a time, stop-first).
 *
 * Every running task is probed in parallel, every `pollMs`; a figure ends at the last task's first
 * exec that printed the new value. Restarts are the containers (task ids for secretd, container
 * ids for Docker) present at the end that were not present at the start.
 *
 * Run `bun bench/secret-rotation.ts --help` for the options; bench/README.md explains the output.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { busyboxRootfsTarball } from '../test/helpers/busybox-image.ts';
import { spawnCaptured, stopProcess, waitUntil, type CapturedProcess } from './child-process.ts';
import {
  nonNegativeInteger,
  optionsOrExit,
  positiveInteger,
  readFlags,
  secretdCommandOf,
  UsageError,
} from './create-secrets-options.ts';
import { dockerApiPrefix, dockerRequest } from './docker-client.ts';
import { DockerUnavailableError, startDockerSwarm } from './docker-swarm.ts';
import { deferCleanup, interrupted, runEntryPoint } from './lifecycle.ts';
import { busyWarning, describeMachine, machineFacts } from './machine.ts';
import { defaultSecretdCommand, freePort, runDirOf, secretdCli } from './secretd-process.ts';
import { importDockerImage } from './service-systems.ts';
import { formatNumber, formatTable, percentile, type Column } from './stats.ts';

const usage = `Usage: bun bench/secret-rotation.ts [options]

Starts secretd (a manager and two workers, runc) and a private one-node Docker Swarm (needs root,
dockerd, runc and busybox-static), runs ten tasks of one service using one secret on each, and R
times rotates the secret: secretd with one update in place, Docker by its documented rotation (a
new secret, swapped into the service by a rolling update). Prints medians, the secretd/docker
ratio and container restarts.

  --runs R               measured runs per system (default 3)
  --warmup W             runs before them, not counted (default 0)
  --replicas N           tasks of the service (default 10)
  --poll-ms P            pause between probes (default 20)
  --json                 also print the results as one JSON line
  --max-seconds T        give up a step (all tasks running, or all showing a value) after T s
                         (default 180)
  --secretd-bin PATH     run this secretd executable (e.g. dist/secretd) instead of src/main.ts
  --no-secretd           skip secretd (fan-out.ts --docker runs Docker's side alone this way)
  --no-docker            skip Docker
`;

interface Options {
  readonly runs: number;
  readonly warmup: number;
  readonly replicas: number;
  readonly pollMs: number;
  readonly json: boolean;
  readonly stepTimeoutMs: number;
  /** Undefined: --no-secretd. */
  readonly secretdCommand: readonly string[] | undefined;
  readonly docker: boolean;
}

function parseOptions(argv: readonly string[]): Options | undefined {
  const values = readFlags(argv, {
    runs: { type: 'string' },
    warmup: { type: 'string' },
    replicas: { type: 'string' },
    'poll-ms': { type: 'string' },
    json: { type: 'boolean' },
    'max-seconds': { type: 'string' },
    'secretd-bin': { type: 'string' },
    'no-secretd': { type: 'boolean' },
    'no-docker': { type: 'boolean' },
  });
  if (values === undefined) return undefined;
  const secretdCommand = secretdCommandOf(values);
  if (values['no-secretd'] === true && values['no-docker'] === true)
    throw new UsageError('--no-secretd and --no-docker leave nothing to measure');
  return {
    runs: positiveInteger('--runs', values.runs ?? '3'),
    warmup: nonNegativeInteger('--warmup', values.warmup ?? '0'),
    replicas: positiveInteger('--replicas', values.replicas ?? '10'),
    pollMs: nonNegativeInteger('--poll-ms', values['poll-ms'] ?? '20'),
    json: values.json === true,
    stepTimeoutMs: positiveInteger('--max-seconds', values['max-seconds'] ?? '180') * 1000,
    secretdCommand: secretdCommand?.length === 0 ? defaultSecretdCommand() : secretdCommand,
    docker: values['no-docker'] !== true,
  };
}

const containerArgs = ['sh', '-c', 'trap "exit 0" TERM; sleep 100000 & wait'];
const requestTimeoutMs = 30_000;
const secretName = 'rotated';

interface Run {
  readonly ms: number;
  readonly restarts: number;
}

/** One system under test: a service of N tasks using one secret, and how to rotate it. */
interface Rotating {
  readonly label: 'secretd' | 'docker';
  /** Rotates to `value` and returns once every task shows it; restarts counted. */
  rotate(value: string, pollMs: number): Promise<Run>;
}

async function api(
  socketPath: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<unknown> {
  const answer = await dockerRequest({
    socketPath,
    method,
    path,
    timeoutMs: requestTimeoutMs,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (answer.status >= 300)
    throw new Error(
      `${method} ${path} answered ${answer.status}: ${answer.body.trim().slice(0, 300)}`,
    );
  return answer.body.trim() === '' ? null : JSON.parse(answer.body);
}

interface TaskShape {
  readonly ID: string;
  readonly DesiredState: string;
  readonly Status: {
    readonly State: string;
    readonly ContainerStatus?: { readonly ContainerID?: string };
  };
}

async function runningTasks(socket: string, prefix: string, service: string): Promise<TaskShape[]> {
  const filters = encodeURIComponent(
    JSON.stringify({ service: [service], 'desired-state': ['running'] }),
  );
  return (await api(socket, 'GET', `${prefix}/tasks?filters=${filters}`)) as TaskShape[];
}

/**
 * Probes every running task in parallel until `count` of them print `value`; returns when the
 * last one did, and the exec references seen at the end.
 */
async function waitAllShow(
  count: number,
  stepTimeoutMs: number,
  pollMs: number,
  list: () => Promise<string[]>,
  cat: (ref: string) => Promise<string>,
  value: string,
): Promise<{ atMs: number; refs: string[] }> {
  const deadline = performance.now() + stepTimeoutMs;
  const done = new Map<string, number>();
  for (;;) {
    if (interrupted.signal.aborted) throw new Error('interrupted');
    const refs = await list();
    await Promise.all(
      refs
        .filter((ref) => !done.has(ref))
        .map(async (ref) => {
          const output = await cat(ref).catch(() => '');
          if (output === value) done.set(ref, performance.now());
        }),
    );
    const current = refs.filter((ref) => done.has(ref));
    if (refs.length === count && current.length === count)
      return { atMs: Math.max(...current.map((ref) => done.get(ref)!)), refs };
    if (performance.now() > deadline)
      throw new Error(
        `only ${current.length} of ${count} tasks showed the new value after ${stepTimeoutMs / 1000} s`,
      );
    await delay(pollMs);
  }
}

// --- secretd: a manager and two workers -----------------------------------------------------------

async function startSecretd(
  command: readonly string[],
  rootfs: string,
  replicas: number,
  stepTimeoutMs: number,
  firstValue: string,
): Promise<Rotating & { stop(): Promise<void> }> {
  const [executable, ...leading] = command;
  if (executable === undefined) throw new Error('Cannot start secretd: empty command');
  const dir = await mkdtemp(join(tmpdir(), 'secretd-bench-rotation-'));
  const processes: CapturedProcess[] = [];
  const dataDirs: string[] = [];
  const start = (args: string[], dataDir: string): CapturedProcess => {
    dataDirs.push(dataDir);
    const child = spawnCaptured(executable, [...leading, ...args]);
    processes.push(child);
    return child;
  };
  const managerAddr = `127.0.0.1:${await freePort()}`;
  const socket = join(dir, 'manager', 'admin.sock');
  const stop = async (): Promise<void> => {
    if (processes[0] && !processes[0].hasExited()) {
      await api(socket, 'DELETE', '/services/bench').catch(() => undefined);
      await waitUntil(
        async () =>
          dataDirs.every((d) => !readFileSync('/proc/mounts', 'utf8').includes(` ${runDirOf(d)}/`)),
        { timeoutMs: 60_000, what: 'secretd to erase its tasks' },
      ).catch(() => undefined);
    }
    await Promise.all(processes.map((p) => stopProcess(p, 10_000)));
    for (const dataDir of dataDirs)
      if (!readFileSync('/proc/mounts', 'utf8').includes(` ${runDirOf(dataDir)}/`))
        await rm(runDirOf(dataDir), { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const managerDir = join(dir, 'manager');
    const manager = start(secretdCli.serve(managerDir, managerAddr), managerDir);
    await manager.waitForLine(/^Data directory: /, { timeoutMs: 30_000 });
    const { JoinTokens } = (await api(socket, 'GET', '/swarm')) as {
      JoinTokens: { Worker: string };
    };
    for (const name of ['w1', 'w2']) {
      const addr = `127.0.0.1:${await freePort()}`;
      const workerDir = join(dir, name);
      const worker = start(
        secretdCli.join(workerDir, { token: JoinTokens.Worker, addr, remote: managerAddr }),
        workerDir,
      );
      await worker.waitForLine(/joined the cluster as a worker/, { timeoutMs: 60_000 });
    }
    for (const dataDir of dataDirs)
      await api(join(dataDir, 'admin.sock'), 'POST', '/secretd/images/import', {
        Name: 'busybox',
        Path: resolve(rootfs),
      });
    await waitUntil(
      async () =>
        ((await api(socket, 'GET', '/nodes')) as Array<{ Status: { State: string } }>).filter(
          (n) => n.Status.State === 'ready',
        ).length === 3,
      { timeoutMs: 30_000, what: 'three ready nodes' },
    );
    await api(socket, 'POST', '/secrets/create', {
      Name: secretName,
      Data: Buffer.from(firstValue).toString('base64'),
    });
    const spec = {
      Name: 'bench',
      Mode: { Replicated: { Replicas: replicas } },
      TaskTemplate: {
        ContainerSpec: {
          Image: 'busybox',
          Args: containerArgs,
          Secrets: [{ SecretName: secretName, File: { Name: secretName } }],
        },
      },
    };
    await api(socket, 'POST', '/services/create', spec);
    const list = async (): Promise<string[]> =>
      (await runningTasks(socket, '', 'bench'))
        .filter((t) => t.Status.State === 'running')
        .map((t) => t.ID);
    const cat = async (taskId: string): Promise<string> => {
      const answer = (await api(socket, 'POST', '/secretd/exec', {
        Task: taskId,
        Cmd: ['cat', `/run/secrets/${secretName}`],
      })) as { ExitCode: number; Stdout: string };
      return answer.ExitCode === 0 ? answer.Stdout : '';
    };
    await waitAllShow(replicas, stepTimeoutMs, 50, list, cat, firstValue);
    return {
      label: 'secretd',
      stop,
      rotate: async (value, pollMs) => {
        const before = new Set(await list());
        const startedAt = performance.now();
        await api(socket, 'POST', `/secretd/secrets/${secretName}/versions`, {
          Data: Buffer.from(value).toString('base64'),
        });
        const { atMs, refs } = await waitAllShow(replicas, stepTimeoutMs, pollMs, list, cat, value);
        return { ms: atMs - startedAt, restarts: refs.filter((ref) => !before.has(ref)).length };
      },
    };
  } catch (error) {
    const output = processes.map((p) => p.output()).join('\n---\n');
    await stop();
    throw new Error(`Cannot start secretd: ${(error as Error).message}\n${output.slice(-2000)}`);
  }
}

// --- Docker: the documented rotation ------------------------------------------------------------

async function prepareDocker(
  socket: string,
  replicas: number,
  stepTimeoutMs: number,
  firstValue: string,
): Promise<Rotating> {
  const prefix = dockerApiPrefix;
  let generation = 1;
  const created = (await api(socket, 'POST', `${prefix}/secrets/create`, {
    Name: `${secretName}_v1`,
    Data: Buffer.from(firstValue).toString('base64'),
  })) as { ID: string };
  const spec = {
    Name: 'bench',
    Mode: { Replicated: { Replicas: replicas } },
    TaskTemplate: {
      ContainerSpec: {
        Image: 'busybox:latest',
        Args: containerArgs,
        Secrets: [
          {
            SecretID: created.ID,
            SecretName: `${secretName}_v1`,
            File: { Name: secretName, UID: '0', GID: '0', Mode: 0o444 },
          },
        ],
      },
    },
  };
  const service = (await api(socket, 'POST', `${prefix}/services/create`, spec)) as { ID: string };
  deferCleanup(
    async () =>
      void (await api(socket, 'DELETE', `${prefix}/services/${service.ID}`).catch(() => undefined)),
  );
  const list = async (): Promise<string[]> =>
    (await runningTasks(socket, prefix, service.ID))
      .filter((t) => t.Status.State === 'running' && t.Status.ContainerStatus?.ContainerID)
      .map((t) => t.Status.ContainerStatus!.ContainerID!);
  const cat = async (containerId: string): Promise<string> => {
    const exec = (await api(socket, 'POST', `${prefix}/containers/${containerId}/exec`, {
      AttachStdout: true,
      AttachStderr: false,
      Cmd: ['cat', `/run/secrets/${secretName}`],
    })) as { Id: string };
    const started = await dockerRequest({
      socketPath: socket,
      method: 'POST',
      path: `${prefix}/exec/${exec.Id}/start`,
      body: JSON.stringify({ Detach: false, Tty: false }),
      timeoutMs: requestTimeoutMs,
    });
    // The attached stream is multiplexed: an 8-byte header per frame.
    return started.status === 200 ? demux(started.body) : '';
  };
  await waitAllShow(replicas, stepTimeoutMs, 100, list, cat, firstValue);
  return {
    label: 'docker',
    rotate: async (value, pollMs) => {
      const before = new Set(await list());
      const startedAt = performance.now();
      generation += 1;
      const next = (await api(socket, 'POST', `${prefix}/secrets/create`, {
        Name: `${secretName}_v${generation}`,
        Data: Buffer.from(value).toString('base64'),
      })) as { ID: string };
      const current = (await api(socket, 'GET', `${prefix}/services/${service.ID}`)) as {
        Version: { Index: number };
        Spec: typeof spec;
      };
      const updated = structuredClone(current.Spec);
      updated.TaskTemplate.ContainerSpec.Secrets = [
        {
          SecretID: next.ID,
          SecretName: `${secretName}_v${generation}`,
          File: { Name: secretName, UID: '0', GID: '0', Mode: 0o444 },
        },
      ];
      await api(
        socket,
        'POST',
        `${prefix}/services/${service.ID}/update?version=${current.Version.Index}`,
        updated,
      );
      const { atMs, refs } = await waitAllShow(replicas, stepTimeoutMs, pollMs, list, cat, value);
      return { ms: atMs - startedAt, restarts: refs.filter((ref) => !before.has(ref)).length };
    },
  };
}

function demux(body: string): string {
  const bytes = Buffer.from(body, 'latin1');
  let out = '';
  for (let offset = 0; offset + 8 <= bytes.length;) {
    const size = bytes.readUInt32BE(offset + 4);
    out += bytes.subarray(offset + 8, offset + 8 + size).toString('utf8');
    offset += 8 + size;
  }
  return out === '' ? body : out;
}

// --- the run -------------------------------------------------------------------------------------

async function main(argv: readonly string[]): Promise<number> {
  const options = optionsOrExit(usage, () => parseOptions(argv));
  const rootfs = busyboxRootfsTarball();
  const first = `rotation-bench-1-${randomUUID()}`;
  const systems: Rotating[] = [];
  const notes: string[] = [];
  if (options.secretdCommand !== undefined) {
    console.error('Starting secretd (a manager and two workers)…');
    const secretd = await startSecretd(
      options.secretdCommand,
      rootfs,
      options.replicas,
      options.stepTimeoutMs,
      first,
    );
    deferCleanup(() => secretd.stop());
    systems.push(secretd);
  }
  if (options.docker) {
    console.error('Starting a private Docker Swarm…');
    try {
      const swarm = await startDockerSwarm();
      deferCleanup(() => swarm.stop());
      await importDockerImage(swarm.socket, 'busybox', rootfs);
      systems.push(
        await prepareDocker(swarm.socket, options.replicas, options.stepTimeoutMs, first),
      );
    } catch (error) {
      if (!(error instanceof DockerUnavailableError)) throw error;
      notes.push(`Docker skipped: ${error.message}`);
    }
  }
  const runs = new Map<string, Run[]>(systems.map((s) => [s.label, []]));
  for (let run = 1 - options.warmup; run <= options.runs && !interrupted.signal.aborted; run++) {
    for (const system of systems) {
      const value = `rotation-bench-${run + options.warmup + 1}-${randomUUID()}`;
      const result = await system.rotate(value, options.pollMs);
      console.error(
        `${run > 0 ? `run ${run}` : 'warm-up'} ${system.label}: ${Math.round(result.ms)} ms, ${result.restarts} restarts`,
      );
      if (run > 0) runs.get(system.label)!.push(result);
    }
  }
  report(options, runs, notes);
  const secretdRestarts = (runs.get('secretd') ?? []).reduce((sum, r) => sum + r.restarts, 0);
  return secretdRestarts > 0 ? 1 : interrupted.signal.aborted ? 130 : 0;
}

/** The bar: secretd at least ten times sooner than Docker's documented rotation, with no restart. */
const speedupBar = 10;

function report(
  options: Options,
  runs: ReadonlyMap<string, Run[]>,
  notes: readonly string[],
): void {
  const machine = machineFacts();
  console.log(
    `secret-rotation: ${options.runs} runs (+${options.warmup} warm-up) per system, interleaved, ${options.replicas} tasks, one secret; secretd: 1 manager + 2 workers, docker: 1-node swarm; ${describeMachine(machine)}`,
  );
  const right = (title: string): Column => ({ title, align: 'right' });
  const left = (title: string): Column => ({ title, align: 'left' });
  const rows = [...runs].map(([label, list]) => {
    const sorted = list.map((r) => r.ms).sort((a, b) => a - b);
    return [
      label,
      formatNumber(percentile(sorted, 0.5), 0),
      formatNumber(sorted[0] ?? Number.NaN, 0),
      formatNumber(sorted.at(-1) ?? Number.NaN, 0),
      String(list.reduce((sum, r) => sum + r.restarts, 0)),
      list.map((r) => r.ms.toFixed(0)).join(' '),
    ];
  });
  console.log(
    formatTable(
      [
        left('system'),
        right('median ms'),
        right('min ms'),
        right('max ms'),
        right('restarts'),
        left('runs (ms)'),
      ],
      rows,
    ),
  );
  const median = (label: string): number =>
    percentile(
      (runs.get(label) ?? []).map((r) => r.ms).sort((a, b) => a - b),
      0.5,
    );
  let speedup: number | null = null;
  if ((runs.get('secretd')?.length ?? 0) > 0 && (runs.get('docker')?.length ?? 0) > 0) {
    speedup = median('docker') / median('secretd');
    console.log(
      `\ndocker/secretd (median): ${formatNumber(speedup, 1)}× — the bar is ${speedupBar}×: ${speedup >= speedupBar ? 'met' : 'not met'}`,
    );
  }
  const warning = busyWarning(machine);
  const lines = [
    ...notes,
    ...(warning === undefined ? [] : [`warning: ${warning}`]),
    ...(interrupted.signal.aborted ? ['interrupted: partial results'] : []),
  ];
  if (lines.length > 0) console.log(`\n${lines.join('\n')}`);
  if (options.json)
    console.log(
      JSON.stringify({
        bench: 'secret-rotation',
        machine,
        replicas: options.replicas,
        runs: Object.fromEntries(runs),
        speedup,
        speedupBar,
      }),
    );
}

await runEntryPoint('secret-rotation', main);
