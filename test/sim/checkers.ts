/**
 * Safety invariants, checked as the run goes (after every event, on every message sent, on every
 * entry applied), so a violation is reported where it happens rather than at the end:
 *
 *   election-safety       at most one leader per term (polled from every live member's core);
 *   double-vote           no member votes for two candidates in one term (grants seen on the wire; a
 *                         vote request shows that its sender voted for itself);
 *   log-matching          one entry per (index, term): two appends that name the same index and term
 *                         carry the same entry (a leader never rewrites its own log within a term);
 *   state-machine-safety  every member applies the same entry at each index (from what each applied);
 *   leader-completeness   a leader never sends, in place of an entry committed before its term, a
 *                         different one (it would overwrite a committed entry on its followers);
 *   state-divergence      members that have applied the same index hold byte-identical stores
 *                         (Store.snapshot()), and a snapshot sent to a follower equals that state;
 *   durability            a member's term never goes back across a restart: every message it sent
 *                         spoke of a term already saved (pre-votes aside, which name a term not
 *                         yet taken);
 *   non-member-heard      no member takes a term or a leader from the impostor, an id outside the
 *                         configuration whose messages (nemesis.ts) speak of terms from
 *                         impostorTermFloor up (a member that stepped one of its appends or
 *                         snapshots would also break log matching or its store).
 *
 * The committed entries are known from what leaders commit (a leader's log at an index is what it
 * sent there in its term) and from what members apply. When an entry was committed is bounded above
 * by the term in which that was first seen (a member learns of a commit from a leader of at most
 * its own term); leader completeness is only asserted for leaders of later terms, so a deposed
 * leader still sending its stale log is not mistaken for a violation.
 */
import type { Entry, MemberId, Message } from '../../src/raft/types.ts';
import type { Member } from './member.ts';

/** The nemesis's sender outside the configuration (a demoted or removed manager, or a stranger). */
export const impostorId = 'impostor' as MemberId;
/** Every term the impostor speaks of is at least this, far above any term a run reaches. */
export const impostorTermFloor = 1_000_000;

export type Invariant =
  | 'election-safety'
  | 'double-vote'
  | 'log-matching'
  | 'state-machine-safety'
  | 'leader-completeness'
  | 'state-divergence'
  | 'durability'
  | 'non-member-heard'
  | 'linearizability'
  | 'liveness'
  | 'production-assertion'
  | 'restart-failed'
  | 'unexpected-error';

export type Fail = (invariant: Invariant, message: string) => void;

interface Committed {
  readonly content: string;
  /** The entry was committed in this term or an earlier one. */
  termBound: number;
  readonly firstBy: string;
}

export class Invariants {
  readonly #members: readonly Member[];
  readonly #fail: Fail;
  readonly #trace: (line: string) => void;
  readonly #leaders = new Map<number, string>();
  readonly #votes = new Map<string, string>();
  /** index → term → content. */
  readonly #entries = new Map<number, Map<number, string>>();
  readonly #committed = new Map<number, Committed>();
  /** applied index → hash of the store at that index. */
  readonly #states = new Map<number, { readonly hash: bigint; readonly by: string }>();
  readonly #lastChecked: number[];
  /** Per member: the term it was last seen leading in (0: not leading). */
  readonly #lastLeaderTerm: number[];
  /** Per member: the commit index last seen while it led, to learn what it commits. */
  readonly #lastCommit: number[];
  /** Per member: the highest term it has sent a message in (so had saved). */
  readonly #savedTerm: number[];
  /** `${leader}@${term}` → index → content: what each leader sent, which is its log in that term. */
  readonly #sentBy = new Map<string, Map<number, string>>();
  readonly #contentOf = new WeakMap<Entry, string>();
  leaderChanges = 0;
  stateComparisons = 0;

  constructor(members: readonly Member[], fail: Fail, trace: (line: string) => void) {
    this.#members = members;
    this.#fail = fail;
    this.#trace = trace;
    this.#lastChecked = members.map(() => -1);
    this.#lastLeaderTerm = members.map(() => 0);
    this.#lastCommit = members.map(() => 0);
    this.#savedTerm = members.map(() => 0);
  }

