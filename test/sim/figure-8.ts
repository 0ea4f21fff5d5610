/**
 * A choreographed fault schedule that leads the cluster into Raft's figure 8 (Ongaro & Ousterhout,
 * "In Search of an Understandable Consensus Algorithm", §5.4.2), where random faults almost never
 * go. It watches the members after every event and acts at the right instant:
 *
 *   1. the leader A is cut off and clients write to it: entries E of A's term t, on A alone
 *      (with five members, a fifth member D is crashed for the whole scenario);
 *   2. the others elect B, which is cut off at once: B's no-op of term t' > t, at E's first index,
 *      stays on B alone;
 *   3. A is reconnected to the rest (C) and wins term T > t'. It sends its log one entry per
 *      message (the run uses maxEntriesPerMessage = maxInflightMessages = 1), E first, then its
 *      no-op;
 *   4. the moment A's commit index moves, A is killed and B is reconnected to C.
 * A correct leader commits nothing before its no-op is on a quorum, so C then holds A's no-op
 * (term T > t') and elects one of its own. A leader that commits E by counting replicas (the
 * figure-8 bug) has C acknowledging E without the no-op: C's last term is t < t', C votes for
 * B, and B overwrites E, which was committed and applied.
 *
 * Any step that does not go to plan (another member wins, a deadline passes) aborts: links heal,
 * crashed members restart, and the random nemesis carries on.
 */
import type { RaftStatus } from '../../src/raft/core.ts';
import type { Member } from './member.ts';
import type { Prng } from './prng.ts';
import type { Scheduler } from './scheduler.ts';
import type { SimNetwork } from './sim-network.ts';

export interface ScenarioTarget {
  readonly scheduler: Scheduler;
  readonly members: readonly Member[];
  readonly network: SimNetwork;
  leader(): Member | null;
  crash(member: Member, kind: 'power' | 'process', restartAfterMs: number): void;
  /** Client writes sent to `member` first, recorded in the history like any other. */
  writeTo(member: Member, count: number): void;
  trace(line: string): void;
}

type Phase = 'idle' | 'entries' | 'other-leader' | 'a-leader' | 'a-commit' | 'final-leader';

export class Figure8 {
  readonly #target: ScenarioTarget;
  readonly #prng: Prng;
  readonly #electionMs: number;
  #phase: Phase = 'idle';
  #deadline = 0;
  #a: Member | null = null;
  #b: Member | null = null;
  #d: Member | null = null;
  #aTerm = 0;
  #aCommit = 0;
  /** A's last index when it was cut off: entries after it are on A alone. */
  #aLastAtCut = 0;
  runs = 0;
  completed = 0;

  constructor(target: ScenarioTarget, prng: Prng, electionMs: number) {
    this.#target = target;
    this.#prng = prng;
    this.#electionMs = electionMs;
  }

  get active(): boolean {
    return this.#phase !== 'idle';
  }

  start(): void {
    const { members, network } = this.#target;
    const a = this.#target.leader();
    if (this.active || a === null || members.some((m) => m.state !== 'up')) return;
    this.runs++;
    this.#a = a;
    this.#aLastAtCut = status(a)?.lastIndex ?? 0;
    this.#d = members.length > 3 ? this.#prng.pick(members.filter((m) => m !== a)) : null;
    this.#trace(
      `start: ${a.id} leads${this.#d === null ? '' : `, ${this.#d.id} is crashed for the scenario`}; cut ${a.id} off`,
    );
    if (this.#d !== null) this.#target.crash(this.#d, 'process', 1e9);
    network.separate([a.index], this.#others([a]));
    this.#target.writeTo(a, this.#prng.intBetween(1, 3));
    this.#enter('entries', 3);
  }

  /** Called after every event: checks the current step's condition. */
  afterEvent(): void {
    if (!this.active) return;
    if (this.#target.scheduler.now > this.#deadline)
      return this.abort(`step '${this.#phase}' timed out`);
    const a = this.#a!;
    const statusA = status(a);
    switch (this.#phase) {
      case 'entries':
        if (statusA !== null && statusA.lastIndex > this.#aLastAtCut)
          this.#enter('other-leader', 20);
        return;
      case 'other-leader': {
        const b = this.#target.members.find((m) => m !== a && status(m)?.role === 'leader');
        if (b === undefined) return;
        this.#b = b;
        this.#trace(
          `${b.id} leads term ${status(b)!.term}: cut it off before its no-op leaves; reconnect ${a.id}`,
        );
        this.#target.network.heal();
        this.#target.network.separate([b.index], this.#others([b]));
        return this.#enter('a-leader', 30);
      }
      case 'a-leader': {
        const other = this.#target.members.find(
          (m) => m !== a && m !== this.#b && status(m)?.role === 'leader',
        );
        if (other !== undefined) return this.abort(`${other.id} won instead of ${a.id}`);
        if (statusA?.role !== 'leader' || statusA.term <= (status(this.#b!)?.term ?? 0)) return;
        [this.#aTerm, this.#aCommit] = [statusA.term, statusA.commit];
        this.#trace(
          `${a.id} leads term ${statusA.term} with commit ${statusA.commit} and last index ${statusA.lastIndex}`,
        );
        return this.#enter('a-commit', 10);
      }
      case 'a-commit':
        if (statusA === null || statusA.term !== this.#aTerm)
          return this.abort(`${a.id} lost leadership`);
        if (statusA.commit <= this.#aCommit) return;
        this.#trace(`${a.id} commits up to ${statusA.commit}: kill it, reconnect ${this.#b!.id}`);
        this.#target.crash(a, 'process', 1e9);
        this.#target.network.heal();
        return this.#enter('final-leader', 30);
      case 'final-leader': {
        const leader = this.#target.members.find(
          (m) => status(m)?.role === 'leader' && status(m)!.term > this.#aTerm,
        );
        if (leader === undefined) return;
        this.completed++;
        return this.abort(`done: ${leader.id} leads term ${status(leader)!.term}`);
      }
      case 'idle':
        return;
    }
  }

  /** Ends the scenario: every link healed, the members it crashed restarted. */
  abort(why: string): void {
    if (!this.active) return;
    this.#trace(`end (${why})`);
    this.#phase = 'idle';
    this.#target.network.heal();
    for (const member of [this.#a, this.#d])
      if (member !== null && member.state === 'down') member.start();
    this.#a = this.#b = this.#d = null;
  }

  #enter(phase: Phase, electionTimeouts: number): void {
    this.#phase = phase;
    this.#deadline = this.#target.scheduler.now + electionTimeouts * this.#electionMs;
  }

  #others(excluded: readonly Member[]): number[] {
    return this.#target.members.filter((m) => !excluded.includes(m)).map((m) => m.index);
  }

  #trace(line: string): void {
    this.#target.trace(`figure 8: ${line}`);
  }
}

function status(member: Member): RaftStatus | null {
  return member.state === 'up' && member.node !== null ? member.node.core.status() : null;
}
