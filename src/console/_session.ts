/**
 * The console's sessions, as Jupyter's: the console prints a URL carrying a random token, good while
 * the console runs; a browser that opens it gets a session cookie (HttpOnly, SameSite=Strict) and is
 * redirected to the same page without the token, so the token leaves the address bar and history.
 * Every change also needs the session's CSRF token (a header the page sends, read from /api/whoami)
 * and an Origin equal to the console's own; every request needs a Host equal to the address the
 * console listens on (no DNS rebinding). Sessions live in this process's memory only: they end when
 * the console stops.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Random } from '../crypto/random.ts';

export const cookieName = 'secretd_console';
export const csrfHeader = 'x-csrf-token';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

export interface Session {
  readonly id: string;
  readonly csrf: string;
}

export class Sessions {
  /** The token of the printed URL. */
  readonly token: string;
  readonly #byId = new Map<string, Session>();
  readonly #random: Random;

  constructor(random: Random) {
    this.#random = random;
    this.token = hex(random(32));
  }

  /** A new session when `token` is the console's, else null. */
  open(token: string): Session | null {
    if (!sameSecret(token, this.token)) return null;
    const session = { id: hex(this.#random(32)), csrf: hex(this.#random(32)) };
    this.#byId.set(session.id, session);
    return session;
  }

  /** The session a request's Cookie header names, or null. */
  of(cookieHeader: string | undefined): Session | null {
    const id = cookieOf(cookieHeader, cookieName);
    if (id === undefined) return null;
    for (const [known, session] of this.#byId) if (sameSecret(id, known)) return session;
    return null;
  }

  clear(): void {
    this.#byId.clear();
  }
}

export function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(session: Session): string {
  return `${cookieName}=${session.id}; Path=/; HttpOnly; SameSite=Strict`;
}

/** Whether a change carries the session's CSRF token. */
export function csrfMatches(session: Session, given: string | undefined): boolean {
  return given !== undefined && sameSecret(given, session.csrf);
}

/**
 * The headers every answer carries: a Content-Security-Policy that allows only the console's own
 * scripts, styles and connections (no inline script, no eval, no frames), no caching, no referrer.
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};
