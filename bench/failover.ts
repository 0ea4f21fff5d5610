/**
 * How long are secretd's writes unavailable when the leader dies? A 3-manager cluster on loopback;
 * one client writes continuously, one secret at a time, round-robin over the managers and on to
 * the next at once when one fails. Each round: SIGKILL the leader, then measure from the kill
 * to the first write (sent after the kill) that is answered 201, and to the first `GET /nodes`
 * (what `secretd node ls` prints) that names another manager as leader. Then the killed manager is
 * restarted with `secretd run` and the next round waits until the cluster is whole again.
 *
 * Docker Swarm is not measured (it would take three dockerds in their own network namespaces,
 * linked together); its documented election timeout is printed for comparison.
 *
 * Run `bun bench/failover.ts --help` for the options; bench/README.md explains the output.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { raftElectionTicks, raftTickMs } from '../src/limits.ts';
import {
  nonNegativeInteger,
  optionsOrExit,
  positiveInteger,
  readFlags,
} from './create-secrets-options.ts';
import { errorReason } from './create-outcome.ts';
import { RoundRobinWriter, type WriteAttempt } from './failover-writer.ts';
import { deferCleanup, interrupted, runEntryPoint } from './lifecycle.ts';
import { busyWarning, describeMachine, machineFacts } from './machine.ts';
import { openSecretdSession, type ClientTLSFiles, type SecretdSession } from './secretd-client.ts';
import {
  startSecretdCluster,
  type SecretdCluster,
  type SecretdManager,
} from './secretd-cluster.ts';
import { formatNumber, formatTable, percentile, type Column } from './stats.ts';

const usage = `Usage: bun bench/failover.ts [options]

Starts a 3-manager secretd on loopback and writes to it continuously, one secret at a time,
round-robin over the managers. R times: SIGKILL the leader, measure the time to the next
successful write and to a new leader in node ls, restart the killed manager, wait until the
cluster is whole. Prints each round, the median and the max.

  --rounds R             leader kills (default 5)
  --settle-seconds T     steady writing before each kill (default 2)
  --pause-ms P           pause between writes (default 0: back to back)
  --size S               bytes of random data per secret (default 64)
  --json                 also print the results as one JSON line
  --secretd-bin PATH     run this secretd executable (e.g. dist/secretd) instead of src/main.ts
`;

interface FailoverOptions {
  readonly rounds: number;
  readonly settleMs: number;
  readonly pauseMs: number;
  readonly valueBytes: number;
  readonly json: boolean;
  readonly secretdCommand: readonly string[] | undefined;
}

function parseOptions(argv: readonly string[]): FailoverOptions | undefined {
  const values = readFlags(argv, {
    rounds: { type: 'string' },
    'settle-seconds': { type: 'string' },
    'pause-ms': { type: 'string' },
    size: { type: 'string' },
    json: { type: 'boolean' },
    'secretd-bin': { type: 'string' },
  });
  if (values === undefined) return undefined;
  const bin = values['secretd-bin'];
  return {
    rounds: positiveInteger('--rounds', values.rounds ?? '5'),
    settleMs: nonNegativeInteger('--settle-seconds', values['settle-seconds'] ?? '2') * 1000,
    pauseMs: nonNegativeInteger('--pause-ms', values['pause-ms'] ?? '0'),
    valueBytes: positiveInteger('--size', values.size ?? '64'),
    json: values.json === true,
    secretdCommand: bin === undefined ? undefined : [bin],
  };
}

/** Longest a round may take to elect and to write before it is reported as failed. */
const recoveryTimeoutMs = 60_000;
/** How often GET /nodes is asked after the kill: the resolution of the node ls figure. */
const leaderPollMs = 10;
/** Above secretd's own 15 s wait for a leader, so a write fails by secretd's answer, not ours. */
const writeTimeoutMs = 20_000;

