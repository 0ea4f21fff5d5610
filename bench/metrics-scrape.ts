/**
 * Reading secretd's `GET /secretd/metrics` (Prometheus text) in the benchmarks: scrape a manager,
 * take the difference of two scrapes of a histogram, and read a quantile off its buckets (as
 * Prometheus's histogram_quantile does: linear within a bucket, so within a bucket's width).
 */
import { parseMetricsText, quantileOf } from '../src/node/metrics/index.ts';
import type { SecretdSession } from './secretd-client.ts';

export type Scrape = Map<string, number>;

export async function scrape(session: SecretdSession): Promise<Scrape> {
  const answer = await session.request('GET', '/secretd/metrics');
  if (answer.status !== 200)
    throw new Error(`GET /secretd/metrics answered ${answer.status}: ${answer.body.slice(0, 200)}`);
  return parseMetricsText(answer.body);
}

/** A histogram series between two scrapes: its bounds, per-bucket counts, count and sum. */
export interface HistogramDelta {
  readonly bounds: number[];
  readonly counts: number[];
  readonly count: number;
  readonly sum: number;
}

/**
 * `name`'s series whose labels are `labels` (written as in the text: `stage="fsynced"`, or '' for
 * none), from `before` to `after`.
 */
export function histogramDelta(
  before: Scrape,
  after: Scrape,
  name: string,
  labels: string,
): HistogramDelta {
  const prefix = `${name}_bucket{${labels === '' ? '' : `${labels},`}le="`;
  const bounds: number[] = [];
  const cumulative: number[] = [];
  for (const [key, value] of after) {
    if (!key.startsWith(prefix)) continue;
    const le = key.slice(prefix.length, -2);
    bounds.push(le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le));
    cumulative.push(value - (before.get(key) ?? 0));
  }
  const order = bounds.map((_, i) => i).sort((a, b) => bounds[a]! - bounds[b]!);
  const sortedBounds = order.map((i) => bounds[i]!);
  const sortedCumulative = order.map((i) => cumulative[i]!);
  const counts = sortedCumulative.map((c, i) => c - (i === 0 ? 0 : sortedCumulative[i - 1]!));
  const suffix = labels === '' ? '' : `{${labels}}`;
  return {
    bounds: sortedBounds.filter((b) => Number.isFinite(b)),
    counts,
    count: (after.get(`${name}_count${suffix}`) ?? 0) - (before.get(`${name}_count${suffix}`) ?? 0),
    sum: (after.get(`${name}_sum${suffix}`) ?? 0) - (before.get(`${name}_sum${suffix}`) ?? 0),
  };
}

/** The q quantile of a delta, in milliseconds (NaN without observations). */
export function quantileMs(delta: HistogramDelta, q: number): number {
  return quantileOf(delta.bounds, delta.counts, q) * 1000;
}
