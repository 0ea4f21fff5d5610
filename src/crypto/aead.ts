/**
 * seal/open for data at rest, in a versioned envelope with a 256-bit key and a random 24-byte nonce.
 *
 *   version 2 (written): version u8 (=2) | keyId u32 BE | nonce[24] | ciphertext | tag[16]
 *     XAES-256-GCM (C2SP, c2sp.org/XAES-256-GCM): the key and the first 12 bytes of the nonce
 *     derive a per-message AES-256 key (three AES blocks, NIST SP 800-108 in counter mode with a
 *     CMAC-style subkey), and AES-256-GCM seals with it under the last 12 bytes. The AAD given to
 *     GCM is the envelope's first five bytes (version and key id) followed by the caller's AAD.
 *   version 1 (still opened): version u8 (=1) | keyId u32 BE | nonce[24] | secretbox(sha256(aad) || plaintext)
 *     XSalsa20-Poly1305 (NaCl secretbox); secretbox has no associated data, so the SHA-256 of the
 *     key id and AAD was sealed as the first 32 bytes of the plaintext.
 *
 * Why version 2: AES-256-GCM runs in the runtime's native code (node:crypto, in Bun and Deno alike)
 * at several GiB/s with AES-NI, where XSalsa20-Poly1305 in JavaScript ran at about 110 MiB/s here,
 * and every value is sealed at least twice (its WAL record, its snapshot piece). Plain AES-GCM with
 * random 96-bit nonces is limited to about 2^32 messages per key; XAES-256-GCM's derived keys lift
 * that to far beyond what a DEK ever seals, so nonces stay random and never depend on positions
 * that recovery can rewrite.
 *
 * Either way a record opened with a different AAD (moved to another place, another index, another
 * key id) fails as surely as a forged tag, and `open` authenticates before returning a byte.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { SecretdError } from '../errors.ts';
import type { Random } from './random.ts';

export const keyBytes = 32;
export const nonceBytes = 24;
const envelopeVersion = 2;
const legacyEnvelopeVersion = 1;
const headerBytes = 1 + 4 + nonceBytes;
const legacyDigestBytes = 32;
const tagBytes = 16;
/** The envelope versions `open` reads; `seal` writes the last. */
export const envelopeVersions: readonly number[] = [legacyEnvelopeVersion, envelopeVersion];
/** Bytes a sealed envelope adds to its plaintext (what `seal` writes). */
export const sealOverheadBytes = headerBytes + tagBytes;
/** The most any envelope `open` accepts adds to its plaintext (version 1's). */
export const sealOverheadBytesMax = headerBytes + legacyDigestBytes + tagBytes;

export interface SealOptions {
  /** What the record is (its place, type, index): binds the record so it cannot move. */
  readonly aad: Uint8Array;
  /** Identifies the key, so rotation can keep several; authenticated. */
  readonly keyId: number;
  readonly random: Random;
}

export function seal(key: Uint8Array, plaintext: Uint8Array, options: SealOptions): Uint8Array {
  const out = new Uint8Array(plaintext.length + sealOverheadBytes);
  sealInto(key, [plaintext], options, out, 0);
  return out;
}

/**
 * `seal` of the concatenation of `parts`, written into `out` at `at` (plaintext bytes plus
 * sealOverheadBytes of it), without joining the parts first: the WAL seals a batch's entries
 * straight from the log's own buffers into the bytes it writes. Returns the envelope's length.
 */
export function sealInto(
  key: Uint8Array,
  parts: readonly Uint8Array[],
  options: SealOptions,
  out: Uint8Array,
  at: number,
): number {
  checkKey(key);
  checkKeyId(options.keyId);
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  if (at < 0 || at + length + sealOverheadBytes > out.length)
    throw new SecretdError('internal', 'Sealed record does not fit its output buffer');
  const nonce = options.random(nonceBytes);
  out[at] = envelopeVersion;
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(at + 1, options.keyId >>> 0);
  out.set(nonce, at + 5);
  const aad = boundAad(out.subarray(at, at + 5), options.aad);
  xaes256gcmEncrypt(key, nonce, parts, aad, out, at + headerBytes);
  return length + sealOverheadBytes;
}

export interface OpenOptions {
  readonly aad: Uint8Array;
}

/** Returns the plaintext, or throws `corrupt` when the envelope is malformed or fails authentication. */
export function open(key: Uint8Array, envelope: Uint8Array, options: OpenOptions): Uint8Array {
  checkKey(key);
  if (envelope.length < sealOverheadBytes) throw corrupt('sealed record is too short');
  if (envelope[0] === legacyEnvelopeVersion) return openLegacy(key, envelope, options);
  if (envelope[0] !== envelopeVersion)
    throw corrupt(`sealed record has unknown version ${envelope[0]}`);
  return xaes256gcmDecrypt(key, envelope.subarray(5, headerBytes), envelope.subarray(headerBytes), {
    aad: boundAad(envelope, options.aad),
  });
}

/**
 * XAES-256-GCM encryption of `plaintext` (or of its parts, in order): writes ciphertext ‖ tag
 * (plaintext bytes + 16) into `out` at `at` and returns `out`.
 */
