/**
 * One command at a time through each system's own CLI, as a deploy script or a CI job runs them
 * (issue 17's first user): a one-node secretd, reached by `secretd` through its admin socket, and a
 * private one-node Docker Swarm, reached by `docker -H unix://…` (needs root and the docker CLI).
 * Each round runs, for each system in turn and alternating which goes first:
 *
 *   version  `--version`: the executable's start and exit, no node reached;
 *   create   `secret create NAME -` with the value on stdin;
 *   inspect  `secret inspect NAME`;
 *   ls       `secret ls` (the node holds the secrets of the rounds so far, a few dozen);
 *   rm       `secret rm NAME`.
 *
 * Each figure is the wall time from spawning the command to its exit. Prints the medians and the
 * secretd/docker ratios. Run it with `--secretd-bin dist/secretd`: from src/main.ts, each command
 * would also be transpiled.
 *
 * Run `bun bench/cli-latency.ts --help` for the options; bench/README.md explains the output.
 */
import { spawnSync } from 'node:child_process';
import {
  nonNegativeInteger,
  optionsOrExit,
  positiveInteger,
  readFlags,
  secretdCommandOf,
} from './create-secrets-options.ts';
import { errorReason } from './create-outcome.ts';
import { DockerUnavailableError, findExecutable, startDockerSwarm } from './docker-swarm.ts';
import { deferCleanup, interrupted, runEntryPoint } from './lifecycle.ts';
import { busyWarning, describeMachine, machineFacts } from './machine.ts';
import { startSecretdCluster } from './secretd-cluster.ts';
import { defaultSecretdCommand } from './secretd-process.ts';
import { formatNumber, formatTable, percentile } from './stats.ts';

const usage = `Usage: bun bench/cli-latency.ts [options]

Starts a one-node secretd and a private one-node Docker Swarm (needs root, dockerd and the docker
CLI), then times their CLIs one command at a time: --version, secret create (value on stdin),
secret inspect, secret ls, secret rm, R rounds alternating between the systems. Prints the median
wall time of each command, from spawn to exit, and the secretd/docker ratios.

  --rounds R             measured rounds (default 20)
  --warmup W             rounds before them, not counted (default 2)
  --json                 also print the results as one JSON line
  --secretd-bin PATH     run this secretd executable (use dist/secretd: from src/main.ts each
                         command is transpiled too)
  --no-docker            skip Docker
`;

interface Options {
  readonly rounds: number;
  readonly warmup: number;
  readonly json: boolean;
  /** [] : this Bun running src/main.ts; else the executable. */
  readonly secretdCommand: readonly string[];
  readonly docker: boolean;
}

function parseOptions(argv: readonly string[]): Options | undefined {
  const values = readFlags(argv, {
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    json: { type: 'boolean' },
    'secretd-bin': { type: 'string' },
    'no-docker': { type: 'boolean' },
  });
  if (values === undefined) return undefined;
  return {
    rounds: positiveInteger('--rounds', values.rounds ?? '20'),
    warmup: nonNegativeInteger('--warmup', values.warmup ?? '2'),
    json: values.json === true,
    secretdCommand: secretdCommandOf(values) ?? [],
    docker: values['no-docker'] !== true,
  };
}

const steps = ['version', 'create', 'inspect', 'ls', 'rm'] as const;
type Step = (typeof steps)[number];

/** One system's CLI: the argv of each step for a secret name. */
interface Cli {
  readonly label: string;
  readonly argv: (step: Step, name: string) => readonly string[];
  readonly times: Record<Step, number[]>;
}

const commandTimeoutMs = 30_000;

/** Runs one command to its exit; its wall time in ms, or throws with its stderr. */
function timed(argv: readonly string[], input: string): number {
  const [command, ...args] = argv;
  const startedAt = performance.now();
  const run = spawnSync(command!, args, { input, timeout: commandTimeoutMs });
  const ms = performance.now() - startedAt;
  if (run.status !== 0)
    throw new Error(
      `${argv.join(' ')} exited ${run.status ?? run.signal}: ${run.stderr?.toString().trim()}`,
    );
  return ms;
}

function emptyTimes(): Record<Step, number[]> {
  return { version: [], create: [], inspect: [], ls: [], rm: [] };
}

