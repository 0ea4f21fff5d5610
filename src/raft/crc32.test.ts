import { describe, expect, test } from 'bun:test';
import { crc32 } from './crc32.ts';
import { crc32c } from './crc32c.ts';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('crc32', () => {
  // Check value from the CRC catalogue (reveng.sourceforge.io, CRC-32/ISO-HDLC).
  test('crc32() of "123456789" is the catalogue check value 0xCBF43926', () => {
    expect(crc32(ascii('123456789'))).toBe(0xcbf43926);
  });

  test('crc32() of the empty input is 0, and of bytes with the top bit set is unsigned', () => {
    expect(crc32(new Uint8Array(0))).toBe(0);
    const value = crc32(new Uint8Array(32).fill(0xff));
    expect(value).toBe(0xff6cab0b);
    expect(value).toBeGreaterThan(0);
  });
});

describe.each([
  ['crc32', crc32, 0xcbf43926],
  ['crc32c', crc32c, 0xe3069283],
] as const)('%s, as the WAL builds a checksum', (_, checksum, check) => {
  test('continued from a previous value, it equals the checksum of the concatenation', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff);
    const whole = checksum(bytes);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      expect(checksum(bytes.subarray(cut), checksum(bytes.subarray(0, cut)))).toBe(whole);
    }
  });

  test('of a subarray, it ignores the bytes around it', () => {
    expect(checksum(ascii('xx123456789yy').subarray(2, 11))).toBe(check);
  });
});
