/**
 * The deterministic simulator: 3 or 5 managers running the production Raft core, node loop
 * (RaftNode, opened by openRaftNode), sealed WAL, snapshot store and store, with the clock, the
 * network and the disks simulated and every choice drawn from one seed.
 *
 * How it runs. Simulated time advances event by event (scheduler.ts). After each event the
 * microtask queue is drained to quiescence (a setImmediate, which runs only once it is empty):
 * the promise chains the event started (a disk completion resuming the node loop, which sends
 * and applies) all run "at" that instant. JavaScript runs microtasks in a fixed order, and
 * nothing here reaches a real timer, file or socket, so a seed replays exactly.
 *
 * A run has three phases:
 *   1. set-up: the members start, elect a leader, and a client initializes the cluster;
 *   2. faults (options.faultMs): clients write and read while the nemesis injects faults;
 *   3. heal: faults stop, down members restart, clients finish, every key is read once more,
 *      and the cluster must converge (one leader, every entry applied everywhere).
 * Safety invariants (checkers.ts) are checked after every event, message and applied entry; at
 * the end (final-checks.ts) every store must be identical, every acknowledged write present with
 * the outcome its client was told, and the client history linearizable (linearizability.ts).
 *
 * FAULT MODEL (what the system must tolerate, hence what is injected; options.ts picks a mix per
 * seed, some faults off entirely):
 *   network  messages dropped (up to 20%), duplicated (10%), delayed and reordered (held back up
 *            to 3 election timeouts); partitions: majority/minority, isolated member, isolated
 *            leader, bridge, one-way, flapping; healed at the end;
 *   process  crash (kill) and restart at any moment, in the middle of a chosen disk operation
 *            (so inside snapshot installs, segment rotations and recovery), right after granting
 *            a vote, right after a leader sends entries; every member at once; clean restarts;
 *            stop-the-world pauses longer than the election timeout; leadership transfers;
 *            clock drift of up to ±20%; a choreographed walk into Raft's figure 8 (figure-8.ts);
 *   disk     operations slow, spiking, or 10x slower for a while; on power loss, unsynced bytes
 *            lost (all, none or a prefix, torn mid-record with zeros or garbage) and unsynced name
 *            changes lost (a prefix kept); fsync failing with EIO (the member must stop; it is
 *            restarted).
 *   impostor messages from an id outside the configuration (a demoted or removed manager still
 *            holding its certificate), in terms far above the cluster's: every member drops them.
 * Not injected (outside what Raft tolerates, or not modelled yet): corruption or loss of synced
 * data, a majority's disks lost, message corruption (the transport is authenticated), Byzantine
 * members, membership changes.
 */
import { AssertionError } from '../../src/errors.ts';
import { decodeMessages, encodeMessages } from '../../src/node/raft-io/index.ts';
import type { MemberId, Message } from '../../src/raft/types.ts';
import { type Fail, type Invariant, Invariants } from './checkers.ts';
export { formatFailure, type SimFailure, type SimResult, type SimStats } from './report.ts';
import { finalChecks } from './final-checks.ts';
import { Member, type MemberEnvironment } from './member.ts';
import { Nemesis } from './nemesis.ts';
import { deriveOptions, type SimOptions, type SimOverrides } from './options.ts';
import { Prng } from './prng.ts';
import { Scheduler, world } from './scheduler.ts';
import { SimIOError } from './sim-fs.ts';
import { SimNetwork } from './sim-network.ts';
import { describeError, type SimFailure, type SimResult, type SimStats } from './report.ts';
import { dumpWAL } from './wal-dump.ts';
import { Workload } from './workload.ts';

export interface RunOptions extends SimOverrides {
  /** Every trace line as it happens (SIM_TRACE=1). */
  readonly onTrace?: (line: string) => void;
}

const traceTailLines = 40;
/** A run takes about 5,000 events; this many means something spins. */
const eventsMax = 300_000;
const drain = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function runSimulation(seed: number, options: RunOptions = {}): Promise<SimResult> {
  return new Simulation(deriveOptions(seed, options), options.onTrace).run();
}

