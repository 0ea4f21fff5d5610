/** What a run reports: its failure, its counters, and the text a failing seed prints. */
import type { Invariant } from './checkers.ts';
import type { SimOptions } from './options.ts';

export interface SimFailure {
  readonly invariant: Invariant;
  readonly message: string;
  readonly atMs: number;
}

export interface SimStats {
  events: number;
  simMs: number;
  leaderChanges: number;
  crashes: number;
  powerLosses: number;
  ioErrors: number;
  snapshotsInstalled: number;
  tornFiles: number;
  zeroTails: number;
  lostBytes: number;
  lostNameChanges: number;
  walTruncates: number;
  nemesisActions: number;
  figure8Runs: number;
  figure8Completed: number;
  /** Messages the impostor (an id outside the configuration) sent. */
  impostorMessages: number;
  messages: number;
  dropped: number;
  acknowledged: number;
  unknown: number;
  failedOps: number;
  reads: number;
  stateComparisons: number;
  /** Operations in the linearizability check, and the search steps it took. */
  checkedOps: number;
  checkerSteps: number;
}

export interface SimResult {
  readonly seed: number;
  readonly options: SimOptions;
  readonly failure: SimFailure | null;
  readonly stats: SimStats;
  /** Of every event and trace line: equal for two runs of one seed. */
  readonly traceHash: number;
  readonly traceTail: readonly string[];
}

export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (cause: ${error.cause.message})` : '';
  return `${error.name}: ${error.message}${cause}`;
}

/** What a failing seed prints: the seed, how to replay it, what broke, the options and the trace's end. */
export function formatFailure(result: SimResult, replay: string): string {
  const { failure, seed, options, stats } = result;
  if (failure === null) return `seed ${seed}: ok`;
  return [
    `Simulation seed ${seed} failed: ${failure.invariant} at ${failure.atMs.toFixed(3)}ms`,
    `  ${failure.message.split('\n').join('\n  ')}`,
    `  replay: ${replay}`,
    `  options: ${JSON.stringify(options)}`,
    `  stats: ${JSON.stringify(stats)}`,
    '  trace tail:',
    ...result.traceTail.map((line) => `    ${line}`),
  ].join('\n');
}
