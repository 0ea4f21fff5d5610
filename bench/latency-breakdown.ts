/**
 * Where the time of ONE write goes (issue 17): N creates, one at a time (C=1) or C at once, on a
 * one-node secretd and on three managers, then the stages of those writes read from each manager's GET /secretd/metrics
 * (the difference between a scrape before and one after), as a table of medians and p99s:
 *
 *   client round trip        measured here, send → answer read;
 *   server: received → …     the create stream route on the leader (body read, proposed, replied);
 *   leader: propose → …      RaftNode on the leader (queued in the core, WAL written, fsynced,
 *                            sent to followers, committed, applied);
 *   follower: message → …    RaftNode on each follower (WAL written, fsynced, ack sent);
 *   WAL fsync                each fdatasync on the leader.
 *
 * Every stage is cumulative from its start point, so the gap between two rows is what that step
 * costs. Quantiles are read off the histograms' buckets (about ×1.5 apart): good to about ±20%.
 * Also the server CPU (user + system of every manager, from /proc) per 1,000 creates, which a busy
 * machine distorts far less than wall time. At C > 1 the table shows where a slow write's time
 * went (the p99s): waiting for the loop, for the batch's fsync, or for the reply.
 *
 *   bun bench/latency-breakdown.ts [--n 2000] [--warmup 200] [--size 64] [--clusters 1,3]
 *                                  [--concurrency 1] [--secretd-bin dist/secretd]
 *
 * Run it on a quiet machine: the table is only as good as the load around it.
 */
import { randomBytes } from 'node:crypto';
import { cpuTimeMs } from './cpu-time.ts';
import {
  nonNegativeInteger,
  optionsOrExit,
  positiveInteger,
  positiveIntegers,
  readFlags,
} from './create-secrets-options.ts';
import { describeMachine, machineFacts, busyWarning } from './machine.ts';
import { histogramDelta, quantileMs, scrape, type Scrape } from './metrics-scrape.ts';
import { openSecretdSession, type SecretdSession } from './secretd-client.ts';
import { startSecretdCluster, type SecretdCluster } from './secretd-cluster.ts';
import { percentile, formatNumber } from './stats.ts';

const usage = `Usage: bun bench/latency-breakdown.ts [options]

N creates (one at a time, or C at once) on secretd clusters of the given sizes, then the stages of
those writes read from each manager's GET /secretd/metrics, as a table of medians and p99s, with
the server CPU per 1,000 creates.

  --n N                  creates measured per cluster (default 2000)
  --warmup W             creates before the measurement, not counted (default 200)
  --size S               bytes of random data per secret (default 64)
  --clusters M[,M…]      managers per cluster; one table per value (default 1,3)
  --concurrency C        creates in flight at once, each on its own stream (default 1)
  --secretd-bin PATH     run this secretd executable (e.g. dist/secretd) instead of src/main.ts
`;

interface BreakdownOptions {
  readonly n: number;
  readonly warmup: number;
  readonly size: number;
  readonly clusterSizes: readonly number[];
  readonly concurrency: number;
  readonly command: readonly string[] | undefined;
}

/** Undefined for --help. */
function parseOptions(argv: readonly string[]): BreakdownOptions | undefined {
  const values = readFlags(argv, {
    n: { type: 'string' },
    warmup: { type: 'string' },
    size: { type: 'string' },
    clusters: { type: 'string' },
    concurrency: { type: 'string' },
    'secretd-bin': { type: 'string' },
  });
  if (values === undefined) return undefined;
  const bin = values['secretd-bin'];
  return {
    n: positiveInteger('--n', values.n ?? '2000'),
    warmup: nonNegativeInteger('--warmup', values.warmup ?? '200'),
    size: positiveInteger('--size', values.size ?? '64'),
    clusterSizes: positiveIntegers('--clusters', values.clusters ?? '1,3'),
    concurrency: positiveInteger('--concurrency', values.concurrency ?? '1'),
    command: bin === undefined ? undefined : [bin],
  };
}

const { n, warmup, size, clusterSizes, concurrency, command } = optionsOrExit(usage, () =>
  parseOptions(process.argv.slice(2)),
);

interface Row {
  readonly what: string;
  readonly p50: number;
  readonly p99: number;
  readonly count: number;
}

