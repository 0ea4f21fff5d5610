import { describe, expect, test } from 'bun:test';
import {
  geometricBuckets,
  parseMetricsText,
  quantileOf,
  Registry,
  routeClassOf,
  SecretdMetrics,
  timedFileSystem,
} from './index.ts';
import type { FileHandle, FileSystem } from '../../io/fs.ts';

describe('Histogram', () => {
  test('counts an observation in the first bucket whose bound is at least it', () => {
    const registry = new Registry(() => 0);
    const h = registry.histogram('h_seconds', 'h', {}, [0.001, 0.01, 0.1]);
    for (const v of [0.0005, 0.001, 0.0011, 0.05, 0.1, 5]) h.observe(v);
    expect([...h.counts]).toEqual([2, 1, 2, 1]);
    expect(h.count).toBe(6);
    expect(h.sum).toBeCloseTo(5.1526, 6);
  });

  test('renders cumulative buckets, +Inf, sum and count in the Prometheus text format', () => {
    const registry = new Registry(() => 0);
    const h = registry.histogram('w_seconds', 'Write stages.', { stage: 'fsynced' }, [0.5, 1]);
    h.observe(0.25);
    h.observe(0.75);
    h.observe(3);
    expect(registry.render()).toBe(
      [
        '# HELP w_seconds Write stages.',
        '# TYPE w_seconds histogram',
        'w_seconds_bucket{stage="fsynced",le="0.5"} 1',
        'w_seconds_bucket{stage="fsynced",le="1"} 2',
        'w_seconds_bucket{stage="fsynced",le="+Inf"} 3',
        'w_seconds_sum{stage="fsynced"} 4',
        'w_seconds_count{stage="fsynced"} 3',
        '',
      ].join('\n'),
    );
  });
});

describe('Registry', () => {
  test('renders counters, and gauges read at scrape time, escaping label values', () => {
    const registry = new Registry(() => 0);
    registry.counter('c_total', 'A counter.', { route: 'a"b\\c' }).inc(3);
    let value = 1;
    registry.gauge('g', 'A gauge.', () => [[{ kind: 'x' }, value]]);
    value = 7;
    const text = registry.render();
    expect(text).toContain('# TYPE c_total counter\nc_total{route="a\\"b\\\\c"} 3\n');
    expect(text).toContain('# TYPE g gauge\ng{kind="x"} 7\n');
  });

  test('leaves out a gauge whose reader throws, and one dropped by its own reader', () => {
    const registry = new Registry(() => 0);
    registry.gauge('bad', 'Throws.', () => {
      throw new Error('no store');
    });
    const read = () => [[{}, 1]] as const;
    registry.gauge('gone', 'Dropped.', read);
    registry.dropGauge('gone', () => []);
    expect(registry.render()).toContain('gone 1');
    registry.dropGauge('gone', read);
    const text = registry.render();
    expect(text).not.toContain('bad');
    expect(text).not.toContain('gone');
  });

  test('refuses a name registered as another type', () => {
    const registry = new Registry(() => 0);
    registry.counter('x', 'x');
    expect(() => registry.histogram('x', 'x')).toThrow('already a counter');
  });

  test('parseMetricsText reads back every sample of render', () => {
    const registry = new Registry(() => 0);
    registry.counter('c_total', 'c', { a: '1' }).inc(2);
    registry.histogram('h', 'h', {}, [1]).observe(2);
    const samples = parseMetricsText(registry.render());
    expect(samples.get('c_total{a="1"}')).toBe(2);
    expect(samples.get('h_bucket{le="1"}')).toBe(0);
    expect(samples.get('h_bucket{le="+Inf"}')).toBe(1);
    expect(samples.get('h_count')).toBe(1);
  });
});

describe('bucket math', () => {
  test('geometricBuckets grows by the factor, rounded to 3 significant digits', () => {
    expect(geometricBuckets(25e-6, 2, 4)).toEqual([25e-6, 50e-6, 100e-6, 200e-6]);
    expect(geometricBuckets(1, 1.5, 4)).toEqual([1, 1.5, 2.25, 3.38]);
  });

  test('quantileOf interpolates within the bucket the rank falls in', () => {
    const bounds = [1, 2, 4];
    expect(quantileOf(bounds, [0, 10, 0, 0], 0.5)).toBeCloseTo(1.5, 9);
    expect(quantileOf(bounds, [10, 0, 10, 0], 0.75)).toBeCloseTo(3, 9);
    expect(quantileOf(bounds, [0, 0, 0, 4], 0.99)).toBe(4);
    expect(quantileOf(bounds, [0, 0, 0, 0], 0.5)).toBeNaN();
  });
});

describe('routeClassOf', () => {
  test('names the API area and read or write, with or without a Docker version prefix', () => {
    expect(routeClassOf('POST', '/secrets/create')).toBe('secrets_write');
    expect(routeClassOf('GET', '/v1.41/secrets?filters=x')).toBe('secrets_read');
    expect(routeClassOf('GET', '/secretd/raft/status')).toBe('raft_read');
    expect(routeClassOf('GET', '/secretd/metrics')).toBe('metrics_read');
    expect(routeClassOf('DELETE', '/nowhere/x')).toBe('other_write');
  });
});

describe('SecretdMetrics', () => {
  test('counts requests by route class and status', () => {
    const metrics = new SecretdMetrics(() => 0);
    metrics.request('secrets_write', 201);
    metrics.request('secrets_write', 201);
    metrics.request('secrets_write', 409);
    const samples = parseMetricsText(metrics.render());
    expect(samples.get('secretd_http_requests_total{route="secrets_write",status="201"}')).toBe(2);
    expect(samples.get('secretd_http_requests_total{route="secrets_write",status="409"}')).toBe(1);
  });

  test('reports the process RSS and CPU as gauges', () => {
    const samples = parseMetricsText(new SecretdMetrics(() => 0).render());
    expect(samples.get('secretd_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(samples.get('secretd_process_cpu_seconds_total{mode="user"}')).toBeGreaterThan(0);
  });
});

describe('timedFileSystem', () => {
  test('times the writes and fsyncs of append handles and passes them through unchanged', async () => {
    let clock = 0;
    const metrics = new SecretdMetrics(() => clock);
    const written: Uint8Array[] = [];
    let synced = 0;
    const handle: FileHandle = {
      write: async (bytes) => {
        clock += 2;
        written.push(bytes);
      },
      sync: async () => {
        clock += 3;
        synced++;
      },
      close: async () => {},
    };
    const fs = { openAppend: async () => handle } as unknown as FileSystem;
    const timed = await timedFileSystem(fs, metrics).openAppend('/wal/0.wal');
    await timed.write(new Uint8Array(10));
    await timed.sync();
    expect(written).toHaveLength(1);
    expect(synced).toBe(1);
    expect(metrics.walWrittenAt).toBe(2);
    expect(metrics.walWrite.sum).toBeCloseTo(0.002, 9);
    expect(metrics.walFsync.count).toBe(1);
    expect(metrics.walFsync.sum).toBeCloseTo(0.003, 9);
    expect(metrics.walBytes.value).toBe(10);
  });
});