  onSend(member: Member, messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.type !== 'pre-vote' && m.type !== 'pre-vote-response' && m.type !== 'read-index') {
        this.#savedTerm[member.index] = Math.max(this.#savedTerm[member.index]!, m.term);
      }
      if (m.type === 'vote-response' && !m.reject) this.#vote(m.from, m.term, m.to);
      else if (m.type === 'vote')
        this.#vote(m.from, m.term, m.from); // a candidate has voted for itself
      else if (m.type === 'append') this.#append(member, m.term, m.entries);
      else if (m.type === 'snapshot')
        this.#snapshot(member, m.snapshot.meta.index, m.snapshot.data);
    }
  }

  onApply(member: Member, index: number, content: string): void {
    this.#commit(
      index,
      content,
      member.node?.core.status().term ?? Infinity,
      `${member.id} applied`,
    );
  }

  /** `index` holds `content` for good: learned in `term` (an upper bound on when it was committed). */
  #commit(index: number, content: string, term: number, how: string): void {
    const committed = this.#committed.get(index);
    if (committed === undefined) {
      this.#committed.set(index, { content, termBound: term, firstBy: how });
    } else if (committed.content !== content) {
      this.#fail(
        'state-machine-safety',
        `${how} ${describe(content)} at index ${index}, but ${committed.firstBy} ${describe(committed.content)} there`,
      );
    } else {
      committed.termBound = Math.min(committed.termBound, term);
    }
  }

  /** After every event: leaders per term, and stores at equal applied indexes. */
  afterEvent(): void {
    for (const [i, member] of this.#members.entries()) {
      const node = member.node;
      if (member.state !== 'up' || node === null) continue;
      const { core, store } = node;
      const term = core.term;
      if (term >= impostorTermFloor || core.leader === impostorId) {
        this.#fail(
          'non-member-heard',
          `${member.id} is in term ${term} with leader ${core.leader}: it heard ${impostorId}, which is outside the configuration`,
        );
      }
      if (term < this.#savedTerm[i]!) {
        this.#fail(
          'durability',
          `${member.id} is back in term ${term}, but it had sent messages in term ${this.#savedTerm[i]} before`,
        );
      }
      if (core.role === 'leader') this.#leading(i, member, term, core.status().commit);
      else this.#lastLeaderTerm[i] = 0;
      const applied = store.appliedIndex;
      // Hashing the whole store after every change would dominate the run: stores are compared at
      // every fifth index, and wherever another member's store was already hashed.
      if (applied !== this.#lastChecked[i] && (applied % 5 === 0 || this.#states.has(applied))) {
        this.#lastChecked[i] = applied;
        this.#state(member, applied, store.snapshot());
      }
    }
  }

  #leading(i: number, member: Member, term: number, commit: number): void {
    if (this.#lastLeaderTerm[i] !== term) {
      this.#lastLeaderTerm[i] = term;
      this.#lastCommit[i] = 0;
      this.leaderChanges++;
      this.#trace(`${member.id} is leader of term ${term}`);
      const other = this.#leaders.get(term);
      if (other === undefined) this.#leaders.set(term, member.id);
      else if (other !== member.id)
        this.#fail('election-safety', `${member.id} and ${other} are both leaders of term ${term}`);
    }
    // What a leader commits is committed, applied or not yet: its log there is what it sent.
    const sent = this.#sentBy.get(`${member.id}@${term}`);
    if (sent === undefined) return;
    for (let index = this.#lastCommit[i]! + 1; index <= commit; index++) {
      const content = sent.get(index);
      if (content !== undefined)
        this.#commit(index, content, term, `${member.id}, leader of term ${term}, committed`);
    }
    this.#lastCommit[i] = commit;
  }

  #vote(voter: string, term: number, candidate: string): void {
    const key = `${voter}@${term}`;
    const earlier = this.#votes.get(key);
    if (earlier === undefined) this.#votes.set(key, candidate);
    else if (earlier !== candidate)
      this.#fail(
        'double-vote',
        `${voter} voted for ${earlier} and for ${candidate} in term ${term}`,
      );
  }

  #append(leader: Member, term: number, entries: readonly Entry[]): void {
    const key = `${leader.id}@${term}`;
    let sent = this.#sentBy.get(key);
    if (sent === undefined && entries.length > 0) this.#sentBy.set(key, (sent = new Map()));
    for (const entry of entries) {
      const content = this.#content(entry);
      sent!.set(entry.index, content);
      let terms = this.#entries.get(entry.index);
      if (terms === undefined) this.#entries.set(entry.index, (terms = new Map()));
      const known = terms.get(entry.term);
      if (known === undefined) terms.set(entry.term, content);
      else if (known !== content) {
        this.#fail(
          'log-matching',
          `two entries at index ${entry.index} in term ${entry.term}: ${describe(known)} and ${describe(content)}`,
        );
      }
      const committed = this.#committed.get(entry.index);
      if (committed !== undefined && committed.content !== content && term > committed.termBound) {
        this.#fail(
          'leader-completeness',
          `${leader.id}, leader of term ${term}, sends ${describe(content)} at index ${entry.index}, where ${describe(committed.content)} was committed by term ${committed.termBound}`,
        );
      }
    }
  }

  #snapshot(leader: Member, index: number, data: Uint8Array): void {
    const known = this.#states.get(index);
    if (known !== undefined && known.hash !== Bun.hash.wyhash(data)) {
      this.#fail(
        'state-divergence',
        `${leader.id} sends a snapshot at index ${index} that differs from the store ${known.by} had there`,
      );
    }
  }

  #state(member: Member, applied: number, bytes: Uint8Array): void {
    const hash = Bun.hash.wyhash(bytes);
    const known = this.#states.get(applied);
    this.stateComparisons++;
    if (known === undefined) this.#states.set(applied, { hash, by: member.id });
    else if (known.hash !== hash)
      this.#fail(
        'state-divergence',
        `${member.id} and ${known.by} hold different stores at applied index ${applied}`,
      );
  }

  #content(entry: Entry): string {
    let content = this.#contentOf.get(entry);
    if (content === undefined) {
      content =
        entry.type === 'conf'
          ? `conf:${Buffer.from(entry.data).toString('hex')}`
          : Buffer.from(entry.data).toString('latin1');
      this.#contentOf.set(entry, content);
    }
    return content;
  }
}

function describe(content: string): string {
  if (content === '') return 'an entry without a command';
  return content.length > 120 ? `${content.slice(0, 117)}...` : content;
}
