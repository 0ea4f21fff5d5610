/**
 * The long deterministic-simulation run (not part of the suite): many seeds across worker
 * processes, with progress, rate and every failure's replay command.
 *
 *   bun scripts/sim-long.ts [--seeds 100000] [--start 1] [--workers <cpus>] [--fault-ms 3000]
 *                           [--variant <broken variant>] [--stop-after 20]
 *
 * Seeds run from --start on; a failing seed replays with the command printed beside it. Exits 1
 * if any seed failed.
 */
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { variants, type Variant } from '../test/sim/options.ts';
import { runSeeds, type SeedOutcome } from '../test/sim/pool.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '100000' },
    start: { type: 'string', default: '1' },
    workers: { type: 'string', default: String(availableParallelism()) },
    'fault-ms': { type: 'string' },
    variant: { type: 'string' },
    'stop-after': { type: 'string', default: '20' },
  },
});

const count = positive('seeds', values.seeds);
const start = positive('start', values.start);
const workers = positive('workers', values.workers);
const stopAfter = positive('stop-after', values['stop-after']);
const faultMs =
  values['fault-ms'] === undefined ? undefined : positive('fault-ms', values['fault-ms']);
const variant = (values.variant ?? null) as Variant | null;
if (variant !== null && !variants.includes(variant))
  fail(`--variant must be one of ${variants.join(', ')}`);

const failures: SeedOutcome[] = [];
let done = 0;
const started = performance.now();
let lastReport = started;

function progress(final: boolean): void {
  const seconds = (performance.now() - started) / 1000;
  const rate = done / seconds;
  const eta = rate > 0 ? (count - done) / rate : Infinity;
  const line = `${done}/${count} seeds, ${rate.toFixed(1)} seeds/s, ${failures.length} failed, ${formatDuration(seconds)} elapsed`;
  console.log(
    final ? `sim-long: ${line}` : `sim-long: ${line}, about ${formatDuration(eta)} to go`,
  );
}

console.log(
  `sim-long: seeds ${start}-${start + count - 1} on ${workers} workers${variant === null ? '' : `, broken variant ${variant}`}${faultMs === undefined ? '' : `, ${faultMs}ms of faults per seed`}`,
);
await runSeeds(
  Array.from({ length: count }, (_, i) => start + i),
  {
    workers,
    variant,
    ...(faultMs === undefined ? {} : { faultMs }),
    onOutcome(outcome) {
      done++;
      if (outcome.failure !== null) {
        failures.push(outcome);
        console.log(
          `\nsim-long: seed ${outcome.seed} FAILED (${outcome.failure.invariant})\n${outcome.report}\n`,
        );
      }
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        progress(false);
      }
      if (failures.length >= stopAfter) {
        console.log(`sim-long: stopping after ${stopAfter} failures`);
        return false;
      }
      return true;
    },
  },
);
progress(true);
if (failures.length > 0) {
  console.log('sim-long: failed seeds, replay each with:');
  for (const outcome of failures.sort((a, b) => a.seed - b.seed))
    console.log(
      `  ${outcome
        .report!.split('\n')
        .find((line) => line.trim().startsWith('replay:'))!
        .trim()
        .slice('replay: '.length)}`,
    );
}
process.exit(failures.length > 0 ? 1 : 0);

function positive(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0)
    fail(`--${name} must be a positive integer, not ${JSON.stringify(text)}`);
  return n;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  return h > 0
    ? `${h}h${String(m).padStart(2, '0')}m`
    : m > 0
      ? `${m}m${String(s).padStart(2, '0')}s`
      : `${s}s`;
}

function fail(message: string): never {
  console.error(`sim-long: ${message}`);
  process.exit(2);
}
