/**
 * One request under audit, whatever serves it (the app's `admission`, the TLS port's stream
 * routes): runs the request inside its audit context, then records what no proposal recorded.
 *
 *   - a denial (`forbidden`, thrown by the gate or a route): a `denied` record, rate-limited per
 *     identity (recorder.ts), whoever the caller is;
 *   - a request that changes state (not GET/HEAD) from a client, the admin socket or a caller
 *     without a certificate, that proposed nothing: its outcome (`ok` for exec or an unlock, the
 *     error code for bad input, a locked manager, a failed unlock).
 *
 * A request that proposed has its record in the proposal's entry (the store appends it); requests
 * between nodes (forwarded writes, sessions, Raft) are not requests of a person and are not
 * recorded unless refused.
 */
import { SecretdError } from '../../errors.ts';
import {
  auditActorOf,
  auditContext,
  type AuditContext,
  type AuditIdentity,
  type AuditTag,
} from './context.ts';
import { checkAuditEntry, clip, type AuditEntry } from './record.ts';
import type { ChainAnchor, VerifyOutcome } from './verify.ts';

/** Where a request's own records go (AuditRecorder, through the Backend). */
export interface AuditSink {
  record(entry: AuditEntry): void;
  denied(entry: AuditEntry): void;
  requestId(): string;
  now(): string;
  /** The admin socket's owner uid. */
  readonly socketUid?: number;
}

export interface AuditedRequest {
  readonly identity: AuditIdentity;
  readonly method: string;
  /** The route's path (without Docker's version prefix). */
  readonly path: string;
  /** The peer's address, read only when a record needs it. */
  readonly source: () => string;
  /** The audit tag a manager forwarded with the call (`auditForwardParam`), if any. */
  readonly forwarded?: () => string | undefined;
}

/** Actions of routes that change state without proposing (named for `audit ls --action`). */
const routeActions: ReadonlyArray<readonly [RegExp, string]> = [
  [/^\/secretd\/exec$/, 'exec'],
  [/^\/secretd\/internal\/exec$/, 'exec'],
  [/^\/swarm\/unlock$/, 'unlock'],
];

/** Runs `fn` audited; `errorAfter` reads an error the framework caught and answered (hono's `c.error`). */
export async function auditRequest<T>(
  sink: AuditSink | undefined,
  request: AuditedRequest,
  fn: () => Promise<T>,
  errorAfter?: () => unknown,
): Promise<T> {
  if (sink === undefined) return fn();
  const ctx = contextOf(request, sink.socketUid);
  let result: T;
  try {
    result = await auditContext.run(ctx, fn);
  } catch (error) {
    afterRequest(sink, ctx, request, error);
    throw error;
  }
  afterRequest(sink, ctx, request, errorAfter?.());
  return result;
}

function contextOf(request: AuditedRequest, socketUid: number | undefined): AuditContext {
  const forwarded = forwardedTag(request);
  if (forwarded !== undefined)
    return {
      actor: forwarded.actor,
      source: forwarded.source,
      requestId: forwarded.requestId,
      proposed: false,
    };
  let source: string | undefined;
  return {
    actor: auditActorOf(request.identity, socketUid),
    get source(): string {
      source ??= request.identity.via === 'socket' ? 'admin-socket' : clip(request.source());
      return source;
    },
    requestId: undefined,
    proposed: false,
  };
}

/** A forwarded tag, taken from a manager's certificate only (a manager is trusted with the log anyway); a malformed one is ignored. */
function forwardedTag(request: AuditedRequest): AuditTag | undefined {
  const { identity } = request;
  if (identity.role !== 'manager' || identity.via !== 'tls') return undefined;
  const raw = request.forwarded?.();
  if (raw === undefined) return undefined;
  try {
    const tag = JSON.parse(raw) as AuditTag;
    checkAuditEntry(
      { at: '', action: '', result: '', actor: tag.actor, source: tag.source },
      'forwarded',
    );
    if (tag.requestId !== undefined && typeof tag.requestId !== 'string') return undefined;
    return tag;
  } catch {
    return undefined;
  }
}

function afterRequest(
  sink: AuditSink,
  ctx: AuditContext,
  request: AuditedRequest,
  error: unknown,
): void {
  const code = error === undefined || error === null ? undefined : codeOf(error);
  const denied = code === 'forbidden';
  if (!denied) {
    if (ctx.proposed || request.method === 'GET' || request.method === 'HEAD') return;
    if (ctx.actor.kind === 'node') return;
  }
  const action = routeActions.find(([pattern]) => pattern.test(request.path))?.[1];
  const entry: AuditEntry = {
    at: sink.now(),
    actor: ctx.actor,
    source: ctx.source,
    action: action ?? `${request.method} ${clip(request.path)}`,
    ...(ctx.object === undefined ? {} : { object: ctx.object }),
    ...(code === undefined ? {} : { detail: clip(messageOf(error)) }),
    result: denied ? 'denied' : (code ?? 'ok'),
    requestId: ctx.requestId ?? sink.requestId(),
  };
  if (denied) sink.denied(entry);
  else sink.record(entry);
}

function codeOf(error: unknown): string {
  return error instanceof SecretdError ? error.code : 'internal';
}

/** A SecretdError's message (they name values, never secret material); nothing of other errors. */
function messageOf(error: unknown): string {
  return codeOf(error) === 'internal' ? 'internal error' : (error as Error).message;
}

/** The trail as a reader sees it (the store's AuditLog). */
export interface AuditTrail {
  readonly anchor: ChainAnchor;
  readonly head: ChainAnchor;
  lines(fromSeq?: number): Iterable<string>;
  verify(): VerifyOutcome;
}

/** What the API needs of a manager for the audit trail (Backend.audit). */
export interface AuditBackend {
  readonly sink: AuditSink;
  /** The trail after a linearizable read (or a local one, as the request asked). */
  trail(): Promise<AuditTrail>;
  /** The trail as this manager holds it now (null while locked): for follow streams, woken by onAppended. */
  localTrail(): AuditTrail | null;
  /** Called after records are appended here (or a snapshot replaced the trail); returns the unsubscribe. */
  onAppended(listener: () => void): () => void;
  kept(): Promise<number>;
  updateKept(kept: number): Promise<number>;
}

/**
 * A caller refused before it had an identity (a revoked client certificate, a removed node's, one of
 * another cluster): a denied record whose actor is unknown and whose detail is the refusal (it names
 * the certificate's serial and name). Rate-limited with every other such caller.
 */
export function auditRefusedCaller(
  sink: AuditSink | undefined,
  request: Omit<AuditedRequest, 'identity'>,
  error: unknown,
): void {
  if (sink === undefined || !(error instanceof SecretdError) || error.code !== 'forbidden') return;
  sink.denied({
    at: sink.now(),
    actor: { kind: 'anonymous', name: '', role: 'unknown' },
    source: clip(request.source()),
    action: `${request.method} ${clip(request.path)}`,
    detail: clip(error.message),
    result: 'denied',
    requestId: sink.requestId(),
  });
}
