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
});
