/**
 * The checks at the end of a run, once every fault is healed and the members have converged:
 *
 *   state-divergence  every member's store is byte-identical (Store.snapshot());
 *   durability        every acknowledged write is in the store with the outcome its client was told
 *                     (the store remembers each request id's outcome for de-duplication);
 *   linearizability   the whole client history, key by key.
 */
import type { ApplyResult } from '../../src/node/store/index.ts';
import type { Invariant } from './checkers.ts';
import { checkByKey, type Verdict } from './linearizability.ts';
import type { Member } from './member.ts';
import { modelFor, type SimOperation, withoutUnobservedWrites } from './models.ts';
import { describeInput, outcomeOf } from './objects.ts';
import type { Workload } from './workload.ts';

export interface FinalVerdict {
  readonly invariant: Invariant;
  readonly message: string;
}

export interface FinalChecks {
  readonly verdict: FinalVerdict | null;
  /** Operations checked for linearizability, and the search steps it took. */
  readonly checkedOps: number;
  readonly checkerSteps: number;
}

export function finalChecks(members: readonly Member[], workload: Workload): FinalChecks {
  const verdict = sameStores(members) ?? acknowledgedWritesKept(members[0]!, workload);
  if (verdict !== null) return { verdict, checkedOps: 0, checkerSteps: 0 };
  const { ops, phantom } = workload.checkedHistory();
  if (phantom !== null) {
    const message = `write ${phantom.requestId} (${phantom.key}) was refused as not having happened, yet a member applied it`;
    return { verdict: { invariant: 'linearizability', message }, checkedOps: 0, checkerSteps: 0 };
  }
  const checked = withoutUnobservedWrites(ops);
  // SIM_CHECK_STEPS raises the checker's search budget, to settle a seed that ran out of it.
  const { failed, steps } = checkByKey(
    checked,
    modelFor,
    process.env.SIM_CHECK_STEPS ? { stepsMax: Number(process.env.SIM_CHECK_STEPS) } : {},
  );
  const result = { checkedOps: checked.length, checkerSteps: steps };
  if (failed === null || failed.verdict.ok) return { verdict: null, ...result };
  return {
    verdict: {
      invariant: 'linearizability',
      message: describeFailure(failed.key, failed.verdict, checked),
    },
    ...result,
  };
}

function sameStores(members: readonly Member[]): FinalVerdict | null {
  const text = new TextDecoder();
  const first = text.decode(members[0]!.node!.store.snapshot());
  for (const member of members.slice(1)) {
    if (text.decode(member.node!.store.snapshot()) !== first) {
      return {
        invariant: 'state-divergence',
        message: `after converging, ${member.id} and ${members[0]!.id} hold different stores`,
      };
    }
  }
  return null;
}

function acknowledgedWritesKept(member: Member, workload: Workload): FinalVerdict | null {
  const body = JSON.parse(new TextDecoder().decode(member.node!.store.snapshot())) as {
    requests: [string, ApplyResult][];
  };
  const remembered = new Map(body.requests);
  for (const op of workload.history) {
    if (op.status !== 'ok' || op.requestId === null || op.result === null) continue;
    const stored = remembered.get(op.requestId);
    const told = outcomeOf(op.result);
    if (stored === undefined || outcomeOf(stored) !== told) {
      const found =
        stored === undefined ? 'is not in the store' : `is in the store as ${outcomeOf(stored)}`;
      return {
        invariant: 'durability',
        message: `write ${op.requestId} (${op.key}) was acknowledged as ${told} but ${found}`,
      };
    }
  }
  return null;
}

function describeFailure(
  key: string,
  verdict: Extract<Verdict<SimOperation>, { ok: false }>,
  checked: readonly SimOperation[],
): string {
  const ops = checked.filter((op) => op.key === key);
  // The operations around the failure: those overlapping the ones that could not be placed.
  const from = Math.min(...verdict.stuck.map((op) => op.call));
  const to = Math.max(...verdict.stuck.map((op) => (op.output === undefined ? op.call : op.ret)));
  const around = ops
    .filter((op) => (op.output === undefined || op.ret >= from) && op.call <= to)
    .slice(0, 40);
  const verdictLine =
    verdict.reason === 'budget'
      ? `the search for a linearization of ${key} (${ops.length} operations) ran out of its budget after ${verdict.steps} steps: undecided, not proven wrong (replay with SIM_CHECK_STEPS=100000000 to settle it)`
      : `the history of ${key} (${ops.length} operations) is not linearizable (found after ${verdict.steps} steps)`;
  return [
    verdictLine,
    `the longest order found that the model accepts ends with:`,
    ...verdict.longest.slice(-6).map((op) => `  ${formatOp(op)}`),
    `and none of these can come next:`,
    ...verdict.stuck.map((op) => `  ${formatOp(op)}`),
    `operations overlapping those (SIM_TRACE=1 shows every one):`,
    ...around.map((op) => `  ${formatOp(op)}`),
  ].join('\n');
}

function formatOp(op: SimOperation): string {
  const input = describeInput(op.input);
  const output = op.output === undefined ? '? (unknown outcome)' : JSON.stringify(op.output);
  return `client ${op.client} [${op.call}, ${op.ret === Infinity || op.output === undefined ? '∞' : op.ret}] ${input} -> ${output}`;
}