export function xaes256gcmEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array | readonly Uint8Array[],
  aad: Uint8Array,
  out?: Uint8Array,
  at = 0,
): Uint8Array {
  checkKey(key);
  checkNonce(nonce);
  const parts = plaintext instanceof Uint8Array ? [plaintext] : plaintext;
  const into = out ?? new Uint8Array(parts.reduce((sum, part) => sum + part.length, tagBytes));
  const derived = derivedKey(key, nonce);
  const cipher = createCipheriv('aes-256-gcm', derived, nonce.subarray(12), {
    authTagLength: tagBytes,
  });
  derived.fill(0);
  cipher.setAAD(aad);
  let pos = at;
  for (const part of parts) {
    if (part.length === 0) continue;
    const sealed = cipher.update(part);
    into.set(sealed, pos);
    pos += sealed.length;
  }
  const rest = cipher.final();
  into.set(rest, pos);
  into.set(cipher.getAuthTag(), pos + rest.length);
  return into;
}

/** XAES-256-GCM decryption of ciphertext ‖ tag; throws `corrupt` unless it authenticates. */
export function xaes256gcmDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  options: { readonly aad: Uint8Array },
): Uint8Array {
  checkKey(key);
  checkNonce(nonce);
  if (sealed.length < tagBytes) throw corrupt('sealed record is too short');
  const tagAt = sealed.length - tagBytes;
  const derived = derivedKey(key, nonce);
  const decipher = createDecipheriv('aes-256-gcm', derived, nonce.subarray(12), {
    authTagLength: tagBytes,
  });
  derived.fill(0);
  decipher.setAAD(options.aad);
  decipher.setAuthTag(sealed.subarray(tagAt));
  const plain = decipher.update(sealed.subarray(0, tagAt));
  try {
    decipher.final();
  } catch {
    plain.fill(0);
    throw corrupt('sealed record failed authentication (wrong key, tampered data or moved record)');
  }
  // A plain Uint8Array view: a Buffer's slice() would share bytes where callers expect a copy.
  return new Uint8Array(plain.buffer, plain.byteOffset, plain.byteLength);
}

function openLegacy(key: Uint8Array, envelope: Uint8Array, options: OpenOptions): Uint8Array {
  if (envelope.length < sealOverheadBytesMax) throw corrupt('sealed record is too short');
  const keyId = envelopeKeyId(envelope);
  const nonce = envelope.subarray(5, headerBytes);
  let inner: Uint8Array;
  try {
    inner = xsalsa20poly1305(key, nonce).decrypt(envelope.subarray(headerBytes));
  } catch {
    throw corrupt('sealed record failed authentication (wrong key or tampered data)');
  }
  const expected = sha256(bindKeyId(keyId, options.aad));
  if (!constantTimeEqual(inner.subarray(0, legacyDigestBytes), expected)) {
    inner.fill(0);
    throw corrupt('sealed record does not belong here (its bound context differs)');
  }
  return inner.subarray(legacyDigestBytes);
}

/**
 * XAES-256-GCM's per-message AES-256 key for this nonce (the caller zeroes it once used):
 *   L = AES(K, 0^128); K1 = L << 1, with 0x87 xored into its last byte when L's top bit was set;
 *   Kx = AES(K, K1 xor (00 01 'X' 00 || N[:12])) || AES(K, K1 xor (00 02 'X' 00 || N[:12])).
 * GCM then runs under Kx with N[12:] as its 96-bit nonce.
 */
function derivedKey(key: Uint8Array, nonce: Uint8Array): Uint8Array {
  const block = createCipheriv('aes-256-ecb', key, null);
  block.setAutoPadding(false);
  const l = block.update(zeroBlock);
  const input = new Uint8Array(32);
  input.set([0x00, 0x01, 0x58, 0x00], 0);
  input.set(nonce.subarray(0, 12), 4);
  input.set([0x00, 0x02, 0x58, 0x00], 16);
  input.set(nonce.subarray(0, 12), 20);
  for (let i = 0; i < 16; i++) {
    const next = i < 15 ? l[i + 1]! >> 7 : 0;
    const k1 = (((l[i]! << 1) | next) & 0xff) ^ (i === 15 && l[0]! >> 7 ? 0x87 : 0);
    input[i] = input[i]! ^ k1;
    input[16 + i] = input[16 + i]! ^ k1;
  }
  const derived = block.update(input);
  block.final();
  l.fill(0);
  input.fill(0);
  return derived;
}

const zeroBlock = new Uint8Array(16);

/** GCM's associated data: the envelope's version and key id, then the caller's AAD. */
function boundAad(envelope: Uint8Array, aad: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + aad.length);
  out.set(envelope.subarray(0, 5), 0);
  out.set(aad, 5);
  return out;
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

function bindKeyId(keyId: number, aad: Uint8Array): Uint8Array {
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

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== nonceBytes)
    throw new SecretdError('internal', `Nonce must be ${nonceBytes} bytes, got ${nonce.length}`);
}

function checkKey(key: Uint8Array): void {
  if (key.length !== keyBytes)
    throw new SecretdError('internal', `Key must be ${keyBytes} bytes, got ${key.length}`);
}

function corrupt(message: string): SecretdError {
  return new SecretdError('corrupt', message.charAt(0).toUpperCase() + message.slice(1));
}
