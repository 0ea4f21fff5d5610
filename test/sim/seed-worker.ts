/**
 * A child process that runs simulation seeds handed to it by a pool (pool.ts) over IPC, one at a
 * time, and answers each with a summary. Each seed runs alone, so a worker's results are the same
 * as a single run's (checked by simulation.test.ts).
 */
import type { SeedJob, SeedOutcome } from './pool.ts';
import { formatFailure, runSimulation } from './simulator.ts';

process.on('message', (job: SeedJob) => {
  void run(job);
});

async function run(job: SeedJob): Promise<void> {
  const started = performance.now();
  const result = await runSimulation(job.seed, {
    variant: job.variant,
    ...(job.faultMs === undefined ? {} : { faultMs: job.faultMs }),
  });
  const outcome: SeedOutcome = {
    seed: job.seed,
    failure: result.failure,
    report: result.failure === null ? null : formatFailure(result, replayCommand(job)),
    stats: result.stats,
    traceHash: result.traceHash,
    wallMs: performance.now() - started,
  };
  process.send!(outcome);
}

export function replayCommand(job: SeedJob): string {
  const faultMs = job.faultMs === undefined ? '' : ` SIM_FAULT_MS=${job.faultMs}`;
  if (job.variant === null)
    return `SIM_SEED=${job.seed}${faultMs} bun test test/sim/simulation.test.ts`;
  return `SIM_SEED=${job.seed} SIM_VARIANT=${job.variant}${faultMs} bun test test/sim/broken-variants.test.ts`;
}
