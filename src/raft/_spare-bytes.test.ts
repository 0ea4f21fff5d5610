import { describe, expect, test } from 'bun:test';
import { SpareBytes } from './_spare-bytes.ts';

describe('SpareBytes', () => {
  test('take() hands out the spare buffer once, when it is large enough; else a new one', () => {
    const spare = new SpareBytes(1024);
    const first = spare.take(100);
    expect(first.length).toBe(100);
    spare.give(first);
    expect(spare.take(200)).not.toBe(first); // too small: a new buffer, the spare one stays
    expect(spare.take(50)).toBe(first);
    expect(spare.take(50)).not.toBe(first); // handed out: one user at a time
  });

  test('give() keeps the largest buffer up to the cap', () => {
    const spare = new SpareBytes(1024);
    const [small, large, huge] = [new Uint8Array(10), new Uint8Array(512), new Uint8Array(2048)];
    spare.give(large);
    spare.give(small);
    spare.give(huge);
    expect(spare.takeAny()).toBe(large);
    expect(spare.takeAny()).toBeUndefined();
    spare.give(small);
    expect(spare.takeAny()).toBe(small);
  });
});
