/**
 * RaftNode: the one loop that owns the order of I/O around the pure Raft core (src/raft/core.ts).
 * This header is the contract between the two, written once (core.ts and types.ts point here).
 *
 * For every Ready `rd = core.ready()`, one at a time, in this order (`#loop`):
 *   1. A leader applies the committed entries that are already durable here (rd.committedEntries
 *      up to the last index persisted by an earlier Ready) and answers their proposals. When it
 *      answered any and this Ready writes no new entries (it commits what an earlier one wrote:
 *      one writer at a time), the loop waits one turn of the event loop here, so those answers go
 *      out before the hard state's write and any message, not interleaved with them. A member
 *      that does not lead answers no proposal and applies them at 5: the commit index an append
 *      brings would otherwise put the previous entry's apply before this one's write and the
 *      answer the leader waits for.
 *   2. Persist (`#persist`):
 *      a. rd.snapshot, if any (a leader's; it replaces the whole log): the snapshot file, then the
 *         WAL's marker (each synced by its own write), then the store is restored from it;
 *      b. rd.entries (which may overwrite the persisted tail from entries[0].index on) and
 *         rd.hardState as ONE WAL batch, fsynced when rd.mustSync. Group commit: every proposal
 *         that arrived while the previous fsync ran is in this batch.
 *   3. Assert that nothing of this Ready is answered before it is durable (`#assertDurable`): the
 *      term and vote as fsynced, the new entries, and every committed entry to apply.
 *   4. Send rd.messages. 4a: a leader sends its append messages BEFORE 2 instead (`#earlyAppends`),
 *      so its own WAL write and fsync run alongside its followers' (etcd's leader does the same).
 *      4b: the core names a snapshot to send by its meta only (it keeps no snapshot bytes): the
 *      data is read from the snapshot store and the message sent once read, off the loop
 *      (`#sendSnapshot`); a snapshot is committed state, so it promises nothing of this Ready.
 *      4c: appends that carry no entries may wait a turn of the event loop, and give way to a
 *      later append to the same peer (`#send`): a lost message, which Raft allows. (Any other
 *      new commit index goes to followers with the next append or in the next tick's heartbeats:
 *      core.ts #onCommitted.)
 *   5. Apply the remaining committed entries and answer their proposals; hand out rd.readStates
 *      (each read is answered once the store has applied readState.index).
 *   6. core.advance(rd).
 *   7. If this member no longer leads, fail the proposals still waiting; once another leader is
 *      known, fail the reads sent to the one before (the core never answers them); call the
 *      onAdvanced listeners (leader, role, configuration and applied index may have moved).
 *   8. Every `snapshotEntries` applied entries, or `snapshotLogBytes` bytes of applied entry data,
 *      take the store's snapshot (the state at the applied index, captured now; its secrets are
 *      written on the loop a slice at a time with a turn of the loop between slices, so a large
 *      store never holds it for long) and write it OFF the loop: the snapshot file, then the WAL's
 *      marker; Readies go on meanwhile (a snapshot is committed state: nothing waits for it). Once
 *      both are durable the core compacts its log behind it, between Readies (compact() is refused
 *      in between). One such write at a time; a forced one (key rotation) and a leader's snapshot
 *      wait for it. The snapshot store writes a piece that never changes (a full audit segment, a
 *      secret value of 1 KiB or more) only once.
 *   9. Feed the core what arrived meanwhile: it takes no input between ready() and advance(), so
 *      ticks, messages, proposals and reads wait in `#inbox` and land in the next Ready.
 *  10. With no Ready left: if a key rotation waits for this member to apply the entries its log
 *      held when the key changed, and it has, snapshot and compact now (`#maybeFinishRotation`).
 *
 * Key rotation (`rotateKey`, swarmkit's in spirit): the WAL seals every later record with the new
 * key, in a new segment, and so do later snapshots; once the store has applied every entry the
 * old key's segments may hold, a snapshot is sealed with the new key at that index (even if one
 * exists there already) and the log compacted behind it, which deletes those segments whole and
 * every snapshot under the old key. Then, and only then, the rotation resolves: the caller may
 * forget the old key.
 *
 * Applying a committed entry: a 'normal' entry with data is a command for the store; a leader's
 * no-op (empty data) and a 'conf' entry (the core applies it to itself at advance()) only move the
 * store's applied index (`_replay.ts`, shared with --force-new-cluster).
 *
 * Why this order is safe:
 *   - A message promises durability: a vote promises the term and vote, an append answer the
 *     entries it acknowledges. Messages go out at 4, after 2 made the term, vote and entries
 *     durable (the core's rd.mustSync, etcd's MustSync; checked at 3). A leader's append (4a)
 *     promises nothing of its own log, so it may go out before 2, but only in a term and with a
 *     vote already durable: a follower that takes it must never see this member in a term it
 *     could forget after a crash. The commit index alone is
 *     written without an fsync: a restarted member learns it again from the leader.
 *   - A proposal is answered only once its entry is committed (so durable on a quorum) AND durable
 *     here: at 1 only entries persisted by an earlier Ready, at 5 only after 2. The leader counts
 *     its own log towards the quorum only after advance(), so what it commits it has persisted.
 *     Applying at 1 needs nothing from this Ready, whose hard state only adds to what is committed:
 *     so a write persisted by an earlier batch is answered without waiting for this batch's fsync.
 *   - The snapshot restored at 2a is already on disk and holds only committed state (a leader
 *     sends nothing else); while one is pending the core hands out no committed entries, so 1 and
 *     5 never mix with it. Its hard state, written at 2b without an fsync when only the commit
 *     index moved, is finished at the next start if a crash cut it (open-raft-node.ts).
 *   - A linearizable read is answered at 5 or later, when its index is applied.
 * A client is therefore answered only at 1 or 5, and an acknowledged write was fsynced first.
 */
