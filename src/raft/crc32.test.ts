import { describe, expect, test } from 'bun:test';
import { crc32 } from './crc32.ts';

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

  test('crc32() continued from a previous value equals the checksum of the concatenation', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff);
    const whole = crc32(bytes);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      expect(crc32(bytes.subarray(cut), crc32(bytes.subarray(0, cut)))).toBe(whole);
    }
  });

  test('crc32() of a subarray ignores the bytes around it', () => {
    const bytes = ascii('xx123456789yy');
    expect(crc32(bytes.subarray(2, 11))).toBe(0xcbf43926);
  });
});
