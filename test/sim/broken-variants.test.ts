/**
 * The simulator's self-test: deliberately broken builds, each of which it must catch within 200
 * seeds, by the invariant that bug breaks. A checker that never fails proves nothing; these show
 * that a green simulation run means something.
 *
 *   lying-fsync         the disk acknowledges fsync without making anything durable (a reply
 *                       before fsync): a member forgets terms, votes and acknowledged entries;
 *   forget-vote         a member's vote is not kept across a restart (RaftCore
 *                       unsafeTestingMutations.forgetVote): it can vote twice in one term;
 *   commit-old-term     a leader commits entries of earlier terms by counting replicas (Raft
 *                       §5.4.2, figure 8; unsafeTestingMutations.commitOldTermByCount);
 *   truncate-committed  a new leader drops the entries after its commit index, though its
 *                       predecessor may have committed them (unsafeTestingMutations
 *                       .truncateUncommittedOnElection);
 *   stale-read          every member answers reads from its own state, without ReadIndex
 *                       (unsafeTestingMutations.localReads): only the linearizability checker can
 *                       see this one;
 *   accept-non-members  members step messages from ids outside the configuration
 *                       (unsafeTestingMutations.acceptNonMembers): the impostor takes over.
 *
 * Replay one:  SIM_SEED=2 SIM_VARIANT=commit-old-term SIM_TRACE=1 bun test test/sim/broken-variants.test.ts
 */
import { describe, expect, test } from 'bun:test';
import type { Invariant } from './checkers.ts';
import { type Variant, variants } from './options.ts';
import { replayCommand } from './seed-worker.ts';
import { formatFailure, runSimulation, type SimResult } from './simulator.ts';

const seedsMax = 200;

/** What each bug must be caught as: the invariants it breaks first. */
const expected: Readonly<Record<Variant, readonly Invariant[]>> = {
  // Whichever notices the lost data first: the harness, or production's own checks (a WAL that
  // refuses to open, an assertion on a commit index past the log).
  'lying-fsync': [
    'durability',
    'double-vote',
    'election-safety',
    'leader-completeness',
    'state-machine-safety',
    'restart-failed',
    'production-assertion',
  ],
  'forget-vote': ['double-vote', 'election-safety'],
  'commit-old-term': ['leader-completeness', 'state-machine-safety'],
  'truncate-committed': ['leader-completeness', 'state-machine-safety'],
  'stale-read': ['linearizability'],
  // Whichever comes first: a member in the impostor's term, or production's own checks (a forged
  // append over committed entries, a snapshot that is not a store).
  'accept-non-members': ['non-member-heard', 'production-assertion', 'unexpected-error'],
};

const replaySeed = process.env['SIM_SEED'];
const replayVariant = process.env['SIM_VARIANT'] as Variant | undefined;

if (replaySeed !== undefined && replayVariant !== undefined) {
  test(`variant ${replayVariant} is caught at seed ${replaySeed} (replay)`, async () => {
    const seed = Number(replaySeed);
    const trace =
      process.env['SIM_TRACE'] === '1' ? (line: string) => console.log(line) : undefined;
    const result = await runSimulation(seed, {
      variant: replayVariant,
      ...(trace ? { onTrace: trace } : {}),
    });
    console.log(
      result.failure === null
        ? `seed ${seed}: not caught`
        : formatFailure(result, replayCommand({ seed, variant: replayVariant })),
    );
    expect(result.failure?.invariant).toBeOneOf([...expected[replayVariant]]);
  }, 120_000);
} else {
  describe('the simulator catches a deliberately broken build', () => {
    for (const variant of variants) {
      test(`${variant}: caught within ${seedsMax} seeds, as ${expected[variant].join(' or ')}`, async () => {
        // Stops at the first seed that fails as this bug should; seeds failing otherwise (a cluster
        // the bug leaves unable to converge fails 'liveness', say) are listed, not counted.
        const otherwise: string[] = [];
        let caught: SimResult | null = null;
        for (let seed = 1; seed <= seedsMax && caught === null; seed++) {
          const result = await runSimulation(seed, { variant });
          if (result.failure === null) continue;
          if (expected[variant].includes(result.failure.invariant)) caught = result;
          else otherwise.push(`seed ${seed}: ${result.failure.invariant}`);
        }
        if (otherwise.length > 0)
          console.log(`broken variant ${variant}: also failed otherwise: ${otherwise.join(', ')}`);
        if (caught === null)
          throw new Error(
            `${variant} was not caught as ${expected[variant].join(' or ')} in seeds 1-${seedsMax}`,
          );
        const { seed, failure } = caught;
        console.log(
          `broken variant ${variant}: caught at seed ${seed} as ${failure!.invariant}: ${failure!.message.split('\n')[0]}`,
        );
        expect(failure!.invariant).toBeOneOf([...expected[variant]]);
      }, 120_000);
    }
  });
}
