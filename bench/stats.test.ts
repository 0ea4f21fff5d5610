import { describe, expect, test } from 'bun:test';
import { formatTable, percentile, summarize } from './stats.ts';

describe('percentile()', () => {
  test('returns the nearest-rank sample, never an interpolated value', () => {
    const ascending = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([
      percentile(ascending, 0.5),
      percentile(ascending, 0.99),
      percentile(ascending, 1),
    ]).toEqual([50, 99, 100]);
  });

  test('returns NaN for no samples rather than inventing one', () => {
    expect(percentile([], 0.5)).toBeNaN();
  });
});

describe('summarize()', () => {
  test('sorts numerically and counts only successes as throughput', () => {
    const summary = summarize([10, 2, 30, 4], { errorCount: 6, wallMs: 2000 });
    expect(summary).toEqual({
      okCount: 4,
      errorCount: 6,
      wallMs: 2000,
      throughputPerSec: 2,
      p50Ms: 4,
      p99Ms: 30,
      maxMs: 30,
    });
  });
});

describe('formatTable()', () => {
  test('pads each column to its widest cell with the chosen alignment', () => {
    const table = formatTable(
      [
        { title: 'system', align: 'left' },
        { title: 'n', align: 'right' },
      ],
      [
        ['docker', '1322'],
        ['secretd', '7'],
      ],
    );
    expect(table).toBe(
      ['system      n', '-------  ----', 'docker   1322', 'secretd     7'].join('\n'),
    );
  });
});
