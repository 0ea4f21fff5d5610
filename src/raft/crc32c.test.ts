import { describe, expect, test } from 'bun:test';
import { crc32c } from './crc32c.ts';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('crc32c', () => {
  // Check value from the CRC catalogue (reveng.sourceforge.io, CRC-32/ISCSI).
  test('crc32c() of "123456789" is the catalogue check value 0xE3069283', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
  });

  // RFC 3720 (iSCSI) appendix B.4 test vectors.
  test('crc32c() matches the RFC 3720 B.4 vectors', () => {
    const zeros = new Uint8Array(32);
    const ones = new Uint8Array(32).fill(0xff);
    const up = Uint8Array.from({ length: 32 }, (_, i) => i);
    const down = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
    expect([crc32c(zeros), crc32c(ones), crc32c(up), crc32c(down)]).toEqual([
      0x8a9136aa, 0x62a8ab43, 0x46dd794e, 0x113fdb5c,
    ]);
  });

  test('crc32c() of the empty input is 0', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  test('crc32c() continued from a previous value equals the checksum of the concatenation', () => {
    const bytes = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff);
    const whole = crc32c(bytes);
    for (const cut of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      expect(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut)))).toBe(whole);
    }
  });

  test('crc32c() of a subarray ignores the bytes around it', () => {
    const bytes = ascii('xx123456789yy');
    expect(crc32c(bytes.subarray(2, 11))).toBe(0xe3069283);
  });
});
