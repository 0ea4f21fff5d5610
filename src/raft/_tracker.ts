/**
 * The configuration (voters and learners) and everything counted over it: votes in an election,
 * the leader's per-member progress, the commit quorum and check-quorum activity. Only voters are
 * ever counted; learners receive the log and nothing more.
 */
import { assert } from '../errors.ts';
import { Progress } from './_progress.ts';
import { freezeConf } from './conf-change.ts';
import type { ConfState, LogIndex, MemberId } from './types.ts';

export type VoteResult = 'won' | 'lost' | 'pending';

export class Tracker {
  #conf: ConfState = freezeConf({ voters: [], learners: [] });
  /** Leader only: one entry per member, the leader included. */
  readonly progress = new Map<MemberId, Progress>();
  readonly #votes = new Map<MemberId, boolean>();

  get conf(): ConfState {
    return this.#conf;
  }

  setConf(conf: ConfState): void {
    const voters = new Set(conf.voters);
    assert(voters.size === conf.voters.length, `voters ${conf.voters.join(',')} are distinct`);
    assert(!conf.learners.some((id) => voters.has(id)), 'no member is both voter and learner');
    this.#conf = freezeConf(conf);
  }

  isVoter(id: MemberId): boolean {
    return this.#conf.voters.includes(id);
  }

  isMember(id: MemberId): boolean {
    return this.isVoter(id) || this.#conf.learners.includes(id);
  }

  members(): readonly MemberId[] {
    return [...this.#conf.voters, ...this.#conf.learners];
  }

  quorum(): number {
    return Math.floor(this.#conf.voters.length / 2) + 1;
  }

  /** True when the voters in `ids` form a quorum. */
  hasQuorum(ids: ReadonlySet<MemberId>): boolean {
    return this.#conf.voters.filter((id) => ids.has(id)).length >= this.quorum();
  }

  /** The highest index a quorum of voters has (the leader counting its persisted log only). */
  quorumMatch(): LogIndex {
    const matches = this.#conf.voters
      .map((id) => this.progress.get(id)?.match ?? 0)
      .sort((a, b) => b - a);
    return matches[this.quorum() - 1] ?? 0;
  }

  quorumActive(): boolean {
    const active = this.#conf.voters.filter((id) => this.progress.get(id)?.recentActive === true);
    return active.length >= this.quorum();
  }

  resetRecentActive(self: MemberId): void {
    for (const [id, pr] of this.progress) pr.recentActive = id === self;
  }

  /** A new leader knows nothing of its followers: probe each from the end of its own log. */
  resetProgress(
    self: MemberId,
    lastIndex: LogIndex,
    selfMatch: LogIndex,
    inflightMax: number,
  ): void {
    this.progress.clear();
    this.syncProgress(lastIndex, inflightMax);
    const own = this.progress.get(self);
    assert(own !== undefined, `leader ${self} is a member`);
    own.match = selfMatch;
    own.state = 'replicate'; // the leader's own entry: only `match` (its persisted index) is used
    own.recentActive = true;
  }

  /** After a configuration change: track new members, forget removed ones. */
  syncProgress(lastIndex: LogIndex, inflightMax: number): void {
    const members = new Set(this.members());
    for (const id of this.progress.keys()) if (!members.has(id)) this.progress.delete(id);
    for (const id of members) {
      if (!this.progress.has(id)) this.progress.set(id, new Progress(lastIndex + 1, inflightMax));
    }
  }

  resetVotes(): void {
    this.#votes.clear();
  }

  /** Record a voter's answer; the first answer from each voter is the one that counts. */
  recordVote(id: MemberId, granted: boolean): void {
    if (this.isVoter(id) && !this.#votes.has(id)) this.#votes.set(id, granted);
  }

  voteResult(): VoteResult {
    let granted = 0;
    let rejected = 0;
    for (const value of this.#votes.values()) value ? granted++ : rejected++;
    const quorum = this.quorum();
    if (granted >= quorum) return 'won';
    if (rejected > this.#conf.voters.length - quorum) return 'lost';
    return 'pending';
  }
}
