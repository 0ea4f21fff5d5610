/**
 * The deterministic simulation in the normal suite: seeds 1-500 (each a different cluster size,
 * fault mix and workload, see options.ts) and a few fresh random seeds, run across this machine's
 * cores; then checks that the runs really exercised what the fault model claims.
 *
 * Replay one seed, with its whole trace:  SIM_SEED=1234 SIM_TRACE=1 bun test test/sim/simulation.test.ts
 */
import { describe, expect, test } from 'bun:test';
import { runSeeds, type SeedOutcome } from './pool.ts';
import { replayCommand } from './seed-worker.ts';
import { formatFailure, runSimulation, type SimStats } from './simulator.ts';

const fixedSeeds = Array.from({ length: 500 }, (_, i) => i + 1);
const freshSeeds = Array.from(crypto.getRandomValues(new Uint32Array(5)));
const replaySeed = process.env['SIM_SEED'];
const faultMs =
  process.env['SIM_FAULT_MS'] === undefined ? undefined : Number(process.env['SIM_FAULT_MS']);

if (replaySeed !== undefined) {
  test(`simulation seed ${replaySeed} keeps every invariant (replay)`, async () => {
    const seed = Number(replaySeed);
    const trace =
      process.env['SIM_TRACE'] === '1' ? (line: string) => console.log(line) : undefined;
    const result = await runSimulation(seed, {
      ...(faultMs === undefined ? {} : { faultMs }),
      ...(trace ? { onTrace: trace } : {}),
    });
    if (result.failure !== null)
      console.log(
        formatFailure(
          result,
          replayCommand({ seed, variant: null, ...(faultMs === undefined ? {} : { faultMs }) }),
        ),
      );
    else
      console.log(
        `seed ${seed}: ok, trace hash ${result.traceHash}, ${JSON.stringify(result.stats)}`,
      );
    expect(result.failure).toBeNull();
  }, 120_000);
} else {
  describe('deterministic simulation', () => {
    const outcomes: SeedOutcome[] = [];

    test(`seeds 1-${fixedSeeds.length} and ${freshSeeds.length} fresh seeds keep every invariant, with linearizable histories`, async () => {
      console.log(`simulation: fresh seeds this run: ${freshSeeds.join(', ')}`);
      const started = performance.now();
      outcomes.push(
        ...(await runSeeds([...fixedSeeds, ...freshSeeds], {
          ...(faultMs === undefined ? {} : { faultMs }),
        })),
      );
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `simulation: ${outcomes.length} seeds in ${seconds.toFixed(1)}s (${(outcomes.length / seconds).toFixed(1)} seeds/s)`,
      );
      const failed = outcomes.filter((o) => o.failure !== null).sort((a, b) => a.seed - b.seed);
      for (const outcome of failed) console.log(outcome.report);
      expect(failed.map((o) => `seed ${o.seed}: ${o.failure!.invariant}`)).toEqual([]);
    }, 300_000);

    test('the runs exercise every fault of the fault model', () => {
      const fixed = outcomes.filter((o) => o.seed <= fixedSeeds.length);
      expect(fixed.length).toBe(fixedSeeds.length);
      const total = (key: keyof SimStats): number =>
        fixed.reduce((sum, o) => sum + o.stats[key], 0);
      // A simulator that silently stopped injecting a fault would still pass: these floors (about a
      // quarter of what seeds 1-500 give today) make that a failure instead.
      const floors: Partial<Record<keyof SimStats, number>> = {
        leaderChanges: 600,
        crashes: 800,
        powerLosses: 500,
        ioErrors: 5,
        tornFiles: 50,
        zeroTails: 800,
        lostBytes: 30_000,
        lostNameChanges: 10,
        walTruncates: 100,
        snapshotsInstalled: 90,
        figure8Completed: 20,
        impostorMessages: 1_000,
        dropped: 15_000,
        acknowledged: 4_000,
        unknown: 200,
        reads: 4_000,
        checkedOps: 9_000,
      };
      const coverage = Object.fromEntries(
        Object.keys(floors).map((key) => [key, total(key as keyof SimStats)]),
      );
      const steps = Math.max(...fixed.map((o) => o.stats.checkerSteps));
      console.log(
        `simulation coverage over seeds 1-${fixedSeeds.length}: ${JSON.stringify(coverage)}; most linearizability search steps in one run: ${steps}`,
      );
      const short = Object.entries(floors).filter(([key, floor]) => coverage[key]! < floor!);
      expect(short.map(([key, floor]) => `${key}: ${coverage[key]} < ${floor}`)).toEqual([]);
    });

    test('a run reaches no real timer, clock or random source', async () => {
      const calls: string[] = [];
      const traps = [
        [globalThis, 'setTimeout'],
        [globalThis, 'setInterval'],
        [Date, 'now'],
        [performance, 'now'],
        [Math, 'random'],
        [crypto, 'getRandomValues'],
      ] as const;
      const originals = traps.map(([owner, name]) => {
        const original = owner[name as keyof typeof owner] as (...args: unknown[]) => unknown;
        Object.assign(owner, {
          [name]: (...args: unknown[]) => (calls.push(name), original.apply(owner, args)),
        });
        return () => Object.assign(owner, { [name]: original });
      });
      let stats: SimStats;
      try {
        stats = (await runSimulation(238)).stats;
      } finally {
        for (const restore of originals) restore();
      }
      expect(calls).toEqual([]);
      // A run that goes through crashes, power losses and snapshot installs.
      expect([stats.crashes > 0, stats.powerLosses > 0, stats.snapshotsInstalled > 0]).toEqual([
        true,
        true,
        true,
      ]);
    }, 60_000);

    test('a seed replays exactly: the same trace hash in this process as in a worker', async () => {
      const seed = 7;
      const inWorker = outcomes.find((o) => o.seed === seed)!;
      const here = await runSimulation(seed);
      const again = await runSimulation(seed);
      expect([here.traceHash, again.traceHash]).toEqual([inWorker.traceHash, inWorker.traceHash]);
      expect(here.stats).toEqual(inWorker.stats);
    }, 60_000);
  });
}
