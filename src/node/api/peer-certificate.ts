/**
 * The certificate a request's TLS connection presented, as the routes that need more than the
 * caller's identity read it: a renewal (its key must change, a manager's names are kept) and a
 * dispatcher session (the role it names, against the store's). Null over the admin socket.
 */
import type { Context } from 'hono';
import type { TLSSocket } from 'node:tls';
import { roleFromOU } from '../../crypto/index.ts';

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
