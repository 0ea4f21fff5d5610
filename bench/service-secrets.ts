/**
 * How soon does a service's task get its secret, and how soon is it gone once the service drops
 * it? secretd (one node that runs its own tasks, with runc) next to a private one-node Docker
 * Swarm, on this machine, the same busybox root filesystem, the same container command, the same
 * client (`service-systems.ts`). Each run, for each system in turn:
 *
 *   create   from sending `POST /services/create` (one replica, one secret at /run/secrets/NAME)
 *            to the end of the first exec of `cat /run/secrets/NAME` in the running task that
 *            prints the value;
 *   drop     from sending the update that removes the secret from the service to the end of the
 *            first exec of the same `cat`, in the task that replaced the old one, that fails
 *            (the new task runs without the file: both update stop-first, so the old task and
 *            its secret are gone by then).
 *
 * The service is then removed and its container waited for, untimed. The task list is polled
 * every `pollMs`; an exec is sent only once a task is running. A figure therefore includes one
 * exec's latency, which `probe` reports for each system.
 *
 * Run `bun bench/service-secrets.ts --help` for the options; bench/README.md explains the output.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { busyboxRootfsTarball } from '../test/helpers/busybox-image.ts';
import {
  nonNegativeInteger,
  optionsOrExit,
  positiveInteger,
  readFlags,
  secretdCommandOf,
} from './create-secrets-options.ts';
import { errorReason } from './create-outcome.ts';
import { DockerUnavailableError, startDockerSwarm } from './docker-swarm.ts';
import { deferCleanup, interrupted, runEntryPoint } from './lifecycle.ts';
import { busyWarning, describeMachine, machineFacts } from './machine.ts';
import { defaultSecretdCommand } from './secretd-process.ts';
import {
  dockerSystem,
  importDockerImage,
  startSecretdNode,
  type RunningTask,
  type SecretRef,
  type ServiceSystem,
} from './service-systems.ts';
import { formatNumber, formatTable, percentile, type Column } from './stats.ts';

const usage = `Usage: bun bench/service-secrets.ts [options]

Starts a one-node secretd (runc) and a private one-node Docker Swarm (needs root, dockerd, runc
and busybox-static). R times, for each: creates a service with one secret and times it until
the secret is readable in the task, then removes the secret from the service and times it until
the task that replaced the old one runs without it. Prints medians and secretd/docker ratios.

  --runs R               measured runs per system (default 5)
  --warmup W             runs before them, not counted (default 1)
  --poll-ms P            pause between polls of the task list (default 10)
  --json                 also print the results as one JSON line
  --secretd-bin PATH     run this secretd executable (e.g. dist/secretd) instead of src/main.ts
  --no-secretd           skip secretd
  --no-docker            skip Docker
`;

interface Options {
  readonly runs: number;
  readonly warmup: number;
  readonly pollMs: number;
  readonly json: boolean;
  /** undefined: skip secretd; [] : this Bun running src/main.ts; else the executable. */
  readonly secretdCommand: readonly string[] | undefined;
  readonly docker: boolean;
}

function parseOptions(argv: readonly string[]): Options | undefined {
  const values = readFlags(argv, {
    runs: { type: 'string' },
    warmup: { type: 'string' },
    'poll-ms': { type: 'string' },
    json: { type: 'boolean' },
    'secretd-bin': { type: 'string' },
    'no-secretd': { type: 'boolean' },
    'no-docker': { type: 'boolean' },
  });
  if (values === undefined) return undefined;
  const secretdCommand = secretdCommandOf(values);
  return {
    runs: positiveInteger('--runs', values.runs ?? '5'),
    warmup: nonNegativeInteger('--warmup', values.warmup ?? '1'),
    pollMs: nonNegativeInteger('--poll-ms', values['poll-ms'] ?? '10'),
    json: values.json === true,
    secretdCommand,
    docker: values['no-docker'] !== true,
  };
}

/** The container command of both systems: idle, and out at once on SIGTERM (a shell as PID 1 ignores it otherwise). */
const containerArgs = ['sh', '-c', 'trap "exit 0" TERM; sleep 100000 & wait'];
/** Longest one step may take before the run is reported as failed. */
const stepTimeoutMs = 60_000;

interface Run {
  readonly createMs: number;
  readonly dropMs: number;
  /** How long the exec that ended each step took: the polling's own share of the figure. */
  readonly createProbeMs: number;
  readonly dropProbeMs: number;
}

interface Target {
  readonly system: ServiceSystem;
  readonly secret: SecretRef;
  readonly value: string;
  readonly runs: Run[];
}

