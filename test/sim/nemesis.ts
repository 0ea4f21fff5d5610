/**
 * The fault injector: at seeded intervals during the fault phase it picks one action, with weights
 * the seed chose (some actions are off for a whole run: a "swarm" of fault mixes):
 *
 *   partition     majority/minority, one member isolated, the leader isolated, a bridge (two
 *                 sides that cannot talk, and one member that talks to both), or one-way links
 *                 (a member that hears but is not heard, or the reverse);
 *   flap          a partition that comes and goes every few election timeouts;
 *   heal          every link restored;
 *   crash         a random member, or the leader, killed (process crash or power loss) and
 *                 restarted after a seeded delay (sometimes at once, sometimes after many
 *                 election timeouts); rarely every member at once (a data-centre power cut);
 *   crash-mid-io  a member crashed in the middle of one of its next disk operations, so that
 *                 crashes land inside multi-step sequences (installing a snapshot, starting a
 *                 WAL segment, truncating a torn tail on recovery);
 *   restart       a clean shutdown and restart;
 *   pause         a stop-the-world pause, longer than an election timeout at times;
 *   transfer      the leader asked to hand leadership to another member;
 *   slow-disk     one member's disk ten times slower for a while;
 *   figure-8      a choreographed schedule that leads to Raft's figure 8 (figure-8.ts); the other
 *                 actions wait while it runs;
 *   impostor      a burst of messages to one member (often the leader) from an id outside the
 *                 configuration, as a demoted or removed manager still holding its certificate
 *                 could send: votes, heartbeats, appends of forged entries, a forged snapshot,
 *                 answers and a leadership hand-over, all in terms far above the cluster's. Every
 *                 member must drop them (checkers.ts: non-member-heard).
 *
 * It also crashes members at chosen points: right after a member grants its vote, right after a
 * leader sends new entries (the vote and the entries are durable by then; the Raft rules say they
 * must survive), and right after a member forwards a read to its leader (the answer may reach the
 * member after it restarted).
 */
import type { Entry, Message } from '../../src/raft/types.ts';
import { impostorId, impostorTermFloor } from './checkers.ts';
import { Figure8, type ScenarioTarget } from './figure-8.ts';
import type { Member } from './member.ts';
import type { Prng } from './prng.ts';
import { world, type Scheduler } from './scheduler.ts';
import type { SimNetwork } from './sim-network.ts';

export type NemesisAction =
  | 'partition'
  | 'flap'
  | 'heal'
  | 'crash'
  | 'crash-leader'
  | 'crash-all'
  | 'crash-mid-io'
  | 'restart'
  | 'pause'
  | 'transfer'
  | 'slow-disk'
  | 'figure-8'
  | 'impostor';
export type PartitionShape = 'majority' | 'isolate' | 'isolate-leader' | 'bridge' | 'one-way';

export interface NemesisOptions {
  /** Time between two actions, in ms. */
  readonly intervalMs: readonly [number, number];
  readonly actions: Readonly<Record<NemesisAction, number>>;
  readonly shapes: Readonly<Record<PartitionShape, number>>;
  /** A crashed member restarts after this long (ms). */
  readonly restartMs: readonly [number, number];
  /** Of crashes, the share that are power losses (unsynced data lost) rather than process crashes. */
  readonly powerLossRate: number;
  readonly pauseMs: readonly [number, number];
  /**
   * Chance of a crash right after a member grants a vote, right after a leader sends entries, and
   * right after a member forwards a read to its leader (whose answer may reach the restarted one).
   */
  readonly crashAfterVoteRate: number;
  readonly crashAfterAppendRate: number;
  readonly crashAfterReadRate: number;
}

export interface NemesisTarget extends ScenarioTarget {
  readonly scheduler: Scheduler;
  readonly members: readonly Member[];
  readonly network: SimNetwork;
  leader(): Member | null;
  crash(member: Member, kind: 'power' | 'process', restartAfterMs: number): void;
  /** Delivers messages to `member` as the network would (through the wire format), from no member. */
  inject(member: Member, messages: readonly Message[]): void;
  trace(line: string): void;
}

export class Nemesis {
  readonly #options: NemesisOptions;
  readonly #target: NemesisTarget;
  readonly #prng: Prng;
  #until = 0;
  #flapping = 0;
  readonly figure8: Figure8;
  actions = 0;
  impostorMessages = 0;

  constructor(options: NemesisOptions, target: NemesisTarget, prng: Prng, electionMs: number) {
    this.#options = options;
    this.#target = target;
    this.#prng = prng;
    this.figure8 = new Figure8(target, prng.fork('figure-8'), electionMs);
  }

  /** After every event: a running scenario checks whether its next step is due. */
  afterEvent(): void {
    this.figure8.afterEvent();
  }

