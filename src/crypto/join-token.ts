/**
 * Join tokens, as Docker's SWMTKN-1-: `SDTKN-1-<digest>-<secret>`.
 *
 * - digest: SHA-256 of the root CA certificate's DER, a base-36 integer zero-padded to 50 chars.
 *   A joiner fetches the CA over an unauthenticated connection and trusts it only if it hashes
 *   to this digest; hashing the exact bytes served means nothing (no extra root) can be slipped in.
 * - secret: 16 random bytes, base 36 zero-padded to 25 chars. It is what the CA checks; rotating
 *   a token keeps the digest and draws a new secret.
 *
 * Tokens are compared whole and in constant time, as the CA compares a presented token with the
 * manager token and the worker token.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { SecretdError } from '../errors.ts';
import { fromBase36, toBase36 } from './_base36.ts';
import { constantTimeEqual } from './aead.ts';
import type { Random } from './random.ts';

export const joinTokenPrefix = 'SDTKN-1-';
const digestBytes = 32;
const digestChars = 50;
const secretBytes = 16;
const secretChars = 25;

export interface JoinToken {
  /** SHA-256 of the CA certificate DER the token trusts. */
  readonly digest: Uint8Array;
  /** The secret part, base 36. */
  readonly secret: string;
  /** The whole token, whitespace trimmed: what is compared. */
  readonly raw: string;
}

export function caDigest(caCertDer: Uint8Array): Uint8Array {
  return sha256(caCertDer);
}

export function generateJoinToken(caCertDer: Uint8Array, random: Random): string {
  const secret = random(secretBytes);
  if (secret.length !== secretBytes)
    throw new SecretdError('internal', 'Random source returned a short secret');
  return `${joinTokenPrefix}${toBase36(caDigest(caCertDer), digestChars)}-${toBase36(secret, secretChars)}`;
}

/** A new pair of join tokens for the CA `caCertDer` (init, a restore, the end of a root rotation). */
export function generateJoinTokens(
  caCertDer: Uint8Array,
  random: Random,
): { worker: string; manager: string } {
  return {
    worker: generateJoinToken(caCertDer, random),
    manager: generateJoinToken(caCertDer, random),
  };
}

export function parseJoinToken(text: string): JoinToken {
  const raw = text.trim();
  if (!raw.startsWith(joinTokenPrefix)) throw malformed('it must start with SDTKN-1-');
  const parts = raw.slice(joinTokenPrefix.length).split('-');
  if (parts.length !== 2) throw malformed('expected SDTKN-1-<digest>-<secret>');
  const [digestText = '', secret = ''] = parts;
  const digest = fromBase36(digestText, digestChars, digestBytes);
  if (digest === undefined)
    throw malformed(`the CA digest must be ${digestChars} base-36 characters`);
  if (fromBase36(secret, secretChars, secretBytes) === undefined) {
    throw malformed(`the secret must be ${secretChars} base-36 characters`);
  }
  return { digest, secret, raw };
}

/**
 * Compares two tokens without an early exit, so the time taken says nothing about how much of a
 * guess was right. Lengths are public (the format fixes them), so a length mismatch may show.
 */
export function joinTokenMatches(presented: string, expected: string): boolean {
  const length = Math.max(presented.length, expected.length);
  let diff = presented.length ^ expected.length;
  for (let i = 0; i < length; i++) {
    const a = i < presented.length ? presented.charCodeAt(i) : 0;
    const b = i < expected.length ? expected.charCodeAt(i) : 0;
    diff |= a ^ b;
  }
  return diff === 0;
}

/** Whether `caCertDer` is the CA the token was made for. */
export function caMatchesToken(caCertDer: Uint8Array, token: string | JoinToken): boolean {
  const parsed = typeof token === 'string' ? parseJoinToken(token) : token;
  return constantTimeEqual(caDigest(caCertDer), parsed.digest);
}

function malformed(reason: string): SecretdError {
  return new SecretdError('invalid', `Invalid join token: ${reason}`);
}