async function main(argv: readonly string[]): Promise<number> {
  const options = optionsOrExit(usage, () => parseOptions(argv));
  const rootfs = busyboxRootfsTarball();
  const targets: Target[] = [];
  const notes: string[] = [];
  if (options.secretdCommand !== undefined) {
    console.error('Starting secretd…');
    const node = await startSecretdNode(
      options.secretdCommand.length > 0 ? options.secretdCommand : defaultSecretdCommand(),
      rootfs,
    );
    deferCleanup(() => node.stop());
    targets.push(await prepare(node));
  }
  if (options.docker) {
    console.error('Starting a private Docker Swarm…');
    try {
      const swarm = await startDockerSwarm();
      deferCleanup(() => swarm.stop());
      await importDockerImage(swarm.socket, 'busybox', rootfs);
      targets.push(await prepare(dockerSystem(swarm.socket)));
    } catch (error) {
      if (!(error instanceof DockerUnavailableError)) throw error;
      notes.push(`Docker skipped: ${error.message}`);
    }
  }
  let failure: string | undefined;
  // Interleaved, so that a change in the machine's load during the run weighs on both alike.
  for (
    let run = 1 - options.warmup;
    run <= options.runs && !interrupted.signal.aborted && failure === undefined;
    run++
  ) {
    for (const target of targets) {
      try {
        const result = await measure(
          target,
          `bench-${run > 0 ? run : `w${1 - run}`}`,
          options.pollMs,
        );
        console.error(
          `${run > 0 ? `run ${run}` : 'warm-up'} ${target.system.label}: create ${Math.round(result.createMs)} ms, drop ${Math.round(result.dropMs)} ms`,
        );
        if (run > 0) target.runs.push(result);
      } catch (error) {
        failure = `${target.system.label}, run ${run}: ${errorReason(error)}`;
        break;
      }
    }
  }
  report(options, targets, [...notes, ...(failure === undefined ? [] : [`failed: ${failure}`])]);
  return failure !== undefined ? 1 : interrupted.signal.aborted ? 130 : 0;
}

async function prepare(system: ServiceSystem): Promise<Target> {
  const value = `service-secrets-bench-${randomUUID()}`;
  const secret = await system.createSecret('bench_secret', value);
  return { system, secret, value, runs: [] };
}

async function measure(target: Target, serviceName: string, pollMs: number): Promise<Run> {
  const { system, secret, value } = target;
  const argv = ['cat', `/run/secrets/${secret.name}`];
  const createdAt = performance.now();
  const serviceId = await system.createService(serviceName, secret, containerArgs);
  try {
    const first = await poll(
      system,
      serviceId,
      { argv, pollMs, notTaskId: null },
      (answer) => answer.code === 0 && answer.output.includes(value),
      'the secret readable in the task',
    );
    const droppedAt = performance.now();
    await system.dropSecrets(serviceId);
    const second = await poll(
      system,
      serviceId,
      { argv, pollMs, notTaskId: first.task.taskId },
      (answer) => answer.code !== 0 && !answer.output.includes(value),
      'the new task running without the secret',
    );
    return {
      createMs: first.atMs - createdAt,
      dropMs: second.atMs - droppedAt,
      createProbeMs: first.probeMs,
      dropProbeMs: second.probeMs,
    };
  } finally {
    await system.removeService(serviceId);
  }
}

interface Seen {
  readonly task: RunningTask;
  readonly atMs: number;
  readonly probeMs: number;
}

interface PollOptions {
  /** The probe run in the task. */
  readonly argv: readonly string[];
  readonly pollMs: number;
  /** A task that does not count (the one an update replaces). */
  readonly notTaskId: string | null;
}

/** Polls until a running task (other than `notTaskId`) answers the probe as `done` wants. */
async function poll(
  system: ServiceSystem,
  serviceId: string,
  options: PollOptions,
  done: (answer: { code: number; output: string }) => boolean,
  what: string,
): Promise<Seen> {
  const { argv, pollMs, notTaskId } = options;
  const deadlineMs = performance.now() + stepTimeoutMs;
  let last = 'no running task';
  for (;;) {
    if (interrupted.signal.aborted) throw new Error('interrupted');
    const task = await system.runningTask(serviceId);
    if (task !== null && task.taskId !== notTaskId) {
      const sentMs = performance.now();
      // A task can stop between the list and the exec (the update began): that is one more poll.
      const answer = await system
        .exec(task.execRef, argv)
        .catch((error: unknown) => ({ code: -1, output: '', error: errorReason(error) }));
      const atMs = performance.now();
      if (done(answer)) return { task, atMs, probeMs: atMs - sentMs };
      last = `task ${task.taskId.slice(0, 12)}: exec exit ${answer.code}${'error' in answer ? ` (${answer.error})` : ''}`;
    }
    if (performance.now() > deadlineMs)
      throw new Error(`no ${what} after ${stepTimeoutMs / 1000} s (last: ${last})`);
    await delay(pollMs);
  }
}

