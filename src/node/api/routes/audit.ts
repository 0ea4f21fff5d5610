/**
 * The audit trail (audit/, store/audit-log.ts), for admins and auditors:
 *
 *   GET  /secretd/audit?since=&until=&actor=&secret=&node=&action=&follow=true
 *        the records as NDJSON, oldest first, one record's line per line (exactly as chained);
 *        `follow=true` keeps the response open and sends each record as it commits here (woken by
 *        the store's append, never by polling); bad filters are a 400 naming the field
 *   GET  /secretd/audit/export   the whole kept trail with its anchor and end lines (audit/verify.ts),
 *                                for `secretd audit verify FILE`, offline
 *   GET  /secretd/audit/verify   the chain checked on this manager: {Ok, First, Last, Count} or {Ok: false, Seq, Reason}
 *   GET|POST /secretd/audit/settings   {AuditKept}: the retention
 *
 * Responses are pulled: lines are read from the store as the client takes them, so a slow reader
 * holds no copy of the trail.
 */
import { Hono } from 'hono';
import { invalid, SecretdError } from '../../../errors.ts';
import {
  exportEnd,
  exportHeader,
  isEmptyQuery,
  matchesAuditQuery,
  parseAuditQuery,
  seqOfLine,
  type AuditBackend,
  type AuditQuery,
  type AuditRecord,
  type AuditTrail,
} from '../../audit/index.ts';
import { checkAuditKept } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend } from '../backend.ts';
import { readJsonObject } from '../request.ts';

const ndjson = { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' };
/** Lines sent per chunk of a response. */
const linesPerChunk = 256;

export function auditRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  const auditOf = (): AuditBackend => {
    if (!backend.audit) throw new SecretdError('unavailable', 'This node keeps no audit trail');
    return backend.audit;
  };

  api.get('/secretd/audit', allow('GET /secretd/audit'), async (c) => {
    const follow = c.req.query('follow');
    if (
      follow !== undefined &&
      follow !== 'true' &&
      follow !== 'false' &&
      follow !== '1' &&
      follow !== '0'
    )
      throw invalid('Invalid follow: expected true or false');
    const audit = auditOf();
    const query = parseAuditQuery(c.req.query(), Date.parse(audit.sink.now()));
    const trail = await audit.trail();
    const stream = recordStream(audit, trail, query, follow === 'true' || follow === '1');
    return new Response(stream, { status: 200, headers: ndjson });
  });

  api.get('/secretd/audit/export', allow('GET /secretd/audit/export'), async (c) => {
    const trail = await auditOf().trail();
    return new Response(exportStream(trail), { status: 200, headers: ndjson });
  });

  api.get('/secretd/audit/verify', allow('GET /secretd/audit/verify'), async (c) => {
    const outcome = (await auditOf().trail()).verify();
    return c.json(
      outcome.ok
        ? { Ok: true, First: outcome.first, Last: outcome.last, Count: outcome.count }
        : { Ok: false, Seq: outcome.seq, Reason: outcome.reason },
    );
  });

  api.get('/secretd/audit/settings', allow('GET /secretd/audit/settings'), async (c) =>
    c.json({ AuditKept: await auditOf().kept() }),
  );

  api.post('/secretd/audit/settings', allow('POST /secretd/audit/settings'), async (c) => {
    const body = await readJsonObject(c, 'audit settings', ['AuditKept']);
    if (body.AuditKept === undefined)
      throw invalid('Invalid audit settings: nothing to change (give AuditKept)');
    return c.json({ AuditKept: await auditOf().updateKept(checkAuditKept(body.AuditKept)) });
  });

  return api;
}

const encoder = new TextEncoder();

/** The kept records matching `query`, then (following) each new one as it is appended. */
function recordStream(
  audit: AuditBackend,
  first: AuditTrail,
  query: AuditQuery,
  follow: boolean,
): ReadableStream<Uint8Array> {
  const filtered = !isEmptyQuery(query);
  let lines = first.lines()[Symbol.iterator]();
  let lastSeq = 0;
  let woken: (() => void) | null = null;
  let cancelled = false;
  const unsubscribe = follow
    ? audit.onAppended(() => {
        woken?.();
        woken = null;
      })
    : () => {};
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      for (;;) {
        const chunk: string[] = [];
        while (chunk.length < linesPerChunk) {
          const next = lines.next();
          if (next.done) break;
          lastSeq = seqOfLine(next.value);
          if (!filtered || matchesAuditQuery(JSON.parse(next.value) as AuditRecord, query))
            chunk.push(next.value);
        }
        if (chunk.length > 0) {
          controller.enqueue(encoder.encode(`${chunk.join('\n')}\n`));
          return;
        }
        if (!follow || cancelled) {
          unsubscribe();
          controller.close();
          return;
        }
        // Caught up: wait for the next append here (a snapshot that replaces the store wakes it too).
        await new Promise<void>((resolve) => (woken = resolve));
        if (cancelled) return;
        const trail = audit.localTrail();
        if (trail === null) {
          unsubscribe();
          controller.close();
          return;
        }
        lines = trail.lines(lastSeq + 1)[Symbol.iterator]();
      }
    },
    cancel() {
      cancelled = true;
      unsubscribe();
      woken?.();
    },
  });
}

/** Header, every kept record up to the head as it was when asked, end line. */
function exportStream(trail: AuditTrail): ReadableStream<Uint8Array> {
  const anchor = trail.anchor;
  const head = trail.head;
  const lines = trail.lines()[Symbol.iterator]();
  let started = false;
  let count = 0;
  let seq = anchor.seq;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk: string[] = started ? [] : [exportHeader(anchor)];
      started = true;
      while (chunk.length < linesPerChunk && seq < head.seq) {
        const next = lines.next();
        if (next.done) break;
        seq = seqOfLine(next.value);
        chunk.push(next.value);
        count++;
      }
      if (seq >= head.seq || chunk.length === 0) {
        chunk.push(exportEnd({ seq, hash: head.seq === seq ? head.hash : '' }, count));
        controller.enqueue(encoder.encode(`${chunk.join('\n')}\n`));
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(`${chunk.join('\n')}\n`));
    },
  });
}
