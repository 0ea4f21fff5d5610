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
