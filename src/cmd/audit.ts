/**
 * `secretd audit …`: reading, exporting and verifying the audit trail.
 *
 *   audit ls [--since T] [--until T] [--actor NAME] [--secret NAME] [--node ID] [--action A]
 *            [--format json] [-f|--follow]     GET /secretd/audit (NDJSON; a table by default)
 *   audit export FILE                          GET /secretd/audit/export, written to FILE
 *   audit verify                               GET /secretd/audit/verify (the chain on the cluster)
 *   audit verify FILE                          an export checked offline: no cluster needed
 */
import type { CAC } from 'cac';
import { readFile, writeFile } from 'node:fs/promises';
import { SecretdError } from '../errors.ts';
import {
  auditQueryFields,
  parseAuditQuery,
  verifyExport,
  type AuditRecord,
} from '../node/index.ts';
import { table, withClient, type GlobalFlags, type Io } from './_common.ts';
import { call, type ApiClient } from './client.ts';

type LsFlags = GlobalFlags & {
  since?: unknown;
  until?: unknown;
  actor?: unknown;
  secret?: unknown;
  node?: unknown;
  action?: unknown;
  format?: unknown;
  follow?: boolean;
};

export function registerAudit(cli: CAC, io: Io): void {
  cli
    .command('ls', 'List audit records (oldest first)')
    .alias('list')
    .option(
      '--since <time>',
      'Records from this time on (2026-01-02T15:04:05Z, or 10m, 2h, 7d ago)',
    )
    .option('--until <time>', 'Records up to this time')
    .option('--actor <name>', 'Records of this actor (certificate name, node id, admin-socket)')
    .option('--secret <name>', 'Records about this secret (name or id)')
    .option('--node <id>', 'Records about this node (deliveries, releases, node changes)')
    .option('--action <action>', 'Records of this action (secret-create, secret-deliver, denied…)')
    .option(
      '--format <format>',
      'Output format: "table" (default) or "json" (the records as NDJSON)',
    )
    .option('-f, --follow', 'Keep going: print each new record as it commits')
    .action(async (flags: LsFlags) => {
      const format = flags.format === undefined ? 'table' : String(flags.format);
      if (format !== 'table' && format !== 'json')
        throw new SecretdError(
          'invalid',
          `Invalid --format ${JSON.stringify(format.slice(0, 20))}: expected table or json`,
        );
      const params: Record<string, string> = {};
      for (const field of auditQueryFields) {
        const value = flags[field];
        if (value !== undefined) params[field] = String(value);
      }
      // The same checks as the server's, before anything is sent (times are checked against this clock).
      parseAuditQuery(params, new Date().getTime());
      const query = new URLSearchParams({ ...params, ...(flags.follow ? { follow: 'true' } : {}) });
      const path = `/secretd/audit${query.size > 0 ? `?${query}` : ''}`;
      const printer = format === 'json' ? null : tablePrinter(io, flags.follow === true);
      return withClient(flags, async (client) => {
        await readLines(client, path, printer ? printer.line : (line) => io.out(line));
        printer?.end();
        return 0;
      });
    });

  cli
    .command(
      'export <file>',
      'Write the whole kept trail to FILE, verifiable offline with `audit verify FILE`',
    )
    .action(async (file: string, flags: GlobalFlags) =>
      withClient(flags, async (client) => {
        const text = await bodyText(client, '/secretd/audit/export');
        await writeFile(file, text, { mode: 0o600 });
        const outcome = verifyExport(text);
        if (!outcome.ok)
          throw new SecretdError(
            'corrupt',
            `The exported trail does not verify at record ${outcome.seq}: ${outcome.reason}`,
          );
        io.out(
          `Exported ${outcome.count} audit records (${outcome.first} to ${outcome.last}) to ${file}.`,
        );
        return 0;
      }),
    );

  cli
    .command(
      'verify [file]',
      'Check the hash chain: on the cluster, or of an exported FILE offline',
    )
    .action(async (file: string | undefined, flags: GlobalFlags) => {
      if (file !== undefined) {
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch {
          throw new SecretdError('invalid', `Cannot read ${file}`);
        }
        return report(io, verifyExport(text), file);
      }
      return withClient(flags, async (client) => {
        const answer = (await call(client, 'GET', '/secretd/audit/verify')) as
          | { Ok: true; First: number; Last: number; Count: number }
          | { Ok: false; Seq: number; Reason: string };
        return report(
          io,
          answer.Ok
            ? { ok: true, first: answer.First, last: answer.Last, count: answer.Count }
            : { ok: false, seq: answer.Seq, reason: answer.Reason },
          'the cluster',
        );
      });
    });
}

