/**
 * RaftCore: the Raft consensus algorithm as a pure, deterministic state machine, after
 * etcd-io/raft. It does no I/O, reads no clock (time is the number of tick() calls) and draws no
 * randomness except through `options.random`, used only for the randomized election timeout.
 * Inputs: tick(), step(message), propose(), proposeConfChange(), readIndex(), transferLeadership(),
 * campaign(), compact(). Output: ready(), the work the node must do, acknowledged by advance().
 *
 * Features: elections with pre-vote (thesis §9.6) and check-quorum (§6.2, with a leader lease on
 * votes), a no-op entry per new leader, commitment by counting replicas only for entries of the
 * leader's term (§5.4.2), conflict truncation with term-skipping backtracking, per-follower flow
 * control (probe / replicate / snapshot), batching, snapshots for followers behind the compaction
 * point, learners, single-server membership changes, leadership transfer and ReadIndex (§6.4).
 *
 * THE NODE LOOP: the order in which the node persists, sends and applies a Ready, and why that
 * order is safe, is written once, in src/node/raft-io/raft-node.ts's header. The core relies on
 * two things only:
 *   - between ready() and advance() it takes no input (asserted): the node queues received
 *     messages and requests and feeds them after advance(), so proposals made meanwhile travel
 *     together in the next Ready (batching);
 *   - advance(rd) means: rd.snapshot, rd.entries and rd.hardState are durable (fsynced when
 *     rd.mustSync), rd.messages went out only after that, and rd.committedEntries are applied.
 *     The leader counts its own log towards a quorum only from then on.
 *
 * Membership: a member drops every message from an id outside its configuration (#acceptsFrom).
 * A 'conf' entry takes effect on each member when it is APPLIED: advance() applies
 * every 'conf' entry of rd.committedEntries to the core's configuration, in log order. After
 * advance(), status().conf is the configuration as of status().applied: connect to new members,
 * drop removed ones, and record it in a snapshot taken at that point (SnapshotMeta.conf). A
 * removed member never campaigns again; it may be shut down once it has applied its removal and
 * is not the leader. A leader that applies its own removal stays leader, refusing proposals,
 * until a quorum of the new configuration knows the change is committed, then steps down. Only one
 * change may be in flight (proposeConfChange() throws 'conflict' until the previous one, and the
 * leader's no-op, are applied). A snapshot received from the leader replaces the configuration
 * as soon as it is received.
 *
 * Snapshots: after snapshotting the state machine at status().applied and saving it, call
 * compact(meta): the core drops earlier entries and keeps the meta (never the bytes) to send
 * followers that are behind it: its snapshot message names the snapshot by meta, and the node
 * reads the data from disk before sending (Ready.messages). After a restart, pass the persisted
 * snapshot's meta in initial.snapshot and then call compact() with it, so that a leader can send it.
 *
 * Bootstrap: initial.conf is the configuration before log entry 1. Founding members pass the
 * founding voters. A member joining later must pass the same founding configuration, because it
 * replays the log from entry 1 on top of it (unless it is sent a snapshot, which carries its own).
 */
import { AssertionError, SecretdError, assert, assertNever } from '../errors.ts';
import { acceptSnapshot, answerAppend } from './_follower.ts';
import { RaftLog } from './_log.ts';
import type { MessageOf, Outgoing } from './_messages.ts';
import { type RaftOptions, type Settings, resolveOptions } from './_options.ts';
import type { Progress, ProgressState } from './_progress.ts';
import { ReadOnlyQueue } from './_read-only.ts';
import { planAppend, recordAppendResponse } from './_replication.ts';
import { Tracker } from './_tracker.ts';
import {
  applyConfChange,
  confChangeProblem,
  decodeConfChange,
  encodeConfChange,
  sameConf,
} from './conf-change.ts';
import type {
  ConfChange,
  ConfState,
  Entry,
  EntryType,
  HardState,
  LogIndex,
  MemberId,
  Message,
  Ready,
  ReadyMessage,
  ReadState,
  Role,
  SnapshotMeta,
  SoftState,
  Term,
} from './types.ts';

export type { RaftOptions, UnsafeTestingMutations } from './_options.ts';

export interface ProgressStatus {
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly state: ProgressState;
  readonly recentActive: boolean;
}

export interface RaftStatus {
  readonly id: MemberId;
  readonly term: Term;
  readonly role: Role;
  readonly leader: MemberId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly lastIndex: LogIndex;
  /** The configuration as of `applied` (or of a received snapshot not yet applied). */
  readonly conf: ConfState;
  /** Leader only: the member a leadership transfer is under way to. */
  readonly transferee: MemberId | null;
  /** Leader only. */
  readonly progress?: Readonly<Record<MemberId, ProgressStatus>>;
}

export class RaftCore {
  readonly #id: MemberId;
  readonly #settings: Settings;

