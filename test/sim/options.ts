/**
 * Everything a run does is derived from its seed: the cluster size, timing, and a "swarm" of fault
 * settings (each seed turns some faults off entirely and weights the rest differently, so that
 * rare combinations get runs of their own). A failure report prints the whole derived set.
 *
 * Variants are the deliberately broken builds of the self-test (broken-variants.test.ts): the same
 * runs with one bug switched on.
 */
import type { UnsafeTestingMutations } from '../../src/raft/core.ts';
import type { NemesisAction, NemesisOptions, PartitionShape } from './nemesis.ts';
import { Prng } from './prng.ts';
import type { DiskFaults } from './sim-fs.ts';
import type { NetworkFaults } from './sim-network.ts';
import type { WorkloadOptions } from './workload.ts';

export type Variant =
  | 'lying-fsync'
  | 'forget-vote'
  | 'commit-old-term'
  | 'truncate-committed'
  | 'stale-read'
  | 'accept-non-members';
export const variants: readonly Variant[] = [
  'lying-fsync',
  'forget-vote',
  'commit-old-term',
  'truncate-committed',
  'stale-read',
  'accept-non-members',
];

export interface SimOptions {
  readonly seed: number;
  readonly variant: Variant | null;
  readonly members: number;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly snapshotEntries: number;
  readonly walSegmentBytes: number;
  readonly maxEntriesPerMessage: number;
  readonly maxInflightMessages: number;
  /** Members' clocks run at rates in [1 - drift, 1 + drift]. */
  readonly clockDrift: number;
  readonly network: NetworkFaults;
  /** After the fault phase, for the members to converge. */
  readonly calmNetwork: NetworkFaults;
  readonly disk: DiskFaults;
  readonly nemesis: NemesisOptions;
  readonly workload: WorkloadOptions;
  /** Length of the fault phase, then the most the heal phase may take, in simulated ms. */
  readonly faultMs: number;
  readonly settleMs: number;
  readonly mutations: UnsafeTestingMutations;
}

/** Settings a caller may force (the long runner and the tests shorten or lengthen runs). */
export interface SimOverrides {
  readonly faultMs?: number;
  readonly variant?: Variant | null;
}