  /** Acts at seeded intervals until `untilMs`. */
  start(untilMs: number): void {
    this.#until = untilMs;
    this.#schedule();
  }

  /** Ends the fault phase: links healed, pauses ended, down members restarted, no more actions. */
  stop(): void {
    const { scheduler, members, network } = this.#target;
    this.#until = 0;
    this.#flapping++;
    this.figure8.abort('the fault phase is over');
    network.heal();
    for (const member of members) {
      scheduler.resume(member.index);
      member.disk.slowDown(1, 0);
      if (member.state === 'down') member.start();
    }
    this.#target.trace('nemesis: healed everything');
  }

  /** Targeted crash points, seen as messages leave a member. */
  onSend(member: Member, messages: readonly Message[]): void {
    if (this.#target.scheduler.now >= this.#until) return;
    const { crashAfterVoteRate, crashAfterAppendRate, crashAfterReadRate } = this.#options;
    const granted = messages.some((m) => m.type === 'vote-response' && !m.reject);
    const entries = messages.some((m) => m.type === 'append' && m.entries.length > 0);
    const read = messages.some((m) => m.type === 'read-index');
    const p =
      (granted ? crashAfterVoteRate : 0) +
      (entries ? crashAfterAppendRate : 0) +
      (read ? crashAfterReadRate : 0);
    if (p > 0 && this.#prng.chance(p)) {
      const why = granted ? 'granting a vote' : entries ? 'sending entries' : 'forwarding a read';
      // After the send returns: the crash is its own event, at the same instant.
      this.#target.scheduler.after(0, world, () => {
        if (member.state !== 'up' || this.#target.scheduler.now >= this.#until) return;
        this.#target.trace(`nemesis: crash ${member.id} right after ${why}`);
        // Back at once, while the election it took part in may still be going on.
        this.#crash(member, this.#prng.between(0, 5));
      });
    }
  }

