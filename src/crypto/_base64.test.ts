import { describe, expect, test } from 'bun:test';
import { base64Decode, base64Encode } from './_base64.ts';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('base64', () => {
  // RFC 4648 §10 test vectors.
  const vectors: [string, string][] = [
    ['', ''],
    ['f', 'Zg=='],
    ['fo', 'Zm8='],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg=='],
    ['fooba', 'Zm9vYmE='],
    ['foobar', 'Zm9vYmFy'],
  ];

  test('base64Encode() matches the RFC 4648 vectors, padded and not', () => {
    for (const [plain, encoded] of vectors) {
      expect(base64Encode(utf8(plain), { padded: true })).toBe(encoded);
      expect(base64Encode(utf8(plain), { padded: false })).toBe(encoded.replace(/=+$/, ''));
    }
  });

  test('base64Decode() inverts the RFC 4648 vectors', () => {
    for (const [plain, encoded] of vectors) {
      expect(base64Decode(encoded, { padded: true })).toEqual(utf8(plain));
      expect(base64Decode(encoded.replace(/=+$/, ''), { padded: false })).toEqual(utf8(plain));
    }
  });

  test('base64Encode() agrees with node:buffer on random bytes of every length to 70', () => {
    for (let length = 0; length <= 70; length++) {
      const bytes = crypto.getRandomValues(new Uint8Array(length));
      const expected = Buffer.from(bytes).toString('base64');
      expect(base64Encode(bytes, { padded: true })).toBe(expected);
      expect(base64Decode(expected, { padded: true })).toEqual(bytes);
    }
  });

  test('base64Decode() refuses non-canonical and foreign input', () => {
    for (const text of ['Zg', 'Zh==', 'Zm9=', 'Z===', 'Zg=a', 'Zm 9v', 'Zm9v\n', '-_8=', 'Zm9vY']) {
      expect(base64Decode(text, { padded: true })).toBeUndefined();
    }
    for (const text of ['Zg==', 'Zh', 'Z', 'Zm9vY']) {
      expect(base64Decode(text, { padded: false })).toBeUndefined();
    }
  });
});