class Simulation {
  readonly #options: SimOptions;
  readonly #scheduler = new Scheduler();
  readonly #members: Member[];
  readonly #network: SimNetwork;
  readonly #invariants: Invariants;
  readonly #nemesis: Nemesis;
  readonly #workload: Workload;
  readonly #onTrace: ((line: string) => void) | undefined;
  readonly #tail: string[] = [];
  readonly #stats = {
    crashes: 0,
    powerLosses: 0,
    ioErrors: 0,
    snapshotsInstalled: 0,
    checkedOps: 0,
    checkerSteps: 0,
  };
  #hash = 0x811c9dc5;
  #failure: SimFailure | null = null;

  constructor(options: SimOptions, onTrace: ((line: string) => void) | undefined) {
    this.#options = options;
    this.#onTrace = onTrace;
    const root = new Prng(options.seed);
    const ids = Array.from({ length: options.members }, (_, i) => `m${i + 1}` as MemberId);
    const fail: Fail = (invariant, message) => this.#fail(invariant, message);
    const trace = (line: string): void => this.#trace(line);
    this.#network = new SimNetwork(
      this.#scheduler,
      root.fork('network'),
      ids,
      { ...options.network },
      (to, message) =>
        this.#guard(to, () => {
          const member = this.#members[to]!;
          if (member.state === 'up') member.node!.step(message);
        }),
    );
    const env: MemberEnvironment = {
      ...options,
      scheduler: this.#scheduler,
      ids,
      send: (member, messages) => {
        this.#invariants.onSend(member, messages);
        this.#nemesis.onSend(member, messages);
        this.#network.send(member.index, messages);
      },
      applied: (member, index, content, tagged) => {
        this.#invariants.onApply(member, index, content);
        if (tagged !== null) this.#workload.observeApply(tagged.requestId, tagged.result);
      },
      storeReplaced: (member) => {
        this.#stats.snapshotsInstalled++;
        trace(`${member.id} installed a snapshot from the leader`);
      },
      fatal: (member, error) => this.#onFatal(member, error),
      openFailed: (member, error) => {
        // An fsync error while opening stops the process like any other; it is restarted.
        if (isInjectedIOError(error)) return this.#onFatal(member, error);
        fail(
          'restart-failed',
          [
            `${member.id} could not open its data: ${describeError(error)}`,
            ...dumpWAL(member, member.dek),
          ].join('\n'),
        );
      },
      trace,
    };
    this.#members = ids.map((_, i) => {
      const rate = 1 + root.between(-options.clockDrift, options.clockDrift);
      return new Member(env, i, root.fork(`member-${i}`), { ...options.disk }, rate);
    });
    this.#invariants = new Invariants(this.#members, fail, trace);
    const target = {
      scheduler: this.#scheduler,
      members: this.#members,
      network: this.#network,
      leader: () => this.#leader(),
      crash: (member: Member, kind: 'power' | 'process', restartAfterMs: number) =>
        this.#crash(member, kind, restartAfterMs),
      inject: (member: Member, messages: readonly Message[]) =>
        this.#guard(member.index, () => {
          for (const message of decodeMessages(encodeMessages(messages)))
            if (member.state === 'up') member.node!.step(message);
        }),
      trace,
      writeTo: (member: Member, count: number) => this.#workload.writeTo(member, count),
      unexpected: (error: unknown) =>
        fail(
          error instanceof AssertionError ? 'production-assertion' : 'unexpected-error',
          describeError(error),
        ),
    };
    this.#nemesis = new Nemesis(
      options.nemesis,
      target,
      root.fork('nemesis'),
      options.tickMs * options.electionTicks,
    );
    this.#workload = new Workload(options.workload, target, root.fork('clients'));
  }

  async run(): Promise<SimResult> {
    const { faultMs, settleMs } = this.#options;
    const electionMs = this.#options.tickMs * this.#options.electionTicks;
    for (const member of this.#members) member.start();
    this.#workload
      .setup()
      .catch((error: unknown) => this.#fail('unexpected-error', `set-up: ${describeError(error)}`));
    if (!(await this.#runUntil(() => this.#workload.setupDone, 50 * electionMs))) {
      this.#fail(
        'liveness',
        `the cluster was not initialized within ${50 * electionMs}ms of a fault-free start`,
      );
    }
    const faultEnd = this.#scheduler.now + faultMs;
    this.#nemesis.start(faultEnd);
    this.#workload.start(faultEnd);
    await this.#runUntil(() => false, faultEnd);
    this.#heal();
    await this.#settle('client operations to finish', () => this.#workload.idle, settleMs);
    this.#workload.finalReads();
    await this.#settle('the final reads', () => this.#workload.idle, settleMs);
    await this.#settle('the members to converge', () => this.#converged(), settleMs);
    if (this.#failure === null) {
      const checks = finalChecks(this.#members, this.#workload);
      this.#stats.checkedOps = checks.checkedOps;
      this.#stats.checkerSteps = checks.checkerSteps;
      if (checks.verdict !== null) this.#fail(checks.verdict.invariant, checks.verdict.message);
    }
    return this.#result();
  }

  /** Runs events until `done()` holds (true) or simulated time reaches `deadlineMs` (false). */
  async #runUntil(done: () => boolean, deadlineMs: number): Promise<boolean> {
    while (this.#failure === null) {
      if (done()) return true;
      if (this.#scheduler.executed >= eventsMax) {
        this.#fail(
          'liveness',
          `${eventsMax} events without finishing (a message storm or a busy loop): ${this.#describeMembers()}`,
        );
        break;
      }
      const event = this.#scheduler.next(deadlineMs);
      if (event === undefined) return done();
      this.#hash =
        Math.imul(this.#hash ^ Math.floor(event.time * 4096), 0x01000193) ^ (event.owner + 2);
      this.#guard(event.owner, event.run);
      await drain();
      if (this.#failure === null) this.#invariants.afterEvent();
      if (this.#failure === null) this.#nemesis.afterEvent();
    }
    return false;
  }

  async #settle(what: string, done: () => boolean, withinMs: number): Promise<void> {
    if (this.#failure !== null) return;
    if (!(await this.#runUntil(done, this.#scheduler.now + withinMs)) && this.#failure === null) {
      this.#fail(
        'liveness',
        `after healing every fault, still waiting for ${what} ${withinMs}ms later: ${this.#describeMembers()}`,
      );
    }
  }

  #heal(): void {
    this.#nemesis.stop();
    this.#network.faults = { ...this.#options.calmNetwork };
    for (const member of this.#members) {
      member.disk.faults.syncErrorRate = 0;
      member.disk.faults.spikeRate = 0;
    }
  }

  #converged(): boolean {
    const nodes = this.#members.map((m) => (m.state === 'up' ? m.node : null));
    const statuses = nodes.map((node) => node?.core.status());
    const leader = statuses.find((s) => s?.role === 'leader');
    if (leader === undefined) return false;
    return statuses.every(
      (s, i) =>
        s !== undefined &&
        s.term === leader.term &&
        s.leader === leader.id &&
        s.lastIndex === leader.lastIndex &&
        nodes[i]!.store.appliedIndex === leader.lastIndex,
    );
  }

  #crash(member: Member, kind: 'power' | 'process', restartAfterMs: number): void {
    member.crash(kind);
    this.#stats.crashes++;
    if (kind === 'power') this.#stats.powerLosses++;
    this.#trace(
      `${member.id} crashed (${kind === 'power' ? 'power loss' : 'process killed'}), restart in ${restartAfterMs.toFixed(1)}ms`,
    );
    const incarnation = member.incarnation;
    this.#scheduler.after(restartAfterMs, world, () => {
      if (member.incarnation === incarnation && member.state === 'down') member.start();
    });
  }

  #onFatal(member: Member, error: unknown): void {
    if (!isInjectedIOError(error)) {
      const lines = [
        `${member.id} stopped: ${describeError(error)}`,
        ...dumpWAL(member, member.dek),
      ];
      this.#fail(
        error instanceof AssertionError ? 'production-assertion' : 'unexpected-error',
        lines.join('\n'),
      );
      return;
    }
    // fsync failed: the member stopped, as it must (it may not retry); it is restarted like a crash.
    this.#stats.ioErrors++;
    this.#trace(`${member.id} stopped after an fsync error`);
    this.#crash(member, 'power', 5);
  }

  /** Runs an event; a throw is production code failing (an assertion) or a simulator bug. */
  #guard(owner: number, run: () => void): void {
    try {
      run();
    } catch (error) {
      const who = owner === world ? 'the simulator' : this.#members[owner]!.id;
      this.#fail(
        error instanceof AssertionError ? 'production-assertion' : 'unexpected-error',
        `${who}: ${describeError(error)}`,
      );
    }
  }

  #leader(): Member | null {
    let best: Member | null = null;
    let bestTerm = -1;
    for (const member of this.#members) {
      const status = member.state === 'up' ? member.node?.core.status() : undefined;
      if (status?.role === 'leader' && status.term > bestTerm)
        [best, bestTerm] = [member, status.term];
    }
    return best;
  }

  #fail(invariant: Invariant, message: string): void {
    if (this.#failure !== null) return;
    this.#failure = { invariant, message, atMs: this.#scheduler.now };
    this.#trace(`FAILED ${invariant}: ${message}`);
  }

  #trace(line: string): void {
    const stamped = `[${this.#scheduler.now.toFixed(3)}ms] ${line}`;
    for (let i = 0; i < stamped.length; i++)
      this.#hash = Math.imul(this.#hash ^ stamped.charCodeAt(i), 0x01000193);
    this.#tail.push(stamped);
    if (this.#tail.length > traceTailLines) this.#tail.shift();
    this.#onTrace?.(stamped);
  }

  #describeMembers(): string {
    return this.#members
      .map((m) => {
        const s = m.state === 'up' ? m.node?.core.status() : undefined;
        return s === undefined
          ? `${m.id} ${m.state}`
          : `${m.id} ${s.role} term ${s.term} commit ${s.commit} last ${s.lastIndex} applied ${m.node!.store.appliedIndex}`;
      })
      .join('; ');
  }

  #result(): SimResult {
    const history = this.#workload.history;
    const disks = this.#members.map((m) => m.disk.stats);
    const sum = (pick: (d: (typeof disks)[number]) => number): number =>
      disks.reduce((total, d) => total + pick(d), 0);
    const stats: SimStats = {
      events: this.#scheduler.executed,
      simMs: this.#scheduler.now,
      leaderChanges: this.#invariants.leaderChanges,
      ...this.#stats,
      tornFiles: sum((d) => d.tornFiles),
      zeroTails: sum((d) => d.zeroTails),
      lostBytes: sum((d) => d.lostBytes),
      lostNameChanges: sum((d) => d.lostNameChanges),
      walTruncates: sum((d) => d.truncates),
      nemesisActions: this.#nemesis.actions,
      figure8Runs: this.#nemesis.figure8.runs,
      figure8Completed: this.#nemesis.figure8.completed,
      impostorMessages: this.#nemesis.impostorMessages,
      messages: this.#network.stats.sent,
      dropped: this.#network.stats.dropped + this.#network.stats.cut,
      acknowledged: history.filter((h) => h.status === 'ok' && h.requestId !== null).length,
      unknown: history.filter((h) => h.status === 'unknown').length,
      failedOps: history.filter((h) => h.status === 'failed').length,
      reads: history.filter((h) => h.status === 'ok' && h.requestId === null).length,
      stateComparisons: this.#invariants.stateComparisons,
    };
    return {
      seed: this.#options.seed,
      options: this.#options,
      failure: this.#failure,
      stats,
      traceHash: this.#hash >>> 0,
      traceTail: [...this.#tail],
    };
  }
}

function isInjectedIOError(error: unknown): boolean {
  return (
    error instanceof SimIOError || (error instanceof Error && error.cause instanceof SimIOError)
  );
}
