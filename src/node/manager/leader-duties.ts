/**
 * What a manager does because it leads, or because it stops being a member:
 *   - every round (a few ticks), the leader moves the Raft configuration one step towards the
 *     store's managers (add a learner, promote it, remove a demoted or removed manager, hand
 *     leadership over before removing itself), and turns its dispatcher and orchestrator on; any
 *     other member turns them off;
 *   - applied writes that change workloads wake the dispatcher and (coalesced) the orchestrator;
 *   - a manager the store demotes or removes waits, bounded, until Raft no longer counts it (so a
 *     demoted leader hands over first), then says it has left;
 *   - on a graceful stop, a leader hands leadership to the most caught-up voter first;
 *   - every so often, the leader prunes the records of client certificates and removed nodes whose
 *     certificates expired long ago (`prune`).
 * The decisions are pure functions below; the class only applies them to the running parts.
 */
import type { Timers } from '../../io/timers.ts';
import type { RaftStatus } from '../../raft/core.ts';
import type { ConfChange, ConfState, MemberId, Role } from '../../raft/types.ts';
import { bestSuccessor, nextMembershipAction } from '../raft-io/index.ts';
import type { Command, NodeRecord, Store } from '../store/index.ts';
import { waitUntil, whenTrue, type AdvanceEvents } from './_raft-waits.ts';

/** How long a demoted or removed manager waits for Raft to stop counting it before it stops anyway. */
export const leavingWaitMs = 10_000;
/** How long a stopping leader waits for the voter it hands leadership to. */
export const stepDownWaitMs = 2000;

/** Writes that change what the dispatcher assigns or the orchestrator plans; cluster settings, labels and secret removals do not (a secret in use cannot be removed). */
const workloadOps: ReadonlySet<Command['op']> = new Set([
  'secret-version-add',
  'secret-rollback',
  'secret-version-remove',
  'secret-grant',
  'secret-ungrant',
  'service-create',
  'service-update',
  'service-remove',
  'tasks-put',
  'task-status',
  'tasks-remove',
  'node-add',
  'node-update',
  'node-remove',
  'node-status',
]);

type StoreEvent = Parameters<Parameters<Store['onEvent']>[0]>[0];
export type MembershipStep = ReturnType<typeof nextMembershipAction>;

/** Whether an applied write wakes the dispatcher and the orchestrator. */
export function changesWorkloads(op: Command['op']): boolean {
  return workloadOps.has(op);
}

/** The dispatcher and the orchestrator run on the leader only, and not on one that is leaving. */
export function dutiesActive(role: Role, leaving: boolean): boolean {
  return role === 'leader' && !leaving;
}

/** Why this manager leaves the cluster after a store event, or null if it does not. */
export function leavingReason(event: StoreEvent, selfId: string): string | null {
  if (event.kind === 'node' && event.node.id === selfId && event.node.role !== 'manager')
    return 'this node was demoted to a worker';
  if (event.kind === 'node-removed' && event.id === selfId)
    return 'this node was removed from the cluster';
  return null;
}

export function isMember(conf: ConfState, id: string): boolean {
  return (
    (conf.voters as readonly string[]).includes(id) ||
    (conf.learners as readonly string[]).includes(id)
  );
}

/** On the leader: the next step from the Raft configuration towards the store's managers, if any. */
export function membershipStep(status: RaftStatus, nodes: Iterable<NodeRecord>): MembershipStep {
  if (status.role !== 'leader' || !status.progress) return null;
  const managers = new Set(
    [...nodes].filter((n) => n.role === 'manager').map((n) => n.id as string),
  );
  if (managers.size === 0) return null;
  return nextMembershipAction({
    self: status.id,
    conf: status.conf,
    managers,
    progress: status.progress,
    commit: status.commit,
  });
}

/** On the leader: the voter to hand leadership to before stopping (the most caught-up), if any. */
export function stepDownSuccessor(status: RaftStatus): MemberId | null {
  return status.role === 'leader' && status.progress
    ? bestSuccessor({ self: status.id, conf: status.conf, progress: status.progress })
    : null;
}

/** What the duties need of the Raft member (RaftNode has it). */
export interface DutiesRaft extends AdvanceEvents {
  readonly core: { readonly role: Role; readonly conf: ConfState; status(): RaftStatus };
  readonly store: { nodes(): Iterable<NodeRecord> };
  transferLeadership(to: MemberId): Promise<void>;
  proposeConfChange(change: ConfChange): Promise<void>;
}