import { assert, SecretdError } from '../../errors.ts';
import {
  proposalQueueMax,
  snapshotEntriesInterval,
  snapshotIdleMs,
  snapshotLogBytesInterval,
} from '../../limits.ts';
import type { RaftCore } from '../../raft/core.ts';
import type { SnapshotStore } from '../../raft/snapshot-store.ts';
import type {
  ConfChange,
  Entry,
  HardState,
  MemberId,
  Message,
  Ready,
  ReadyMessage,
  Snapshot,
  SnapshotMeta,
  SnapshotPiece,
  Term,
} from '../../raft/types.ts';
import type { WAL } from '../../raft/wal.ts';
import { systemTimers, type Timers } from '../../io/timers.ts';
import { encodeCommand, parseCommand, type TaggedCommand } from '../store/index.ts';
import { Store, type ApplyResult } from '../store/index.ts';
import { replayCommitted } from './_replay.ts';
import { processMetrics, requestTrace, type SecretdMetrics } from '../metrics/index.ts';

export interface Transport {
  /**
   * Hands messages over for sending, in order per peer. `later`: they may wait for the next turn
   * of the event loop, and an append that carries no entries may be dropped if a later append to
   * the same peer in the same term, which carries a commit index as new, goes out with it.
   */
  send(messages: readonly Message[], options?: { readonly later?: boolean }): void;
}

/** A key that seals WAL records and snapshots. */
export interface DataKey {
  readonly dek: Uint8Array;
  readonly keyId: number;
}

export interface RaftNodeOptions {
  readonly core: RaftCore;
  readonly wal: WAL;
  readonly snapshots: SnapshotStore;
  readonly store: Store;
  readonly transport: Transport;
  /** Wall-clock length of one Raft tick. */
  readonly tickMs: number;
  /** The clock (default: the system's); the simulator passes simulated time. */
  readonly timers?: Timers;
  /** Applied entries between snapshots (default snapshotEntriesInterval). */
  readonly snapshotEntries?: number;
  /** Bytes of applied entry data after which a snapshot is taken, whatever the count (default snapshotLogBytesInterval). */
  readonly snapshotLogBytes?: number;
  /** Called when a snapshot from the leader replaces the whole store. */
  readonly onStoreReplaced?: (store: Store) => void;
  /** Fatal I/O error: the process must stop rather than serve from a state it cannot persist. */
  readonly onFatal: (error: unknown) => void;
  /**
   * Prefix of this process's ReadIndex contexts (default ''), which must differ from one start of
   * a member to the next and between members: otherwise a leader's late answer to a read made
   * before a restart answers a read made after it, with a stale index (a stale read, found by the
   * simulator). openRaftNode draws it at random.
   */
  readonly readContextPrefix?: string;
  /** Where the stages of each write are recorded (default: the process's, served on /secretd/metrics). */
  readonly metrics?: SecretdMetrics;
}

interface Pending {
  readonly term: number;
  /** When propose() was called (ms, the metrics clock). */
  readonly at: number;
  readonly resolve: (result: ApplyResult) => void;
  readonly reject: (error: Error) => void;
}

/** A linearizable read under way: the leader the core sent it to (when it took it), and its end. */
interface WaitingRead {
  readonly leader: MemberId | null;
  readonly settle: (error: Error | null) => void;
}

