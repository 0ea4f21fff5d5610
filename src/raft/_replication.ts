/**
 * The leader's side of replication for one follower: what to send next under flow control, and
 * how an append response moves the follower's progress.
 */
import { assert } from '../errors.ts';
import type { RaftLog } from './_log.ts';
import type { MessageOf } from './_messages.ts';
import type { Progress } from './_progress.ts';
import type { Entry, LogIndex, Term } from './types.ts';

export type AppendPlan =
  | {
      readonly kind: 'append';
      readonly prevIndex: LogIndex;
      readonly prevTerm: Term;
      readonly entries: readonly Entry[];
    }
  /** The entries the follower needs are compacted away. */
  | { readonly kind: 'snapshot' }
  | { readonly kind: 'nothing' };

/** The next append for a follower, or nothing when flow control holds it back or there is nothing to say. */
export function planAppend(
  log: RaftLog,
  pr: Progress,
  entriesMax: number,
  sendIfEmpty: boolean,
): AppendPlan {
  if (pr.isPaused()) return { kind: 'nothing' };
  assert(pr.next <= log.lastIndex() + 1, `next ${pr.next} is past the log end ${log.lastIndex()}`);
  const prevIndex = pr.next - 1;
  const prevTerm = log.term(prevIndex);
  const last = Math.min(log.lastIndex(), prevIndex + entriesMax);
  const entries = prevTerm === undefined ? undefined : log.slice(pr.next, last + 1);
  if (prevTerm === undefined || entries === undefined) return { kind: 'snapshot' };
  if (entries.length === 0 && !sendIfEmpty) return { kind: 'nothing' };
  return { kind: 'append', prevIndex, prevTerm, entries: Object.freeze(entries) };
}

/**
 * Apply an append response to the follower's progress:
 *   'retry'     rejected: `next` moved back, probe again;
 *   'advanced'  the follower holds more (or a probe was confirmed): try to commit, send more;
 *   'stale'     tells nothing new (duplicate, reordered, or about an earlier probe).
 */
export function recordAppendResponse(
  log: RaftLog,
  pr: Progress,
  m: MessageOf<'append-response'>,
): 'retry' | 'advanced' | 'stale' {
  if (m.reject) {
    let probeIndex = m.rejectHint ?? m.index;
    // The follower's entry at the hint has term T: none of our entries of a newer term up to there can match.
    if (m.rejectHintTerm !== undefined)
      probeIndex = log.findConflictByTerm(probeIndex, m.rejectHintTerm).index;
    return pr.maybeDecrTo(m.index, probeIndex) ? 'retry' : 'stale';
  }
  const probeConfirmed = pr.state === 'probe' && pr.match === m.index;
  if (!pr.maybeUpdate(m.index) && !probeConfirmed) return 'stale';
  switch (pr.state) {
    case 'probe':
      pr.becomeReplicate();
      break;
    case 'snapshot':
      // Caught up past the compaction point (by the snapshot or otherwise): entries can follow.
      if (pr.match + 1 >= log.firstIndex()) pr.becomeReplicate();
      break;
    case 'replicate':
      pr.inflights.freeLE(m.index);
      break;
  }
  return 'advanced';
}
