/**
 * How fast does a 3-manager secretd commit writes, next to a 3-member etcd on the same machine?
 * (`--members M`: M of each; 1 puts a one-node secretd beside a single-member etcd.) Both are
 * started here on loopback, each member with its own data dir and fsync on, mutual TLS
 * to clients and between members. The same Bun client writes to each LEADER over one HTTP/2
 * session with C concurrent streams: secretd `POST /secrets/create`, etcd `POST /v3/kv/put` (its
 * HTTP/JSON gateway), both carrying the same S random bytes in base64. A write is answered once a
 * quorum has it on disk, in both systems.
 *
 * For each concurrency and system: a warm-up that is not counted, then N measured writes. The
 * clusters are thrown away at the end, so nothing is deleted between measurements; both stores
 * grow alike.
 *
 * Run `bun bench/raft-writes.ts --help` for the options; bench/README.md explains the output.
 */
import { runToEnd } from './child-process.ts';
import { cpuMeter } from './cpu-time.ts';
import { optionsOrExit } from './create-secrets-options.ts';
import { errorReason } from './create-outcome.ts';
import { etcdPutBody, etcdTarget } from './etcd-client.ts';
import { startEtcdCluster, type EtcdCluster } from './etcd-cluster.ts';
import { deferCleanup, interrupted, runCleanups } from './lifecycle.ts';
import { runLoad, valuePool, type CreateTarget } from './load.ts';
import { busyWarning, describeMachine, machineFacts } from './machine.ts';
import {
  parseRaftWritesOptions,
  raftWritesUsage,
  type RaftWritesOptions,
} from './raft-writes-options.ts';
import { openSecretdSession, secretdTarget, type ClientTLSFiles } from './secretd-client.ts';
import { startSecretdCluster, type SecretdCluster } from './secretd-cluster.ts';
import { secretdCli } from './secretd-process.ts';
import {
  formatNumber,
  formatTable,
  pairedRatios,
  summarize,
  type Column,
  type RunSummary,
} from './stats.ts';

/** A started cluster, ready to measure: where its leader is, and how to write to it. */
interface ClusterUnderTest {
  readonly label: 'secretd' | 'etcd';
  /** "secretd 0.1.0 (dist/secretd)", "etcd 3.4.23 (flags…)": printed under the table. */
  readonly description: string;
  readonly files: ClientTLSFiles;
  /** Process ids of the running members, for their CPU time. */
  pids(): number[];
  /** The leader's client URL and a name for it (m2, e1). */
  leader(): Promise<{ readonly name: string; readonly url: string }>;
  target(session: Awaited<ReturnType<typeof openSecretdSession>>): CreateTarget;
  body(name: string, valueBase64: string): string;
}

interface Measurement {
  readonly system: string;
  readonly concurrency: number;
  readonly leader: string;
  readonly summary: RunSummary;
  /** CPU time of all the system's members during the measured writes, per successful write. */
  readonly serverCpuMsPerWrite: number;
  /** CPU time of this (client) process during the measured writes, per successful write. */
  readonly clientCpuMsPerWrite: number;
  /** Failure reasons, a leader change, a short run: printed under the table. */
  readonly notes: readonly string[];
}

async function main(argv: readonly string[]): Promise<number> {
  const options = optionsOrExit(raftWritesUsage, () => parseRaftWritesOptions(argv));
  const skipped: string[] = [];
  const systems: ClusterUnderTest[] = [];
  for (const open of [() => openSecretd(options), () => openEtcd(options)]) {
    if (interrupted.signal.aborted) break;
    const opened = await open();
    if (typeof opened === 'string') skipped.push(opened);
    else if (opened !== undefined) systems.push(opened);
  }
  for (const reason of skipped) console.error(reason);
  if (systems.length === 0) {
    console.error('Nothing to measure.');
    return 1;
  }
  const values = valuePool({
    count: options.count + options.warmupCount,
    valueBytes: options.valueBytes,
  });
  const runId = Date.now().toString(36);
  const measurements: Measurement[] = [];
  // A concurrency may repeat (alternating rounds): each round writes names of its own.
  for (const [round, concurrency] of options.concurrencies.entries()) {
    for (const system of systems) {
      if (interrupted.signal.aborted) break;
      const run = `${runId}r${round}c${concurrency}`;
      measurements.push(await measure(system, concurrency, { options, values, run }));
    }
  }
  report(options, { measurements, systems, skipped });
  return interrupted.signal.aborted ? 130 : 0;
}

/** A cluster to measure, or a string saying why it is skipped, or undefined when turned off. */
type Opened = ClusterUnderTest | string | undefined;