interface Round {
  readonly round: number;
  readonly killed: string;
  readonly newLeader: string;
  /** From the SIGKILL to the 201 of the first write sent after it. */
  readonly writeMs: number;
  /** From the SIGKILL to the first GET /nodes naming another leader. */
  readonly nodeListMs: number;
  /** Write attempts that failed between the kill and the first success. */
  readonly failedWrites: number;
  /** Reasons of those failures, counted. */
  readonly failures: Readonly<Record<string, number>>;
  /** From `secretd run` of the killed manager to a healthy cluster with a write through it. */
  readonly backMs: number;
}

async function main(argv: readonly string[]): Promise<number> {
  const options = optionsOrExit(usage, () => parseOptions(argv));
  console.error('Starting a 3-manager secretd…');
  const cluster = await startSecretdCluster(
    options.secretdCommand === undefined ? {} : { command: options.secretdCommand },
  );
  deferCleanup(() => cluster.stop());
  const writer = new RoundRobinWriter(cluster.managers, {
    files: cluster,
    requestTimeoutMs: writeTimeoutMs,
    valueBase64: randomBytes(options.valueBytes).toString('base64'),
    namePrefix: `failover-${Date.now().toString(36)}`,
    pauseMs: options.pauseMs,
  });
  deferCleanup(() => writer.stop());
  const startMs = performance.now();
  writer.start();
  await unlessInterrupted(throughEveryManager(writer, cluster.managers, performance.now()));
  const rounds: Round[] = [];
  let failure: string | undefined;
  for (let round = 1; round <= options.rounds && !interrupted.signal.aborted; round++) {
    await delay(options.settleMs);
    if (interrupted.signal.aborted) break;
    try {
      rounds.push(await killLeader(cluster, writer, round));
    } catch (error) {
      if (interrupted.signal.aborted) break;
      const outputs = cluster.managers.map(
        (m) => `--- ${m.name} (${m.addr}) output, last lines ---\n${m.output() || '(nothing)'}`,
      );
      failure = `round ${round} failed: ${errorReason(error)}`;
      console.error([failure, ...outputs].join('\n'));
      break;
    }
  }
  const elapsedMs = performance.now() - startMs;
  report(options, {
    rounds,
    writes: writer.written,
    failedWrites: writer.failed,
    elapsedMs,
    failure,
  });
  return failure !== undefined ? 1 : interrupted.signal.aborted ? 130 : 0;
}

async function killLeader(
  cluster: SecretdCluster,
  writer: RoundRobinWriter,
  round: number,
): Promise<Round> {
  const victim = await cluster.leader();
  const survivors = cluster.managers.filter((m) => m !== victim);
  console.error(`round ${round}: SIGKILL the leader ${victim.name}…`);
  const killedMs = performance.now();
  const exited = victim.kill();
  const failures: Record<string, number> = {};
  const stopCounting = writer.onAttempt((attempt) => {
    if (!attempt.ok && attempt.sentMs >= killedMs)
      failures[attempt.reason] = (failures[attempt.reason] ?? 0) + 1;
  });
  const written = writer.next((a) => a.ok && a.sentMs >= killedMs, {
    timeoutMs: recoveryTimeoutMs,
    what: 'successful write after the kill',
  });
  const leaderSeen = newLeaderInNodeList(survivors, cluster, {
    excludedAddr: victim.addr,
    timeoutMs: recoveryTimeoutMs,
  });
  const [write, seen] = await unlessInterrupted(Promise.all([written, leaderSeen, exited]));
  stopCounting();
  const failedWrites = Object.values(failures).reduce((sum, times) => sum + times, 0);
  console.error(
    `round ${round}: write after ${Math.round(write.answeredMs - killedMs)} ms, ${seen.leader.name} leader in node ls after ${Math.round(seen.atMs - killedMs)} ms; restarting ${victim.name}…`,
  );
  const restartMs = performance.now();
  await unlessInterrupted(victim.restart());
  await unlessInterrupted(cluster.waitHealthy({ timeoutMs: recoveryTimeoutMs }));
  await unlessInterrupted(throughEveryManager(writer, [victim], restartMs));
  return {
    round,
    killed: victim.name,
    newLeader: seen.leader.name,
    writeMs: write.answeredMs - killedMs,
    nodeListMs: seen.atMs - killedMs,
    failedWrites,
    failures,
    backMs: performance.now() - restartMs,
  };
}

