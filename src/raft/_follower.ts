/**
 * A follower's side of replication: what it does with an append or a snapshot from its leader,
 * and what it answers. The answer is sent only after the Ready carrying the resulting log changes
 * is persisted, so an acknowledgement always speaks of durable entries.
 */
import type { RaftLog } from './_log.ts';
import type { MessageOf } from './_messages.ts';
import type { LogIndex, Term } from './types.ts';

export type AppendAnswer =
  | { readonly reject: false; readonly index: LogIndex }
  | {
      readonly reject: true;
      readonly index: LogIndex;
      readonly rejectHint: LogIndex;
      readonly rejectHintTerm?: Term;
    };

export function answerAppend(log: RaftLog, m: MessageOf<'append'>): AppendAnswer {
  // Everything up to our commit index matches any leader's log (§5.4): say where we are.
  if (m.prevIndex < log.committed) return { reject: false, index: log.committed };
  const lastNew = log.maybeAppend(m.prevIndex, m.prevTerm, m.entries);
  if (lastNew !== null) {
    // Only up to what this message vouches for: later entries we hold may not be the leader's.
    log.commitTo(Math.min(m.commit, lastNew));
    return { reject: false, index: lastNew };
  }
  // Tell the leader where a match may be, skipping entries of terms newer than its prevTerm.
  const hint = log.findConflictByTerm(Math.min(m.prevIndex, log.lastIndex()), m.prevTerm);
  return {
    reject: true,
    index: m.prevIndex,
    rejectHint: hint.index,
    ...(hint.term === undefined ? {} : { rejectHintTerm: hint.term }),
  };
}

/** Returns whether the log was replaced by the snapshot (the caller then adopts its configuration). */
export function acceptSnapshot(log: RaftLog, m: MessageOf<'snapshot'>): boolean {
  const { index, term } = m.snapshot.meta;
  if (index <= log.committed) return false;
  if (log.matchTerm(index, term)) {
    // Our log already holds the snapshot's last entry, hence (log matching) all before it.
    log.commitTo(index);
    return false;
  }
  log.restore(m.snapshot);
  return true;
}