async function openSecretd(options: RaftWritesOptions): Promise<Opened> {
  if (options.secretdCommand === undefined) return undefined;
  const managers = options.members;
  console.error(`Starting a ${managers}-manager secretd…`);
  let cluster: SecretdCluster;
  try {
    cluster = await startSecretdCluster({
      managers,
      ...(options.secretdCommand.length === 0 ? {} : { command: options.secretdCommand }),
    });
  } catch (error) {
    return `secretd: skipped. ${errorReason(error)}`;
  }
  deferCleanup(() => cluster.stop());
  const [executable, ...leadingArgs] = cluster.command;
  const version =
    executable === undefined
      ? '?'
      : (await runToEnd(executable, [...leadingArgs, ...secretdCli.version()])).trim();
  const shortCommand = cluster.command
    .map((part) => part.replace(/^.*\/(bun|src\/main\.ts)$/, '$1'))
    .join(' ');
  return {
    label: 'secretd',
    description: `${version} (${shortCommand}), ${managers} manager${managers === 1 ? '' : 's'}, defaults`,
    files: cluster,
    pids: () => cluster.managers.flatMap((m) => m.pid() ?? []),
    leader: async () => {
      const leader = await cluster.leader();
      return { name: leader.name, url: leader.url };
    },
    target: secretdTarget,
    body: (name, value) => `{"Name":${JSON.stringify(name)},"Data":"${value}","Labels":{}}`,
  };
}

async function openEtcd(options: RaftWritesOptions): Promise<Opened> {
  if (options.etcdExecutable === undefined) return undefined;
  const members = options.members;
  console.error(`Starting a ${members}-member etcd…`);
  let cluster: EtcdCluster;
  try {
    cluster = await startEtcdCluster({
      members,
      ...(options.etcdExecutable === '' ? {} : { executable: options.etcdExecutable }),
    });
  } catch (error) {
    return `etcd: skipped. ${errorReason(error)}`;
  }
  deferCleanup(() => cluster.stop());
  return {
    label: 'etcd',
    description: `etcd ${cluster.version}, ${members} member${members === 1 ? '' : 's'}, ${cluster.sharedFlags.join(' ')}, otherwise defaults (fsync on)`,
    files: cluster,
    pids: () => cluster.pids(),
    leader: async () => {
      const leader = await cluster.leader();
      return { name: leader.name, url: leader.clientUrl };
    },
    target: etcdTarget,
    body: (name, value) => etcdPutBody(name, value),
  };
}

/** Below this, JIT warm-up, GC pauses and timer noise weigh on the figures more than the server. */
const shortRunMs = 1_000;

interface MeasureContext {
  readonly options: RaftWritesOptions;
  readonly values: readonly string[];
  /** Unique per measurement; names are bench-<run>-<i> (warm-up: bench-<run>-w<i>). */
  readonly run: string;
}

async function measure(
  system: ClusterUnderTest,
  concurrency: number,
  context: MeasureContext,
): Promise<Measurement> {
  const { options, values, run } = context;
  const { warmupCount } = options;
  const valueAt = (index: number): string => values[index % values.length] ?? '';
  const leader = await system.leader();
  const session = await openSecretdSession(leader.url, system.files, {
    requestTimeoutMs: options.requestTimeoutMs,
  });
  const target = system.target(session);
  try {
    const common = { concurrency, wallCapMs: options.wallCapMs, signal: interrupted.signal };
    console.error(
      `${system.label} C=${concurrency}: ${warmupCount} warm-up writes to the leader ${leader.name}…`,
    );
    const warmup = await runLoad(target, {
      ...common,
      count: warmupCount,
      bodyFor: (i) => system.body(`bench-${run}-w${i}`, valueAt(i)),
    });
    console.error(`${system.label} C=${concurrency}: ${options.count} measured writes…`);
    const bodyFor = (i: number): string =>
      system.body(`bench-${run}-${i}`, valueAt(warmupCount + i));
    const cpuSince = cpuMeter(system.pids());
    const measured = await runLoad(target, { ...common, count: options.count, bodyFor });
    const { serverMs: serverCpuMs, clientMs: clientCpuMs } = cpuSince();
    const leaderAfter = await system
      .leader()
      .catch((error: unknown) => ({ name: `unknown (${errorReason(error)})`, url: '' }));
    const notes = [
      ...[...warmup.errorReasons].map(([reason, times]) => `warm-up: ${times}× ${reason}`),
      ...[...measured.errorReasons].map(([reason, times]) => `${times}× ${reason}`),
      ...(leaderAfter.name === leader.name
        ? []
        : [`the leader changed from ${leader.name} to ${leaderAfter.name} during the measurement`]),
      ...(measured.capped ? [`stopped by the ${options.wallCapMs / 1000} s cap`] : []),
      ...(warmup.aborted || measured.aborted ? ['interrupted: partial results'] : []),
      ...(measured.wallMs < shortRunMs
        ? [`measured for only ${Math.round(measured.wallMs)} ms; raise --n for a steadier figure`]
        : []),
    ];
    const summary = summarize(measured.latenciesMs, {
      errorCount: measured.errorCount,
      wallMs: measured.wallMs,
    });
    const perWrite = (ms: number): number => ms / summary.okCount;
    return {
      system: system.label,
      concurrency,
      leader: leader.name,
      summary,
      serverCpuMsPerWrite: perWrite(serverCpuMs),
      clientCpuMsPerWrite: perWrite(clientCpuMs),
      notes,
    };
  } finally {
    await target.close();
  }
}

