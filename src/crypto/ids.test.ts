import { describe, expect, test } from 'bun:test';
import { idChars, newId } from './ids.ts';
import type { Random } from './random.ts';

const random: Random = (n) => crypto.getRandomValues(new Uint8Array(n));

describe('newId', () => {
  test('newId() returns 25 lower-case base-36 characters', () => {
    expect(idChars).toBe(25);
    for (let i = 0; i < 200; i++) expect(newId(random)).toMatch(/^[0-9a-z]{25}$/);
  });

  test('newId() maps each accepted byte to one character and skips bytes that would bias it', () => {
    const bytes = [0, 35, 36, 251, 252, 255, ...Array.from({ length: 40 }, (_, i) => i)];
    let calls = 0;
    const id = newId((n) => {
      calls++;
      return Uint8Array.from(bytes.slice(0, n));
    });
    // 0→'0', 35→'z', 36→'0', 251→'z'; 252 and 255 are skipped; then 0, 1, 2, … → '0', '1', '2', …
    expect(id).toBe('0z0z0123456789abcdefghijk'.slice(0, 25));
    expect(calls).toBe(1);
  });

  test('newId() refuses a random source that never gives usable bytes', () => {
    expect(() => newId((n) => new Uint8Array(n).fill(0xff))).toThrow(
      'Random source returned too few usable bytes',
    );
    expect(() => newId(() => new Uint8Array(0))).toThrow(
      'Random source returned too few usable bytes',
    );
  });

  test('newId() gives 1000 distinct ids', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newId(random)));
    expect(ids.size).toBe(1000);
  });
});