async function measure(managers: number): Promise<{ rows: Row[]; cpuPer1000: number }> {
  const cluster: SecretdCluster = await startSecretdCluster({
    managers,
    ...(command ? { command } : {}),
  });
  try {
    const leader = await cluster.leader();
    const followers = cluster.managers.filter((m) => m !== leader);
    const open = (url: string): Promise<SecretdSession> =>
      openSecretdSession(url, cluster, { requestTimeoutMs: 30_000 });
    const leaderSession = await open(leader.url);
    const followerSessions = await Promise.all(followers.map((m) => open(m.url)));
    const run = `${Date.now().toString(36)}`;
    const value = randomBytes(size).toString('base64');
    const create = async (i: number): Promise<number> => {
      const body = JSON.stringify({ Name: `lb-${run}-${i}`, Data: value, Labels: {} });
      const start = performance.now();
      const answer = await leaderSession.request('POST', '/secrets/create', body);
      const ms = performance.now() - start;
      if (answer.status !== 201)
        throw new Error(`Create ${i} answered ${answer.status}: ${answer.body.slice(0, 200)}`);
      return ms;
    };
    /** Creates `count` (numbered from `first`, down when negative) with `concurrency` in flight. */
    const createAll = async (count: number, number: (i: number) => number): Promise<number[]> => {
      const times: number[] = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < count) times.push(await create(number(next++)));
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(count, 1)) }, worker));
      return times;
    };
    await createAll(warmup, (i) => -1 - i);
    const before = await scrape(leaderSession);
    const followersBefore = await Promise.all(followerSessions.map(scrape));
    const pids = cluster.managers.map((m) => m.pid()).filter((p): p is number => p !== undefined);
    const cpuBefore = cpuTimeMs(pids);
    const roundTrips = await createAll(n, (i) => i);
    const cpuAfter = cpuTimeMs(pids);
    const after = await scrape(leaderSession);
    const followersAfter = await Promise.all(followerSessions.map(scrape));
    roundTrips.sort((a, b) => a - b);
    const rows: Row[] = [
      {
        what: 'client: send → answer read',
        p50: percentile(roundTrips, 0.5),
        p99: percentile(roundTrips, 0.99),
        count: roundTrips.length,
      },
    ];
    const add = (what: string, b: Scrape, a: Scrape, name: string, labels: string): void => {
      const delta = histogramDelta(b, a, name, labels);
      rows.push({
        what,
        p50: quantileMs(delta, 0.5),
        p99: quantileMs(delta, 0.99),
        count: delta.count,
      });
    };
    const route = 'secretd_create_secret_stage_seconds';
    add('server: received → body read', before, after, route, 'stage="body_read"');
    add('server: received → propose called', before, after, route, 'stage="proposed"');
    const stage = 'secretd_raft_write_stage_seconds';
    for (const s of ['queued', 'appended', 'fsynced', 'sent', 'committed', 'applied'])
      add(`leader: propose → ${s}`, before, after, stage, `stage="${s}"`);
    add('server: received → reply written', before, after, route, 'stage="replied"');
    add('leader: one WAL write', before, after, 'secretd_wal_write_seconds', '');
    add('leader: one WAL fsync', before, after, 'secretd_wal_fsync_seconds', '');
    followerSessions.forEach((_, i) => {
      for (const s of ['appended', 'fsynced', 'sent'])
        add(
          `follower ${i + 1}: message → ${s === 'sent' ? 'ack sent' : s}`,
          followersBefore[i]!,
          followersAfter[i]!,
          'secretd_raft_follower_stage_seconds',
          `stage="${s}"`,
        );
    });
    await Promise.all([leaderSession, ...followerSessions].map((s) => s.close()));
    return { rows, cpuPer1000: ((cpuAfter - cpuBefore) / n) * 1000 };
  } finally {
    await cluster.stop();
  }
}

const facts = machineFacts();
console.log(
  `latency-breakdown: N=${n} (+${warmup} warm-up), S=${size} B, C=${concurrency}; ${describeMachine(facts)}`,
);
const warning = busyWarning(facts);
if (warning) console.log(warning);
for (const managers of clusterSizes) {
  const { rows, cpuPer1000 } = await measure(managers);
  console.log(
    `\n${managers} manager${managers === 1 ? '' : 's'} (stages cumulative from their start; quantiles from buckets, ±20%)`,
  );
  const width = Math.max(...rows.map((r) => r.what.length));
  console.log(
    `${'stage'.padEnd(width)}  ${'p50 ms'.padStart(8)}  ${'p99 ms'.padStart(8)}  ${'count'.padStart(7)}`,
  );
  console.log(`${'-'.repeat(width)}  --------  --------  -------`);
  for (const r of rows)
    console.log(
      `${r.what.padEnd(width)}  ${formatNumber(r.p50, 3).padStart(8)}  ${formatNumber(r.p99, 3).padStart(8)}  ${String(r.count).padStart(7)}`,
    );
  console.log(
    `server CPU (user+sys, all managers) per 1,000 creates: ${formatNumber(cpuPer1000, 0)} ms`,
  );
}