  #schedule(): void {
    const { scheduler } = this.#target;
    const [lo, hi] = this.#options.intervalMs;
    scheduler.after(this.#prng.between(lo, hi), world, () => {
      if (scheduler.now >= this.#until) return;
      if (!this.figure8.active) {
        this.actions++;
        this.#act(this.#prng.weighted(this.#options.actions));
      }
      this.#schedule();
    });
  }

  #act(action: NemesisAction): void {
    const { members, network, scheduler } = this.#target;
    const prng = this.#prng;
    switch (action) {
      case 'partition':
        return this.#partition(prng.weighted(this.#options.shapes));
      case 'flap':
        return this.#flap(prng.weighted(this.#options.shapes), prng.intBetween(2, 6));
      case 'heal':
        network.heal();
        return this.#target.trace('nemesis: heal');
      case 'crash':
        return this.#crash(prng.pick(members));
      case 'crash-leader': {
        const leader = this.#target.leader();
        return leader === null ? undefined : this.#crash(leader);
      }
      case 'crash-all': {
        const restartMs = prng.between(...this.#options.restartMs);
        this.#target.trace('nemesis: power cut on every member');
        for (const member of members)
          if (member.state !== 'down')
            this.#target.crash(member, 'power', restartMs + prng.float() * 20);
        return;
      }
      case 'crash-mid-io': {
        const member = prng.pick(members);
        const ops = prng.intBetween(1, 40);
        member.disk.crashDuring(ops, () => {
          if (scheduler.now >= this.#until || member.state === 'down') return;
          this.#target.trace(`nemesis: crash ${member.id} during a disk operation`);
          this.#crash(member);
        });
        return;
      }
      case 'restart': {
        const member = prng.pick(members);
        this.#target.trace(`nemesis: clean restart of ${member.id}`);
        return member.restartCleanly();
      }
      case 'pause': {
        const member = prng.chance(0.5)
          ? (this.#target.leader() ?? prng.pick(members))
          : prng.pick(members);
        const ms = prng.between(...this.#options.pauseMs);
        this.#target.trace(`nemesis: pause ${member.id} for ${ms.toFixed(1)}ms`);
        return scheduler.pause(member.index, scheduler.now + ms);
      }
      case 'transfer': {
        const leader = this.#target.leader();
        const to = prng.pick(members.filter((m) => m !== leader));
        if (leader === null || leader.node === null || to === undefined) return;
        this.#target.trace(`nemesis: ask ${leader.id} to transfer leadership to ${to.id}`);
        leader.node.transferLeadership(to.id).catch(() => {}); // refused while another transfer runs: fine
        return;
      }
      case 'figure-8':
        return this.figure8.start();
      case 'impostor':
        return this.#impostor();
      case 'slow-disk': {
        const member = prng.pick(members);
        const ms = prng.between(...this.#options.pauseMs);
        this.#target.trace(`nemesis: ${member.id}'s disk 10x slower for ${ms.toFixed(1)}ms`);
        return member.disk.slowDown(10, scheduler.now + ms);
      }
    }
  }

  #impostor(): void {
    const { members } = this.#target;
    const prng = this.#prng;
    const member = prng.chance(0.6)
      ? (this.#target.leader() ?? prng.pick(members))
      : prng.pick(members);
    if (member.state !== 'up' || member.node === null) return;
    const { lastIndex, commit, term: current } = member.node.core.status();
    const term = impostorTermFloor + prng.intBetween(0, 1000);
    const to = member.id;
    const from = impostorId;
    const forged = (index: number): Entry => ({
      term,
      index,
      type: 'normal',
      data: new TextEncoder().encode(`forged by ${impostorId}`),
    });
    const messages: Message[] = [
      { type: 'pre-vote', from, to, term, lastIndex: lastIndex + 100, lastTerm: term - 1 },
      {
        type: 'vote',
        from,
        to,
        term,
        lastIndex: lastIndex + 100,
        lastTerm: term - 1,
        transfer: true,
      },
      { type: 'heartbeat', from, to, term, commit },
      // From index 1: whoever took it would overwrite committed entries.
      {
        type: 'append',
        from,
        to,
        term,
        prevIndex: 0,
        prevTerm: 0,
        entries: [forged(1), forged(2)],
        commit: lastIndex + 2,
      },
      {
        type: 'append',
        from,
        to,
        term,
        prevIndex: lastIndex,
        prevTerm: current,
        entries: [forged(lastIndex + 1)],
        commit: lastIndex + 1,
      },
      {
        type: 'snapshot',
        from,
        to,
        term,
        snapshot: {
          meta: { index: lastIndex + 50, term, conf: { voters: [impostorId], learners: [] } },
          data: new TextEncoder().encode('{}'),
        },
      },
      {
        type: 'append-response',
        from,
        to,
        term,
        reject: false,
        index: lastIndex,
        commit: lastIndex,
      },
      { type: 'heartbeat-response', from, to, term, commit: lastIndex },
      { type: 'pre-vote-response', from, to, term, reject: false },
      { type: 'vote-response', from, to, term: current, reject: false },
      // In the member's own term: a follower that took it would campaign at once.
      { type: 'timeout-now', from, to, term: current },
      { type: 'read-index', from, to, term: 0, context: 'impostor-read' },
    ];
    const burst = prng.shuffle(messages).slice(0, prng.intBetween(1, messages.length));
    this.impostorMessages += burst.length;
    this.#target.trace(
      `nemesis: ${burst.length} messages from ${impostorId} (outside the configuration) in term ${term} to ${to}: ${burst.map((m) => m.type).join(', ')}`,
    );
    this.#target.inject(member, burst);
  }

  #crash(member: Member, restartAfterMs = this.#prng.between(...this.#options.restartMs)): void {
    if (member.state === 'down') return;
    const kind = this.#prng.chance(this.#options.powerLossRate) ? 'power' : 'process';
    this.#target.crash(member, kind, restartAfterMs);
  }

  #partition(shape: PartitionShape): void {
    const { members, network } = this.#target;
    const prng = this.#prng;
    const all = members.map((m) => m.index);
    network.heal();
    switch (shape) {
      case 'majority': {
        const shuffled = prng.shuffle(all);
        const minority = shuffled.slice(0, Math.floor(all.length / 2));
        network.separate(minority, shuffled.slice(minority.length));
        break;
      }
      case 'isolate':
      case 'isolate-leader': {
        const alone =
          shape === 'isolate-leader'
            ? (this.#target.leader()?.index ?? prng.pick(all))
            : prng.pick(all);
        network.separate(
          [alone],
          all.filter((i) => i !== alone),
        );
        break;
      }
      case 'bridge': {
        const [bridge, ...rest] = prng.shuffle(all);
        const half = Math.ceil(rest.length / 2);
        network.separate(rest.slice(0, half), rest.slice(half));
        void bridge; // talks to both sides
        break;
      }
      case 'one-way': {
        const member = prng.pick(all);
        const deaf = prng.chance(0.5);
        for (const other of all)
          if (other !== member) network.setCut(deaf ? other : member, deaf ? member : other, true);
        break;
      }
    }
    this.#target.trace(`nemesis: partition ${shape}: cut ${network.describe()}`);
  }

  #flap(shape: PartitionShape, rounds: number): void {
    const { scheduler, network } = this.#target;
    const generation = ++this.#flapping;
    const periodMs = this.#prng.between(...this.#options.pauseMs);
    const step = (round: number): void => {
      if (generation !== this.#flapping || scheduler.now >= this.#until || round >= 2 * rounds)
        return;
      if (round % 2 === 0) this.#partition(shape);
      else {
        network.heal();
        this.#target.trace('nemesis: flap heal');
      }
      scheduler.after(periodMs, world, () => step(round + 1));
    };
    step(0);
  }
}
