/**
 * The request's audit context: who asked, from where, under which request id. The gate's
 * `admission` runs every request inside `auditContext.run(ctx, …)` (an AsyncLocalStorage, as
 * read-consistency.ts does for read freshness); the leader router reads `auditContext.current()`
 * when it proposes, so the command carries its audit fields and the store appends the record in
 * the same Raft entry as the change. `proposed` tells the gate afterwards whether the request
 * proposed anything (if not, its outcome is recorded through an `audit-append` entry).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { AuditActor } from './record.ts';

export interface AuditContext {
  readonly actor: AuditActor;
  readonly source: string;
  /** The id of the request's first proposal (the store's dedup id), or one drawn for its record. */
  requestId: string | undefined;
  /** Set by the leader router when the request proposes a command. */
  proposed: boolean;
  /** What a request that proposes nothing acted on (exec sets its task), for its record. */
  object?: { readonly id?: string; readonly name?: string };
}

/** What a proposed command carries (`TaggedCommand.audit`): the record's who, where and which request. */
export interface AuditTag {
  readonly actor: AuditActor;
  readonly source: string;
  readonly requestId?: string;
}

/**
 * The query parameter a manager adds to a call it forwards to the leader's internal routes
 * (leader-router.ts `onLeader`): the request's AuditTag as JSON. The leader's gate takes it from a
 * manager certificate only, so the record names the original actor, not the forwarding manager.
 */
export const auditForwardParam = 'secretd-audit';

const storage = new AsyncLocalStorage<AuditContext>();

export const auditContext = {
  run<T>(ctx: AuditContext, fn: () => T): T {
    return storage.run(ctx, fn);
  },
  current(): AuditContext | undefined {
    return storage.getStore();
  },
  /** Runs `fn` outside any request's context (timers and loops that a request only woke up). */
  exit<T>(fn: () => T): T {
    return storage.exit(fn);
  },
};

/** The caller as the API's gate knows it (backend.ts `Identity`, read structurally). */
export interface AuditIdentity {
  readonly role: string;
  readonly nodeId: string;
  readonly via: 'socket' | 'tls';
  readonly serial?: string;
  readonly name?: string;
}

const nodeRoles = new Set(['manager', 'worker']);

/**
 * The actor of a request. Client certificates: CN, serial, role. Node certificates: the node id
 * and role. The admin socket: `admin-socket` and its owner's uid (`socketUid`): Bun exposes no
 * SO_PEERCRED, and the socket is created 0600 by the daemon's user, so whoever connects is that
 * user (or root).
 */
export function auditActorOf(identity: AuditIdentity, socketUid?: number): AuditActor {
  if (identity.via === 'socket')
    return {
      kind: 'admin-socket',
      name: 'admin-socket',
      role: identity.role,
      ...(socketUid === undefined ? {} : { uid: socketUid }),
    };
  if (identity.role === 'anonymous') return { kind: 'anonymous', name: '', role: 'anonymous' };
  if (nodeRoles.has(identity.role))
    return { kind: 'node', name: identity.nodeId, role: identity.role };
  return {
    kind: 'client',
    name: identity.name ?? identity.nodeId,
    ...(identity.serial === undefined ? {} : { serial: identity.serial }),
    role: identity.role,
  };
}

/** The tag a proposal carries, from the current context (none outside a request). */
export function auditTagOf(ctx: AuditContext | undefined): AuditTag | undefined {
  if (ctx === undefined) return undefined;
  return {
    actor: ctx.actor,
    source: ctx.source,
    ...(ctx.requestId === undefined ? {} : { requestId: ctx.requestId }),
  };
}
