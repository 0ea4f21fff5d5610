/**
 * Which records a reader asked for: `since`, `until` (ISO 8601 times, or durations back from now
 * such as `10m`), `actor` (a CN, node id or `admin-socket`), `secret` (a name or id), `node` (an
 * id), `action`. Bad input names the field. Pure: `now` comes from the caller.
 */
import { invalid } from '../../errors.ts';
import type { AuditRecord } from './record.ts';

export interface AuditQuery {
  readonly sinceMs?: number;
  readonly untilMs?: number;
  readonly actor?: string;
  readonly secret?: string;
  readonly node?: string;
  readonly action?: string;
}

export const auditQueryFields = ['since', 'until', 'actor', 'secret', 'node', 'action'] as const;

const durationUnitsMs: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/** A time filter: an ISO 8601 time, or a duration back from `nowMs` (`30s`, `10m`, `2h`, `7d`). */
export function parseAuditTime(value: string, field: string, nowMs: number): number {
  const duration = /^([0-9]{1,9})([smhd])$/.exec(value);
  if (duration) return nowMs - Number(duration[1]) * durationUnitsMs[duration[2]!]!;
  const ms = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms))
    throw invalid(
      `Invalid ${field} ${JSON.stringify(value.slice(0, 40))}: expected a time such as 2026-01-02T15:04:05Z or a duration back from now such as 10m`,
    );
  return ms;
}

/** The query from request parameters (absent or empty means no filter). */
export function parseAuditQuery(
  params: Readonly<Record<string, string | undefined>>,
  nowMs: number,
): AuditQuery {
  const text = (field: string): string | undefined => {
    const value = params[field];
    if (value === undefined || value === '') return undefined;
    if (value.length > 256 || /[\u0000-\u001f]/.test(value))
      throw invalid(`Invalid ${field}: expected at most 256 printable characters`);
    return value;
  };
  const since = text('since');
  const until = text('until');
  const query: AuditQuery = {
    ...(since === undefined ? {} : { sinceMs: parseAuditTime(since, 'since', nowMs) }),
    ...(until === undefined ? {} : { untilMs: parseAuditTime(until, 'until', nowMs) }),
    ...optional('actor', text('actor')),
    ...optional('secret', text('secret')),
    ...optional('node', text('node')),
    ...optional('action', text('action')),
  };
  if (query.sinceMs !== undefined && query.untilMs !== undefined && query.untilMs < query.sinceMs)
    throw invalid('Invalid until: it is before since');
  return query;
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}

export function isEmptyQuery(query: AuditQuery): boolean {
  return Object.keys(query).length === 0;
}

/** Whether a record is one the query asks for. */
export function matchesAuditQuery(record: AuditRecord, query: AuditQuery): boolean {
  if (query.sinceMs !== undefined || query.untilMs !== undefined) {
    const at = Date.parse(record.at);
    if (query.sinceMs !== undefined && !(at >= query.sinceMs)) return false;
    if (query.untilMs !== undefined && !(at <= query.untilMs)) return false;
  }
  if (query.actor !== undefined && record.actor.name !== query.actor) return false;
  if (query.action !== undefined && record.action !== query.action) return false;
  if (query.node !== undefined && record.node !== query.node && record.object?.id !== query.node)
    return false;
  if (
    query.secret !== undefined &&
    (!record.action.startsWith('secret-') ||
      (record.object?.name !== query.secret && record.object?.id !== query.secret))
  )
    return false;
  return true;
}