interface ReportInput {
  readonly measurements: readonly Measurement[];
  readonly systems: readonly ClusterUnderTest[];
  readonly skipped: readonly string[];
}

function report(options: RaftWritesOptions, input: ReportInput): void {
  const { measurements, systems, skipped } = input;
  const machine = machineFacts();
  console.log(
    `raft-writes: N=${options.count} (+${options.warmupCount} warm-up), S=${options.valueBytes} B, ` +
      `C=${options.concurrencies.join(',')}; ${describeMachine(machine)}`,
  );
  const right = (title: string): Column => ({ title, align: 'right' });
  const rows = measurements.map(
    ({ system, concurrency, leader, summary: s, serverCpuMsPerWrite, clientCpuMsPerWrite }) => [
      system,
      String(concurrency),
      leader,
      String(s.okCount),
      String(s.errorCount),
      formatNumber(s.throughputPerSec, 0),
      formatNumber(s.p50Ms, 2),
      formatNumber(s.p99Ms, 2),
      formatNumber(s.maxMs, 2),
      formatNumber(serverCpuMsPerWrite, 2),
      formatNumber(clientCpuMsPerWrite, 2),
    ],
  );
  const titles = [
    'ok',
    'errors',
    'writes/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'server CPU ms/write',
    'client CPU ms/write',
  ];
  const columns = [
    { title: 'system', align: 'left' } as const,
    right('C'),
    { title: 'leader', align: 'left' } as const,
    ...titles.map(right),
  ];
  console.log(formatTable(columns, rows));
  const ratios = ratioRows(measurements);
  if (ratios.length > 0) {
    console.log(
      "\nsecretd/etcd, the median over rounds of each round's ratio (throughput: above 1 is secretd faster; latencies and CPU: below 1 is secretd quicker or cheaper)",
    );
    const cells = ratios.map((r) => [
      String(r.concurrency),
      formatNumber(r.throughput, 2),
      r.throughputRounds.map((x) => formatNumber(x, 2)).join(', '),
      formatNumber(r.p50, 2),
      formatNumber(r.p99, 2),
      formatNumber(r.serverCpuPerWrite, 2),
    ]);
    console.log(
      formatTable(
        ['C', 'throughput', 'rounds', 'p50', 'p99', 'server CPU/write'].map(right),
        cells,
      ),
    );
  }
  const transport =
    'both: HTTP/2 + mutual TLS (ECDSA P-256), one session to the leader, C concurrent streams; etcd through its HTTP/JSON gateway';
  const warning = busyWarning(machine);
  const notes = measurements.flatMap((m) =>
    m.notes.map((note) => `${m.system} C=${m.concurrency}: ${note}`),
  );
  console.log(
    [
      '',
      ...systems.map((s) => s.description),
      transport,
      ...(warning === undefined ? [] : [`warning: ${warning}`]),
      ...skipped,
      ...notes,
    ].join('\n'),
  );
  if (options.json) {
    const results = measurements.map(({ summary, ...rest }) => ({ ...rest, ...summary }));
    const { count: n, valueBytes, warmupCount } = options;
    const described = systems.map((s) => ({ system: s.label, description: s.description }));
    console.log(
      JSON.stringify({
        bench: 'raft-writes',
        n,
        valueBytes,
        warmupCount,
        machine,
        systems: described,
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
  readonly p50: number;
  readonly p99: number;
  readonly serverCpuPerWrite: number;
}

/** Per concurrency, the median over alternating rounds of each round's ratio (bench/stats.ts). */
function ratioRows(measurements: readonly Measurement[]): Ratio[] {
  const of = (system: string): Measurement[] => measurements.filter((m) => m.system === system);
  const levels = [...new Set(measurements.map((m) => m.concurrency))];
  return levels.flatMap((concurrency) => {
    const pair = (value: (m: Measurement) => number) =>
      pairedRatios(of('secretd'), of('etcd'), concurrency, value);
    const throughput = pair((m) => m.summary.throughputPerSec);
    if (throughput.rounds.length === 0) return [];
    return [
      {
        concurrency,
        throughput: throughput.median,
        throughputRounds: throughput.rounds,
        p50: pair((m) => m.summary.p50Ms).median,
        p99: pair((m) => m.summary.p99Ms).median,
        serverCpuPerWrite: pair((m) => m.serverCpuMsPerWrite).median,
      },
    ];
  });
}

let exitCode: number;
try {
  exitCode = await main(process.argv.slice(2));
} catch (error) {
  console.error(`raft-writes failed: ${error instanceof Error ? error.message : String(error)}`);
  exitCode = 1;
}
await runCleanups();
process.exit(exitCode);
