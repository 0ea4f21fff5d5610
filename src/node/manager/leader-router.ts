/**
 * Getting a call to the leader from any manager. A write is proposed on the leader, wherever it
 * is: here, or forwarded over mTLS, tagged with a request id so that a retry after a lost answer
 * lands once; it is retried while leadership moves (an election takes about a second). A read is
 * linearizable through ReadIndex unless the caller asked for a local one. Node operations that
 * need the leader's view of its followers run on the leader through its internal routes.
 *
 * Nothing here polls: a retry waits for the next leader through RaftNode.onAdvanced, bounded
 * through the Timers port.
 */
import { toHex, type Random } from '../../crypto/index.ts';
import { codeForHttpStatus, NotLeaderError, NotManagerError, SecretdError } from '../../errors.ts';
import type { Timers } from '../../io/timers.ts';
import { readConsistency } from '../api/index.ts';
import { auditContext, auditedOps, auditForwardParam, auditTagOf } from '../audit/index.ts';
import { peerPaths, type PeerClient } from '../peers/index.ts';
import {
  wireCommand,
  type ApplyResult,
  type Command,
  type Store,
  type TaggedCommand,
} from '../store/index.ts';
import { waitUntil, whenTrue, type AdvanceEvents } from './_raft-waits.ts';

/** How long a write may wait for a leader (elections take about a second). */
export const writeDeadlineMs = 15_000;
/** How long a forwarded call may wait for the leader's answer. */
export const forwardTimeoutMs = 10_000;
/** The longest pause between two tries of a write while no new leader is known. */
const retryPauseMsMax = 200;
/** The pause grows by this much per try. */
const retryPauseStepMs = 25;

/** What the router needs of the Raft member (RaftNode has it). */
export interface RouterRaft extends AdvanceEvents {
  readonly core: { readonly leader: string | null };
  readonly store: Store;
  propose(command: TaggedCommand): Promise<ApplyResult>;
  linearizableRead(): Promise<void>;
}

export interface LeaderRouterOptions {
  readonly selfId: string;
  /** The Raft member; null while the manager is locked (calls fail with `locked`, and are not retried). */
  readonly raft: () => RouterRaft | null;
  readonly peers: () => Pick<PeerClient, 'request'>;
  /** A member's address before the store knows it (the peers this node joined with). */
  readonly knownAddr: (id: string) => string | undefined;
  readonly timers: Timers;
  /** Draws request ids. */
  readonly random: Random;
}

/** A call forwarded to the leader's internal route when this manager does not lead. */
export interface LeaderCall {
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
}

export class LeaderRouter {
  readonly #options: LeaderRouterOptions;

  constructor(options: LeaderRouterOptions) {
    this.#options = options;
  }

  /** The Raft member, or `locked`. */
  raft(): RouterRaft {
    const raft = this.#options.raft();
    if (!raft) throw lockedError();
    return raft;
  }

  /** The store, after a linearizable read unless the request asked for a local one. */
  async read(): Promise<Store> {
    const raft = this.raft();
    if (readConsistency.getStore() !== 'local') await raft.linearizableRead();
    return raft.store;
  }

  /**
   * Proposes on the leader, wherever it is; retries while leadership moves, until `writeDeadlineMs`.
   * Within a request, the command carries the request's audit context (audit/context.ts), so the
   * store appends the change's record in the same entry.
   */
  async propose(command: Command): Promise<ApplyResult & { ok: true }> {
    const requestId = toHex(this.#options.random(16));
    const ctx = auditedOps(command.op) ? auditContext.current() : undefined;
    if (ctx !== undefined) {
      ctx.proposed = true;
      ctx.requestId ??= requestId;
    }
    const audit = auditTagOf(ctx);
    const tagged: TaggedCommand = {
      ...command,
      requestId,
      ...(audit === undefined ? {} : { audit }),
    };
    const { timers } = this.#options;
    const deadline = timers.now() + writeDeadlineMs;
    for (let attempt = 0; ; attempt++) {
      const leaderBefore = this.#options.raft()?.core.leader ?? null;
      try {
        const leader = this.#leaderAddr();
        const result = leader.self
          ? await this.raft().propose(tagged)
          : await this.#forwardWhileLeading(leader.addr, tagged);
        return expectOk(result);
      } catch (error) {
        const retryable =
          error instanceof SecretdError &&
          error.code === 'unavailable' &&
          !(error instanceof NotManagerError) &&
          this.#options.raft() !== null;
        if (!retryable || timers.now() > deadline) throw error;
        await this.#leaderChangeOrPause(
          leaderBefore,
          Math.min(retryPauseStepMs * (attempt + 1), retryPauseMsMax),
        );
      }
    }
  }

