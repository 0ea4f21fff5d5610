/**
 * A deterministic in-memory network of RaftCore members for tests.
 *
 * Fault model: messages can be withheld, dropped, duplicated and delivered in any order; links
 * can be cut (partitions), which also drops messages in flight on them when delivery is tried;
 * a member can crash (losing everything but its "disk") and restart from that disk. Disk writes
 * are atomic and never lost once a Ready is persisted: Raft relies on fsync, and the WAL's own
 * tests cover torn writes.
 *
 * Each member follows the node-loop contract of src/raft/core.ts: persist, send, apply, advance.
 * While doing so the network checks safety: at most one leader per term, and one committed entry
 * per index across all members, whether learned from a persisted commit index or from applying
 * (so committed prefixes agree and committed entries never change). A read requested through
 * readIndex() must come back at an index no lower than anything committed when it was requested
 * (linearizable reads).
 */
import { assert } from '../src/errors.ts';
import { RaftCore, type RaftOptions } from '../src/raft/core.ts';
import type {
  ConfState,
  Entry,
  HardState,
  LogIndex,
  MemberId,
  Message,
  Ready,
  ReadyMessage,
  ReadState,
  Snapshot,
  Term,
} from '../src/raft/types.ts';

/** splitmix32-style generator: one seed derives every choice a test makes. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

export const mid = (id: string): MemberId => id as MemberId;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
export const bytes = (text: string): Uint8Array => encoder.encode(text);
export const text = (data: Uint8Array): string => decoder.decode(data);

/** What survives a crash. */
export interface Disk {
  hardState: HardState | null;
  snapshot: Snapshot | null;
  entries: Entry[];
}

export class SimMember {
  readonly id: MemberId;
  core: RaftCore | null = null;
  disk: Disk = { hardState: null, snapshot: null, entries: [] };
  /** The state machine: one key per applied index, from index 1. */
  applied: string[] = [];
  readStates: ReadState[] = [];
  readies: Ready[] = [];

  constructor(id: MemberId) {
    this.id = id;
  }

  /** The data of applied normal entries, no-ops left out. */
  appliedTexts(): string[] {
    return this.applied
      .filter((key) => key.split('|')[1] === 'normal' && key.split('|')[2] !== '')
      .map((key) => key.split('|').slice(2).join('|'));
  }
}

export interface NetworkOptions {
  /** Founding voters. */
  readonly voters: readonly string[];
  /** Members created idle (not in the configuration), to be added later. */
  readonly spares?: readonly string[];
  readonly seed?: number;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly preVote?: boolean;
  readonly checkQuorum?: boolean;
  readonly maxEntriesPerMessage?: number;
  readonly maxInflightMessages?: number;
  /** Keep every Ready a member handled (for assertions on them); default true. */
  readonly recordReadies?: boolean;
}

const entryKey = (entry: Entry): string => `${entry.term}|${entry.type}|${text(entry.data)}`;

export class RaftNetwork {
  readonly members = new Map<MemberId, SimMember>();
  inFlight: Message[] = [];
  readonly random: () => number;
  /** Global truth: the key of the committed entry at each index, as first learned. */
  readonly committed = new Map<LogIndex, string>();
  readonly leaders = new Map<Term, MemberId>();
  readonly #options: NetworkOptions;
  readonly #bootstrap: ConfState;
  readonly #cut = new Set<string>();
  /** Read context -> the highest index known committed anywhere when the read was requested. */
  readonly #readFloors = new Map<string, LogIndex>();

  constructor(options: NetworkOptions) {
    this.#options = options;
    this.random = seededRandom(options.seed ?? 1);
    this.#bootstrap = { voters: options.voters.map(mid), learners: [] };
    for (const id of [...options.voters, ...(options.spares ?? [])]) {
      const member = new SimMember(mid(id));
      this.members.set(member.id, member);
      this.#start(member);
    }
  }

  member(id: string): SimMember {
    const member = this.members.get(mid(id));
    assert(member !== undefined, `member ${id} exists`);
    return member;
  }

  core(id: string): RaftCore {
    const core = this.member(id).core;
    assert(core !== null, `member ${id} is running`);
    return core;
  }

  live(): SimMember[] {
    return [...this.members.values()].filter((member) => member.core !== null);
  }

  // ---- driving ------------------------------------------------------------------------------

  tick(id: string): void {
    this.core(id).tick();
    this.#observeLeaders();
  }

  tickAll(): void {
    for (const member of this.live()) this.tick(member.id);
  }