/** Ctrl-C (whose SIGINT also reaches the managers) ends a wait at once rather than at its timeout. */
function unlessInterrupted<T>(promise: Promise<T>): Promise<T> {
  const { signal } = interrupted;
  if (signal.aborted) return Promise.reject(new Error('interrupted'));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new Error('interrupted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Waits until a write sent after `sinceMs` has succeeded through each of `managers`. */
async function throughEveryManager(
  writer: RoundRobinWriter,
  managers: readonly SecretdManager[],
  sinceMs: number,
): Promise<void> {
  await Promise.all(
    managers.map((m) =>
      writer.next((a: WriteAttempt) => a.ok && a.manager === m.name && a.sentMs >= sinceMs, {
        timeoutMs: recoveryTimeoutMs,
        what: `successful write through ${m.name}`,
      }),
    ),
  );
}

interface LeaderSeen {
  readonly leader: SecretdManager;
  readonly atMs: number;
}

/**
 * Asks every survivor for GET /nodes (what node ls prints) every leaderPollMs until one answer
 * names a leader other than the killed manager. A follower passes the question to the leader it
 * knows, so an answer comes only once a leader is elected and reachable.
 */
async function newLeaderInNodeList(
  survivors: readonly SecretdManager[],
  files: ClientTLSFiles,
  options: { readonly excludedAddr: string; readonly timeoutMs: number },
): Promise<LeaderSeen> {
  const sessions = new Map<SecretdManager, SecretdSession>();
  const deadlineMs = performance.now() + options.timeoutMs;
  const ask = async (manager: SecretdManager): Promise<SecretdManager | undefined> => {
    let session = sessions.get(manager);
    if (session === undefined) {
      session = await openSecretdSession(manager.url, files, { requestTimeoutMs: 2_000 });
      sessions.set(manager, session);
    }
    const answer = await session.request('GET', '/nodes');
    if (answer.status !== 200) return undefined;
    const nodes = JSON.parse(answer.body) as {
      ManagerStatus?: { Leader?: unknown; Addr?: unknown };
    }[];
    const addr = nodes.find((node) => node.ManagerStatus?.Leader === true)?.ManagerStatus?.Addr;
    if (addr === options.excludedAddr) return undefined;
    return survivors.find((m) => m.addr === addr);
  };
  try {
    while (performance.now() < deadlineMs) {
      const found = await Promise.any(
        survivors.map(
          async (m) => (await ask(m)) ?? Promise.reject(new Error('no new leader yet')),
        ),
      ).catch(() => undefined);
      if (found !== undefined) return { leader: found, atMs: performance.now() };
      await delay(leaderPollMs);
    }
    throw new Error(`no new leader in node ls within ${options.timeoutMs / 1000} s`);
  } finally {
    await Promise.all([...sessions.values()].map((s) => Promise.race([s.close(), delay(1_000)])));
  }
}

interface ReportInput {
  readonly rounds: readonly Round[];
  readonly writes: number;
  readonly failedWrites: number;
  readonly elapsedMs: number;
  readonly failure: string | undefined;
}

/** swarmkit's raft defaults, as documented in the Docker Engine API (SwarmSpec.Raft) and its code. */
const docker = { electionTick: 10, heartbeatTick: 1, tickMs: 1_000 } as const;

function report(options: FailoverOptions, input: ReportInput): void {
  const { rounds } = input;
  const machine = machineFacts();
  console.log(
    `failover: 3 managers, ${rounds.length} rounds, one write at a time round-robin over the managers; ${describeMachine(machine)}`,
  );
  const right = (title: string): Column => ({ title, align: 'right' });
  const left = (title: string): Column => ({ title, align: 'left' });
  const rows = rounds.map((r) => [
    String(r.round),
    r.killed,
    r.newLeader,
    formatNumber(r.writeMs, 0),
    formatNumber(r.nodeListMs, 0),
    String(r.failedWrites),
    formatNumber(r.backMs / 1000, 1),
  ]);
  const summary = (name: string, fraction: number): string[] => {
    const of = (pick: (r: Round) => number): number[] => rounds.map(pick).sort((a, b) => a - b);
    return [
      name,
      '',
      '',
      formatNumber(
        percentile(
          of((r) => r.writeMs),
          fraction,
        ),
        0,
      ),
      formatNumber(
        percentile(
          of((r) => r.nodeListMs),
          fraction,
        ),
        0,
      ),
      formatNumber(
        percentile(
          of((r) => r.failedWrites),
          fraction,
        ),
        0,
      ),
      formatNumber(
        percentile(
          of((r) => r.backMs),
          fraction,
        ) / 1000,
        1,
      ),
    ];
  };
  const columns = [
    left('round'),
    left('killed'),
    left('new leader'),
    right('write ms'),
    right('node ls ms'),
    right('failed writes'),
    right('back s'),
  ];
  console.log(formatTable(columns, [...rows, summary('median', 0.5), summary('max', 1)]));
  const secretdElection = `${raftElectionTicks} ticks × ${raftTickMs} ms = ${(raftElectionTicks * raftTickMs) / 1000}–${(2 * raftElectionTicks * raftTickMs) / 1000} s`;
  const dockerElection = `ElectionTick ${docker.electionTick} × TickInterval ${docker.tickMs / 1000} s = ${(docker.electionTick * docker.tickMs) / 1000}–${(2 * docker.electionTick * docker.tickMs) / 1000} s`;
  const failures = new Map<string, number>();
  for (const r of rounds)
    for (const [reason, times] of Object.entries(r.failures))
      failures.set(reason, (failures.get(reason) ?? 0) + times);
  const afterKills = rounds.reduce((sum, r) => sum + r.failedWrites, 0);
  const warning = busyWarning(machine);
  console.log(
    [
      '',
      `secretd election timeout (src/limits.ts): ${secretdElection} without a heartbeat`,
      `Docker Swarm, documented, not measured: ${dockerElection} before a follower stands for election ` +
        '(swarmkit defaults; moby sets ElectionTick to 10 × HeartbeatTick 1); about 10 s or more without a leader',
      `writes: ${input.writes} ok, ${input.failedWrites} failed (${afterKills} between a kill and the next success, the others ` +
        `to a manager that was down or restarting), in ${formatNumber(input.elapsedMs / 1000, 1)} s (${formatNumber((input.writes * 1000) / input.elapsedMs, 0)}/s)`,
      ...[...failures].map(([reason, times]) => `failed after a kill: ${times}× ${reason}`),
      ...(warning === undefined ? [] : [`warning: ${warning}`]),
      ...(input.failure === undefined ? [] : [input.failure]),
      ...(interrupted.signal.aborted ? ['interrupted: partial results'] : []),
    ].join('\n'),
  );
  if (options.json) {
    const dockerDocumented = {
      ...docker,
      electionTimeoutMs: [
        docker.electionTick * docker.tickMs,
        2 * docker.electionTick * docker.tickMs,
      ],
      measured: false,
    };
    const secretdConfigured = { electionTicks: raftElectionTicks, tickMs: raftTickMs };
    console.log(
      JSON.stringify({
        bench: 'failover',
        machine,
        rounds,
        writes: input.writes,
        failedWrites: input.failedWrites,
        secretdConfigured,
        dockerDocumented,
      }),
    );
  }
}

await runEntryPoint('failover', main);
