/**
 * Summaries and the aligned text table the benchmarks print. Pure: numbers in, numbers and strings
 * out, so any benchmark in bench/ can report the same way.
 */

/** What one measured run of one system at one concurrency produced. */
export interface RunSummary {
  readonly okCount: number;
  readonly errorCount: number;
  readonly wallMs: number;
  /** Successful operations per second of wall-clock time; errors do not count as work done. */
  readonly throughputPerSec: number;
  /** Latencies of successful operations only; failures are counted in errorCount instead. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/**
 * Nearest-rank percentile of an ascending array: always a latency that was actually observed, and
 * with 2000 samples p99 is the 1980th, so the 20 slowest requests are what it leaves out.
 */
export function percentile(ascendingMs: readonly number[], fraction: number): number {
  if (ascendingMs.length === 0) return Number.NaN;
  const rank = Math.ceil(fraction * ascendingMs.length);
  const index = Math.min(ascendingMs.length - 1, Math.max(0, rank - 1));
  return ascendingMs[index] ?? Number.NaN;
}

export interface SummarizeOptions {
  readonly errorCount: number;
  /** Wall time of the whole measured phase, first request sent to last answer read. */
  readonly wallMs: number;
}

export function summarize(latenciesMs: readonly number[], options: SummarizeOptions): RunSummary {
  const { errorCount, wallMs } = options;
  const ascending = Float64Array.from(latenciesMs).sort();
  const sorted = Array.from(ascending);
  return {
    okCount: sorted.length,
    errorCount,
    wallMs,
    throughputPerSec: wallMs > 0 ? (sorted.length * 1000) / wallMs : Number.NaN,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length === 0 ? Number.NaN : (sorted[sorted.length - 1] ?? Number.NaN),
  };
}

/**
 * The ratios of alternating rounds, paired in order (the first round of `a` at a concurrency with
 * the first of `b` at it, and so on), and their median: what the issues' bars are judged by.
 * A round without its partner is left out.
 */
export function pairedRatios<T extends { readonly concurrency: number }>(
  a: readonly T[],
  b: readonly T[],
  concurrency: number,
  value: (round: T) => number,
): { readonly rounds: number[]; readonly median: number } {
  const ofA = a.filter((m) => m.concurrency === concurrency);
  const ofB = b.filter((m) => m.concurrency === concurrency);
  const rounds = ofA.slice(0, ofB.length).map((m, i) => value(m) / value(ofB[i]!));
  return { rounds, median: median(rounds) };
}

/** The median (the mean of the middle two for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Fixed decimals, but "-" for a value that could not be measured (no successful request). */
export function formatNumber(value: number, decimals: number): string {
  return Number.isFinite(value) ? value.toFixed(decimals) : '-';
}

export interface Column {
  readonly title: string;
  /** Numbers read best right-aligned, names left-aligned. */
  readonly align: 'left' | 'right';
}

/** Each column padded to its widest cell, with a rule under the titles. */
export function formatTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
): string {
  const widths = columns.map((column, index) =>
    Math.max(column.title.length, ...rows.map((row) => (row[index] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    widths
      .map((width, index) => {
        const cell = cells[index] ?? '';
        return columns[index]?.align === 'right' ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(columns.map((column) => column.title)), rule, ...rows.map(line)].join('\n');
}
