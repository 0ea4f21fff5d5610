/**
 * How fast can secrets be created? The same requests, from the same Bun client, against secretd
 * (HTTP/2 + mutual TLS, one session, C streams) and Docker Swarm (HTTP/1.1 on its unix socket, C
 * keep-alive connections). For each concurrency: a warm-up that is not counted, N measured
 * creates, then the created secrets are deleted so repeated runs start from the same store size.
 *
 * Run `bun bench/create-secrets.ts --help` for the options; bench/README.md explains the output.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import {
  optionsOrExit,
  parseOptions,
  usage,
  type BenchOptions,
  type DockerChoice,
  type SecretdChoice,
} from './create-secrets-options.ts';
import { cpuMeter } from './cpu-time.ts';
import { errorReason } from './create-outcome.ts';
import { dockerTarget } from './docker-client.ts';
import { DockerUnavailableError, isSwarmManager, startDockerSwarm } from './docker-swarm.ts';
import { deferCleanup, interrupted, runCleanups } from './lifecycle.ts';
import { distinctValue, forEachLimited, runLoad, valuePool, type CreateTarget } from './load.ts';
import { loadAverageAtStart } from './machine.ts';
import {
  openSecretdSession,
  secretdTarget,
  type ClientTLSFiles,
  type SecretdClientOptions,
} from './secretd-client.ts';
import { startSecretd } from './secretd-process.ts';
import {
  formatNumber,
  formatTable,
  pairedRatios,
  summarize,
  type Column,
  type RunSummary,
} from './stats.ts';

/** A system ready to measure: opens a fresh client (connection pool or session) per measurement. */
interface SystemUnderTest {
  readonly label: 'secretd' | 'docker';
  openTarget(concurrency: number): Promise<CreateTarget>;
  /** The server's processes, whose CPU time a measurement counts; empty when unknown. */
  pids(): readonly number[];
}

interface Measurement {
  readonly system: string;
  readonly concurrency: number;
  readonly summary: RunSummary;
  /**
   * CPU time (user + system, every thread) per measured create, in ms: the server's processes
   * (NaN when unknown) and this client's, from the measured creates' start to their end.
   */
  readonly serverCpuMsPerCreate: number;
  readonly clientCpuMsPerCreate: number;
  /** The server's minor page faults per measured create (NaN when unknown): see cpu-time.ts. */
  readonly serverFaultsPerCreate: number;
  /** Failure reasons of measured and warm-up requests, and of the cleanup, for the notes. */
  readonly notes: readonly string[];
}

async function main(argv: readonly string[]): Promise<number> {
  const options = optionsOrExit(usage, () => parseOptions(argv));
  const skipped: string[] = [];
  const systems: SystemUnderTest[] = [];
  for (const open of [
    () => openSecretd(options.secretd, options),
    () => openDocker(options.docker, options),
  ]) {
    const opened = await open();
    if (typeof opened === 'string') skipped.push(opened);
    else if (opened !== undefined) systems.push(opened);
  }
  for (const reason of skipped) console.error(reason);
  if (systems.length === 0) {
    console.error('Nothing to measure.');
    return 1;
  }
  const values = valuePool({ count: options.count, valueBytes: options.valueBytes });
  const runId = Date.now().toString(36);
  const measurements: Measurement[] = [];
  for (const [round, concurrency] of options.concurrencies.entries()) {
    // Each round's requests get values of their own, the same for every system (distinctValue).
    const first = round * (options.warmupCount + options.count);
    for (const system of systems) {
      if (interrupted.signal.aborted) break;
      const run = `${runId}c${concurrency}`;
      measurements.push(await measure(system, concurrency, { options, values, run, first }));
    }
  }
  report(options, measurements, skipped);
  if (interrupted.signal.aborted) return 130;
  // Figures of requests that failed are no measurement: a script or CI reading the exit status
  // must not take them for one (the table and its notes say which failed and why).
  const failed = measurements.filter((m) => m.summary.errorCount > 0);
  for (const m of failed)
    console.error(
      `create-secrets: ${m.system} C=${m.concurrency}: ${m.summary.errorCount} of ${m.summary.okCount + m.summary.errorCount} measured creates failed`,
    );
  return failed.length > 0 ? 1 : 0;
}

/** A system, or a string saying why it is skipped, or undefined when the user turned it off. */
type Opened = SystemUnderTest | string | undefined;

async function openSecretd(choice: SecretdChoice, options: BenchOptions): Promise<Opened> {
  const timeouts = { requestTimeoutMs: options.requestTimeoutMs };
  switch (choice.kind) {
    case 'none':
      return undefined;
    case 'url': {
      const clientOptions =
        choice.servername === undefined ? timeouts : { ...timeouts, servername: choice.servername };
      // Connect once now so a wrong URL or certificate is reported before any measurement.
      await (await openSecretdSession(choice.url, choice.files, clientOptions)).close();
      return secretdSystem(choice.url, choice.files, clientOptions, () => choice.pids);
    }
    case 'start': {
      console.error('Starting secretd…');
      try {
        const secretd = await startSecretd(
          choice.command === undefined ? {} : { command: choice.command },
        );
        deferCleanup(() => secretd.stop());
        return secretdSystem(secretd.url, secretd, timeouts, () =>
          secretd.pid === undefined ? [] : [secretd.pid],
        );
      } catch (error) {
        return `secretd: skipped. ${messageOf(error)}`;
      }
    }
  }
}