  /** The leader's end of a forwarded write. */
  async proposeForwarded(command: TaggedCommand): Promise<ApplyResult> {
    const raft = this.raft();
    if (raft.core.leader !== this.#options.selfId)
      throw new SecretdError('unavailable', 'Not the leader');
    return raft.propose(command);
  }

  /** Runs on the leader: `local` if this is it, else `call` on the leader's internal route. */
  async onLeader<T>(local: () => Promise<T>, call: LeaderCall): Promise<T> {
    const leader = this.#leaderAddr();
    if (leader.self) return local();
    const payload =
      call.body === undefined || call.body === null
        ? null
        : new TextEncoder().encode(JSON.stringify(call.body));
    // The request's audit context goes with it: the leader records it (proposal or outcome) under
    // the original actor, and this manager records nothing more for it.
    const ctx = auditContext.current();
    const tag = auditTagOf(ctx);
    if (ctx) ctx.proposed = true;
    const path =
      tag === undefined
        ? call.path
        : `${call.path}${call.path.includes('?') ? '&' : '?'}${auditForwardParam}=${encodeURIComponent(JSON.stringify(tag))}`;
    const response = await this.#options.peers().request(leader.addr, call.method, path, payload, {
      timeoutMs: forwardTimeoutMs,
      contentType: 'application/json',
    });
    const text = new TextDecoder().decode(response.body);
    const parsed: unknown = text ? JSON.parse(text) : null;
    if (response.status >= 200 && response.status < 300) return parsed as T;
    throw leaderRefusal(
      response.status,
      (parsed as { message?: string } | null)?.message ?? `HTTP ${response.status}`,
    );
  }

  /** The refusal of a call only the leader serves, naming the leader's address when it is known. */
  notLeader(message: string): NotLeaderError {
    const raft = this.#options.raft();
    const leader = raft?.core.leader ?? null;
    const addr = leader === null ? null : (raft?.store.node(leader)?.addr ?? null);
    return new NotLeaderError(message, addr);
  }

  #leaderAddr(): { self: true } | { self: false; addr: string } {
    const raft = this.raft();
    const leader = raft.core.leader;
    if (leader === null)
      throw new SecretdError(
        'unavailable',
        'No leader: the managers are electing one, or a quorum is unreachable',
      );
    if (leader === this.#options.selfId) return { self: true };
    const addr = raft.store.node(leader)?.addr ?? this.#options.knownAddr(leader);
    if (!addr)
      throw new SecretdError('unavailable', `The leader ${leader} has no known address yet`);
    return { self: false, addr };
  }

  /** Waits until a leader other than `previous` is known, or `maxMs`: a retry goes as soon as an election ends. */
  async #leaderChangeOrPause(previous: string | null, maxMs: number): Promise<void> {
    const raft = this.#options.raft();
    if (!raft) return;
    await waitUntil(
      raft,
      () => {
        const leader = raft.core.leader;
        return leader !== null && leader !== previous;
      },
      { timers: this.#options.timers, timeoutMs: maxMs },
    );
  }

  /**
   * Forwards to the leader, but gives up as soon as another manager is known to lead: a stopped or
   * cut-off old leader would hold the write until its timeout. The retry carries the same request
   * id, so a write the old leader did commit is not applied twice.
   */
  async #forwardWhileLeading(addr: string, command: TaggedCommand): Promise<ApplyResult> {
    const raft = this.raft();
    const leader = raft.core.leader;
    let stopWatching: () => void = () => {};
    const moved = new Promise<never>((_, reject) => {
      stopWatching = whenTrue(
        raft,
        () => raft.core.leader !== leader,
        () =>
          reject(
            new SecretdError(
              'unavailable',
              'Leadership moved while the write was forwarded; retrying',
            ),
          ),
      );
    });
    try {
      return await Promise.race([this.#forward(addr, command), moved]);
    } finally {
      stopWatching();
    }
  }

  async #forward(addr: string, command: TaggedCommand): Promise<ApplyResult> {
    // JSON between managers: a secret's value goes as base64 (wireCommand), parseCommand takes it back.
    const body = new TextEncoder().encode(JSON.stringify({ Command: wireCommand(command) }));
    const response = await this.#options.peers().request(addr, 'POST', peerPaths.propose, body, {
      timeoutMs: forwardTimeoutMs,
      contentType: 'application/json',
    });
    const parsed = JSON.parse(new TextDecoder().decode(response.body)) as
      ApplyResult | { message: string };
    if (response.status === 200) return parsed as ApplyResult;
    throw leaderRefusal(response.status, (parsed as { message: string }).message);
  }
}

/**
 * The error for the leader's refusal of a forwarded call. The leader's routes for managers check
 * only the caller's certificate, so a 403 means the leader no longer takes this node for a manager
 * (demoted or removed, and still leaving Raft): the client gets a 503 telling it to go to another
 * manager, not a permission error about a certificate it never held.
 */
function leaderRefusal(status: number, message: string): SecretdError {
  if (status === 403)
    return new NotManagerError(
      `This node is no longer a manager (the leader refused it: ${message}); send the request to another manager`,
    );
  return new SecretdError(codeForHttpStatus(status), message);
}

export function lockedError(): SecretdError {
  return new SecretdError(
    'locked',
    'This manager is locked: run `secretd unlock` with the cluster unlock key',
  );
}

function expectOk(result: ApplyResult): ApplyResult & { ok: true } {
  if (!result.ok) throw new SecretdError(result.code, result.message);
  return result;
}
