/**
 * Raft membership follows the store, as Docker's role manager does: the store says which nodes
 * are managers; the leader moves the Raft configuration towards that, one change at a time —
 * a new manager joins as a learner, is promoted once caught up, and a demoted or removed manager
 * leaves (the leader hands over leadership first if it is the one leaving).
 */
import type { ProgressStatus } from '../../raft/core.ts';
import type { ConfChange, ConfState, MemberId } from '../../raft/types.ts';

/** A learner this close to the leader's commit index is promoted (a voter that lags a little only waits). */
export const learnerLagEntriesMax = 64;

export type MembershipAction =
  | { readonly kind: 'change'; readonly change: ConfChange }
  | { readonly kind: 'transfer'; readonly to: MemberId }
  | null;

export interface MembershipView {
  readonly self: MemberId;
  readonly conf: ConfState;
  /** Nodes the store says are managers (not removed). */
  readonly managers: ReadonlySet<string>;
  readonly progress: Readonly<Record<string, ProgressStatus>>;
  readonly commit: number;
}

export function nextMembershipAction(view: MembershipView): MembershipAction {
  const members = [...view.conf.voters, ...view.conf.learners];
  const leaving = members.filter((id) => !view.managers.has(id));
  const other = leaving.find((id) => id !== view.self);
  if (other) return { kind: 'change', change: { kind: 'remove', id: other } };
  if (leaving.includes(view.self)) {
    const successor = bestSuccessor(view);
    return successor ? { kind: 'transfer', to: successor } : null;
  }
  for (const id of view.managers) {
    if (!members.includes(id as MemberId))
      return { kind: 'change', change: { kind: 'add-learner', id: id as MemberId } };
  }
  for (const id of view.conf.learners) {
    const progress = view.progress[id];
    // Under steady writes the commit index keeps moving: "caught up" is within a few batches of it.
    // And only a learner that answers and holds entries: a new one's match is 0, which the commit
    // index of a young log (under learnerLagEntriesMax) counted as caught up, so a node that had
    // not started Raft (a worker killed as it was being promoted) became a voter, and a cluster of
    // one manager then had no quorum, nor a leader to tell the node it is a manager.
    if (
      progress &&
      progress.recentActive &&
      progress.match > 0 &&
      progress.match + learnerLagEntriesMax >= view.commit
    )
      return { kind: 'change', change: { kind: 'promote', id } };
  }
  return null;
}

/** The most caught-up voter other than self. */
export function bestSuccessor(
  view: Pick<MembershipView, 'self' | 'conf' | 'progress'>,
): MemberId | null {
  let best: MemberId | null = null;
  let bestMatch = -1;
  for (const id of view.conf.voters) {
    const match = view.progress[id]?.match ?? -1;
    if (id !== view.self && match > bestMatch) {
      best = id;
      bestMatch = match;
    }
  }
  return best;
}

/**
 * Whether the voters left after removing `removing` can still form a quorum among themselves,
 * counting only those the leader heard from recently (Docker's CanRemoveMember rule).
 */
export function quorumSurvivesRemoval(
  view: Pick<MembershipView, 'self' | 'conf' | 'progress'>,
  removing: string,
): boolean {
  const remaining = view.conf.voters.filter((id) => id !== removing);
  if (remaining.length === 0) return false;
  const reachable = remaining.filter(
    (id) => id === view.self || view.progress[id]?.recentActive === true,
  ).length;
  return reachable >= Math.floor(remaining.length / 2) + 1;
}