function secretdSystem(
  url: string,
  files: ClientTLSFiles,
  clientOptions: SecretdClientOptions,
  pids: () => readonly number[],
): SystemUnderTest {
  return {
    label: 'secretd',
    openTarget: async () => secretdTarget(await openSecretdSession(url, files, clientOptions)),
    pids,
  };
}

const defaultDockerSocket = '/var/run/docker.sock';

async function openDocker(choice: DockerChoice, options: BenchOptions): Promise<Opened> {
  const system = (
    socketPath: string,
    pids: () => readonly number[] = () => [],
  ): SystemUnderTest => ({
    label: 'docker',
    openTarget: async (concurrency) =>
      dockerTarget({ socketPath, concurrency, requestTimeoutMs: options.requestTimeoutMs }),
    pids,
  });
  switch (choice.kind) {
    case 'none':
      return undefined;
    case 'auto':
      if (
        !existsSync(defaultDockerSocket) ||
        !(await isSwarmManager(defaultDockerSocket).catch(() => false))
      ) {
        return `docker: skipped. ${defaultDockerSocket} is not a swarm manager; use --start-docker or --docker-socket PATH.`;
      }
      return system(defaultDockerSocket);
    case 'socket':
      if (!(await isSwarmManager(choice.path).catch(() => false))) {
        throw new Error(
          `Docker at ${choice.path} does not answer as a swarm manager (docker swarm init?)`,
        );
      }
      return system(choice.path);
    case 'start': {
      console.error('Starting a private dockerd and swarm…');
      try {
        const swarm = await startDockerSwarm();
        deferCleanup(() => swarm.stop());
        return system(swarm.socket, () => swarm.pids());
      } catch (error) {
        if (error instanceof DockerUnavailableError) return `docker: skipped. ${error.message}`;
        throw error;
      }
    }
  }
}

/** Below this, JIT warm-up, GC pauses and timer noise weigh on the figures more than the server. */
const shortRunMs = 1_000;

interface MeasureContext {
  readonly options: BenchOptions;
  readonly values: readonly string[];
  /** Unique per measurement; names are bench-<run>-<i> (warm-up: bench-<run>-w<i>). */
  readonly run: string;
  /** The round's first value number (distinctValue): warm-up from it, then the measured creates. */
  readonly first: number;
}

async function measure(
  system: SystemUnderTest,
  concurrency: number,
  context: MeasureContext,
): Promise<Measurement> {
  const { options, values, run, first } = context;
  const body = (name: string, n: number): string =>
    `{"Name":${JSON.stringify(name)},"Data":"${distinctValue(values, n)}","Labels":{}}`;
  const target = await system.openTarget(concurrency);
  try {
    const common = { concurrency, wallCapMs: options.wallCapMs, signal: interrupted.signal };
    console.error(`${system.label} C=${concurrency}: ${options.warmupCount} warm-up creates…`);
    const warmup = await runLoad(target, {
      ...common,
      count: options.warmupCount,
      bodyFor: (i) => body(`bench-${run}-w${i}`, first + i),
    });
    console.error(`${system.label} C=${concurrency}: ${options.count} measured creates…`);
    const cpuSince = cpuMeter(system.pids());
    const measured = await runLoad(target, {
      ...common,
      count: options.count,
      bodyFor: (i) => body(`bench-${run}-${i}`, first + options.warmupCount + i),
    });
    const cpu = cpuSince();
    const notes = [
      ...[...warmup.errorReasons].map(([reason, times]) => `warm-up: ${times}× ${reason}`),
      ...[...measured.errorReasons].map(([reason, times]) => `${times}× ${reason}`),
      ...(measured.capped ? [`stopped by the ${options.wallCapMs / 1000} s cap`] : []),
      ...(warmup.aborted || measured.aborted ? ['interrupted: partial results'] : []),
      ...(measured.wallMs < shortRunMs
        ? [`measured for only ${Math.round(measured.wallMs)} ms; raise --n for a steadier figure`]
        : []),
    ];
    const ids = [...warmup.ids, ...measured.ids];
    let undeleted = 0;
    // Not timed. Bounded, but wide enough that C=1 does not make cleanup take as long as the run.
    const removeOne = async (id: string): Promise<void> => {
      if (!(await target.remove(id))) undeleted++;
    };
    await forEachLimited(ids, removeOne, { limit: Math.max(concurrency, 16) });
    if (undeleted > 0) notes.push(`cleanup: ${undeleted} of ${ids.length} secrets not deleted`);
    const summary = summarize(measured.latenciesMs, {
      errorCount: measured.errorCount,
      wallMs: measured.wallMs,
    });
    const perCreate = (ms: number): number =>
      ms / Math.max(1, summary.okCount + summary.errorCount);
    return {
      system: system.label,
      concurrency,
      summary,
      serverCpuMsPerCreate: perCreate(cpu.serverMs),
      clientCpuMsPerCreate: perCreate(cpu.clientMs),
      serverFaultsPerCreate: perCreate(cpu.serverFaults),
      notes,
    };
  } finally {
    await target.close();
  }
}

