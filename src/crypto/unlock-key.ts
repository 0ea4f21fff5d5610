/**
 * The human form of an unlock key (the KEK), as Docker's SWMKEY-1-: a versioned prefix and the 32
 * bytes in unpadded standard base64, 43 characters. Parsing never echoes what it was given,
 * because a near miss is most of a key.
 */
import { SecretdError } from '../errors.ts';
import { base64Decode, base64Encode } from './_base64.ts';

export const unlockKeyPrefix = 'SDKEY-1-';
export const unlockKeyBytes = 32;

export function encodeUnlockKey(key: Uint8Array): string {
  if (key.length !== unlockKeyBytes) {
    throw new SecretdError(
      'internal',
      `Unlock key must be ${unlockKeyBytes} bytes, got ${key.length}`,
    );
  }
  return unlockKeyPrefix + base64Encode(key, { padded: false });
}

/** Returns the 32 key bytes; surrounding whitespace (a pasted newline) is ignored. */
export function parseUnlockKey(text: string): Uint8Array {
  const trimmed = text.trim();
  if (!trimmed.startsWith(unlockKeyPrefix)) throw malformed();
  const key = base64Decode(trimmed.slice(unlockKeyPrefix.length), { padded: false });
  if (key === undefined || key.length !== unlockKeyBytes) {
    key?.fill(0);
    throw malformed();
  }
  return key;
}

function malformed(): SecretdError {
  return new SecretdError(
    'invalid',
    'Invalid unlock key: expected SDKEY-1- followed by 43 base64 characters',
  );
}
