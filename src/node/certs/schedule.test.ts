import { describe, expect, test } from 'bun:test';
import { certBackdateMs, certRenewalBackoffBaseMs, certRenewalBackoffMaxMs } from '../../limits.ts';
import { issuedAtMs, renewalBackoffMs, renewalDueMs } from './schedule.ts';

const issued = Date.parse('2026-01-01T00:00:00Z');
/** A certificate as the CA makes it: backdated 1 h, valid `lifetimeMs` from its issue. */
const cert = (lifetimeMs: number) => ({
  notBefore: new Date(issued - certBackdateMs),
  notAfter: new Date(issued + lifetimeMs),
});
const bytes = (value: number) => () => new Uint8Array(4).fill(value);
/** A seeded stream of bytes (xorshift), so the spread below is reproducible. */
function seeded(seed: number): (n: number) => Uint8Array {
  let x = seed;
  return (n) =>
    Uint8Array.from({ length: n }, () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x & 0xff;
    });
}

describe('renewalDueMs', () => {
  test('is at 50% of the validity, counted from the issue time, for the lowest random draw', () => {
    expect(renewalDueMs(cert(60_000), bytes(0))).toBe(issued + 30_000);
    expect(renewalDueMs(cert(90 * 86_400_000), bytes(0))).toBe(issued + 45 * 86_400_000);
  });

  test('stays below 80% of the validity for the highest random draw', () => {
    const due = renewalDueMs(cert(60_000), bytes(0xff));
    expect(due).toBeLessThan(issued + 48_000);
    expect(due).toBeGreaterThanOrEqual(issued + 47_999);
  });

  test('spreads 2,000 certificates issued together over the whole 50–80% window', () => {
    const random = seeded(0x2545f491);
    const lifetime = 3_600_000;
    const offsets = Array.from(
      { length: 2000 },
      () => renewalDueMs(cert(lifetime), random) - issued,
    );
    expect(Math.min(...offsets)).toBeGreaterThanOrEqual(lifetime * 0.5);
    expect(Math.max(...offsets)).toBeLessThan(lifetime * 0.8);
    // Every tenth of the window holds some of them: no thundering herd at one point.
    const buckets = new Array(10).fill(0);
    for (const offset of offsets) buckets[Math.floor(((offset / lifetime - 0.5) / 0.3) * 10)]++;
    expect(buckets.every((n) => n > 100)).toBe(true);
  });

  test('counts from notBefore for a certificate too short to be backdated', () => {
    const notBefore = new Date(issued);
    expect(issuedAtMs({ notBefore, notAfter: new Date(issued + 1000) })).toBe(issued);
    expect(renewalDueMs({ notBefore, notAfter: new Date(issued + 1000) }, bytes(0))).toBe(
      issued + 500,
    );
  });
});

describe('renewalBackoffMs', () => {
  test('doubles from 5 s with each failure in a row and stops at 1 h', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 50].map(renewalBackoffMs)).toEqual([
      5000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000, 2_560_000,
      3_600_000,
    ]);
    expect(renewalBackoffMs(1)).toBe(certRenewalBackoffBaseMs);
    expect(renewalBackoffMs(1000)).toBe(certRenewalBackoffMaxMs);
  });
});
