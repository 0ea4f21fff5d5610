/**
 * Wrapping keys under a key-encryption key (KEK). The hierarchy, drawn once here:
 *
 *   unlock key = KEK (32 random bytes, shown once as SDKEY-1-…; absent when autolock is off)
 *    ├── wraps each manager's DEK (32 random bytes, one per node, never leaves the node)
 *    │      └── seals every WAL record and snapshot (`seal`/`open` in aead.ts)
 *    └── wraps each manager's TLS private key (PKCS#8)
 *
 * A wrapped key is an aead envelope whose AAD names what the key is (its label), so a wrapped DEK
 * cannot be passed off as a wrapped TLS key or the reverse. Rotating the KEK is `rewrapKey`: pure,
 * it returns the new wrapped bytes and the caller writes them atomically.
 *
 * Zeroing is best effort: the GC may have copied a buffer before we clear it, and strings cannot
 * be cleared at all, which is why keys travel as Uint8Array.
 */
import { SecretdError } from '../errors.ts';
import {
  envelopeKeyId,
  envelopeVersions,
  keyBytes,
  open,
  seal,
  sealOverheadBytes,
} from './aead.ts';
import type { Random } from './random.ts';

/** What a wrapped key is; part of the AAD. */
export type WrapLabel = string;

export interface WrapKeyOptions {
  readonly label: WrapLabel;
  readonly random: Random;
  /** Version of the KEK, stored authenticated in the envelope (Docker's kek-version). Default 0. */
  readonly kekId?: number;
}

export interface UnwrapKeyOptions {
  readonly label: WrapLabel;
}

const labelPattern = /^[a-z0-9][a-z0-9.-]{0,63}$/;
/** Keeps a wrapped key from ever opening as some other record sealed under the same key. */
const aadPrefix = new TextEncoder().encode('secretd key-wrap v1\0');

export function wrapKey(kek: Uint8Array, key: Uint8Array, options: WrapKeyOptions): Uint8Array {
  checkKek(kek);
  if (key.length === 0) throw new SecretdError('internal', 'Cannot wrap an empty key');
  return seal(kek, key, {
    aad: wrapAad(options.label),
    keyId: options.kekId ?? 0,
    random: options.random,
  });
}

/**
 * Returns the key in a fresh buffer the caller owns and should `zero`. Every failure to open is
 * reported as a wrong unlock key: a wrong KEK is by far the likeliest cause, and a swapped label
 * or tampering is only told apart by the envelope's own message, which is kept as `cause`.
 */
export function unwrapKey(
  kek: Uint8Array,
  wrapped: Uint8Array,
  options: UnwrapKeyOptions,
): Uint8Array {
  checkKek(kek);
  const aad = wrapAad(options.label);
  checkFraming(wrapped);
  let opened: Uint8Array;
  try {
    opened = open(kek, wrapped, { aad });
  } catch (cause) {
    throw new SecretdError('invalid', "Invalid unlock key: it does not open this node's keys", {
      cause,
    });
  }
  const key = opened.slice();
  opened.fill(0);
  return key;
}

/** Re-wraps under a new KEK (unlock-key rotation); nothing is written, the caller persists the result. */
export function rewrapKey(
  oldKek: Uint8Array,
  newKek: Uint8Array,
  wrapped: Uint8Array,
  options: WrapKeyOptions,
): Uint8Array {
  const key = unwrapKey(oldKek, wrapped, { label: options.label });
  try {
    return wrapKey(newKek, key, options);
  } finally {
    zero(key);
  }
}

/** The KEK version a wrapped key claims; authenticated only once `unwrapKey` succeeds. */
export function wrappedKekId(wrapped: Uint8Array): number {
  return envelopeKeyId(wrapped);
}

/** Fills buffers with zeros (best effort under a GC, see the module header). */
export function zero(...buffers: Uint8Array[]): void {
  for (const buffer of buffers) buffer.fill(0);
}

function wrapAad(label: WrapLabel): Uint8Array {
  if (!labelPattern.test(label)) {
    throw new SecretdError('internal', `Wrap label '${label}' must match ${labelPattern.source}`);
  }
  const text = new TextEncoder().encode(label);
  const out = new Uint8Array(aadPrefix.length + text.length);
  out.set(aadPrefix, 0);
  out.set(text, aadPrefix.length);
  return out;
}

/** Framing errors mean a damaged file, not a wrong key, so they are told apart before opening. */
function checkFraming(wrapped: Uint8Array): void {
  if (wrapped.length <= sealOverheadBytes) {
    throw new SecretdError('corrupt', `Wrapped key is truncated: ${wrapped.length} bytes`);
  }
  if (!envelopeVersions.includes(wrapped[0]!)) {
    throw new SecretdError('corrupt', `Wrapped key has unknown envelope version ${wrapped[0]}`);
  }
}

function checkKek(kek: Uint8Array): void {
  if (kek.length !== keyBytes) {
    throw new SecretdError(
      'invalid',
      `Invalid unlock key: it must be ${keyBytes} bytes, got ${kek.length}`,
    );
  }
}
