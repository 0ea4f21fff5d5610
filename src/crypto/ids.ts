/**
 * Random ids (node, cluster, secret), as Docker's identity.NewID: 25 base-36 characters from 17
 * random bytes. Setting the top bit fixes the value in [2^135, 2^136), which always prints as 27
 * base-36 digits; dropping the first (least random) digit and keeping the next 25 gives a fixed
 * width with no padding, about 129 bits of entropy.
 */
import { SecretdError, assert } from '../errors.ts';
import { bytesToBigInt } from './_base36.ts';
import type { Random } from './random.ts';

export const idChars = 25;
const idEntropyBytes = 17;

export function newId(random: Random): string {
  // A copy, so setting the top bit never writes into the random source's buffer.
  const bytes = random(idEntropyBytes).slice();
  if (bytes.length !== idEntropyBytes) throw new SecretdError('internal', 'Random source returned a short id');
  bytes[0] = bytes[0]! | 0x80;
  const id = bytesToBigInt(bytes).toString(36).slice(1, 1 + idChars);
  assert(id.length === idChars, `generated id has ${id.length} characters`);
  return id;
}
