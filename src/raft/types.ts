/**
 * Types shared by the pure Raft core, the write-ahead log and the node's raft loop.
 * Member ids are strings (the node id, 25 base-36 characters); terms and indexes are numbers
 * (safe integers: 2^53 entries is more than any cluster will write).
 */
export type MemberId = string & { readonly __brand: 'MemberId' };
export type Term = number;
export type LogIndex = number;

export type EntryType = 'normal' | 'conf';

export interface Entry {
  readonly term: Term;
  readonly index: LogIndex;
  readonly type: EntryType;
  /** Opaque to Raft. Empty for the no-op a new leader appends. For 'conf', an encoded ConfChange. */
  readonly data: Uint8Array;
}

/** What must be durable before any message that depends on it is sent. */
export interface HardState {
  readonly term: Term;
  readonly vote: MemberId | null;
  readonly commit: LogIndex;
}

/** Voters decide; learners (non-voters) receive the log while they catch up. */
export interface ConfState {
  readonly voters: readonly MemberId[];
  readonly learners: readonly MemberId[];
}

export type ConfChange =
  | { readonly kind: 'add-learner'; readonly id: MemberId }
  | { readonly kind: 'promote'; readonly id: MemberId }
  | { readonly kind: 'remove'; readonly id: MemberId };

export interface SnapshotMeta {
  readonly index: LogIndex;
  readonly term: Term;
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /** The state machine's serialized state (plaintext in memory; sealed on disk). */
  readonly data: Uint8Array;
  /**
   * Where the data held shared pieces, when the snapshot store loaded it from pieces (present only
   * when there was at least one): what the state machine may take instead of making their ids
   * again (Store.restore: the audit trail's full segments).
   */
  readonly shared?: readonly SnapshotSpan[];
}

/** A shared piece's place in a loaded snapshot's data: `length` bytes from `offset`, and its id. */
export interface SnapshotSpan {
  readonly offset: number;
  readonly length: number;
  /** 64 hex digits: a content id (the SHA-256 of those bytes, checked as it was loaded), or a name. */
  readonly id: string;
  readonly named: boolean;
}

/**
 * One part of a snapshot's data as the state machine hands it to the snapshot store: the data is
 * the pieces' bytes in order. A piece with an `id` never changes (a full audit segment): the
 * store writes it to disk once, as its own sealed file, and later snapshots refer to it.
 */
export interface SnapshotPiece {
  /**
   * The id of a piece that never changes, 64 hex digits: the SHA-256 of its bytes (a content id),
   * or, for a `named` piece, an id its maker gives it.
   */
  readonly id?: string | undefined;
  /**
   * A piece whose `id` is its maker's name for bytes that never change under it (a secret
   * version's value: a hash of its secret's id and version number), not their SHA-256: the
   * snapshot store neither hashes it to save it nor checks it against a hash when it loads it.
   * Its AEAD binds the id as it binds a content id, so a piece moved to another id fails to open.
   */
  readonly named?: boolean;
  /**
   * A piece that stands in the data as the standard base64 (padded) of its bytes: `length` and
   * `bytes()` are the bytes as the snapshot store keeps them, and the data holds
   * 4 × ⌈length ÷ 3⌉ ASCII bytes in its place. A secret version's value is stored so, a
   * third smaller than its text and with no encoding to make it. Only a `named` piece may be one.
   */
  readonly base64?: boolean;
  readonly length: number;
  /** Its bytes, made on demand: a shared piece already on disk is not made again. */
  bytes(): Uint8Array;
  /**
   * Its bytes written at the start of `out` (which has room for `length` of them); returns how
   * many it wrote. What a piece made per save offers so that the snapshot store makes it in a
   * buffer it lends and lends again, not in a new array each time: at 64 KiB values each new
   * array is memory the kernel faults in (bench/README.md, eleventh session).
   */
  bytesInto?(out: Uint8Array): number;
  /**
   * `bytes()` makes a new array at each call, a copy of a secret: the snapshot store zeroes it
   * once it has hashed and sealed it (best effort: other copies may exist, as everywhere).
   */
  readonly fresh?: boolean;
}

/** A linearizable read is safe once the state machine has applied `index`. */
export interface ReadState {
  readonly index: LogIndex;
  readonly context: string;
}