function report(
  io: Io,
  outcome:
    | { ok: true; first: number; last: number; count: number }
    | { ok: false; seq: number; reason: string },
  where: string,
): number {
  if (outcome.ok) {
    io.out(
      outcome.count === 0
        ? `Audit trail of ${where} verified: no records.`
        : `Audit trail of ${where} verified: records ${outcome.first} to ${outcome.last} (${outcome.count}), the hash chain is intact.`,
    );
    return 0;
  }
  io.err(`Audit trail of ${where} fails verification at record ${outcome.seq}: ${outcome.reason}`);
  return 1;
}

/** A response body as text (the client parses a body that is one JSON value: an export never is). */
async function bodyText(client: ApiClient, path: string): Promise<string> {
  const body = await call(client, 'GET', path);
  return typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
}

/** Each line of an NDJSON response as it arrives (a follow stream never ends by itself). */
async function readLines(
  client: ApiClient,
  path: string,
  onLine: (line: string) => void,
): Promise<void> {
  let rest = '';
  const decoder = new TextDecoder();
  const response = await client.request('GET', path, undefined, (chunk) => {
    const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n');
    rest = lines.pop()!;
    for (const line of lines) if (line !== '') onLine(line);
  });
  if (response.status >= 300) {
    const body = response.body as { message?: string } | null;
    throw new SecretdError(
      response.status === 400 ? 'invalid' : response.status === 403 ? 'forbidden' : 'unavailable',
      body?.message ?? `HTTP ${response.status}`,
    );
  }
  if (rest !== '') onLine(rest);
}

const headers = [
  'SEQ',
  'TIME',
  'ACTOR',
  'ROLE',
  'SOURCE',
  'ACTION',
  'OBJECT',
  'VERSION',
  'NODE',
  'RESULT',
];

/** Fixed column widths for a followed table (rows are printed as they come). */
const followWidths = [6, 24, 16, 8, 21, 18, 20, 7, 12];

/**
 * The table: collected and printed at the end (columns fit their cells) or, following, a row per
 * record as it arrives (fixed widths).
 */
function tablePrinter(io: Io, follow: boolean): { line: (line: string) => void; end: () => void } {
  const rows: string[][] = [];
  const fixed = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd((followWidths[i] ?? 0) + 3)))
      .join('')
      .trimEnd();
  if (follow) io.out(fixed(headers));
  return {
    line: (line) => {
      const row = rowOf(JSON.parse(line) as AuditRecord);
      if (follow) io.out(fixed(row));
      else rows.push(row);
    },
    end: () => {
      if (!follow) io.out(table(headers, rows));
    },
  };
}

function rowOf(record: AuditRecord): string[] {
  const actor =
    record.actor.kind === 'admin-socket'
      ? `admin-socket${record.actor.uid === undefined ? '' : ` (uid ${record.actor.uid})`}`
      : record.actor.name;
  return [
    String(record.seq),
    record.at,
    actor,
    record.actor.role,
    record.source,
    record.count === undefined ? record.action : `${record.action} (${record.count})`,
    record.object?.name ?? record.object?.id ?? '',
    record.version === undefined ? '' : String(record.version),
    record.node ?? '',
    record.result,
  ];
}
