/**
 * Metrics in the Prometheus text format (version 0.0.4), cheap enough to stay on in production:
 * every counter and histogram is created once, up front, with its labels fixed, and holds its
 * numbers in preallocated typed arrays, so recording one is a few additions and no allocation.
 * Gauges that describe state (the store's counts, Raft's indexes, RSS) are not kept up to date on
 * the hot path: a collector reads them when the route is scraped.
 *
 * Durations are taken from an injected clock (milliseconds on a monotonic clock, the Timers port's
 * `now`), recorded in seconds, Prometheus's unit.
 */

/** Upper bounds in seconds, ascending; the +Inf bucket is implicit. */
export type Buckets = readonly number[];

/**
 * Latency buckets from 25 µs to 10 s, about ×1.5 apart (fine enough for a median or a p99 read
 * off the buckets within about 20%: enough to see where a write's time goes).
 */
export const latencyBuckets: Buckets = geometricBuckets(25e-6, 1.5, 33);

/** Size buckets from 64 B to 1 GiB, ×4 apart. */
export const sizeBuckets: Buckets = geometricBuckets(64, 4, 13);

/** `count` bounds starting at `start`, each `factor` times the last (rounded to 3 significant digits). */
export function geometricBuckets(start: number, factor: number, count: number): number[] {
  const bounds: number[] = [];
  let bound = start;
  for (let i = 0; i < count; i++) {
    bounds.push(Number(bound.toPrecision(3)));
    bound *= factor;
  }
  return bounds;
}

export type Labels = Readonly<Record<string, string>>;

export class Counter {
  value = 0;
  constructor(readonly labels: Labels) {}
  inc(by = 1): void {
    this.value += by;
  }
}

export class Histogram {
  /** counts[i]: observations ≤ bounds[i] and > bounds[i-1]; the last slot is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: Labels,
    readonly bounds: Buckets,
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    // Binary search for the first bound ≥ value.
    let lo = 0;
    let hi = bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (bounds[mid]! < value) lo = mid + 1;
      else hi = mid;
    }
    this.counts[lo]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * The `q` quantile (0..1) estimated from bucket counts as Prometheus's histogram_quantile does
 * (linear within the bucket it falls in); NaN with no observations. `counts` are per bucket (not
 * cumulative), the last one +Inf: a quantile there answers the highest finite bound.
 */
export function quantileOf(bounds: Buckets, counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i]!;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const inBucket = counts[i]!;
    if (seen + inBucket >= rank && inBucket > 0) {
      if (i === bounds.length) return bounds[bounds.length - 1] ?? Number.NaN;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      const upper = bounds[i]!;
      return lower + (upper - lower) * ((rank - seen) / inBucket);
    }
    seen += inBucket;
  }
  return bounds[bounds.length - 1] ?? Number.NaN;
}

interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram' | 'gauge';
  readonly series: Array<Counter | Histogram>;
}

/** A gauge's samples, read at scrape time. */
export type GaugeSample = readonly [labels: Labels, value: number];

interface GaugeFamily {
  readonly name: string;
  readonly help: string;
  /** Samples now; an empty list leaves the family out of this scrape. */
  readonly read: () => readonly GaugeSample[];
}

export class Registry {
  readonly #families = new Map<string, Family>();
  readonly #gauges = new Map<string, GaugeFamily>();
  /** Milliseconds on a monotonic clock. */
  readonly now: () => number;

  constructor(now: () => number) {
    this.now = now;
  }

  counter(name: string, help: string, labels: Labels = {}): Counter {
    const counter = new Counter(labels);
    this.#family(name, help, 'counter').series.push(counter);
    return counter;
  }

  histogram(
    name: string,
    help: string,
    labels: Labels = {},
    bounds: Buckets = latencyBuckets,
  ): Histogram {
    const histogram = new Histogram(labels, bounds);
    this.#family(name, help, 'histogram').series.push(histogram);
    return histogram;
  }

  /**
   * A gauge family read at scrape time; registering the same name again replaces its reader (the
   * newest Raft member or store of the process is the one described).
   */
  gauge(name: string, help: string, read: () => readonly GaugeSample[]): void {
    this.#gauges.set(name, { name, help, read });
  }

  /** Stops reading a gauge family, if `read` is still the one registered under `name`. */
  dropGauge(name: string, read: () => readonly GaugeSample[]): void {
    if (this.#gauges.get(name)?.read === read) this.#gauges.delete(name);
  }

  #family(name: string, help: string, type: Family['type']): Family {
    let family = this.#families.get(name);
    if (!family) {
      family = { name, help, type, series: [] };
      this.#families.set(name, family);
    } else if (family.type !== type) {
      throw new Error(`Metric ${name} is already a ${family.type}`);
    }
    return family;
  }

  /** Everything, in the Prometheus text format. */
  render(): string {
    const out: string[] = [];
    for (const family of this.#families.values()) {
      out.push(
        `# HELP ${family.name} ${escapeHelp(family.help)}`,
        `# TYPE ${family.name} ${family.type}`,
      );
      for (const series of family.series) {
        if (series instanceof Counter) {
          out.push(`${family.name}${labelText(series.labels)} ${numberText(series.value)}`);
          continue;
        }
        let cumulative = 0;
        for (let i = 0; i < series.bounds.length; i++) {
          cumulative += series.counts[i]!;
          out.push(
            `${family.name}_bucket${labelText(series.labels, ['le', numberText(series.bounds[i]!)])} ${cumulative}`,
          );
        }
        cumulative += series.counts[series.bounds.length]!;
        out.push(`${family.name}_bucket${labelText(series.labels, ['le', '+Inf'])} ${cumulative}`);
        out.push(`${family.name}_sum${labelText(series.labels)} ${numberText(series.sum)}`);
        out.push(`${family.name}_count${labelText(series.labels)} ${series.count}`);
      }
    }
    for (const gauge of this.#gauges.values()) {
      let samples: readonly GaugeSample[];
      try {
        samples = gauge.read();
      } catch {
        continue; // a source that cannot answer now (a store being replaced) is left out
      }
      if (samples.length === 0) continue;
      out.push(`# HELP ${gauge.name} ${escapeHelp(gauge.help)}`, `# TYPE ${gauge.name} gauge`);
      for (const [labels, value] of samples)
        out.push(`${gauge.name}${labelText(labels)} ${numberText(value)}`);
    }
    return `${out.join('\n')}\n`;
  }
}

function labelText(labels: Labels, extra?: readonly [string, string]): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(labels)) parts.push(`${key}="${escapeLabel(value)}"`);
  if (extra) parts.push(`${extra[0]}="${extra[1]}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function numberText(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

/** Parses the text format back to `name{labels}` → value (for tests and the bench scripts). */
export function parseMetricsText(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const value = line.slice(space + 1);
    samples.set(line.slice(0, space), value === '+Inf' ? Number.POSITIVE_INFINITY : Number(value));
  }
  return samples;
}
