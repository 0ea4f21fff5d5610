import { describe, expect, test } from 'bun:test';
import { idChars, newId } from './ids.ts';
import type { Random } from './random.ts';

const random: Random = (n) => crypto.getRandomValues(new Uint8Array(n));

describe('newId', () => {
  test('newId() returns 25 lower-case base-36 characters', () => {
    expect(idChars).toBe(25);
    for (let i = 0; i < 200; i++) expect(newId(random)).toMatch(/^[0-9a-z]{25}$/);
  });

  test('newId() keeps 25 characters at both ends of the range', () => {
    const zeros = newId((n) => new Uint8Array(n));
    const ones = newId((n) => new Uint8Array(n).fill(0xff));
    expect([zeros.length, ones.length]).toEqual([25, 25]);
    // 2^135 and 2^136-1 in base 36, first digit dropped, 25 digits kept.
    expect(zeros).toBe((2n ** 135n).toString(36).slice(1, 26));
    expect(ones).toBe((2n ** 136n - 1n).toString(36).slice(1, 26));
  });

  test('newId() gives 1000 distinct ids', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newId(random)));
    expect(ids.size).toBe(1000);
  });

  test('newId() does not write into the buffer the random source returned', () => {
    const pool = new Uint8Array(17);
    newId(() => pool);
    expect(pool).toEqual(new Uint8Array(17));
  });

  test('newId() refuses a random source that returns too few bytes', () => {
    expect(() => newId((n) => new Uint8Array(n - 1))).toThrow('Random source returned a short id');
  });
});
