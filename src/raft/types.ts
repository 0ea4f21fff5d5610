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
  | (MessageBase & { readonly type: 'pre-vote' | 'vote'; readonly lastIndex: LogIndex; readonly lastTerm: Term; readonly transfer?: boolean })
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
  | (MessageBase & { readonly type: 'heartbeat'; readonly commit: LogIndex; readonly context?: string })
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
  | (MessageBase & { readonly type: 'read-index-response'; readonly index: LogIndex; readonly context: string });

export type MessageType = Message['type'];

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

export interface SoftState {
  readonly leader: MemberId | null;
  readonly role: Role;
}

/**
 * What the core asks the node loop to do, in this order:
 *   1. persist `snapshot` (if any; it replaces the whole log), `entries` (which may overwrite the
 *      persisted tail from entries[0].index on) and `hardState` (if any) with one fsync;
 *   2. send `messages` (only after 1: votes and append acks depend on it);
 *   3. apply `committedEntries` to the state machine and hand out `readStates`;
 *   4. call `advance()`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
}