export function deriveOptions(seed: number, overrides: SimOverrides = {}): SimOptions {
  const prng = new Prng(seed).fork('options');
  const on = (p: number): boolean => prng.chance(p);
  const weight = (p: number): number => (on(p) ? prng.between(0.2, 1) : 0);
  const variant = overrides.variant ?? null;
  const tickMs = 10;
  const electionTicks = 10;
  const electionMs = tickMs * electionTicks;

  const network: NetworkFaults = {
    delayMs: [0.2, prng.between(1, 4)],
    reorderRate: on(0.5) ? prng.between(0, 0.2) : 0,
    reorderMs: prng.between(5, 3 * electionMs),
    dropRate: on(0.6) ? prng.between(0, 0.2) : 0,
    duplicateRate: on(0.4) ? prng.between(0, 0.1) : 0,
  };
  const disk: DiskFaults = {
    opMs: [0.01, prng.between(0.05, 0.5)],
    syncMs: [0.1, prng.between(0.5, 8)],
    spikeRate: on(0.5) ? prng.between(0, 0.02) : 0,
    spikeMs: prng.between(10, 2 * electionMs),
    syncErrorRate: on(0.2) ? prng.between(0, 0.002) : 0,
    lyingFsync: variant === 'lying-fsync',
    crashKeep: { none: prng.between(0, 1), all: prng.between(0, 1), prefix: prng.between(0.2, 1) },
    tornRate: prng.between(0, 0.6),
  };
  const actions: Record<NemesisAction, number> = {
    partition: weight(0.8),
    flap: weight(0.4),
    heal: prng.between(0.3, 1),
    crash: weight(0.8),
    'crash-leader': weight(0.7),
    'crash-all': on(0.3) ? prng.between(0.02, 0.15) : 0,
    'crash-mid-io': weight(0.6),
    'figure-8': 0,
    impostor: 0,
    restart: weight(0.3),
    pause: weight(0.5),
    transfer: weight(0.3),
    'slow-disk': weight(0.3),
  };
  const shapes: Record<PartitionShape, number> = {
    majority: weight(0.7),
    isolate: weight(0.6),
    'isolate-leader': weight(0.7),
    bridge: weight(0.5),
    'one-way': weight(0.4),
  };
  if (Object.values(shapes).every((w) => w === 0)) shapes.majority = 1;
  const longRestarts = on(0.3);
  // Leader churn: some runs change leaders every few heartbeats, which is what it takes to leave
  // uncommitted entries of several terms scattered over the members (Raft's figure 8).
  const churn = on(0.25);
  if (churn) {
    actions['crash-leader'] = prng.between(0.5, 1);
    actions.partition = prng.between(0.5, 1);
    shapes['isolate-leader'] = prng.between(0.5, 1);
    shapes.majority = prng.between(0.2, 1);
  }
  // Some runs lead the cluster into Raft's figure 8; that takes one entry per message.
  const figure8 = on(0.2);
  if (figure8) actions['figure-8'] = prng.between(0.5, 2);
  // Drawn apart, so that adding the impostor left every other setting of a seed as it was.
  const impostor = new Prng(seed).fork('impostor');
  if (impostor.chance(0.4)) actions.impostor = impostor.between(0.2, 1);
  const nemesis: NemesisOptions = {
    intervalMs: churn
      ? [electionMs / 10, prng.between(0.5, 1.5) * electionMs]
      : [electionMs / 5, prng.between(1, 5) * electionMs],
    actions,
    shapes,
    restartMs: [
      1,
      longRestarts && !churn
        ? prng.between(2, 10) * electionMs
        : prng.between(0.1, 1.5) * electionMs,
    ],
    powerLossRate: prng.between(0.3, 1),
    pauseMs: [electionMs / 4, prng.between(1, 4) * electionMs],
    crashAfterVoteRate: on(0.6) ? prng.between(0.1, 0.6) : 0,
    crashAfterAppendRate: on(0.3) ? prng.between(0, 0.02) : 0,
    crashAfterReadRate: on(0.3) ? prng.between(0, 0.05) : 0,
  };
  const workload: WorkloadOptions = {
    clients: prng.intBetween(2, 8),
    nodeRegisters: prng.intBetween(0, 2),
    secretNames: prng.intBetween(1, 3),
    mix: {
      write: prng.between(0.5, 1),
      read: prng.between(0.3, 1),
      create: prng.between(0, 0.4),
      remove: prng.between(0, 0.3),
      exists: prng.between(0, 0.3),
    },
    thinkMs: [0, prng.between(2, 30)],
    attemptTimeoutMs: prng.between(1, 5) * electionMs,
    attemptsMax: prng.intBetween(2, 6),
    retrySameRate: prng.between(0, 1),
    refineByApplies: on(0.75),
    stickiness: on(0.6) ? prng.between(0.5, 1) : 0,
  };
  return {
    seed,
    variant,
    members: on(0.6) ? 3 : 5,
    tickMs,
    electionTicks,
    heartbeatTicks: prng.intBetween(1, 3),
    snapshotEntries: prng.intBetween(3, 60),
    walSegmentBytes: prng.intBetween(512, 16 * 1024),
    maxEntriesPerMessage: figure8 ? 1 : on(0.5) ? prng.intBetween(1, 4) : 256,
    maxInflightMessages: figure8 ? 1 : on(0.5) ? prng.intBetween(1, 4) : 64,
    clockDrift: on(0.5) ? prng.between(0, 0.2) : 0,
    network,
    calmNetwork: { delayMs: [0.2, 2], reorderRate: 0, reorderMs: 0, dropRate: 0, duplicateRate: 0 },
    disk,
    nemesis,
    workload,
    faultMs: overrides.faultMs ?? 3000,
    settleMs: 60 * electionMs,
    mutations: {
      forgetVote: variant === 'forget-vote',
      commitOldTermByCount: variant === 'commit-old-term',
      truncateUncommittedOnElection: variant === 'truncate-committed',
      localReads: variant === 'stale-read',
      acceptNonMembers: variant === 'accept-non-members',
    },
  };
}