  /** Run one Ready of `id` through persist, send, apply, advance. False when it had none. */
  processReady(id: string): boolean {
    const member = this.member(id);
    const core = member.core;
    if (core === null || !core.hasReady()) return false;
    const ready = core.ready();
    if (this.#options.recordReadies !== false) member.readies.push(ready);
    this.#persist(member, ready);
    for (const message of ready.messages) {
      assert(
        message.from === member.id && message.to !== member.id,
        `message ${message.type} from ${message.from} to ${message.to}`,
      );
      if (!this.#isCut(message.from, message.to)) this.inFlight.push(this.#withData(message));
    }
    this.#apply(member, ready);
    core.advance(ready);
    this.#observeLeaders();
    return true;
  }

  processAllReady(): boolean {
    let any = false;
    for (let progress = true; progress;) {
      progress = false;
      for (const member of this.live()) if (this.processReady(member.id)) progress = any = true;
    }
    return any;
  }

  /** Deliver (and remove) the in-flight message at `index`; dropped if its link is cut or its target is down. */
  deliverAt(index: number): void {
    const [message] = this.inFlight.splice(index, 1);
    if (message !== undefined) this.deliver(message);
  }

  /** A message from a Ready goes as it is, but a snapshot's data is read from its sender's disk, as a node does. */
  deliver(message: ReadyMessage): void {
    const target = this.members.get(message.to)?.core ?? null;
    if (target === null || this.#isCut(message.from, message.to)) return;
    target.step(this.#withData(message));
    this.#observeLeaders();
  }

  /** The core names a snapshot by meta only (it keeps no bytes): the data is the sender's snapshot on disk. */
  #withData(message: ReadyMessage): Message {
    if (message.type !== 'snapshot' || 'data' in message.snapshot) return message as Message;
    const saved = this.member(message.from).disk.snapshot;
    assert(
      saved !== null && saved.meta.index === message.snapshot.meta.index,
      `${message.from} sends the snapshot at ${message.snapshot.meta.index} that it saved`,
    );
    return { ...message, snapshot: saved };
  }

  /** Deliver every message in flight, and the ones they cause, until the network is quiet. */
  stabilize(rounds = 10_000): void {
    for (let round = 0; round < rounds; round++) {
      this.processAllReady();
      if (this.inFlight.length === 0) return;
      const batch = this.inFlight;
      this.inFlight = [];
      for (const message of batch) this.deliver(message);
    }
    throw new Error(`network did not stabilize in ${rounds} rounds`);
  }

  /**
   * One tick of the leader `id`, then stabilize: its heartbeats tell the followers its commit
   * index, which a leader sends at its next tick (or with its next append), not at once.
   */
  tellCommit(id: string): void {
    this.tick(id);
    this.stabilize();
  }

  /** Tick everyone and stabilize until `condition` holds; throws after `ticksMax` ticks. */
  tickUntil(condition: () => boolean, ticksMax = 1000): void {
    for (let tick = 0; tick < ticksMax; tick++) {
      if (condition()) return;
      this.tickAll();
      this.stabilize();
    }
    if (!condition()) throw new Error(`condition not reached in ${ticksMax} ticks`);
  }

  /** Request a linearizable read on `id`; the harness checks the ReadState it yields. */
  readIndex(id: string, context: string): void {
    const commits = [
      ...this.committed.keys(),
      ...this.live().map((member) => member.core?.status().commit ?? 0),
    ];
    this.#readFloors.set(context, Math.max(0, ...commits));
    this.core(id).readIndex(context);
  }

  /** Remove in-flight messages matching `predicate`; returns them. */
  take(predicate: (message: Message) => boolean): Message[] {
    const taken = this.inFlight.filter(predicate);
    this.inFlight = this.inFlight.filter((message) => !predicate(message));
    return taken;
  }

  // ---- faults -------------------------------------------------------------------------------

  cut(a: string, b: string): void {
    this.#cut.add(`${a}>${b}`).add(`${b}>${a}`);
  }

  isolate(id: string): void {
    for (const other of this.members.keys()) if (other !== id) this.cut(id, other);
  }

  /** Only members in the same group can talk. */
  partition(groups: readonly (readonly string[])[]): void {
    this.heal();
    for (const a of groups)
      for (const b of groups) if (a !== b) for (const x of a) for (const y of b) this.cut(x, y);
  }

  heal(): void {
    this.#cut.clear();
  }

  crash(id: string): void {
    this.member(id).core = null;
  }

  restart(id: string): void {
    const member = this.member(id);
    assert(member.core === null, `member ${id} is down before restart`);
    this.#start(member);
  }

  /** Snapshot the member's state machine at its applied index and compact its log. */
  compact(id: string): Snapshot {
    const member = this.member(id);
    const status = this.core(id).status();
    const index = status.applied;
    const key = member.applied[index - 1];
    assert(key !== undefined, `member ${id} applied ${index}`);
    const snapshot: Snapshot = {
      meta: { index, term: Number(key.split('|')[0]), conf: status.conf },
      data: bytes(JSON.stringify(member.applied.slice(0, index))),
    };
    member.disk.snapshot = snapshot;
    this.core(id).compact(snapshot.meta);
    member.disk.entries = member.disk.entries.filter((entry) => entry.index > index);
    return snapshot;
  }

  // ---- queries ------------------------------------------------------------------------------

  /** The live leader with the highest term, if any. */
  leader(): MemberId | null {
    let best: { id: MemberId; term: Term } | null = null;
    for (const member of this.live()) {
      const status = member.core?.status();
      if (status?.role === 'leader' && (best === null || status.term > best.term))
        best = { id: member.id, term: status.term };
    }
    return best?.id ?? null;
  }

  // ---- internals ----------------------------------------------------------------------------

  #start(member: SimMember): void {
    const options: RaftOptions = {
      id: member.id,
      electionTicks: this.#options.electionTicks ?? 10,
      heartbeatTicks: this.#options.heartbeatTicks ?? 1,
      random: seededRandom(Math.floor(this.random() * 2 ** 32)),
      ...(this.#options.preVote === undefined ? {} : { preVote: this.#options.preVote }),
      ...(this.#options.checkQuorum === undefined
        ? {}
        : { checkQuorum: this.#options.checkQuorum }),
      ...(this.#options.maxEntriesPerMessage === undefined
        ? {}
        : { maxEntriesPerMessage: this.#options.maxEntriesPerMessage }),
      ...(this.#options.maxInflightMessages === undefined
        ? {}
        : { maxInflightMessages: this.#options.maxInflightMessages }),
      initial: {
        hardState: member.disk.hardState,
        snapshot: member.disk.snapshot?.meta ?? null,
        entries: member.disk.entries,
        conf: this.#bootstrap,
      },
    };
    member.core = new RaftCore(options);
    if (member.disk.snapshot !== null) member.core.compact(member.disk.snapshot.meta);
    member.applied =
      member.disk.snapshot === null ? [] : this.#restoreStateMachine(member.disk.snapshot);
    member.readStates = [];
  }

  #persist(member: SimMember, ready: Ready): void {
    const disk = member.disk;
    if (ready.snapshot !== null) {
      // A snapshot from the leader replaces the whole log.
      disk.snapshot = ready.snapshot;
      disk.entries = [];
    }
    const first = ready.entries[0];
    if (first !== undefined)
      disk.entries = [
        ...disk.entries.filter((entry) => entry.index < first.index),
        ...ready.entries,
      ];
    if (ready.hardState !== null) {
      disk.hardState = ready.hardState;
      this.#recordCommitted(member);
    }
  }

  /** Every entry a member durably knows to be committed must be the one recorded for that index. */
  #recordCommitted(member: SimMember): void {
    const commit = member.disk.hardState?.commit ?? 0;
    for (const entry of member.disk.entries) {
      if (entry.index > commit) break;
      this.#checkCommitted(member.id, entry.index, entryKey(entry));
    }
  }

  #checkCommitted(id: MemberId, index: LogIndex, key: string): void {
    const known = this.committed.get(index);
    if (known === undefined) this.committed.set(index, key);
    else if (known !== key)
      throw new Error(`member ${id} has committed ${key} at ${index}, others ${known}`);
  }

  #apply(member: SimMember, ready: Ready): void {
    if (ready.snapshot !== null) member.applied = this.#restoreStateMachine(ready.snapshot);
    for (const entry of ready.committedEntries) {
      if (entry.index !== member.applied.length + 1) {
        throw new Error(
          `member ${member.id} applies ${entry.index} after ${member.applied.length}`,
        );
      }
      this.#checkCommitted(member.id, entry.index, entryKey(entry));
      member.applied.push(entryKey(entry));
    }
    for (const read of ready.readStates) {
      const floor = this.#readFloors.get(read.context) ?? 0;
      if (read.index < floor)
        throw new Error(
          `read ${read.context} on ${member.id} at ${read.index}, but ${floor} was committed`,
        );
    }
    member.readStates.push(...ready.readStates);
  }

  #restoreStateMachine(snapshot: Snapshot): string[] {
    const keys = JSON.parse(text(snapshot.data)) as string[];
    assert(keys.length === snapshot.meta.index, 'snapshot holds one key per index');
    keys.forEach((key, i) => this.#checkCommitted(mid('snapshot'), i + 1, key));
    return keys;
  }

  #observeLeaders(): void {
    for (const member of this.live()) {
      const status = member.core?.status();
      if (status?.role !== 'leader') continue;
      const known = this.leaders.get(status.term);
      if (known === undefined) this.leaders.set(status.term, member.id);
      else if (known !== member.id)
        throw new Error(`two leaders in term ${status.term}: ${known} and ${member.id}`);
    }
  }

  #isCut(from: MemberId, to: MemberId): boolean {
    return this.#cut.has(`${from}>${to}`);
  }
}