  #term: Term;
  #vote: MemberId | null;
  #role: Role = 'follower';
  #leader: MemberId | null = null;
  readonly #log: RaftLog;
  readonly #tracker = new Tracker();
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  /** Leader: the commit index moved since followers were last told it (#onCommitted). */
  #commitNoticeDue = false;
  #electionTimeout = 0;
  #transferee: MemberId | null = null;
  /** Leader: the index of a change removing it, from when it is in its log until it is applied. */
  #selfRemovalAt: LogIndex | null = null;
  /** Leader that applied its own removal: the index of that change, until it hands over. */
  #leavingAt: LogIndex | null = null;
  /** Leader: no membership change may be proposed until the entry at this index is applied. */
  #pendingConfIndex: LogIndex = 0;
  /** A leader outside the configuration that a member vouched for, heard in that term only (#acceptsFrom). */
  #vouched: { readonly leader: MemberId; readonly term: Term } | null = null;
  /** The newest snapshot with its data, for followers behind the compaction point. */
  #snapshot: SnapshotMeta | null = null;
  readonly #reads: ReadOnlyQueue;
  /** Leader: read requests that arrived before it committed an entry of its term. */
  #waitingReads: { readonly context: string; readonly requester: MemberId }[] = [];
  #outbox: ReadyMessage[] = [];
  #readStates: ReadState[] = [];
  /** Leader: new entries whose appends are built, batched, at the next ready(). */
  #appendsPending = false;
  #outstanding: Ready | null = null;
  #reportedSoft: SoftState = { leader: null, role: 'follower' };
  #reportedHard: HardState;

