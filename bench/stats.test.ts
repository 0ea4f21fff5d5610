import { describe, expect, test } from 'bun:test';
import { pairedRatios, formatTable, median, percentile, summarize } from './stats.ts';

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

describe('pairedRatios() and median()', () => {
  const run = (system: string, concurrency: number, perSec: number) => ({
    system,
    concurrency,
    perSec,
  });
  test('pairs alternating rounds in order at one concurrency and takes the median ratio', () => {
    const a = [run('a', 16, 300), run('a', 16, 400), run('a', 1, 10), run('a', 16, 500)];
    const b = [run('b', 16, 100), run('b', 16, 200), run('b', 1, 20), run('b', 16, 1000)];
    expect(pairedRatios(a, b, 16, (m) => m.perSec)).toEqual({ rounds: [3, 2, 0.5], median: 2 });
    expect(pairedRatios(a, b, 1, (m) => m.perSec)).toEqual({ rounds: [0.5], median: 0.5 });
  });

  test('a round without its partner is left out; none gives NaN', () => {
    const a = [run('a', 16, 300), run('a', 16, 400)];
    expect(pairedRatios(a, [run('b', 16, 100)], 16, (m) => m.perSec).rounds).toEqual([3]);
    expect(pairedRatios(a, [], 16, (m) => m.perSec).median).toBeNaN();
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });
});