export interface LeaderDutiesOptions {
  readonly selfId: string;
  readonly raft: DutiesRaft;
  readonly dispatcher: { setActive(active: boolean): void; storeChanged(): void };
  readonly workloads: { setActive(active: boolean): void; kick(): void };
  readonly timers: Timers;
  /** Between two membership rounds. */
  readonly roundMs: number;
  /** This manager was demoted or removed, and Raft no longer counts it (or the wait for that ended). */
  readonly onLeft: (reason: string) => void;
  /** On the leader, every `everyMs`: prune the records of expired certificates (none: no pruning). */
  readonly prune?: { readonly everyMs: number; run(): Promise<void> };
}

export class LeaderDuties {
  readonly #options: LeaderDutiesOptions;
  #stopRounds: (() => void) | null = null;
  #stopPrune: (() => void) | null = null;
  #reconciling = false;
  #leaving = false;
  #stopLeaving: () => void = () => {};
  #workloadKick = false;

  constructor(options: LeaderDutiesOptions) {
    this.#options = options;
  }

  get leaving(): boolean {
    return this.#leaving;
  }

  start(): void {
    this.#stopRounds ??= this.#options.timers.every(this.#options.roundMs, () => void this.round());
    const prune = this.#options.prune;
    if (prune)
      this.#stopPrune ??= this.#options.timers.every(prune.everyMs, () => {
        // A failed prune (leadership moved) is tried again next period.
        if (dutiesActive(this.#options.raft.core.role, this.#leaving)) prune.run().catch(() => {});
      });
  }

  /** Turns every duty off (the membership rounds, the dispatcher, the orchestrator, a leaving wait). */
  stop(): void {
    this.#stopRounds?.();
    this.#stopRounds = null;
    this.#stopPrune?.();
    this.#stopPrune = null;
    this.#stopLeaving();
    this.#options.dispatcher.setActive(false);
    this.#options.workloads.setActive(false);
  }

  /** One round: duties on or off, then at most one membership step (one change at a time). */
  async round(): Promise<void> {
    const { raft } = this.#options;
    const active = dutiesActive(raft.core.role, this.#leaving);
    this.#options.dispatcher.setActive(active);
    this.#options.workloads.setActive(active);
    if (this.#reconciling || raft.core.role !== 'leader') return;
    const step = membershipStep(raft.core.status(), raft.store.nodes());
    if (!step) return;
    this.#reconciling = true;
    try {
      if (step.kind === 'transfer') await raft.transferLeadership(step.to);
      else await raft.proposeConfChange(step.change);
    } catch {
      // One change at a time: the core refuses while another is pending; the next round retries.
    } finally {
      this.#reconciling = false;
    }
  }

  /** Called after every applied write. */
  applied(op: Command['op']): void {
    if (!changesWorkloads(op)) return;
    this.#options.dispatcher.storeChanged();
    // Coalesces a burst of applied entries into one orchestrator round.
    if (this.#workloadKick) return;
    this.#workloadKick = true;
    queueMicrotask(() => {
      this.#workloadKick = false;
      this.#options.workloads.kick();
    });
  }

  /** Called on every store event: a demotion or removal of this node starts leaving. */
  storeEvent(event: StoreEvent): void {
    const reason = leavingReason(event, this.#options.selfId);
    if (reason !== null) this.#leave(reason);
  }

  /**
   * Waits (bounded) until Raft no longer counts this member, so a demoted leader hands over first.
   * `onLeft` is called from a timer, never from inside the Raft loop that applied the demotion.
   */
  #leave(reason: string): void {
    if (this.#leaving) return;
    this.#leaving = true;
    const { raft, selfId, timers } = this.#options;
    let over = false;
    let cancel: () => void = () => {};
    const finish = (left: boolean): void => {
      if (over) return;
      over = true;
      cancel();
      if (left) timers.after(0, () => this.#options.onLeft(reason));
    };
    const stopWatch = whenTrue(
      raft,
      () => !isMember(raft.core.conf, selfId),
      () => finish(true),
    );
    if (over) return;
    const cancelTimer = timers.after(leavingWaitMs, () => finish(true));
    cancel = () => {
      stopWatch();
      cancelTimer();
    };
    this.#stopLeaving = () => finish(false);
  }

  /** A leader hands leadership to the most caught-up voter, and waits (bounded) until it has. */
  async stepDown(): Promise<void> {
    const { raft, timers } = this.#options;
    const successor = stepDownSuccessor(raft.core.status());
    if (!successor) return;
    await raft.transferLeadership(successor).catch(() => {});
    await waitUntil(raft, () => raft.core.role !== 'leader', { timers, timeoutMs: stepDownWaitMs });
  }
}
