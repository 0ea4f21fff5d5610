/**
 * One manager in the simulation: its disk, which outlives it, and the current incarnation of its
 * process, opened from that disk with the production `openRaftNode` exactly as the manager opens
 * it, with only the ports swapped (simulated disk, timers and network).
 *
 * A crash abandons the incarnation: its timers never fire again, its disk calls never return, its
 * messages are dropped and its pending promises never settle, as for a killed process. A restart
 * opens a new incarnation on the same disk (recovery included: torn-tail truncation, snapshot
 * loading), which may itself crash before it is up.
 */
import { inOrderSha256 } from '../../src/io/sha256.ts';
import type { Message, MemberId } from '../../src/raft/types.ts';
import type { UnsafeTestingMutations } from '../../src/raft/core.ts';
import type { RaftNode } from '../../src/node/raft-io/index.ts';
import { openRaftNode } from '../../src/node/raft-io/index.ts';
import { encodeCommand, type TaggedCommand } from '../../src/node/store/index.ts';
import type { ApplyResult, Store } from '../../src/node/store/index.ts';
import type { Prng } from './prng.ts';
import type { Scheduler } from './scheduler.ts';
import { SimDisk, type DiskFaults } from './sim-fs.ts';
import { SimTimers } from './sim-timers.ts';

export type MemberState = 'down' | 'starting' | 'up' | 'stopping';

export interface MemberEnvironment {
  readonly scheduler: Scheduler;
  readonly ids: readonly MemberId[];
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly snapshotEntries: number;
  readonly walSegmentBytes: number;
  readonly maxEntriesPerMessage: number;
  readonly maxInflightMessages: number;
  readonly mutations: UnsafeTestingMutations;
  send(from: Member, messages: readonly Message[]): void;
  /** A committed entry applied to this member's store: '' for an entry without a command; a command's request id and outcome. */
  applied(
    member: Member,
    index: number,
    content: string,
    tagged: { readonly requestId: string; readonly result: ApplyResult } | null,
  ): void;
  storeReplaced(member: Member): void;
  /** The process stopped itself (RaftNode's onFatal). */
  fatal(member: Member, error: unknown): void;
  openFailed(member: Member, error: unknown): void;
  trace(line: string): void;
}

export class Member {
  readonly index: number;
  readonly id: MemberId;
  readonly disk: SimDisk;
  state: MemberState = 'down';
  node: RaftNode | null = null;
  incarnation = 0;
  readonly #env: MemberEnvironment;
  readonly #sealPrng: Prng;
  readonly #electionPrng: Prng;
  readonly #clockRate: number;
  /** A fixed DEK per member: sealing is real, the key need not be secret here. */
  readonly dek: Uint8Array;

  constructor(
    env: MemberEnvironment,
    index: number,
    prng: Prng,
    disk: DiskFaults,
    clockRate: number,
  ) {
    this.#env = env;
    this.index = index;
    this.id = env.ids[index]!;
    this.disk = new SimDisk(env.scheduler, index, prng.fork('disk'), disk);
    // Nonces continue across restarts, as from a CSPRNG: reusing one under the same DEK would be a sim artefact.
    this.#sealPrng = prng.fork('seal');
    this.#electionPrng = prng.fork('election');
    this.#clockRate = clockRate;
    this.dek = new Uint8Array(32).fill(index + 1);
  }

  /** Opens a new incarnation from disk; it is 'up' once openRaftNode resolves. */
  start(): void {
    const incarnation = ++this.incarnation;
    const alive = (): boolean => this.incarnation === incarnation;
    const env = this.#env;
    this.state = 'starting';
    const timers = new SimTimers(env.scheduler, this.index, alive, this.#clockRate);
    openRaftNode({
      id: this.id,
      walDir: `/${this.id}/wal`,
      snapshotDir: `/${this.id}/snapshots`,
      dek: this.dek,
      dekKeyId: 1,
      fs: this.disk.mount(),
      sha256: inOrderSha256,
      random: (n) => this.#sealPrng.bytes(n),
      electionRandom: () => this.#electionPrng.float(),
      bootstrapConf: { voters: [...env.ids], learners: [] },
      transport: { send: (messages) => alive() && env.send(this, messages) },
      tickMs: env.tickMs,
      electionTicks: env.electionTicks,
      heartbeatTicks: env.heartbeatTicks,
      timers,
      snapshotEntries: env.snapshotEntries,
      walSegmentBytesTarget: env.walSegmentBytes,
      // A fraction of the tiny segment: extensions, and zeros past the end after a crash, are frequent.
      walPreallocateBytes: Math.max(256, Math.floor(env.walSegmentBytes / 4)),
      coreOptions: {
        maxEntriesPerMessage: env.maxEntriesPerMessage,
        maxInflightMessages: env.maxInflightMessages,
        unsafeTestingMutations: env.mutations,
      },
      onFatal: (error) => alive() && env.fatal(this, error),
      onStore: (store) => this.#watch(store, alive),
    }).then(
      (node) => {
        if (!alive()) return;
        this.node = node;
        this.state = 'up';
        node.start();
        env.trace(`${this.id} up (incarnation ${incarnation})`);
      },
      (error: unknown) => alive() && env.openFailed(this, error),
    );
  }

  /** Kills the process; a power loss also takes what the disk had not made durable. */
  crash(kind: 'power' | 'process'): void {
    this.incarnation++;
    this.node = null;
    this.state = 'down';
    this.disk.crash(kind);
  }

  /** A clean shutdown (RaftNode.stop(): pending writes answered, WAL synced and closed), then a restart. */
  restartCleanly(): void {
    const node = this.node;
    if (this.state !== 'up' || node === null) return;
    const incarnation = this.incarnation;
    this.state = 'stopping';
    node.stop().then(
      () => {
        if (this.incarnation !== incarnation) return;
        this.node = null;
        this.start();
      },
      (error: unknown) => this.incarnation === incarnation && this.#env.fatal(this, error),
    );
  }

  /**
   * The store is the production class; wrapping its two mutators on this instance is the least
   * intrusive way to see each committed entry a member applies (RaftNode has no such hook and
   * needs none). Restored snapshots are seen through storeReplaced instead.
   */
  #watch(store: Store, alive: () => boolean): void {
    const apply = store.apply.bind(store);
    const skip = store.skip.bind(store);
    store.apply = (index: number, command: TaggedCommand) => {
      // The entry's bytes as the checkers read them; before apply, which owns the value after.
      const content = Buffer.from(encodeCommand(command)).toString('latin1');
      const result = apply(index, command);
      const tagged =
        command.requestId === undefined ? null : { requestId: command.requestId, result };
      if (alive()) this.#env.applied(this, index, content, tagged);
      return result;
    };
    store.skip = (index: number) => {
      skip(index);
      if (alive()) this.#env.applied(this, index, '', null);
    };
    if (alive() && this.node !== null) this.#env.storeReplaced(this);
  }
}
