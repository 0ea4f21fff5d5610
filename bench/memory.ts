/**
 * Memory held per byte of secret values (issue 17's bar: the manager's RSS at most 1.5 × the bytes
 * of values held, plus a fixed base). Starts one manager, reads its RSS with an empty store (the
 * base), creates secrets of `--size` bytes until `--total` bytes of values are held, and prints,
 * from its GET /secretd/metrics: RSS, bytes of values held, RSS − base over values, the WAL bytes
 * written, the Raft indexes (whether a snapshot has been taken) and the snapshot sizes; then the
 * same once RSS has settled, idle (the creates' garbage collected and its pages given back: read
 * every 500 ms for at least 10 s and 5 s longer than the allocator keeps freed pages, until 2 s
 * of readings lie within 1%). RSS is not distorted by a busy
 * machine, so this may run anywhere.
 *
 *   bun bench/memory.ts [--total 150000000] [--size 65536] [--concurrency 4] [--secretd-bin dist/secretd]
 */
import { randomBytes } from 'node:crypto';
import { allocatorEnv } from '../src/cmd/allocator.ts';
import { optionsOrExit, positiveInteger, readFlags } from './create-secrets-options.ts';
import { scrape, type Scrape } from './metrics-scrape.ts';
import { openSecretdSession } from './secretd-client.ts';
import { startSecretdCluster } from './secretd-cluster.ts';

const usage = `Usage: bun bench/memory.ts [options]

Starts one secretd manager, creates secrets until the given bytes of values are held, and prints
its RSS against those bytes (from GET /secretd/metrics): empty, during, at the end, and settled.

  --total B              bytes of secret values to hold (default 150000000)
  --size S               bytes of random data per secret (default 65536)
  --concurrency C        concurrent creates (default 4)
  --secretd-bin PATH     run this secretd executable (e.g. dist/secretd) instead of src/main.ts
`;

interface MemoryOptions {
  readonly total: number;
  readonly size: number;
  readonly concurrency: number;
  readonly command: readonly string[] | undefined;
}

/** Undefined for --help. */
function parseOptions(argv: readonly string[]): MemoryOptions | undefined {
  const values = readFlags(argv, {
    total: { type: 'string' },
    size: { type: 'string' },
    concurrency: { type: 'string' },
    'secretd-bin': { type: 'string' },
  });
  if (values === undefined) return undefined;
  const bin = values['secretd-bin'];
  return {
    total: positiveInteger('--total', values.total ?? '150000000'),
    size: positiveInteger('--size', values.size ?? '65536'),
    concurrency: positiveInteger('--concurrency', values.concurrency ?? '4'),
    command: bin === undefined ? undefined : [bin],
  };
}

const { total, size, concurrency, command } = optionsOrExit(usage, () =>
  parseOptions(process.argv.slice(2)),
);
const count = Math.ceil(total / size);

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const line = (label: string, s: Scrape): string => {
  const rss = s.get('secretd_process_resident_memory_bytes') ?? Number.NaN;
  const held = s.get('secretd_store_objects{kind="secret_value_bytes"}') ?? Number.NaN;
  return `${label}: RSS ${mb(rss)}, values held ${mb(held)}, secrets ${s.get('secretd_store_objects{kind="secrets"}')}, applied ${s.get('secretd_raft{index="applied"}')}, snapshot at ${s.get('secretd_raft{index="snapshot"}')}, WAL written ${mb(s.get('secretd_wal_written_bytes_total') ?? Number.NaN)}`;
};

const cluster = await startSecretdCluster({ managers: 1, ...(command ? { command } : {}) });
try {
  const [manager] = cluster.managers;
  const session = await openSecretdSession(manager!.url, cluster, { requestTimeoutMs: 60_000 });
  const base = await scrape(session);
  console.log(`memory: ${count} creates of ${size} B (${mb(count * size)}), C=${concurrency}`);
  console.log(line('empty', base));
  const run = Math.floor(performance.timeOrigin).toString(36);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const body = JSON.stringify({
        Name: `mem-${run}-${i}`,
        Data: randomBytes(size).toString('base64'),
        Labels: {},
      });
      const answer = await session.request('POST', '/secrets/create', body);
      if (answer.status !== 201)
        throw new Error(`Create ${i} answered ${answer.status}: ${answer.body.slice(0, 200)}`);
      if ((i + 1) % Math.max(1, Math.floor(count / 5)) === 0)
        console.log(line(`after ${i + 1}`, await scrape(session)));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const end = await scrape(session);
  console.log(line('end', end));
  const baseRss = base.get('secretd_process_resident_memory_bytes') ?? Number.NaN;
  const held = end.get('secretd_store_objects{kind="secret_value_bytes"}') ?? Number.NaN;
  const ratios = (s: Scrape): string => {
    const rss = s.get('secretd_process_resident_memory_bytes') ?? Number.NaN;
    return `RSS/values: ${(rss / held).toFixed(2)}; (RSS − empty RSS)/values: ${((rss - baseRss) / held).toFixed(2)} (bar: ≤ 1.5 over a fixed base)`;
  };
  console.log(`end ${ratios(end)}`);
  // Idle, the garbage of the creates is collected and its pages returned over several seconds, in
  // steps with pauses between them: RSS is read every 500 ms for at least 10 s, and 5 s more than
  // the allocator keeps freed pages (allocatorEnv's MIMALLOC_PURGE_DELAY, which a serving secretd
  // gives itself), then until the last 2 s of readings lie within 1% of each other (at most 20 s
  // more). Stopping at the first reading no lower than the one before, as this did until
  // 2026-12-06, could stop on a pause between two steps: 1.19-1.87 over six runs against
  // 1.16-1.17 read 30 s long.
  const purgeDelayMs = Number(allocatorEnv.MIMALLOC_PURGE_DELAY ?? 0);
  const readingsMin = Math.max(20, Math.ceil((purgeDelayMs + 5_000) / 500));
  let settled = end;
  const recent: number[] = [];
  for (let i = 1; i <= readingsMin + 40; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    settled = await scrape(session);
    recent.push(settled.get('secretd_process_resident_memory_bytes') ?? 0);
    if (recent.length > 4) recent.shift();
    const flat = recent.length === 4 && Math.min(...recent) >= Math.max(...recent) * 0.99;
    if (i >= readingsMin && flat) break;
  }
  console.log(line('settled', settled));
  console.log(`settled ${ratios(settled)}`);
  const snapshots = end.get('secretd_snapshot_bytes_count') ?? 0;
  console.log(
    `snapshots sealed or installed: ${snapshots}, ${mb(end.get('secretd_snapshot_bytes_sum') ?? 0)} in all`,
  );
  await session.close();
} finally {
  await cluster.stop();
}
