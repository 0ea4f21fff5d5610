/**
 * The certificate a request's TLS connection presented, as the routes that need more than the
 * caller's identity read it: a renewal (its key must change, a manager's names are kept) and a
 * dispatcher session (the role it names, against the store's). Null over the admin socket.
 *
 * And a client certificate's caller as the store says now (`clientIdentity`): every client
 * certificate's OU says admin; its record by serial gives its role and scope, read on every
 * request, so `ca update` takes effect on the next one on every manager.
 */
import type { Context } from 'hono';
import type { TLSSocket } from 'node:tls';
import { roleFromOU } from '../../crypto/index.ts';
import type { ClientCertRecord } from '../store/index.ts';
import type { Identity } from './backend.ts';

/**
 * A client certificate's caller (`identity`, from its certificate: role admin, its serial) with
 * its record's role, scope and name. A certificate without a record (issued before records
 * existed, before `ca issue-client` recorded what it issued) keeps the admin role it always had.
 */
export function clientIdentity(identity: Identity, record: ClientCertRecord | undefined): Identity {
  if (!record) return identity;
  return { ...identity, role: record.role, scope: record.scope, name: record.name };
}

export interface PresentedCertificate {
  readonly der: Uint8Array;
  /** The role its OU names (undefined: not one of secretd's). */
  readonly role: ReturnType<typeof roleFromOU>;
  /** When it ends (ms since the epoch); undefined when it cannot be read. */
  readonly notAfterMs: number | undefined;
}

interface Incoming {
  readonly socket?: TLSSocket;
  readonly stream?: { readonly session?: { readonly socket?: TLSSocket } };
}

export function presentedCertificate(c: Context): PresentedCertificate | null {
  const incoming = (c.env as { incoming?: Incoming } | undefined)?.incoming;
  const socket = incoming?.stream?.session?.socket ?? incoming?.socket;
  if (typeof socket?.getPeerCertificate !== 'function') return null;
  const cert = socket.getPeerCertificate();
  if (!cert || typeof cert !== 'object' || !cert.raw) return null;
  const ou = (cert.subject as unknown as Record<string, string | string[] | undefined> | undefined)
    ?.OU;
  const notAfterMs = Date.parse(cert.valid_to);
  return {
    notAfterMs: Number.isNaN(notAfterMs) ? undefined : notAfterMs,
    der: new Uint8Array(cert.raw),
    role: roleFromOU(Array.isArray(ou) ? (ou.length === 1 ? ou[0]! : '') : (ou ?? '')),
  };
}
