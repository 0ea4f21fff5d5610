import { describe, expect, test } from 'bun:test';
import { systemRandom } from './system.ts';

describe('systemRandom', () => {
  test('returns exactly the bytes asked for, each part of a long request filled (getRandomValues fills 65,536 at most)', () => {
    for (const bytes of [0, 1, 24, 65536, 65537, 200_000]) {
      const out = systemRandom(bytes);
      expect(out).toBeInstanceOf(Uint8Array);
      expect(out.length).toBe(bytes);
      // Every 4 KiB slice holds a non-zero byte: all zeros has odds of 2^-32768.
      for (let at = 0; at + 4096 <= bytes; at += 4096)
        expect(out.subarray(at, at + 4096).some((b) => b !== 0)).toBe(true);
    }
  });

  test('two calls never return the same bytes, nor the same array', () => {
    const a = systemRandom(24);
    const b = systemRandom(24);
    expect(a).not.toBe(b);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false);
  });
});