export class RaftNode {
  readonly #core: RaftCore;
  readonly #wal: WAL;
  readonly #snapshots: SnapshotStore;
  #store: Store;
  readonly #options: RaftNodeOptions;
  readonly #pending = new Map<number, Pending>();
  /** Linearizable reads the core has not answered yet, by context (see linearizableRead). */
  readonly #reads = new Map<string, WaitingRead>();
  /** Reads the core answered, each waiting for the store to apply its index. */
  readonly #appliedWaiters: Array<{ readonly index: number; readonly read: WaitingRead }> = [];
  #readSeq = 0;
  /** Inputs that arrived while a Ready was outstanding; bounded by proposalQueueMax. */
  readonly #inbox: Array<() => void> = [];
  #readyOutstanding = false;
  #running = false;
  /** The loop's run under way (settled when it ends, and at once when none has run): stop() awaits it. */
  #loopRun: Promise<void> = Promise.resolve();
  #stopped = false;
  #stopTicking: (() => void) | null = null;
  readonly #timers: Timers;
  readonly #metrics: SecretdMetrics;
  /** When the first Raft message since the last Ready arrived (ms, the metrics clock); -1: none. */
  #stepAt = -1;
  /** The term and vote as last fsynced (or recovered): all that a message sent now may promise. */
  #durableVote: { readonly term: Term; readonly vote: MemberId | null };
  /** The last log index fsynced here. */
  #stableIndex = 0;
  #appliedTerm = 0;
  /** The index of the newest snapshot the core has compacted behind. */
  #snapshotIndex = 0;
  /**
   * The snapshot this member opened from and the last index its WAL held then (metrics: a restart
   * replays the entries between them, the snapshot's index alone moves on as snapshots are taken).
   */
  readonly #opened: { readonly snapshot: number; readonly last: number };
  /** The index of the newest snapshot taken (written, or being written: step 8). */
  #takenIndex = 0;
  /** Bytes of entry data applied since the last snapshot taken (step 8 of the header). */
  #appliedBytes = 0;
  /** The applied index at the last tick, and the ticks since it last moved (step 8, idle). */
  #idleApplied = 0;
  #idleTicks = 0;
  /** The snapshot being written off the loop (step 8); null when none. */
  #snapshotting: Promise<void> | null = null;
  /** A snapshot written and marked whose compact() waits for the Ready in hand to advance. */
  #snapshotWritten: SnapshotMeta | null = null;
  /** Snapshots being read from disk to send, by index and term: one read however many followers want it. */
  readonly #snapshotReads = new Map<string, Promise<Snapshot | null>>();
  /**
   * The key rotation under way: it waits for the store to apply `untilIndex` (see the header);
   * null while the WAL is switching keys or the snapshot is being written.
   */
  #rotation: {
    readonly key: DataKey;
    untilIndex: number | null;
    readonly resolve: () => void;
    readonly reject: (error: Error) => void;
  } | null = null;

  constructor(
    options: RaftNodeOptions,
    recovered: {
      hardState: HardState | null;
      lastIndex: number;
      snapshotIndex: number;
      snapshotTerm: number;
    },
  ) {
    this.#options = options;
    this.#timers = options.timers ?? systemTimers;
    this.#metrics = options.metrics ?? processMetrics;
    this.#core = options.core;
    this.#wal = options.wal;
    this.#snapshots = options.snapshots;
    this.#store = options.store;
    this.#durableVote = {
      term: recovered.hardState?.term ?? 0,
      vote: recovered.hardState?.vote ?? null,
    };
    this.#stableIndex = recovered.lastIndex;
    this.#snapshotIndex = recovered.snapshotIndex;
    this.#takenIndex = recovered.snapshotIndex;
    this.#appliedTerm = recovered.snapshotTerm;
    this.#opened = { snapshot: recovered.snapshotIndex, last: recovered.lastIndex };
  }

  /** Whether this member has stopped (stop(), or a failure of its loop): it takes no input. */
  get stopped(): boolean {
    return this.#stopped;
  }

  get store(): Store {
    return this.#store;
  }

  get core(): RaftCore {
    return this.#core;
  }

  readonly #advancedListeners = new Set<() => void>();
  /** waitForLeader's waiters, failed by stop(). */
  readonly #leaderWaits = new Set<(error: SecretdError | null) => void>();

  /**
   * Calls `listener` after every Ready is advanced: the leader, this member's role, the
   * configuration and the applied index may have moved. Returns a function that stops it. A
   * listener must not throw (it runs inside the loop).
   */
  onAdvanced(listener: () => void): () => void {
    this.#advancedListeners.add(listener);
    return () => void this.#advancedListeners.delete(listener);
  }

  start(): void {
    this.#metrics.registry.gauge(
      'secretd_raft',
      "This member's Raft term and indexes.",
      this.#raftGauge,
    );
    this.#metrics.registry.gauge(
      'secretd_store_objects',
      "What this member's store holds: secrets, their versions, the bytes of their values, audit records.",
      this.#storeGauge,
    );
    this.#stopTicking = this.#timers.every(this.#options.tickMs, () =>
      this.#input(() => {
        if (this.#stopped) return;
        this.#core.tick();
        this.#idleTick();
      }),
    );
    this.#kick();
  }

  campaign(): void {
    this.#input(() => {
      if (!this.#stopped) this.#core.campaign();
    });
  }

  step(message: Message): void {
    if (this.#stopped) return;
    if (this.#stepAt < 0 && message.type === 'append') this.#stepAt = this.#timers.now();
    this.#input(() => {
      if (!this.#stopped) this.#core.step(message);
    });
  }

  /** Resolves once the command is committed, fsynced and applied, with the store's verdict. */
  propose(command: TaggedCommand): Promise<ApplyResult> {
    if (this.#stopped)
      return Promise.reject(new SecretdError('unavailable', 'Node is shutting down'));
    if (this.#inbox.length >= proposalQueueMax)
      return Promise.reject(new SecretdError('unavailable', 'Too many writes waiting; try again'));
    // The schema the store checks again when it applies: a malformed write is refused before it is in the log.
    try {
      parseCommand(command);
    } catch (error) {
      return Promise.reject(error);
    }
    const data = encodeCommand(command);
    const metrics = this.#metrics;
    const timers = this.#timers;
    const at = timers.now();
    // The create route's own clock (the process's metrics), only when a request is being traced.
    const trace = requestTrace.getStore();
    if (trace)
      processMetrics.create.proposed.observe((processMetrics.now() - trace.receivedAt) / 1000);
    return new Promise<ApplyResult>((resolve, reject) => {
      this.#input(() => {
        if (this.#refusedAfterStop(reject)) return;
        try {
          const index = this.#core.propose(data);
          metrics.proposals.inc();
          metrics.leader.queued.observe((timers.now() - at) / 1000);
          this.#pending.set(index, { term: this.#core.term, at, resolve, reject });
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  /**
   * Waits until the store reflects every write committed before this call (ReadIndex). A read
   * lost to a leader change yields nothing from the core: it is refused when this member learns
   * of another leader than the one it was sent to (as etcd refuses its reads on a leader change)
   * or stops, and otherwise at the time limit.
   */
  linearizableRead(timeoutMs = 5000): Promise<void> {
    if (this.#stopped)
      return Promise.reject(new SecretdError('unavailable', 'Node is shutting down'));
    const context = `${this.#options.readContextPrefix ?? ''}r${++this.#readSeq}`;
    return new Promise<void>((resolve, reject) => {
      const cancel = this.#timers.after(timeoutMs, () => {
        this.#reads.delete(context);
        reject(
          new SecretdError(
            'unavailable',
            'Cannot read: no leader confirmed this read in time; try again',
          ),
        );
      });
      const settle = (error: Error | null): void => {
        cancel();
        if (error === null) resolve();
        else reject(error);
      };
      this.#input(() => {
        if (this.#refusedAfterStop(settle)) return;
        try {
          this.#core.readIndex(context);
          this.#reads.set(context, { leader: this.#core.leader, settle });
        } catch (error) {
          settle(error as Error);
        }
      });
    });
  }

  /**
   * Resolves once some member is known to lead (this one, in a one-member cluster), at the end of
   * a Ready (step 7's listeners), not at the next poll: it polled every 5 ms, which a restart
   * waited for.
   */
  waitForLeader(timeoutMs: number): Promise<void> {
    if (this.#stopped)
      return Promise.reject(new SecretdError('unavailable', 'Node is shutting down'));
    const known = (): boolean => this.#core.leader !== null && !this.#readyOutstanding;
    if (known()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const settle = (error: SecretdError | null): void => {
        cancelTimer();
        stopWatching();
        this.#leaderWaits.delete(settle);
        if (error === null) resolve();
        else reject(error);
      };
      const cancelTimer = this.#timers.after(timeoutMs, () =>
        settle(new SecretdError('unavailable', 'No leader was elected in time')),
      );
      const stopWatching = this.onAdvanced(() => {
        if (known()) settle(null);
      });
      this.#leaderWaits.add(settle);
    });
  }

  /** Proposes a membership change (one at a time, enforced by the core); resolves when queued. */
  proposeConfChange(change: ConfChange): Promise<void> {
    return this.#call(() => void this.#core.proposeConfChange(change));
  }

  transferLeadership(to: MemberId): Promise<void> {
    return this.#call(() => this.#core.transferLeadership(to));
  }

  #call(fn: () => void): Promise<void> {
    if (this.#stopped)
      return Promise.reject(new SecretdError('unavailable', 'Node is shutting down'));
    return new Promise((resolve, reject) =>
      this.#input(() => {
        if (this.#refusedAfterStop(reject)) return;
        try {
          fn();
          resolve();
        } catch (error) {
          reject(error);
        }
      }),
    );
  }

  /**
   * Feeds the core now, or right after the outstanding Ready is advanced. Each input looks at
   * #stopped when it runs: one that waited in the inbox through a stop is refused, not applied.
   */
  #input(apply: () => void): void {
    if (this.#readyOutstanding) this.#inbox.push(apply);
    else apply();
    this.#kick();
  }

  /** True, with `reject` called, once this member has stopped: for an input that waited through a stop. */
  #refusedAfterStop(reject: (error: Error) => void): boolean {
    if (!this.#stopped) return false;
    reject(new SecretdError('unavailable', 'Node is shutting down'));
    return true;
  }

  #drainInbox(): void {
    for (const apply of this.#inbox.splice(0)) apply();
  }

  /**
   * Seals every later WAL record and snapshot with `key` at once; resolves once no record or
   * snapshot sealed with any other key remains on disk (see the header). One rotation at a time.
   */
  rotateKey(key: DataKey): Promise<void> {
    if (this.#stopped)
      return Promise.reject(new SecretdError('unavailable', 'Node is shutting down'));
    if (this.#rotation !== null)
      return Promise.reject(
        new SecretdError(
          'conflict',
          `Cannot rotate to key id ${key.keyId}: a rotation to key id ${this.#rotation.key.keyId} is under way`,
        ),
      );
    return new Promise<void>((resolve, reject) => {
      const rotation = { key, untilIndex: null as number | null, resolve, reject };
      this.#rotation = rotation;
      this.#snapshots.rotateKey(key);
      this.#wal.rotateKey(key).then(
        (untilIndex) => {
          rotation.untilIndex = untilIndex;
          this.#kick();
        },
        (error: unknown) => {
          if (this.#rotation === rotation) this.#rotation = null;
          reject(error as Error);
        },
      );
    });
  }

  /** The key id of every WAL segment and snapshot file on disk (the same id may repeat). */
  keyIdsOnDisk(): number[] {
    return [...this.#wal.keyIds(), ...this.#snapshots.keyIds()];
  }

  readonly #raftGauge = (): ReadonlyArray<readonly [{ readonly index: string }, number]> => {
    const status = this.#core.status();
    return [
      [{ index: 'term' }, status.term],
      [{ index: 'commit' }, status.commit],
      [{ index: 'applied' }, this.#store.appliedIndex],
      [{ index: 'last' }, status.lastIndex],
      [{ index: 'snapshot' }, this.#snapshotIndex],
      [{ index: 'opened_snapshot' }, this.#opened.snapshot],
      [{ index: 'opened_last' }, this.#opened.last],
      [{ index: 'leader' }, status.role === 'leader' ? 1 : 0],
    ];
  };

  readonly #storeGauge = (): ReadonlyArray<readonly [{ readonly kind: string }, number]> => {
    let secrets = 0;
    let versions = 0;
    let bytes = 0;
    for (const secret of this.#store.secrets()) {
      secrets++;
      versions += secret.versions.length;
      for (const version of secret.versions) bytes += version.data.byteLength;
    }
    return [
      [{ kind: 'secrets' }, secrets],
      [{ kind: 'secret_versions' }, versions],
      [{ kind: 'secret_value_bytes' }, bytes],
      [{ kind: 'audit_records' }, this.#store.audit.size],
    ];
  };

  async stop(): Promise<void> {
    this.#metrics.registry.dropGauge('secretd_raft', this.#raftGauge);
    this.#metrics.registry.dropGauge('secretd_store_objects', this.#storeGauge);
    this.#stopped = true;
    this.#stopTicking?.();
    this.#rotation?.reject(
      new SecretdError('unavailable', 'Node is shutting down; the key rotation resumes at restart'),
    );
    this.#rotation = null;
    this.#failPending('Node is shutting down');
    this.#failReads();
    for (const settle of [...this.#leaderWaits])
      settle(new SecretdError('unavailable', 'Node is shutting down'));
    // The run under way ends at its next look at #stopped; none starts after (#kick).
    while (this.#running) await this.#loopRun;
    // Input still waiting (a run that failed mid-Ready leaves some) is refused now (#input).
    this.#drainInbox();
    await this.#snapshotting; // settles either way: a failure after stop is not reported
    await this.#wal.close();
  }

  #kick(): void {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    this.#loopRun = new Promise<void>((ended) => {
      queueMicrotask(() => {
        this.#loop()
          .catch((error: unknown) => this.#fail(error))
          .finally(() => {
            this.#running = false;
            ended();
            // Input that came while the loop was finishing (after its last look at the core,
            // during its last awaits) found it running, so its own kick did nothing: it goes now,
            // not at the next tick. A write proposed right after a read (rm, update: the read's
            // Ready ends the loop's last turn) waited 0-50 ms for that tick, 37 ms on average.
            if (!this.#stopped && this.#core.hasReady()) this.#kick();
          });
      });
    });
  }

  /** A failure of the loop or of a snapshot written off it: this member stops. */
  #fail(error: unknown): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopTicking?.();
    this.#options.onFatal(error);
  }

  async #loop(): Promise<void> {
    do await this.#readies();
    while (!this.#stopped && (await this.#maybeFinishRotation()));
  }

  async #readies(): Promise<void> {
    while (!this.#stopped && this.#core.hasReady()) {
      const ready = this.#core.ready();
      this.#readyOutstanding = true;
      const stepAt = this.#stepAt;
      this.#stepAt = -1;
      this.#recordCommitted(ready.committedEntries);
      // Durable already: persisted by an earlier Ready and not rewritten by this one (a new leader
      // may replace an uncommitted tail from ready.entries[0].index on).
      const stable = Math.min(
        this.#stableIndex,
        (ready.entries[0]?.index ?? Number.POSITIVE_INFINITY) - 1,
      );
      // Step 1 is a leader's: a follower applies everything at 5, after its answers are sent.
      const leads = this.#core.role === 'leader';
      const durable = leads ? ready.committedEntries.filter((e) => e.index <= stable) : [];
      const later = ready.committedEntries.slice(durable.length);
      const answered = this.#applyEntries(durable);
      if (answered > 0 && ready.entries.length === 0)
        await new Promise<void>((resolve) => this.#timers.turn(resolve));
      // A leader's appends go out before its own write, which runs alongside the followers' (4a).
      const early = this.#earlyAppends(ready);
      if (early !== null) {
        this.#options.transport.send(early);
        this.#recordSent(ready, stepAt);
      }
      await this.#persist(ready);
      this.#assertDurable(ready, later);
      const persistedAt = this.#recordPersisted(ready, stepAt);
      const rest =
        early === null
          ? ready.messages
          : ready.messages.filter((m) => m.type !== 'append' || !early.includes(m));
      this.#send(rest);
      if (persistedAt >= 0 && early === null) this.#recordSent(ready, stepAt);
      this.#applyEntries(later);
      for (const readState of ready.readStates) {
        const read = this.#reads.get(readState.context);
        if (read === undefined) continue; // timed out meanwhile
        this.#reads.delete(readState.context);
        this.#whenApplied(readState.index, read);
      }
      this.#core.advance(ready);
      this.#readyOutstanding = false;
      if (ready.softState && ready.softState.role !== 'leader')
        this.#failPending('This manager lost leadership');
      if (ready.softState) this.#failLostReads(ready.softState.leader);
      for (const listener of [...this.#advancedListeners]) listener();
      this.#maybeSnapshot();
      this.#drainInbox();
    }
  }

  /**
   * Step 4a of the header: the append messages a leader may send before this Ready is persisted,
   * or null. Only while it leads in the term and with the vote already durable (a Ready that
   * changes either sends everything after its fsync) and with no snapshot to install: an append
   * promises nothing about the leader's own log, which counts towards a quorum only once it is
   * persisted (the core takes the leader's own match from advance()).
   */
  #earlyAppends(ready: Ready): Message[] | null {
    if (ready.messages.length === 0 || ready.snapshot) return null;
    const core = this.#core;
    if (core.role !== 'leader') return null;
    const durable = this.#durableVote;
    const hard = ready.hardState;
    if (hard !== null && (hard.term !== durable.term || hard.vote !== durable.vote)) return null;
    if (core.term !== durable.term) return null;
    let early: Message[] | null = null;
    for (const message of ready.messages)
      if (message.type === 'append' && message.term === durable.term) (early ??= []).push(message);
    return early;
  }

  /**
   * Step 4 of the header: every message now, but a snapshot once its data is read (4b). Appends
   * that carry no entries (a probe, or a commit index the core tells at once: a membership
   * change's or a new leader's no-op's; core.ts #onCommitted) may wait a turn of the event loop
   * (4c): under load the next batch's appends, which carry that commit index too, come meanwhile
   * and take their place, sparing a message each way per peer.
   */
  #send(messages: readonly ReadyMessage[]): void {
    const now: Message[] = [];
    let commitOnly = true;
    for (const message of messages)
      if (message.type === 'snapshot') this.#sendSnapshot(message);
      else {
        now.push(message);
        if (message.type !== 'append' || message.entries.length > 0) commitOnly = false;
      }
    if (now.length > 0) this.#options.transport.send(now, { later: commitOnly });
  }

  /**
   * Step 4b: reads the snapshot the core names from disk and sends it. One the store replaced
   * meanwhile is not sent: the core sends the newer one when it tries again. A snapshot that
   * cannot be read is fatal, as one that cannot be written.
   */
  #sendSnapshot(message: Extract<ReadyMessage, { type: 'snapshot' }>): void {
    const { meta } = message.snapshot;
    const key = `${meta.term}-${meta.index}`;
    let read = this.#snapshotReads.get(key);
    if (read === undefined) {
      read = this.#snapshots.load(meta);
      this.#snapshotReads.set(key, read);
      const forget = (): void => void this.#snapshotReads.delete(key);
      read.then(forget, forget);
    }
    read.then(
      (snapshot) => {
        if (snapshot === null || this.#stopped) return;
        // Its meta and data only: where its pieces lay on this member's disk is not the peer's.
        const { meta: sent, data } = snapshot;
        this.#options.transport.send([{ ...message, snapshot: { meta: sent, data } }]);
      },
      (error: unknown) => this.#fail(error),
    );
  }

  /** The committed stage of every write proposed here that this Ready commits. */
  #recordCommitted(entries: readonly Entry[]): void {
    if (this.#pending.size === 0) return;
    const now = this.#timers.now();
    for (const entry of entries) {
      const pending = this.#pending.get(entry.index);
      if (pending) this.#metrics.leader.committed.observe((now - pending.at) / 1000);
    }
  }

  /**
   * The appended and fsynced stages of this Ready's new entries: of the writes proposed here, or
   * on a follower from the arrival of the first message. Returns when they were fsynced, or -1 when
   * this Ready synced no entries.
   */
  #recordPersisted(ready: Ready, stepAt: number): number {
    if (ready.entries.length === 0 || !ready.mustSync) return -1;
    const metrics = this.#metrics;
    const now = this.#timers.now();
    const written = metrics.walWrittenAt;
    if (this.#pending.size > 0) {
      for (const entry of ready.entries) {
        const pending = this.#pending.get(entry.index);
        if (!pending) continue;
        if (written >= pending.at) metrics.leader.appended.observe((written - pending.at) / 1000);
        metrics.leader.fsynced.observe((now - pending.at) / 1000);
      }
    } else if (stepAt >= 0) {
      if (written >= stepAt) metrics.follower.appended.observe((written - stepAt) / 1000);
      metrics.follower.fsynced.observe((now - stepAt) / 1000);
    }
    return now;
  }

  /** The sent stage: the Ready's messages are with the transport. */
  #recordSent(ready: Ready, stepAt: number): void {
    const metrics = this.#metrics;
    const now = this.#timers.now();
    if (this.#pending.size > 0) {
      for (const entry of ready.entries) {
        const pending = this.#pending.get(entry.index);
        if (pending) metrics.leader.sent.observe((now - pending.at) / 1000);
      }
    } else if (stepAt >= 0 && ready.messages.length > 0) {
      metrics.follower.sent.observe((now - stepAt) / 1000);
    }
  }

  async #persist(ready: Ready): Promise<void> {
    if (ready.snapshot) await this.#installSnapshot(ready.snapshot);
    const { hardState, entries, mustSync } = ready;
    if (entries.length === 0 && hardState === null) return;
    // The core decides (etcd's MustSync); a Ready carrying only a new commit index is written
    // without waiting for the disk. It must still be written, not held back for the next batch:
    // --force-new-cluster keeps the entries up to the commit index the WAL holds, so a survivor
    // that had not written it would drop writes the cluster acknowledged (cluster.test.ts caught
    // that). Only what was fsynced counts as durable below.
    await this.#wal.save({ hardState, entries }, { sync: mustSync });
    if (!mustSync) return;
    if (hardState) this.#durableVote = { term: hardState.term, vote: hardState.vote };
    const last = entries.at(-1);
    if (last) this.#stableIndex = last.index;
  }

  /** Step 3 of the header: after persist, before this Ready's messages go out or its entries are answered. */
  #assertDurable(ready: Ready, toApply: readonly Entry[]): void {
    const hard = ready.hardState;
    assert(
      hard === null ||
        (hard.term === this.#durableVote.term && hard.vote === this.#durableVote.vote),
      `term ${hard?.term} and vote are durable before any message is sent`,
    );
    assert(
      (ready.entries.at(-1)?.index ?? 0) <= this.#stableIndex,
      'new entries are durable before any message acknowledges them',
    );
    assert(
      toApply.every((e) => e.index <= this.#stableIndex),
      'committed entries are durable here before they are applied and answered',
    );
  }

  async #installSnapshot(snapshot: Snapshot): Promise<void> {
    await this.#snapshotting; // a local one still being written goes first (the WAL's markers only move forward)
    this.#snapshotWritten = null; // the core's log is replaced whole
    await this.#snapshots.save(snapshot);
    await this.#wal.markSnapshot(snapshot.meta);
    this.#metrics.snapshotBytes.observe(snapshot.data.byteLength);
    const store = Store.restore(snapshot.data);
    this.#store = store;
    this.#snapshotIndex = snapshot.meta.index;
    this.#takenIndex = snapshot.meta.index;
    this.#appliedBytes = 0;
    this.#appliedTerm = snapshot.meta.term;
    this.#stableIndex = Math.max(this.#stableIndex, snapshot.meta.index);
    this.#options.onStoreReplaced?.(store);
    store.announce();
  }

  /** Applies the entries and answers their proposals; returns how many it answered. */
  #applyEntries(entries: readonly Entry[]): number {
    let answered = 0;
    replayCommitted(this.#store, entries, entries.at(-1)?.index ?? 0, (entry, result) => {
      this.#appliedTerm = entry.term;
      this.#appliedBytes += entry.data.byteLength;
      const pending = this.#pending.get(entry.index);
      if (pending) {
        answered++;
        this.#pending.delete(entry.index);
        this.#metrics.leader.applied.observe((this.#timers.now() - pending.at) / 1000);
        if (pending.term === entry.term && result) pending.resolve(result);
        else
          pending.reject(
            new SecretdError(
              'unavailable',
              'Leadership changed before the write committed; it did not happen',
            ),
          );
      }
    });
    const applied = this.#store.appliedIndex;
    for (let i = this.#appliedWaiters.length - 1; i >= 0; i--) {
      const waiter = this.#appliedWaiters[i]!;
      if (waiter.index <= applied) {
        this.#appliedWaiters.splice(i, 1);
        waiter.read.settle(null);
      }
    }
    return answered;
  }

  #whenApplied(index: number, read: WaitingRead): void {
    if (index <= this.#store.appliedIndex) read.settle(null);
    else this.#appliedWaiters.push({ index, read });
  }

  /**
   * Step 7, reads: once another leader is known than the one a read went to, that one no longer
   * leads and drops what it held, and the core never answers the read: it is refused now, not at
   * its time limit (etcd refuses its reads on a leader change the same way). While no leader is
   * known, or the same one leads again (a forwarded read names no term: a leader answers it
   * whenever it arrives), the answer may still come. A read the core answered stays: its index
   * was confirmed, only its apply is awaited.
   */
  #failLostReads(leader: MemberId | null): void {
    if (leader === null || this.#reads.size === 0) return;
    for (const [context, read] of this.#reads)
      if (read.leader !== leader) {
        this.#reads.delete(context);
        read.settle(
          new SecretdError(
            'unavailable',
            'Cannot read: another leader was elected before this read was confirmed; try again',
          ),
        );
      }
  }

  /** Every read still waiting, refused (this member stops). */
  #failReads(): void {
    const error = new SecretdError('unavailable', 'Node is shutting down');
    for (const read of this.#reads.values()) read.settle(error);
    this.#reads.clear();
    for (const waiter of this.#appliedWaiters.splice(0)) waiter.read.settle(error);
  }

  /** Fails every write still waiting: `why` (this member stopped or lost leadership), then that it may or may not have happened. */
  #failPending(why: string): void {
    for (const pending of this.#pending.values())
      pending.reject(
        new SecretdError('unavailable', `${why}; the write may or may not have happened`),
      );
    this.#pending.clear();
  }

  /** Step 10 of the header; true when it did something (new input may have arrived meanwhile). */
  async #maybeFinishRotation(): Promise<boolean> {
    const rotation = this.#rotation;
    const applied = this.#store.appliedIndex;
    if (rotation?.untilIndex == null || applied === 0 || applied < rotation.untilIndex)
      return false;
    rotation.untilIndex = null;
    try {
      await this.snapshotNow({ force: true });
    } catch (error) {
      this.#rotation = null;
      rotation.reject(error as Error);
      throw error; // the loop's failure: fatal, as for any snapshot that cannot be written
    }
    const keyId = rotation.key.keyId;
    if (this.keyIdsOnDisk().every((id) => id === keyId)) {
      if (this.#rotation === rotation) this.#rotation = null;
      rotation.resolve();
    } else {
      // A segment the snapshot did not cover (the log moved on meanwhile): wait for the new boundary.
      rotation.untilIndex = await this.#wal.rotateKey(rotation.key);
    }
    return true;
  }

  /** Step 8 of the header: compact behind a snapshot written meanwhile; start the next if due. */
  #maybeSnapshot(): void {
    this.#compactWritten();
    if (this.#snapshotting !== null || this.#stopped) return;
    const applied = this.#store.appliedIndex;
    const entries = applied - this.#takenIndex;
    if (
      entries < (this.#options.snapshotEntries ?? snapshotEntriesInterval) &&
      !(
        entries > 0 &&
        this.#appliedBytes >= (this.#options.snapshotLogBytes ?? snapshotLogBytesInterval)
      )
    )
      return;
    this.#startSnapshot();
  }

  /**
   * Step 8 when idle: the applied index has not moved for `snapshotIdleMs` and everything written
   * here is applied: a new WAL segment, then a snapshot at that index, whose marker deletes the
   * segments before (the log in memory goes too).
   */
  #idleTick(): void {
    const applied = this.#store.appliedIndex;
    if (applied !== this.#idleApplied) {
      this.#idleApplied = applied;
      this.#idleTicks = 0;
      return;
    }
    if (++this.#idleTicks !== Math.ceil(snapshotIdleMs / this.#options.tickMs)) return;
    if (this.#snapshotting !== null || this.#stopped) return;
    if (applied === this.#takenIndex || applied !== this.#stableIndex) return;
    this.#wal.cut().catch((error: unknown) => this.#fail(error));
    this.#startSnapshot();
  }

  #startSnapshot(): void {
    const write = this.#takeSnapshot()
      .then((snapshot) => this.#writeSnapshot(snapshot))
      .then(
        (meta) => {
          this.#snapshotting = null;
          this.#snapshotWritten = meta;
          // Between Readies the core takes compact() now; else after the Ready in hand (step 8).
          if (!this.#readyOutstanding) this.#compactWritten();
        },
        (error: unknown) => {
          this.#snapshotting = null;
          this.#fail(error); // as for any snapshot that cannot be written
        },
      );
    this.#snapshotting = write;
  }

  /**
   * The store's snapshot at its applied index as of now (pieces whose bytes never change after),
   * its secrets written a slice at a time with a turn of the event loop between slices
   * (Store.snapshotPiecesInSlices), so that Readies go on meanwhile: taken at once, 10,000
   * secrets held the loop 40–115 ms. From here on, snapshots are due from this index.
   */
  async #takeSnapshot(): Promise<{
    readonly meta: SnapshotMeta;
    readonly pieces: readonly SnapshotPiece[];
  }> {
    const index = this.#store.appliedIndex;
    assert(index >= this.#takenIndex, 'snapshot index moves forward');
    this.#takenIndex = index;
    this.#appliedBytes = 0;
    const meta: SnapshotMeta = { index, term: this.#appliedTerm, conf: this.#core.status().conf };
    const pieces = await this.#store.snapshotPiecesInSlices(
      () => new Promise((resolve) => this.#timers.after(0, resolve)),
    );
    this.#metrics.snapshotBytes.observe(pieces.reduce((sum, piece) => sum + piece.length, 0));
    return { meta, pieces };
  }

  /** The snapshot file, then the WAL's marker (which deletes the segments it covers). */
  async #writeSnapshot(snapshot: {
    readonly meta: SnapshotMeta;
    readonly pieces: readonly SnapshotPiece[];
  }): Promise<SnapshotMeta> {
    await this.#snapshots.save(snapshot);
    await this.#wal.markSnapshot(snapshot.meta);
    return snapshot.meta;
  }

  #compactWritten(): void {
    const meta = this.#snapshotWritten;
    if (meta === null || this.#stopped) return;
    this.#snapshotWritten = null;
    if (meta.index <= this.#snapshotIndex) return; // a leader's snapshot overtook it
    this.#core.compact(meta);
    this.#snapshotIndex = meta.index;
  }

  /**
   * Seals the store into a snapshot and compacts the log behind it, now (after any being written
   * off the loop). `force` writes one even at the index of the last (a key rotation re-seals it
   * under the new key). The store hands it over in pieces: the snapshot store writes the shared
   * ones (full audit segments) only once, and the core is given the meta only (the data is read
   * from disk when a follower needs it).
   */
  async snapshotNow(options: { readonly force?: boolean } = {}): Promise<void> {
    await this.#snapshotting;
    // compact() only between Readies: a write may end while one is outstanding (step 8).
    await this.#call(() => this.#compactWritten());
    const index = this.#store.appliedIndex;
    if (index === this.#takenIndex && !(options.force && index > 0)) return;
    this.#snapshotWritten = await this.#writeSnapshot(await this.#takeSnapshot());
    await this.#call(() => this.#compactWritten());
  }
}