interface Medians {
  readonly createMs: number;
  readonly dropMs: number;
  readonly createProbeMs: number;
  readonly dropProbeMs: number;
}

function medians(runs: readonly Run[]): Medians {
  const median = (pick: (r: Run) => number): number =>
    percentile(
      runs.map(pick).sort((a, b) => a - b),
      0.5,
    );
  return {
    createMs: median((r) => r.createMs),
    dropMs: median((r) => r.dropMs),
    createProbeMs: median((r) => r.createProbeMs),
    dropProbeMs: median((r) => r.dropProbeMs),
  };
}

/**
 * The bar: secretd at most 0.3 of Docker's time on each step (issue 17's, for create → readable,
 * on a quiet machine; it was 0.5 before it).
 */
const ratioBar = 0.3;

function report(options: Options, targets: readonly Target[], notes: readonly string[]): void {
  const machine = machineFacts();
  console.log(
    `service-secrets: ${options.runs} runs (+${options.warmup} warm-up) per system, interleaved, one replica, one secret; ${describeMachine(machine)}`,
  );
  const right = (title: string): Column => ({ title, align: 'right' });
  const left = (title: string): Column => ({ title, align: 'left' });
  const steps = [
    {
      name: 'create → secret readable',
      pick: (r: Run) => r.createMs,
      probe: (r: Run) => r.createProbeMs,
    },
    {
      name: '--secret-rm → secret gone',
      pick: (r: Run) => r.dropMs,
      probe: (r: Run) => r.dropProbeMs,
    },
  ];
  const rows: string[][] = [];
  for (const step of steps) {
    for (const target of targets) {
      const values = target.runs.map(step.pick);
      const sorted = [...values].sort((a, b) => a - b);
      const probes = target.runs.map(step.probe).sort((a, b) => a - b);
      rows.push([
        step.name,
        target.system.label,
        formatNumber(percentile(sorted, 0.5), 0),
        formatNumber(sorted[0] ?? Number.NaN, 0),
        formatNumber(sorted.at(-1) ?? Number.NaN, 0),
        formatNumber(percentile(probes, 0.5), 0),
        values.map((v) => v.toFixed(0)).join(' '),
      ]);
    }
  }
  console.log(
    formatTable(
      [
        left('step'),
        left('system'),
        right('median ms'),
        right('min ms'),
        right('max ms'),
        right('probe ms'),
        left('runs (ms)'),
      ],
      rows,
    ),
  );
  const secretd = targets.find((t) => t.system.label === 'secretd');
  const docker = targets.find((t) => t.system.label === 'docker');
  let ratios: { create: number; drop: number } | undefined;
  if (secretd && docker && secretd.runs.length > 0 && docker.runs.length > 0) {
    const [s, d] = [medians(secretd.runs), medians(docker.runs)];
    ratios = { create: s.createMs / d.createMs, drop: s.dropMs / d.dropMs };
    const verdict = (ratio: number): string =>
      ratio <= ratioBar ? `≤ ${ratioBar}: met` : `> ${ratioBar}: not met`;
    console.log(
      `\nsecretd/docker (median; below 1: secretd sooner; the bar is ${ratioBar})\n` +
        formatTable(
          [left('step'), right('ratio'), left('bar')],
          [
            [steps[0]!.name, formatNumber(ratios.create, 2), verdict(ratios.create)],
            [steps[1]!.name, formatNumber(ratios.drop, 2), verdict(ratios.drop)],
          ],
        ),
    );
  }
  const warning = busyWarning(machine);
  const lines = [
    ...notes,
    ...(warning === undefined ? [] : [`warning: ${warning}`]),
    ...(interrupted.signal.aborted ? ['interrupted: partial results'] : []),
  ];
  if (lines.length > 0) console.log(`\n${lines.join('\n')}`);
  if (options.json) {
    const systems = Object.fromEntries(
      targets.map((t) => [
        t.system.label,
        { runs: t.runs, medians: t.runs.length > 0 ? medians(t.runs) : null },
      ]),
    );
    console.log(
      JSON.stringify({
        bench: 'service-secrets',
        machine,
        runs: options.runs,
        warmup: options.warmup,
        pollMs: options.pollMs,
        systems,
        ratios: ratios ?? null,
        ratioBar,
      }),
    );
  }
}

await runEntryPoint('service-secrets', main);