  constructor(options: RaftOptions) {
    this.#settings = resolveOptions(options);
    this.#id = options.id;
    this.#reads = new ReadOnlyQueue(this.#settings.readsMax);

    const { hardState, snapshot, entries, conf } = options.initial;
    const snapshotIndex = snapshot?.index ?? 0;
    this.#log = new RaftLog({
      snapshotIndex,
      snapshotTerm: snapshot?.term ?? 0,
      entries,
      committed: Math.max(hardState?.commit ?? 0, snapshotIndex),
    });
    this.#tracker.setConf(snapshot?.conf ?? conf);
    this.#term = hardState?.term ?? 0;
    this.#vote = this.#settings.mutations.forgetVote === true ? null : (hardState?.vote ?? null);
    assert(
      this.#term >= this.#log.lastTerm(),
      `term ${this.#term} is below the last log term ${this.#log.lastTerm()}`,
    );
    this.#reportedHard = hardState ?? { term: 0, vote: null, commit: 0 };
    this.#becomeFollower(this.#term, null);
  }

  // ---- inputs -------------------------------------------------------------------------------

  tick(): void {
    this.#assertNoReadyOutstanding('tick');
    if (this.#role === 'leader') this.#tickLeader();
    else this.#tickElection();
  }

  /** Handle a message from another member. Messages of older terms are answered or dropped. */
  step(message: Message): void {
    this.#assertNoReadyOutstanding('step');
    assert(message.to === this.#id, `message for ${message.to} delivered to ${this.#id}`);
    assert(message.from !== this.#id, `member ${this.#id} got a message from itself`);
    if (!this.#acceptsFrom(message)) return;
    // A forwarded read carries no term: like a local request, it only matters whether we lead.
    if (message.type === 'read-index') return this.#onReadIndex(message.from, message.context);
    if (message.term > this.#term) {
      if (!this.#onHigherTerm(message)) return;
    } else if (message.term < this.#term) {
      return this.#onStaleTerm(message);
    }
    if (
      message.type === 'pre-vote-response' &&
      message.leader !== undefined &&
      message.leader !== this.#id
    ) {
      this.#vouched = { leader: message.leader, term: message.term };
    }
    if (message.type === 'pre-vote' || message.type === 'vote') return this.#onVoteRequest(message);
    switch (this.#role) {
      case 'leader':
        return this.#stepLeader(message);
      case 'pre-candidate':
      case 'candidate':
        return this.#stepCandidate(message);
      case 'follower':
        return this.#stepFollower(message);
      default:
        return assertNever(this.#role);
    }
  }

  /**
   * Leader only: append `data` to the log; returns the index it will have if committed. The entry
   * takes `data` as it is, not a copy (as etcd's raft takes an entry's Data): the caller hands it
   * over and never changes it again. RaftNode's is a fresh encoding of each command; a copy here
   * cost a pass over every value (64 KiB creates: 3% of the server's CPU).
   */
  propose(data: Uint8Array): LogIndex {
    this.#assertNoReadyOutstanding('propose');
    this.#assertCanPropose('propose');
    if (data.length === 0) {
      throw new SecretdError(
        'invalid',
        "Cannot propose an empty entry: empty data marks a leader's no-op",
      );
    }
    return this.#appendEntry('normal', data);
  }

  /** Leader only, one at a time: append a membership change; it takes effect when applied. */
  proposeConfChange(change: ConfChange): LogIndex {
    this.#assertNoReadyOutstanding('proposeConfChange');
    this.#assertCanPropose('change membership');
    if (this.#pendingConfIndex > this.#log.applied) {
      throw new SecretdError(
        'conflict',
        `Cannot ${change.kind} ${change.id}: the entry at index ${this.#pendingConfIndex} (an earlier change or the leader's no-op) is not applied yet`,
      );
    }
    const problem = confChangeProblem(this.#tracker.conf, change);
    if (problem !== null) throw new SecretdError('invalid', problem);
    this.#pendingConfIndex = this.#appendEntry('conf', encodeConfChange(change));
    if (change.kind === 'remove' && change.id === this.#id)
      this.#selfRemovalAt = this.#pendingConfIndex;
    return this.#pendingConfIndex;
  }

  /**
   * Request a linearizable read tagged `context` (unique per request). A ReadState with that
   * context appears in a later Ready once leadership is confirmed; a request lost to a leader
   * change yields nothing, so the caller times out and retries.
   */
  readIndex(context: string): void {
    this.#assertNoReadyOutstanding('readIndex');
    const readsMax = this.#settings.readsMax;
    if (this.#reads.size + this.#waitingReads.length >= readsMax) {
      throw new SecretdError('unavailable', `Cannot read: ${readsMax} reads are already waiting`);
    }
    if (this.#settings.mutations.localReads === true)
      return void this.#readStates.push(Object.freeze({ index: this.#log.committed, context }));
    this.#onReadIndex(this.#id, context);
  }

  /** Leader only: hand leadership to voter `to` once it has caught up; abandoned after an election timeout. */
  transferLeadership(to: MemberId): void {
    this.#assertNoReadyOutstanding('transferLeadership');
    if (this.#role !== 'leader') {
      throw new SecretdError(
        'unavailable',
        `Not the leader: member ${this.#id} cannot transfer leadership`,
      );
    }
    if (to === this.#id || to === this.#transferee) return;
    if (!this.#tracker.isVoter(to)) {
      throw new SecretdError('invalid', `Cannot transfer leadership to ${to}: it is not a voter`);
    }
    this.#transferee = to;
    this.#electionElapsed = 0;
    const pr = this.#progress(to);
    if (pr.match === this.#log.lastIndex())
      this.#send({ type: 'timeout-now', to, term: this.#term });
    else this.#sendAppend(to, true);
  }

  /** Start an election now. Does nothing on a leader, a learner, a removed member, or while a committed membership change awaits applying. */
  campaign(): void {
    this.#assertNoReadyOutstanding('campaign');
    this.#hup(false);
  }

  /**
   * The node snapshotted the state machine at meta.index (<= status().applied, with meta.conf =
   * status().conf taken at that point) and saved it: drop the entries it covers. A snapshot at the
   * current compaction point only refreshes the one named for sending (the restart case). The
   * core keeps the meta only: the node reads the bytes from disk when one is to be sent.
   */
  compact(meta: SnapshotMeta): void {
    this.#assertNoReadyOutstanding('compact');
    const { index, term, conf } = meta;
    if (index < this.#log.snapshotIndex) return;
    // A snapshot with the wrong configuration would silently change membership for whoever loads it.
    if (index === this.#log.applied) {
      assert(
        sameConf(conf, this.#tracker.conf),
        `snapshot at ${index} records the configuration as of ${index}`,
      );
    }
    this.#log.compact(index, term);
    this.#snapshot = meta;
  }

  // ---- output -------------------------------------------------------------------------------

  /** Whether ready() has work; false while a Ready is outstanding (between ready() and advance()). */
  hasReady(): boolean {
    if (this.#outstanding !== null) return false;
    this.#flushAppends();
    return (
      !sameSoft(this.#softState(), this.#reportedSoft) ||
      !sameHard(this.#hardState(), this.#reportedHard) ||
      this.#log.lastIndex() > this.#log.stableIndex ||
      this.#log.pendingSnapshot !== null ||
      this.#log.hasCommittedToApply() ||
      this.#outbox.length > 0 ||
      this.#readStates.length > 0
    );
  }

  /** The pending work, frozen. Handle it as the header says, then call advance() with it. */
  ready(): Ready {
    assert(this.#outstanding === null, 'ready() called again before advance()');
    this.#flushAppends();
    const soft = this.#softState();
    const hard = this.#hardState();
    const entries = Object.freeze(this.#log.unstableEntries());
    const ready: Ready = Object.freeze({
      softState: sameSoft(soft, this.#reportedSoft) ? null : soft,
      hardState: sameHard(hard, this.#reportedHard) ? null : hard,
      entries,
      snapshot: this.#log.pendingSnapshot,
      committedEntries: Object.freeze(this.#log.committedToApply()),
      messages: Object.freeze(this.#outbox),
      readStates: Object.freeze(this.#readStates),
      mustSync:
        entries.length > 0 ||
        hard.term !== this.#reportedHard.term ||
        hard.vote !== this.#reportedHard.vote,
    });
    this.#outbox = [];
    this.#readStates = [];
    this.#outstanding = ready;
    return ready;
  }

  /** The node persisted, sent and applied exactly `ready` (the last one ready() returned). */
  advance(ready: Ready): void {
    assert(ready === this.#outstanding, 'advance() is given the Ready that ready() returned last');
    this.#outstanding = null;
    if (ready.softState !== null) this.#reportedSoft = ready.softState;
    if (ready.hardState !== null) this.#reportedHard = ready.hardState;
    if (ready.snapshot !== null) this.#log.snapshotApplied(ready.snapshot.meta.index);
    const lastEntry = ready.entries.at(-1);
    if (lastEntry !== undefined) this.#log.stableTo(lastEntry.index, lastEntry.term);
    if (this.#role === 'leader') this.#ownLogPersisted();
    for (const entry of ready.committedEntries) {
      this.#log.appliedTo(entry.index);
      if (entry.type === 'conf') this.#applyConfEntry(entry);
    }
  }

  /** Cheap reads of what `status()` reports, for hot paths (status() copies the progress map). */
  get term(): Term {
    return this.#term;
  }

  get leader(): MemberId | null {
    return this.#leader;
  }

  get role(): Role {
    return this.#role;
  }

  /** The configuration, as status().conf reports it. */
  get conf(): ConfState {
    return this.#tracker.conf;
  }

  status(): RaftStatus {
    const base = {
      id: this.#id,
      term: this.#term,
      role: this.#role,
      leader: this.#leader,
      commit: this.#log.committed,
      applied: this.#log.applied,
      lastIndex: this.#log.lastIndex(),
      conf: this.#tracker.conf,
      transferee: this.#transferee,
    };
    if (this.#role !== 'leader') return base;
    const progress: Record<MemberId, ProgressStatus> = {};
    for (const [id, pr] of this.#tracker.progress) {
      progress[id] = {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        recentActive: pr.recentActive,
      };
    }
    return { ...base, progress };
  }

  // ---- time ---------------------------------------------------------------------------------

  #tickElection(): void {
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTimeout && this.#promotable()) {
      this.#electionElapsed = 0;
      this.#hup(false);
    }
  }

  #tickLeader(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    for (const pr of this.#tracker.progress.values()) {
      // The snapshot (or its acknowledgement) was probably lost: probing will send it again.
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= this.#settings.snapshotTimeoutTicks)
        pr.becomeProbe();
    }
    if (this.#electionElapsed >= this.#settings.electionTicks) {
      this.#electionElapsed = 0;
      if (this.#settings.checkQuorum) {
        // Cut off from a quorum: step down so that clients go to a leader that can commit.
        if (!this.#tracker.quorumActive()) return this.#becomeFollower(this.#term, null);
        this.#tracker.resetRecentActive(this.#id);
      }
      // The transfer target did not take over within an election timeout: it may be down.
      this.#transferee = null;
    }
    if (this.#heartbeatElapsed >= this.#settings.heartbeatTicks || this.#commitNoticeDue) {
      this.#heartbeatElapsed = 0;
      this.#broadcastHeartbeat(this.#reads.lastContext());
    }
  }

  // ---- terms and elections ------------------------------------------------------------------

  /**
   * Only members speak Raft. A member drops every message from an id outside its configuration
   * (voters and learners): a removed or demoted manager, or any id never added, can then neither
   * raise a member's term (and depose its leader) nor lead it, nor count in a vote or a commit.
   * etcd drops the same: its server refuses removed members, its core answers from no unknown
   * progress. Dropping is always safe (it is a lost message). A node outside its own configuration
   * drops nothing: a joiner replaying the log from the founding configuration (which may no longer
   * hold the leader) must hear the leader until it applies its own addition, and a removed node
   * counts nowhere. And a member that missed, while down, both the addition of another member and
   * its election would never hear that leader: members it knows vouch for it. A pre-candidate
   * refused by a member in a leader's lease is told that leader's id; it then hears that id in
   * that term only (#vouched). A voucher follows a leader only if it accepts it by the same rule,
   * so this trusts no one its members do not. (A learner never campaigns, so a learner that
   * missed its leader's addition stays behind: remove it and join again.)
   */
  #acceptsFrom(m: Message): boolean {
    if (
      this.#tracker.isMember(m.from) ||
      !this.#tracker.isMember(this.#id) ||
      this.#settings.mutations.acceptNonMembers === true
    )
      return true;
    return (
      this.#vouched !== null && this.#vouched.leader === m.from && this.#vouched.term === m.term
    );
  }

  /** A message from a newer term. Returns false when it must be ignored. */
  #onHigherTerm(m: Message): boolean {
    if (m.type === 'pre-vote' || m.type === 'vote') {
      // Leader lease: whoever heard from a live leader within the election timeout ignores
      // campaigns, so a member rejoining from a partition cannot depose a healthy leader. A
      // transfer is the leader's own request.
      const inLease =
        this.#settings.checkQuorum &&
        this.#leader !== null &&
        this.#electionElapsed < this.#settings.electionTicks;
      if (inLease && m.transfer !== true) {
        // Refused, naming the leader: the pre-candidate may be a member that cannot hear it yet (#acceptsFrom).
        if (m.type === 'pre-vote' && this.#leader !== null)
          this.#send({
            type: 'pre-vote-response',
            to: m.from,
            term: this.#term,
            reject: true,
            leader: this.#leader,
          });
        return false;
      }
      if (m.type === 'pre-vote') return true; // a pre-vote never changes anyone's term
      this.#becomeFollower(m.term, null);
      return true;
    }
    // Granted in the term the pre-candidate may campaign in; the term changes only if it does.
    if (m.type === 'pre-vote-response' && !m.reject) return true;
    const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
    this.#becomeFollower(m.term, fromLeader ? m.from : null);
    return true;
  }

  #onStaleTerm(m: Message): void {
    if (m.type === 'append' || m.type === 'heartbeat') {
      // A deposed leader learns the newer term from the answer and steps down. Without it, a
      // leader cut off while the others moved on (or a member stuck at a higher term behind the
      // lease) could go on forever.
      this.#send({
        type: 'append-response',
        to: m.from,
        term: this.#term,
        reject: false,
        index: 0,
      });
    } else if (m.type === 'pre-vote') {
      this.#send({ type: 'pre-vote-response', to: m.from, term: this.#term, reject: true });
    }
  }

  #onVoteRequest(m: MessageOf<'pre-vote' | 'vote'>): void {
    const responseType = m.type === 'vote' ? 'vote-response' : 'pre-vote-response';
    const canVote =
      this.#vote === m.from ||
      (this.#vote === null && this.#leader === null) ||
      (m.type === 'pre-vote' && m.term > this.#term);
    if (canVote && this.#log.isUpToDate(m.lastIndex, m.lastTerm)) {
      // Answered in the candidate's term: for a pre-vote, the term it would campaign in.
      this.#send({ type: responseType, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.#electionElapsed = 0;
        this.#vote = m.from; // persisted (Ready.hardState) before this answer is sent
      }
    } else {
      this.#send({ type: responseType, to: m.from, term: this.#term, reject: true });
    }
  }

  #hup(transfer: boolean): void {
    if (this.#role === 'leader' || !this.#promotable()) return;
    // A committed membership change may remove this member or change the quorum: apply it first.
    if (this.#log.hasUnappliedConfChange()) return;
    this.#campaign(this.#settings.preVote && !transfer ? 'pre-vote' : 'vote', transfer);
  }

  #campaign(kind: 'pre-vote' | 'vote', transfer: boolean): void {
    if (kind === 'pre-vote') this.#becomePreCandidate();
    else this.#becomeCandidate();
    this.#tracker.recordVote(this.#id, true);
    if (this.#tracker.voteResult() === 'won') {
      if (kind === 'pre-vote') this.#campaign('vote', transfer);
      else this.#becomeLeader();
      return;
    }
    const term = kind === 'pre-vote' ? this.#term + 1 : this.#term;
    const lastIndex = this.#log.lastIndex();
    const lastTerm = this.#log.lastTerm();
    for (const to of this.#tracker.conf.voters) {
      if (to === this.#id) continue;
      this.#send({
        type: kind,
        to,
        term,
        lastIndex,
        lastTerm,
        ...(transfer ? { transfer: true } : {}),
      });
    }
  }

  #onVoteResponse(m: MessageOf<'pre-vote-response' | 'vote-response'>): void {
    const expected = this.#role === 'pre-candidate' ? 'pre-vote-response' : 'vote-response';
    if (m.type !== expected) return;
    this.#tracker.recordVote(m.from, !m.reject);
    switch (this.#tracker.voteResult()) {
      case 'won':
        if (this.#role === 'pre-candidate') this.#campaign('vote', false);
        else this.#becomeLeader();
        return;
      case 'lost':
        this.#becomeFollower(this.#term, null);
        return;
      case 'pending':
        return;
    }
  }

  #promotable(): boolean {
    return this.#tracker.isVoter(this.#id);
  }

  #reset(term: Term): void {
    if (term !== this.#term) {
      assert(term > this.#term, `term ${term} does not go back from ${this.#term}`);
      this.#term = term;
      this.#vote = null;
      this.#vouched = null;
    }
    this.#leader = null;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#commitNoticeDue = false;
    this.#randomizeElectionTimeout();
    this.#transferee = null;
    this.#selfRemovalAt = null;
    this.#leavingAt = null;
    this.#tracker.resetVotes();
    this.#reads.reset();
    this.#waitingReads = [];
    this.#appendsPending = false;
  }

  #randomizeElectionTimeout(): void {
    const extra = Math.floor(this.#settings.random() * this.#settings.electionTicks);
    assert(
      extra >= 0 && extra < this.#settings.electionTicks,
      'random() returns a number in [0, 1)',
    );
    this.#electionTimeout = this.#settings.electionTicks + extra;
  }

  #becomeFollower(term: Term, leader: MemberId | null): void {
    this.#reset(term);
    this.#role = 'follower';
    this.#leader = leader;
  }

  #becomePreCandidate(): void {
    // Term and vote stay: a pre-candidate only asks whether it could win (thesis §9.6).
    this.#tracker.resetVotes();
    this.#leader = null;
    this.#role = 'pre-candidate';
    this.#electionElapsed = 0;
    this.#randomizeElectionTimeout();
  }

  #becomeCandidate(): void {
    this.#reset(this.#term + 1);
    this.#vote = this.#id;
    this.#role = 'candidate';
  }

  #becomeLeader(): void {
    assert(this.#role === 'candidate', `only a candidate becomes leader, not a ${this.#role}`);
    this.#reset(this.#term);
    this.#role = 'leader';
    this.#leader = this.#id;
    if (this.#settings.mutations.truncateUncommittedOnElection === true)
      this.#log.unsafeDiscardAfter(this.#log.committed);
    this.#tracker.resetProgress(
      this.#id,
      this.#log.lastIndex(),
      this.#log.stableIndex,
      this.#settings.inflightMax,
    );
    // The no-op commits the new term, and with it every earlier entry (§5.4.2). Until it is
    // applied the leader may not know what is committed, so membership changes wait for it
    // (Ongaro's fix to single-server changes) and reads wait for it to commit (§6.4).
    this.#selfRemovalAt = this.#findSelfRemoval();
    this.#pendingConfIndex = this.#appendEntry('normal', new Uint8Array(0));
  }

  /** A change removing this member, among entries not yet applied (an earlier leader proposed it). */
  #findSelfRemoval(): LogIndex | null {
    const pending = this.#log.slice(this.#log.applied + 1, this.#log.lastIndex() + 1) ?? [];
    const removal = pending.find((entry) => {
      if (entry.type !== 'conf') return false;
      const change = decodeConfChange(entry.data);
      return change.kind === 'remove' && change.id === this.#id;
    });
    return removal?.index ?? null;
  }

  // ---- roles --------------------------------------------------------------------------------

  #stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.#heardFromLeader(m.from);
        return this.#onAppend(m);
      case 'heartbeat':
        this.#heardFromLeader(m.from);
        return this.#onHeartbeat(m);
      case 'snapshot':
        this.#heardFromLeader(m.from);
        return this.#onSnapshot(m);
      case 'timeout-now':
        return this.#hup(true);
      case 'read-index-response':
        this.#readStates.push(Object.freeze({ index: m.index, context: m.context }));
        return;
      case 'pre-vote':
      case 'vote':
      case 'pre-vote-response':
      case 'vote-response':
      case 'append-response':
      case 'heartbeat-response':
      case 'read-index':
        return; // handled in step(), or meant for another role
      default:
        return assertNever(m);
    }
  }

  #stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // Another member won this term's election.
        this.#becomeFollower(m.term, m.from);
        return this.#stepFollower(m);
      case 'pre-vote-response':
      case 'vote-response':
        return this.#onVoteResponse(m);
      case 'read-index-response':
        return this.#stepFollower(m);
      case 'pre-vote':
      case 'vote':
      case 'append-response':
      case 'heartbeat-response':
      case 'timeout-now':
      case 'read-index':
        return;
      default:
        return assertNever(m);
    }
  }

  #stepLeader(m: Message): void {
    switch (m.type) {
      case 'append-response':
        return this.#onAppendResponse(m);
      case 'heartbeat-response':
        return this.#onHeartbeatResponse(m);
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        throw new AssertionError(`two leaders in term ${this.#term}: ${this.#id} and ${m.from}`);
      case 'pre-vote':
      case 'vote':
      case 'pre-vote-response':
      case 'vote-response':
      case 'timeout-now':
      case 'read-index':
      case 'read-index-response':
        return;
      default:
        return assertNever(m);
    }
  }

  #heardFromLeader(leader: MemberId): void {
    this.#electionElapsed = 0;
    this.#leader = leader;
  }

  // ---- follower: replication ----------------------------------------------------------------

  #onAppend(m: MessageOf<'append'>): void {
    this.#send({
      type: 'append-response',
      to: m.from,
      term: this.#term,
      ...answerAppend(this.#log, m),
      commit: this.#log.committed,
    });
  }

  #onHeartbeat(m: MessageOf<'heartbeat'>): void {
    // The leader sends min(our match, its commit), so this entry is in our log and is its.
    this.#log.commitTo(m.commit);
    this.#send({
      type: 'heartbeat-response',
      to: m.from,
      term: this.#term,
      commit: this.#log.committed,
      ...(m.context === undefined ? {} : { context: m.context }),
    });
  }

  #onSnapshot(m: MessageOf<'snapshot'>): void {
    if (acceptSnapshot(this.#log, m)) {
      this.#tracker.setConf(m.snapshot.meta.conf);
      this.#snapshot = m.snapshot.meta;
    }
    this.#send({
      type: 'append-response',
      to: m.from,
      term: this.#term,
      reject: false,
      index: this.#log.committed,
      commit: this.#log.committed,
    });
  }

  // ---- leader: replication ------------------------------------------------------------------

  #assertCanPropose(action: string): void {
    if (this.#role !== 'leader') {
      throw new SecretdError(
        'unavailable',
        `Not the leader: member ${this.#id} is a ${this.#role} and cannot ${action} (leader: ${this.#leader ?? 'unknown'})`,
      );
    }
    // A leader being removed takes no new entries: its log then never outgrows the remaining
    // voters', so that, until they learn the change committed, it can still give them its vote.
    if (this.#selfRemovalAt !== null || this.#leavingAt !== null) {
      throw new SecretdError(
        'unavailable',
        `Not the leader: member ${this.#id} is being removed; cannot ${action}`,
      );
    }
    if (this.#transferee !== null) {
      throw new SecretdError(
        'unavailable',
        `Cannot ${action}: leadership is being transferred to ${this.#transferee}`,
      );
    }
    const uncommitted = this.#log.lastIndex() - this.#log.committed;
    if (uncommitted >= this.#settings.uncommittedEntriesMax) {
      throw new SecretdError(
        'unavailable',
        `Cannot ${action}: ${uncommitted} entries are waiting to commit`,
      );
    }
  }

  #appendEntry(type: EntryType, data: Uint8Array): LogIndex {
    const entry: Entry = Object.freeze({
      term: this.#term,
      index: this.#log.lastIndex() + 1,
      type,
      data,
    });
    this.#log.append([entry]);
    const own = this.#tracker.progress.get(this.#id);
    if (own !== undefined) own.next = entry.index + 1;
    this.#appendsPending = true;
    return entry.index;
  }

  #flushAppends(): void {
    if (!this.#appendsPending) return;
    this.#appendsPending = false;
    this.#broadcastAppend(false);
  }

  #broadcastAppend(sendIfEmpty: boolean): void {
    for (const id of this.#tracker.members())
      if (id !== this.#id) this.#sendAppends(id, sendIfEmpty);
  }

  /** Send as many appends as flow control allows. */
  #sendAppends(to: MemberId, sendIfEmpty: boolean): void {
    if (!this.#sendAppend(to, sendIfEmpty)) return;
    while (this.#sendAppend(to, false));
  }

  /** Send one append (or the snapshot if entries it needs are compacted). False when nothing was sent. */
  #sendAppend(to: MemberId, sendIfEmpty: boolean): boolean {
    const pr = this.#progress(to);
    const plan = planAppend(this.#log, pr, this.#settings.entriesPerMessageMax, sendIfEmpty);
    switch (plan.kind) {
      case 'nothing':
        return false;
      case 'snapshot':
        return this.#sendSnapshot(to, pr);
      case 'append': {
        const { prevIndex, prevTerm, entries } = plan;
        this.#send({
          type: 'append',
          to,
          term: this.#term,
          prevIndex,
          prevTerm,
          entries,
          commit: this.#log.committed,
        });
        pr.sentAppend(prevIndex + entries.length, entries.length);
        return true;
      }
      default:
        return assertNever(plan);
    }
  }

  #sendSnapshot(to: MemberId, pr: Progress): boolean {
    // A snapshot may be large: send it only to a member known to be answering.
    if (!pr.recentActive) return false;
    const meta = this.#snapshot;
    assert(
      meta !== null && meta.index >= this.#log.snapshotIndex,
      `leader ${this.#id} must send ${to} a snapshot but has none: compact() must be given the snapshot after a restart`,
    );
    pr.becomeSnapshot(meta.index);
    // The meta only: the node reads the data from disk before sending (ReadyMessage).
    this.#send({ type: 'snapshot', to, term: this.#term, snapshot: { meta } });
    return true;
  }

  #onAppendResponse(m: MessageOf<'append-response'>): void {
    const pr = this.#tracker.progress.get(m.from);
    if (pr === undefined) return; // no longer a member
    pr.recentActive = true;
    if (m.commit !== undefined && m.commit > pr.commit) pr.commit = m.commit;
    if (this.#leavingAt !== null) this.#maybeFinishLeaving(this.#leavingAt);
    if (this.#role !== 'leader') return;
    switch (recordAppendResponse(this.#log, pr, m)) {
      case 'stale':
        return;
      case 'retry':
        this.#sendAppend(m.from, true);
        return;
      case 'advanced':
        this.#advanceCommit();
        this.#sendAppends(m.from, false);
        if (m.from === this.#transferee && pr.match === this.#log.lastIndex()) {
          this.#send({ type: 'timeout-now', to: m.from, term: this.#term });
        }
        return;
    }
  }

  #onHeartbeatResponse(m: MessageOf<'heartbeat-response'>): void {
    const pr = this.#tracker.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (m.commit !== undefined && m.commit > pr.commit) pr.commit = m.commit;
    // A full window may mean appends were lost: free one so the next append finds the gap.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.#log.lastIndex()) this.#sendAppends(m.from, true);
    if (m.context !== undefined) this.#onReadAck(m.from, m.context);
    if (this.#leavingAt !== null) this.#maybeFinishLeaving(this.#leavingAt);
  }

  #ownLogPersisted(): void {
    const own = this.#tracker.progress.get(this.#id);
    if (own === undefined || own.match >= this.#log.stableIndex) return; // removed: its log no longer counts
    own.match = this.#log.stableIndex;
    this.#advanceCommit();
  }

  /** Commits what a quorum holds, if that is more, and tells what waits on it. */
  #advanceCommit(): void {
    const before = this.#log.committed;
    if (this.#maybeCommit()) this.#onCommitted(before);
  }

  #maybeCommit(): boolean {
    const index = this.#tracker.quorumMatch();
    // Raft §5.4.2 (figure 8): counting replicas commits only entries of the leader's own term;
    // earlier entries are committed along with them.
    if (index <= this.#log.committed) return false;
    if (
      this.#log.term(index) !== this.#term &&
      this.#settings.mutations.commitOldTermByCount !== true
    )
      return false;
    this.#log.commitTo(index);
    return true;
  }

  /**
   * Followers learn a new commit index from the next append (every append carries it) or, at the
   * latest, from the heartbeats of the next tick. etcd's leader sends every follower an empty
   * append at once instead; one write at a time, that is two messages more per follower per write
   * (the append and its answer), about a fifth of a three-manager cluster's CPU per write, for a
   * commit no reply waits for: the leader answers a write once it has applied it, a follower's
   * linearizable read learns the commit from the heartbeats its ReadIndex sends, and the
   * dispatcher runs on the leader. A membership change or the leader's no-op is told at once, as
   * before: a member removed by the change gets no heartbeat once the leader has applied it, so
   * the next tick would be too late for it to learn that it is out.
   */
  #onCommitted(before: LogIndex): void {
    this.#releaseWaitingReads();
    const pending = this.#pendingConfIndex;
    if (pending > before && pending <= this.#log.committed) this.#broadcastAppend(true);
    else this.#commitNoticeDue = true;
  }

  #broadcastHeartbeat(context: string | undefined): void {
    this.#commitNoticeDue = false;
    for (const to of this.#tracker.members()) {
      if (to === this.#id) continue;
      // Never more than the follower is known to have: it could not commit what it lacks.
      const commit = Math.min(this.#progress(to).match, this.#log.committed);
      this.#send({
        type: 'heartbeat',
        to,
        term: this.#term,
        commit,
        ...(context === undefined ? {} : { context }),
      });
    }
  }

  #progress(id: MemberId): Progress {
    const pr = this.#tracker.progress.get(id);
    assert(pr !== undefined, `leader ${this.#id} tracks member ${id}`);
    return pr;
  }

  // ---- membership ---------------------------------------------------------------------------

  #applyConfEntry(entry: Entry): void {
    const change = decodeConfChange(entry.data);
    if (entry.index === this.#selfRemovalAt) this.#selfRemovalAt = null;
    // Every member skips the same invalid change, so the configurations still agree.
    if (confChangeProblem(this.#tracker.conf, change) !== null) return;
    this.#tracker.setConf(applyConfChange(this.#tracker.conf, change));
    if (this.#role !== 'leader') return;
    this.#tracker.syncProgress(this.#log.lastIndex(), this.#settings.inflightMax);
    if (this.#transferee !== null && !this.#tracker.isVoter(this.#transferee))
      this.#transferee = null;
    // With fewer voters the quorum may already hold more entries.
    this.#advanceCommit();
    if (!this.#tracker.isVoter(this.#id)) {
      // Stepping down now could strand the others: until they learn that this change committed,
      // their configuration still needs this member's vote, and a removed member never
      // campaigns. So lead on, without counting itself and refusing proposals, until a quorum of
      // the new configuration reports a commit index past the change (Raft thesis §4.2.2).
      this.#leavingAt = entry.index;
      return this.#maybeFinishLeaving(entry.index);
    }
    if (change.kind === 'add-learner') this.#sendAppend(change.id, true);
  }

  #maybeFinishLeaving(changeIndex: LogIndex): void {
    const informed = this.#tracker.conf.voters.filter(
      (id) => (this.#tracker.progress.get(id)?.commit ?? 0) >= changeIndex,
    );
    if (this.#tracker.hasQuorum(new Set(informed))) this.#becomeFollower(this.#term, null);
  }

  // ---- reads --------------------------------------------------------------------------------

  #onReadIndex(requester: MemberId, context: string): void {
    if (this.#role !== 'leader') {
      // Forwarded to a member that no longer leads: the requester times out and retries.
      if (requester !== this.#id) return;
      if (this.#leader === null) {
        throw new SecretdError('unavailable', `Cannot read: member ${this.#id} knows no leader`);
      }
      this.#send({ type: 'read-index', to: this.#leader, term: 0, context });
      return;
    }
    // Until an entry of its term commits, a new leader may not know the latest commit (§6.4).
    if (this.#log.term(this.#log.committed) !== this.#term) {
      if (this.#waitingReads.length < this.#settings.readsMax)
        this.#waitingReads.push({ context, requester });
      return;
    }
    this.#serveRead(requester, context);
  }

  #serveRead(requester: MemberId, context: string): void {
    const index = this.#log.committed;
    if (this.#tracker.isVoter(this.#id) && this.#tracker.quorum() === 1) {
      return this.#answerRead(requester, index, context);
    }
    const added = this.#reads.add({ context, index, requester, acks: new Set([this.#id]) });
    if (added === 'added') this.#broadcastHeartbeat(context);
  }

  #releaseWaitingReads(): void {
    if (this.#waitingReads.length === 0 || this.#log.term(this.#log.committed) !== this.#term)
      return;
    const waiting = this.#waitingReads;
    this.#waitingReads = [];
    for (const { requester, context } of waiting) this.#serveRead(requester, context);
  }

  #onReadAck(from: MemberId, context: string): void {
    const acks = this.#reads.ack(context, from);
    if (acks === undefined || !this.#tracker.hasQuorum(acks)) return;
    for (const request of this.#reads.releaseThrough(context)) {
      this.#answerRead(request.requester, request.index, request.context);
    }
  }

  #answerRead(requester: MemberId, index: LogIndex, context: string): void {
    if (requester === this.#id) this.#readStates.push(Object.freeze({ index, context }));
    else
      this.#send({ type: 'read-index-response', to: requester, term: this.#term, index, context });
  }

  // ---- plumbing -----------------------------------------------------------------------------

  #send(message: Outgoing): void {
    assert(message.to !== this.#id, `member ${this.#id} does not send to itself`);
    this.#outbox.push(Object.freeze({ ...message, from: this.#id }) as ReadyMessage);
  }

  #softState(): SoftState {
    return Object.freeze({ leader: this.#leader, role: this.#role });
  }

  #hardState(): HardState {
    return Object.freeze({ term: this.#term, vote: this.#vote, commit: this.#log.committed });
  }

  #assertNoReadyOutstanding(operation: string): void {
    assert(this.#outstanding === null, `${operation}() called between ready() and advance()`);
  }
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
