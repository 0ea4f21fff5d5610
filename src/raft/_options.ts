/** RaftCore's options, their defaults and their validation. */
import { SecretdError } from '../errors.ts';
import { proposalQueueMax, raftEntriesPerMessageMax, raftInflightMessagesMax } from '../limits.ts';
import type { ConfState, Entry, HardState, MemberId, SnapshotMeta } from './types.ts';

/**
 * Deliberate bugs, for the deterministic simulator's self-test only (test/sim/broken-variants.test.ts
 * shows it catches each). Never set by production code. Every one is off unless set to true.
 */
export interface UnsafeTestingMutations {
  /** The vote recovered at start-up is ignored, as if votes were never persisted. */
  readonly forgetVote?: boolean;
  /** Count replicas to commit entries of earlier terms too (breaks Raft §5.4.2, figure 8). */
  readonly commitOldTermByCount?: boolean;
  /** A new leader drops its entries after its commit index, though its predecessor may have committed them. */
  readonly truncateUncommittedOnElection?: boolean;
  /** Every member answers reads from its own state, without ReadIndex (stale reads, as Jepsen found in etcd 0.4 and Consul). */
  readonly localReads?: boolean;
  /** Messages from ids outside the configuration are stepped like members' (a demoted manager could take over). */
  readonly acceptNonMembers?: boolean;
}

export interface RaftOptions {
  readonly id: MemberId;
  /** Election timeout: randomized in [electionTicks, 2 * electionTicks) ticks. Must exceed heartbeatTicks. */
  readonly electionTicks: number;
  /** Ticks between the leader's heartbeats. */
  readonly heartbeatTicks: number;
  /** Uniform in [0, 1); used only for the randomized election timeout. */
  readonly random: () => number;
  /** Default true: ask whether an election could be won before raising the term. */
  readonly preVote?: boolean;
  /** Default true: a leader without a live quorum for an election timeout steps down. */
  readonly checkQuorum?: boolean;
  /** Default raftInflightMessagesMax: unacknowledged appends per follower. */
  readonly maxInflightMessages?: number;
  /** Default raftEntriesPerMessageMax. */
  readonly maxEntriesPerMessage?: number;
  /** Default proposalQueueMax: proposals are refused ('unavailable') past this many uncommitted entries. */
  readonly maxUncommittedEntries?: number;
  /** Default 10 * electionTicks: a snapshot not acknowledged within this many ticks is sent again. */
  readonly snapshotTimeoutTicks?: number;
  /** For the simulator's self-test only; never set by production code. */
  readonly unsafeTestingMutations?: UnsafeTestingMutations;
  /** Durable state recovered from the WAL and snapshot store (all of it is stable). */
  readonly initial: {
    readonly hardState: HardState | null;
    readonly snapshot: SnapshotMeta | null;
    /** The entries after the snapshot, contiguous. */
    readonly entries: readonly Entry[];
    /** The configuration before entry 1 (the bootstrap configuration); ignored when there is a snapshot. */
    readonly conf: ConfState;
  };
}

/** The options with every default filled in. */
export interface Settings {
  readonly id: MemberId;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly random: () => number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly inflightMax: number;
  readonly entriesPerMessageMax: number;
  readonly uncommittedEntriesMax: number;
  readonly snapshotTimeoutTicks: number;
  /** Pending reads (queued on the leader or waiting for its first commit). */
  readonly readsMax: number;
  readonly mutations: UnsafeTestingMutations;
}

export function resolveOptions(options: RaftOptions): Settings {
  const positive = (name: string, value: number | undefined): void => {
    if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) {
      throw new SecretdError(
        'invalid',
        `Cannot start Raft: ${name} ${value} must be a positive integer`,
      );
    }
  };
  positive('heartbeatTicks', options.heartbeatTicks);
  positive('electionTicks', options.electionTicks);
  positive('maxInflightMessages', options.maxInflightMessages);
  positive('maxEntriesPerMessage', options.maxEntriesPerMessage);
  positive('maxUncommittedEntries', options.maxUncommittedEntries);
  positive('snapshotTimeoutTicks', options.snapshotTimeoutTicks);
  if (options.electionTicks <= options.heartbeatTicks) {
    throw new SecretdError(
      'invalid',
      `Cannot start Raft: electionTicks ${options.electionTicks} must exceed heartbeatTicks ${options.heartbeatTicks}`,
    );
  }
  return {
    id: options.id,
    electionTicks: options.electionTicks,
    heartbeatTicks: options.heartbeatTicks,
    random: options.random,
    preVote: options.preVote ?? true,
    checkQuorum: options.checkQuorum ?? true,
    inflightMax: options.maxInflightMessages ?? raftInflightMessagesMax,
    entriesPerMessageMax: options.maxEntriesPerMessage ?? raftEntriesPerMessageMax,
    uncommittedEntriesMax: options.maxUncommittedEntries ?? proposalQueueMax,
    snapshotTimeoutTicks: options.snapshotTimeoutTicks ?? 10 * options.electionTicks,
    readsMax: proposalQueueMax,
    mutations: Object.freeze({ ...options.unsafeTestingMutations }),
  };
}
