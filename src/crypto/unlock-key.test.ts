import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../errors.ts';
import { encodeUnlockKey, parseUnlockKey } from './unlock-key.ts';

const malformedMessage = 'Invalid unlock key: expected SDKEY-1- followed by 43 base64 characters';

function parseError(text: string): SecretdError {
  try {
    parseUnlockKey(text);
  } catch (error) {
    expect(error).toBeInstanceOf(SecretdError);
    return error as SecretdError;
  }
  throw new Error('expected parseUnlockKey to throw');
}

describe('unlock key', () => {
  test('encodeUnlockKey() writes SDKEY-1- and 43 unpadded base64 characters', () => {
    const key = Uint8Array.from({ length: 32 }, (_, i) => i);
    expect(encodeUnlockKey(key)).toBe('SDKEY-1-AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8');
    expect(encodeUnlockKey(new Uint8Array(32).fill(0xff))).toBe('SDKEY-1-' + '/'.repeat(42) + '8');
  });

  test('parseUnlockKey() inverts encodeUnlockKey() for random keys', () => {
    for (let i = 0; i < 200; i++) {
      const key = crypto.getRandomValues(new Uint8Array(32));
      const text = encodeUnlockKey(key);
      expect(text).toMatch(/^SDKEY-1-[A-Za-z0-9+/]{43}$/);
      expect(parseUnlockKey(text)).toEqual(key);
    }
  });

  test('parseUnlockKey() ignores surrounding whitespace such as a pasted newline', () => {
    const key = crypto.getRandomValues(new Uint8Array(32));
    expect(parseUnlockKey(`  ${encodeUnlockKey(key)}\n`)).toEqual(key);
  });

  test('parseUnlockKey() refuses malformed keys without echoing them', () => {
    const good = encodeUnlockKey(crypto.getRandomValues(new Uint8Array(32)));
    const body = good.slice(8);
    const cases = [
      '',
      body,
      `SWMKEY-1-${body}`,
      `sdkey-1-${body}`,
      `SDKEY-2-${body}`,
      good.slice(0, -1),
      `${good}A`,
      `${good}=`,
      `SDKEY-1-${body.slice(0, 20)}*${body.slice(21)}`,
      `SDKEY-1-${body.slice(0, 20)} ${body.slice(21)}`,
      `SDKEY-1-${body.slice(0, 42)}9`, // non-zero trailing bits: a second spelling of some key
      `SDKEY-1-${'A'.repeat(44)}`,
    ];
    for (const text of cases) {
      const error = parseError(text);
      expect({ code: error.code, message: error.message }).toEqual({
        code: 'invalid',
        message: malformedMessage,
      });
    }
  });

  test('encodeUnlockKey() refuses a key that is not 32 bytes', () => {
    expect(() => encodeUnlockKey(new Uint8Array(31))).toThrow(
      'Unlock key must be 32 bytes, got 31',
    );
  });
});