function report(
  options: BenchOptions,
  measurements: readonly Measurement[],
  skipped: readonly string[],
): void {
  console.log(
    `create-secrets: N=${options.count} (+${options.warmupCount} warm-up), S=${options.valueBytes} B, ` +
      `C=${options.concurrencies.join(',')}; Bun ${process.versions['bun'] ?? '?'}, ${availableParallelism()} CPUs, ` +
      `load average before ${formatNumber(loadAverageAtStart, 2)}`,
  );
  const rows = measurements.map((m) => [
    m.system,
    String(m.concurrency),
    String(m.summary.okCount),
    String(m.summary.errorCount),
    formatNumber(m.summary.throughputPerSec, 0),
    formatNumber(m.summary.p50Ms, 2),
    formatNumber(m.summary.p99Ms, 2),
    formatNumber(m.summary.maxMs, 2),
    formatNumber(m.serverCpuMsPerCreate, 2),
    formatNumber(m.clientCpuMsPerCreate, 2),
    formatNumber(m.serverFaultsPerCreate, 1),
  ]);
  const right = (title: string): Column => ({ title, align: 'right' });
  const columns = [
    { title: 'system', align: 'left' } as const,
    ...[
      'C',
      'ok',
      'errors',
      'creates/s',
      'p50 ms',
      'p99 ms',
      'max ms',
      'server CPU ms/create',
      'client CPU ms/create',
      'server faults/create',
    ].map(right),
  ];
  console.log(formatTable(columns, rows));
  const ratios = ratioRows(measurements);
  if (ratios.length > 0) {
    console.log(
      "\nsecretd/docker, the median over rounds of each round's ratio (throughput: above 1 is secretd faster; p99 and server CPU: below 1 is secretd quicker or cheaper)",
    );
    const ratioCells = ratios.map((r) => [
      String(r.concurrency),
      formatNumber(r.throughput, 2),
      r.throughputRounds.map((x) => formatNumber(x, 2)).join(', '),
      formatNumber(r.p99, 2),
      formatNumber(r.serverCpu, 2),
    ]);
    console.log(
      formatTable(['C', 'throughput', 'rounds', 'p99', 'server CPU/create'].map(right), ratioCells),
    );
  }
  const notes = measurements.flatMap((m) =>
    m.notes.map((note) => `${m.system} C=${m.concurrency}: ${note}`),
  );
  if (notes.length + skipped.length > 0) console.log(['', ...skipped, ...notes].join('\n'));
  if (options.json) {
    const results = measurements.map((m) => ({
      system: m.system,
      concurrency: m.concurrency,
      ...m.summary,
      serverCpuMsPerCreate: m.serverCpuMsPerCreate,
      clientCpuMsPerCreate: m.clientCpuMsPerCreate,
      serverFaultsPerCreate: m.serverFaultsPerCreate,
      notes: m.notes,
    }));
    const { count: n, valueBytes, warmupCount } = options;
    const machine = {
      bun: process.versions['bun'],
      cpus: availableParallelism(),
      loadAverageBefore: loadAverageAtStart,
    };
    console.log(
      JSON.stringify({
        bench: 'create-secrets',
        n,
        valueBytes,
        warmupCount,
        machine,
        results,
        ratios,
        skipped,
      }),
    );
  }
}

interface Ratio {
  readonly concurrency: number;
  readonly throughput: number;
  readonly throughputRounds: readonly number[];
  readonly p99: number;
  readonly serverCpu: number;
}

/** Per concurrency, the median over alternating rounds of each round's ratio (bench/stats.ts). */
function ratioRows(measurements: readonly Measurement[]): Ratio[] {
  const of = (system: string): Measurement[] => measurements.filter((m) => m.system === system);
  const levels = [...new Set(measurements.map((m) => m.concurrency))];
  return levels.flatMap((concurrency) => {
    const pair = (value: (m: Measurement) => number) =>
      pairedRatios(of('secretd'), of('docker'), concurrency, value);
    const throughput = pair((m) => m.summary.throughputPerSec);
    if (throughput.rounds.length === 0) return [];
    return [
      {
        concurrency,
        throughput: throughput.median,
        throughputRounds: throughput.rounds,
        p99: pair((m) => m.summary.p99Ms).median,
        serverCpu: pair((m) => m.serverCpuMsPerCreate).median,
      },
    ];
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let exitCode: number;
try {
  exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(`create-secrets failed: ${messageOf(error)}`);
  exitCode = 1;
}
await runCleanups();
process.exit(exitCode);