interface MessageBase {
  readonly from: MemberId;
  readonly to: MemberId;
  readonly term: Term;
}

export type Message =
  | (MessageBase & {
      readonly type: 'pre-vote' | 'vote';
      readonly lastIndex: LogIndex;
      readonly lastTerm: Term;
      readonly transfer?: boolean;
    })
  | (MessageBase & {
      readonly type: 'pre-vote-response' | 'vote-response';
      readonly reject: boolean;
      /** A refusal from a member in a leader's lease names that leader (it vouches for it, see core.ts). */
      readonly leader?: MemberId;
    })
  | (MessageBase & {
      readonly type: 'append';
      readonly prevIndex: LogIndex;
      readonly prevTerm: Term;
      readonly entries: readonly Entry[];
      readonly commit: LogIndex;
    })
  | (MessageBase & {
      readonly type: 'append-response';
      readonly reject: boolean;
      /** On success: the last index now matching the leader. On reject: the follower's hint for where to retry. */
      readonly index: LogIndex;
      readonly rejectHint?: LogIndex;
      /** On reject: the follower's term at rejectHint, so the leader can skip a whole term at once. */
      readonly rejectHintTerm?: Term;
      /**
       * The follower's commit index after the append. A leader that removed itself learns from it
       * that the follower knows: once it applies the removal, that follower drops the leader's
       * heartbeats, so their answers cannot tell it.
       */
      readonly commit?: LogIndex;
    })
  | (MessageBase & {
      readonly type: 'heartbeat';
      readonly commit: LogIndex;
      readonly context?: string;
    })
  | (MessageBase & {
      readonly type: 'heartbeat-response';
      readonly context?: string;
      /** The follower's commit index after the heartbeat (lets a removed leader know when to leave). */
      readonly commit?: LogIndex;
    })
  | (MessageBase & { readonly type: 'snapshot'; readonly snapshot: Snapshot })
  | (MessageBase & { readonly type: 'timeout-now' })
  /** A follower forwards a ReadIndex request to its leader; the leader answers with read-index-response. */
  | (MessageBase & { readonly type: 'read-index'; readonly context: string })
  | (MessageBase & {
      readonly type: 'read-index-response';
      readonly index: LogIndex;
      readonly context: string;
    });

export type MessageType = Message['type'];

/**
 * A message as the core hands it out in Ready.messages: a snapshot message names its snapshot by
 * meta only, since the core keeps no snapshot bytes; the node loop reads the data from its
 * snapshot store and sends a whole Message (raft-node.ts, `#sendSnapshots`).
 */
export type ReadyMessage =
  | Exclude<Message, { readonly type: 'snapshot' }>
  | (MessageBase & {
      readonly type: 'snapshot';
      readonly snapshot: { readonly meta: SnapshotMeta };
    });

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export interface SoftState {
  readonly leader: MemberId | null;
  readonly role: Role;
}

/**
 * The work the core hands the node loop, acknowledged by advance(). In what order the node does
 * it, and why that order is safe, is written once: the header of src/node/raft-io/raft-node.ts.
 */
export interface Ready {
  /** The leader and this member's role, when either changed; never persisted. */
  readonly softState: SoftState | null;
  /** Term, vote and commit index, when any changed: written with `entries`, before `messages` are sent. */
  readonly hardState: HardState | null;
  /** New log entries to persist; they may overwrite the persisted tail from entries[0].index on. */
  readonly entries: readonly Entry[];
  /** A leader's snapshot to persist and restore; it replaces the whole log (and the configuration). */
  readonly snapshot: Snapshot | null;
  /** Committed entries to apply, in order; some may be in `entries` (durable only once those are). */
  readonly committedEntries: readonly Entry[];
  /**
   * To send only once `hardState` and `entries` are durable: votes and append answers promise them.
   * A snapshot message carries the snapshot's meta only: the node fills in its data from disk.
   */
  readonly messages: readonly ReadyMessage[];
  /** Linearizable reads that may be answered once the state machine has applied `index`. */
  readonly readStates: readonly ReadState[];
  /**
   * Whether `entries` and `hardState` must be fsynced before `messages` go out (etcd's MustSync):
   * true when the term or the vote changed or there are entries. A change of the commit index
   * alone need not be durable (a restarted member learns it again from the leader).
   */
  readonly mustSync: boolean;
}
