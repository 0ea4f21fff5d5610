/**
 * Random ids (node, cluster, secret): 25 base-36 characters, as Docker's identity.NewID prints
 * them, with about 129 bits of entropy. Each character is drawn uniformly by rejection sampling
 * (bytes from 252 up are discarded, so `byte % 36` has no bias), which avoids big-integer
 * arithmetic: ids are made on every write.
 */
import { SecretdError } from '../errors.ts';
import type { Random } from './random.ts';

export const idChars = 25;
const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
const unbiasedBelow = 252; // the largest multiple of 36 that fits in a byte
/** A real source rejects a byte with probability 4/256; this many rounds failing means it is broken. */
const roundsMax = 8;

export function newId(random: Random): string {
  let id = '';
  for (let round = 0; round < roundsMax && id.length < idChars; round++) {
    const bytes = random(idChars + 3);
    if (bytes.length === 0) break;
    for (let i = 0; i < bytes.length && id.length < idChars; i++) {
      const byte = bytes[i]!;
      if (byte < unbiasedBelow) id += alphabet[byte % 36];
    }
  }
  if (id.length !== idChars)
    throw new SecretdError('internal', 'Random source returned too few usable bytes for an id');
  return id;
}

const hexPairs = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** Lower-case hex of `bytes` (request ids, serials, digests): one table lookup a byte, no array. */
export function toHex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += hexPairs[bytes[i]!];
  return out;
}
