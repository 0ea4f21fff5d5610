/**
 * Runs many simulation seeds across worker processes (seed-worker.ts), handing out one seed at a
 * time so that a slow seed does not hold up a whole share. Used by simulation.test.ts (both cores
 * of a CI machine) and scripts/sim-long.ts.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Variant } from './options.ts';
import type { SimFailure, SimStats } from './simulator.ts';

export interface SeedJob {
  readonly seed: number;
  readonly variant: Variant | null;
  readonly faultMs?: number;
}

export interface SeedOutcome {
  readonly seed: number;
  readonly failure: SimFailure | null;
  /** The failure report (seed, replay command, options, trace tail), or null. */
  readonly report: string | null;
  readonly stats: SimStats;
  readonly traceHash: number;
  readonly wallMs: number;
}

export interface PoolOptions {
  /** Default: the number of CPUs. */
  readonly workers?: number;
  readonly variant?: Variant | null;
  readonly faultMs?: number;
  /** Called as each seed finishes; return false to stop handing out seeds (the pool drains). */
  readonly onOutcome?: (outcome: SeedOutcome) => boolean | void;
}

const workerPath = join(import.meta.dir, 'seed-worker.ts');

/** Runs `seeds`; resolves with their outcomes in completion order. */
export async function runSeeds(
  seeds: Iterable<number>,
  options: PoolOptions = {},
): Promise<SeedOutcome[]> {
  const iterator = seeds[Symbol.iterator]();
  const outcomes: SeedOutcome[] = [];
  let stopped = false;
  const next = (): SeedJob | null => {
    if (stopped) return null;
    const step = iterator.next();
    if (step.done === true) return null;
    return {
      seed: step.value,
      variant: options.variant ?? null,
      ...(options.faultMs === undefined ? {} : { faultMs: options.faultMs }),
    };
  };
  const workers = Math.max(1, options.workers ?? availableParallelism());
  await Promise.all(
    Array.from({ length: workers }, async () => {
      let job = next();
      if (job === null) return;
      let current: SeedJob = job;
      let settle: () => void = () => {};
      let fail: (error: Error) => void = () => {};
      const done = new Promise<void>((resolve, reject) => ([settle, fail] = [resolve, reject]));
      let stderr = '';
      const child = Bun.spawn([process.execPath, workerPath], {
        stdio: ['ignore', 'inherit', 'pipe'],
        ipc(outcome: SeedOutcome) {
          outcomes.push(outcome);
          if (options.onOutcome?.(outcome) === false) stopped = true;
          const following = next();
          if (following === null) {
            child.kill();
            settle();
            return;
          }
          current = following;
          child.send(following);
        },
        onExit(_subprocess, exitCode, signalCode) {
          if (signalCode === 'SIGTERM' || exitCode === 0) return settle();
          const output = stderr.split('\n').slice(-30).join('\n');
          fail(
            new Error(
              `Simulation worker died (exit ${exitCode}, signal ${signalCode}) running seed ${current.seed}:\n${output}`,
            ),
          );
        },
      });
      void (async () => {
        // The last few KiB only: enough for the error that killed it.
        for await (const chunk of child.stderr)
          stderr = (stderr + new TextDecoder().decode(chunk)).slice(-16_384);
      })();
      child.send(current);
      await done;
    }),
  );
  return outcomes;
}