async function main(argv: readonly string[]): Promise<number> {
  const options = optionsOrExit(usage, () => parseOptions(argv));
  const before = machineFacts();
  const clis: Cli[] = [];
  const notes: string[] = [];
  const command =
    options.secretdCommand.length > 0 ? options.secretdCommand : defaultSecretdCommand();
  console.error('Starting secretd…');
  const cluster = await startSecretdCluster({ command });
  deferCleanup(() => cluster.stop());
  const dataDir = cluster.managers[0]!.dataDir;
  clis.push({
    label: 'secretd',
    argv: (step, name) =>
      step === 'version'
        ? [...command, '--version']
        : step === 'create'
          ? [...command, 'secret', 'create', '--data-dir', dataDir, name, '-']
          : step === 'ls'
            ? [...command, 'secret', 'ls', '--data-dir', dataDir]
            : [...command, 'secret', step, '--data-dir', dataDir, name],
    times: emptyTimes(),
  });
  if (options.docker) {
    console.error('Starting a private Docker Swarm…');
    try {
      const docker = findExecutable('docker');
      if (docker === undefined)
        throw new DockerUnavailableError('the docker CLI is not installed (docker.io)');
      const swarm = await startDockerSwarm();
      deferCleanup(() => swarm.stop());
      const host = ['-H', `unix://${swarm.socket}`];
      clis.push({
        label: 'docker',
        argv: (step, name) =>
          step === 'version'
            ? [docker, '--version']
            : step === 'create'
              ? [docker, ...host, 'secret', 'create', name, '-']
              : step === 'ls'
                ? [docker, ...host, 'secret', 'ls']
                : [docker, ...host, 'secret', step, name],
        times: emptyTimes(),
      });
    } catch (error) {
      if (!(error instanceof DockerUnavailableError)) throw error;
      notes.push(`Docker skipped: ${error.message}`);
    }
  }
  let failure: string | undefined;
  for (
    let round = 1 - options.warmup;
    round <= options.rounds && !interrupted.signal.aborted && failure === undefined;
    round++
  ) {
    // Which system goes first alternates, so that neither always runs on a machine the other warmed.
    const order = round % 2 === 0 ? clis : [...clis].reverse();
    for (const cli of order) {
      const name = `cli_latency_${round > 0 ? round : `w${1 - round}`}`;
      try {
        for (const step of steps) {
          const ms = timed(cli.argv(step, name), step === 'create' ? `value of ${name}` : '');
          if (round > 0) cli.times[step].push(ms);
        }
      } catch (error) {
        failure = `${cli.label}, round ${round}: ${errorReason(error)}`;
        break;
      }
    }
  }
  report(options, clis, before, [
    ...notes,
    ...(failure === undefined ? [] : [`failed: ${failure}`]),
  ]);
  return failure !== undefined ? 1 : interrupted.signal.aborted ? 130 : 0;
}

function report(
  options: Options,
  clis: readonly Cli[],
  before: ReturnType<typeof machineFacts>,
  notes: readonly string[],
): void {
  const facts = { ...before, loadAverageAfter: machineFacts().loadAverageAfter };
  const median = (values: readonly number[]): number =>
    percentile(
      [...values].sort((a, b) => a - b),
      0.5,
    );
  console.log(
    `cli-latency: ${options.rounds} rounds (+${options.warmup} warm-up), one command at a time; ${describeMachine(facts)}`,
  );
  const warning = busyWarning(facts);
  if (warning !== undefined) console.log(`warning: ${warning}`);
  const secretd = clis.find((c) => c.label === 'secretd');
  const docker = clis.find((c) => c.label === 'docker');
  const rows = steps.map((step) => {
    const s = median(secretd?.times[step] ?? []);
    const d = median(docker?.times[step] ?? []);
    return [
      step,
      formatNumber(s, 1),
      docker === undefined ? '—' : formatNumber(d, 1),
      docker === undefined ? '—' : formatNumber(s / d, 2),
    ];
  });
  console.log(
    formatTable(
      [
        { title: 'command', align: 'left' },
        { title: 'secretd ms', align: 'right' },
        { title: 'docker ms', align: 'right' },
        { title: 'secretd/docker', align: 'right' },
      ],
      rows,
    ),
  );
  for (const note of notes) console.log(note);
  if (options.json)
    console.log(
      JSON.stringify({
        rounds: options.rounds,
        machine: facts,
        medians: Object.fromEntries(
          clis.map((cli) => [
            cli.label,
            Object.fromEntries(steps.map((step) => [step, median(cli.times[step])])),
          ]),
        ),
      }),
    );
}

await runEntryPoint('cli-latency', main);
