import { describe, expect, test } from 'bun:test';
import { frame, FrameReader } from './frames.ts';

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

describe('Raft stream frames', () => {
  test('frames come back whole and in order whatever the chunk boundaries', () => {
    const batches = [bytes(1, 2, 3), bytes(), bytes(9), new Uint8Array(300).fill(7)];
    const wire = new Uint8Array(batches.reduce((n, b) => n + 4 + b.length, 0));
    let offset = 0;
    for (const b of batches) {
      wire.set(frame(b), offset);
      offset += 4 + b.length;
    }
    for (const step of [1, 2, 3, 5, 64, wire.length]) {
      const reader = new FrameReader(1024);
      const out: Uint8Array[] = [];
      for (let i = 0; i < wire.length; i += step) out.push(...reader.push(wire.slice(i, i + step)));
      expect(out.map((f) => Array.from(f))).toEqual(batches.map((b) => Array.from(b)));
      expect(reader.pendingBytes).toBe(0);
    }
  });

  test('a frame over the limit is refused as soon as its length is read', () => {
    const reader = new FrameReader(16);
    expect(() => reader.push(frame(new Uint8Array(17)).subarray(0, 4))).toThrow(
      'over the limit of 16',
    );
  });

  test('a half-received frame waits for the rest and does not keep the chunk it came in', () => {
    const reader = new FrameReader(64);
    const chunk = frame(bytes(1, 2, 3, 4));
    const head = chunk.slice(0, 6);
    expect(reader.push(head)).toEqual([]);
    head.fill(0);
    expect(reader.pendingBytes).toBe(6);
    expect(reader.push(chunk.slice(6)).map((f) => Array.from(f))).toEqual([[1, 2, 3, 4]]);
  });

  test('frames from Buffer chunks are plain bytes: slicing one copies it, whatever then happens to the chunk', () => {
    const reader = new FrameReader(64);
    const chunk = Buffer.from(frame(bytes(5, 6, 7)));
    const [only] = reader.push(chunk);
    expect(Buffer.isBuffer(only)).toBe(false);
    const kept = only!.slice(0, 3);
    chunk.fill(0);
    expect(Array.from(kept)).toEqual([5, 6, 7]);
  });
});
