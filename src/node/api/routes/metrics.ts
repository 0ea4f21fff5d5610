/**
 * GET /secretd/metrics: this process's metrics in the Prometheus text format (version 0.0.4): the
 * stages of a write on the leader and on followers, the WAL's writes and fsyncs, requests by route
 * class and status, Raft's term and indexes, snapshot sizes, what the store holds, RSS and CPU
 * (metrics/index.ts lists them). Counts and durations only: never a name, a label or a value.
 */
import { Hono } from 'hono';
import { allow, type AppEnv } from '../_gate.ts';
import { processMetrics } from '../../metrics/index.ts';

export function metricsRoutes(): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get('/secretd/metrics', allow('GET /secretd/metrics'), (c) =>
    c.body(processMetrics.render(), 200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
    }),
  );
  return api;
}
