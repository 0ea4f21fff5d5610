/**
 * seal/open for data at rest: XSalsa20-Poly1305 (NaCl secretbox, 256-bit key, random 24-byte nonce)
 * in a versioned envelope.
 *
 *   envelope = version u8 (=1) | keyId u32 BE | nonce[24] | secretbox(sha256(aad) || plaintext)
 *
 * Secretbox has no associated data, so the SHA-256 of the AAD is sealed as the first 32 bytes of the
 * plaintext: a record opened with different AAD (moved to another place, another index, another
 * key id) fails as surely as a forged tag. The key id is also part of the AAD, so it cannot be
 * swapped. `open` authenticates before returning a byte. Nonces are random, never derived from
 * positions that recovery can rewrite.
 */
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { SecretdError } from '../errors.ts';
import type { Random } from './random.ts';

export const keyBytes = 32;
export const nonceBytes = 24;
const envelopeVersion = 1;
const headerBytes = 1 + 4 + nonceBytes;
const digestBytes = 32;
const tagBytes = 16;
/** Bytes a sealed envelope adds to its plaintext. */
export const sealOverheadBytes = headerBytes + digestBytes + tagBytes;

export interface SealOptions {
  /** What the record is (its place, type, index): binds the record so it cannot move. */
  readonly aad: Uint8Array;
  /** Identifies the key, so rotation can keep several; authenticated. */
  readonly keyId: number;
  readonly random: Random;
}

export function seal(key: Uint8Array, plaintext: Uint8Array, options: SealOptions): Uint8Array {
  checkKey(key);
  checkKeyId(options.keyId);
  const nonce = options.random(nonceBytes);
  if (nonce.length !== nonceBytes)
    throw new SecretdError('internal', 'Random source returned a short nonce');
  const inner = new Uint8Array(digestBytes + plaintext.length);
  inner.set(sha256(bindAad(options.keyId, options.aad)), 0);
  inner.set(plaintext, digestBytes);
  const boxed = xsalsa20poly1305(key, nonce).encrypt(inner);
  inner.fill(0); // best effort: the GC may have copied it, but we drop our copy of the plaintext
  const out = new Uint8Array(headerBytes + boxed.length);
  out[0] = envelopeVersion;
  new DataView(out.buffer).setUint32(1, options.keyId >>> 0);
  out.set(nonce, 5);
  out.set(boxed, headerBytes);
  return out;
}

export interface OpenOptions {
  readonly aad: Uint8Array;
}

/** Returns the plaintext, or throws `corrupt` when the envelope is malformed or fails authentication. */
export function open(key: Uint8Array, envelope: Uint8Array, options: OpenOptions): Uint8Array {
  checkKey(key);
  if (envelope.length < sealOverheadBytes) throw corrupt('sealed record is too short');
  if (envelope[0] !== envelopeVersion)
    throw corrupt(`sealed record has unknown version ${envelope[0]}`);
  const keyId = envelopeKeyId(envelope);
  const nonce = envelope.subarray(5, headerBytes);
  let inner: Uint8Array;
  try {
    inner = xsalsa20poly1305(key, nonce).decrypt(envelope.subarray(headerBytes));
  } catch {
    throw corrupt('sealed record failed authentication (wrong key or tampered data)');
  }
  const expected = sha256(bindAad(keyId, options.aad));
  if (!constantTimeEqual(inner.subarray(0, digestBytes), expected)) {
    inner.fill(0);
    throw corrupt('sealed record does not belong here (its bound context differs)');
  }
  return inner.subarray(digestBytes);
}

/** The key id an envelope claims (authenticated only once `open` succeeds). */
export function envelopeKeyId(envelope: Uint8Array): number {
  if (envelope.length < 5) throw corrupt('sealed record is too short');
  return new DataView(envelope.buffer, envelope.byteOffset, envelope.byteLength).getUint32(1);
}

export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

function bindAad(keyId: number, aad: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + aad.length);
  new DataView(out.buffer).setUint32(0, keyId >>> 0);
  out.set(aad, 4);
  return out;
}

/** The header holds a u32: without this check 2^32 would be written as 0 and claim another key. */
function checkKeyId(keyId: number): void {
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffffffff) {
    throw new SecretdError('internal', `Key id must be an integer from 0 to 2^32-1, got ${keyId}`);
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length !== keyBytes)
    throw new SecretdError('internal', `Key must be ${keyBytes} bytes, got ${key.length}`);
}

function corrupt(message: string): SecretdError {
  return new SecretdError('corrupt', message.charAt(0).toUpperCase() + message.slice(1));
}
