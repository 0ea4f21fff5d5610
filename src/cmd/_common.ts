/** What every command group shares: connection options, output helpers, reading input. */
import type { CAC } from 'cac';
import { SecretdError } from '../errors.ts';
import { defaultDataDir } from '../node/index.ts';
import { call, openClient, type ApiClient } from './client.ts';
import type { Reexec } from './reexec.ts';

export interface Io {
  /** A line to standard output (the newline is added). */
  readonly out: (text: string) => void;
  /** A line to standard error (the newline is added). */
  readonly err: (text: string) => void;
  /** Bytes or text as they are, to standard output or error (`secretd exec` passes a task's output on). */
  readonly write: (stream: 'out' | 'err', data: string) => void;
  readonly stdin: () => Promise<Uint8Array>;
  readonly stdinIsTTY: boolean;
  /**
   * Replaces this process with secretd run again with `args` and `env` added to its environment
   * (execve: same pid, same parent, same standard streams); never returns. Undefined where the
   * runtime cannot (then the caller carries on as it is).
   */
  readonly reexec?: Reexec | undefined;
}

/** What a lone "-" (read standard input) arrives as in a command's arguments. */
export const stdinArg = '\u0000stdin';

export interface GlobalFlags {
  dataDir?: string;
  host?: string;
  tlscacert?: string;
  tlscert?: string;
  tlskey?: string;
}

export function addConnectionOptions(cli: CAC): void {
  cli.option(
    '--data-dir <dir>',
    `Data directory (env SECRETD_DATA_DIR, default ${defaultDataDir})`,
  );
  cli.option(
    '-H, --host <url>',
    'Remote manager, e.g. https://mgr:4377 (env SECRETD_HOST); default: the local admin socket',
  );
  cli.option('--tlscacert <file>', 'CA certificate for --host (default $SECRETD_CERT_PATH/ca.pem)');
  cli.option(
    '--tlscert <file>',
    'Client certificate for --host (default $SECRETD_CERT_PATH/cert.pem)',
  );
  cli.option('--tlskey <file>', 'Client key for --host (default $SECRETD_CERT_PATH/key.pem)');
}

export function dataDirOf(flags: GlobalFlags): string {
  return flags.dataDir ?? process.env.SECRETD_DATA_DIR ?? defaultDataDir;
}

export function clientFor(flags: GlobalFlags): ApiClient {
  return openClient({
    dataDir: dataDirOf(flags),
    host: flags.host,
    tlscacert: flags.tlscacert,
    tlscert: flags.tlscert,
    tlskey: flags.tlskey,
  });
}

export async function withClient<T>(
  flags: GlobalFlags,
  use: (client: ApiClient) => Promise<T>,
): Promise<T> {
  const client = clientFor(flags);
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/** Repeated flags arrive as a string or an array; normalise to an array. */
export function many(value: unknown): string[] {
  if (value === undefined || value === null || value === false) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

export function parseKeyValues(values: readonly string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of values) {
    const eq = item.indexOf('=');
    const key = eq === -1 ? item : item.slice(0, eq);
    if (key === '')
      throw new SecretdError(
        'invalid',
        `Invalid ${what} ${JSON.stringify(item)}: expected KEY=VALUE`,
      );
    out[key] = eq === -1 ? '' : item.slice(eq + 1);
  }
  return out;
}

export function parseBoolFlag(value: unknown, flag: string): boolean {
  if (value === true || value === 'true' || value === '1') return true;
  if (value === false || value === 'false' || value === '0') return false;
  throw new SecretdError('invalid', `Invalid value for ${flag}: expected true or false`);
}

/** Docker-style table: columns padded to the widest cell plus three spaces. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]! + 3)))
      .join('')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function ago(iso: string, now: Date = new Date()): string {
  const seconds = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  if (seconds < 1) return 'Less than a second ago';
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'} ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return minutes === 1 ? 'About a minute ago' : `${minutes} minutes ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return hours === 1 ? 'About an hour ago' : `${hours} hours ago`;
  const days = Math.round(hours / 24);
  return `${days} days ago`;
}

export async function readAllStdin(): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

/** Docker's `--filter key=value` flags, as the `filters` query parameter (empty when none). */
export function filtersQuery(values: unknown, allowed: readonly string[]): string {
  const filters: Record<string, string[]> = {};
  for (const item of many(values)) {
    const eq = item.indexOf('=');
    const key = item.slice(0, eq);
    if (eq <= 0 || !allowed.includes(key))
      throw new SecretdError(
        'invalid',
        `Invalid filter ${JSON.stringify(item)}: expected ${allowed.map((k) => `${k}=…`).join(', ')}`,
      );
    (filters[key] ??= []).push(item.slice(eq + 1));
  }
  return Object.keys(filters).length
    ? `?filters=${encodeURIComponent(JSON.stringify(filters))}`
    : '';
}

/**
 * Runs `act` for each reference, as the docker CLI does for `inspect`/`rm` of several objects: a
 * failure is reported and the others still go ahead; the exit code says whether any failed.
 */
export async function forEachRef(
  flags: GlobalFlags,
  io: Io,
  refs: readonly string[],
  act: (client: ApiClient, ref: string) => Promise<void>,
): Promise<number> {
  return withClient(flags, async (client) => {
    let code = 0;
    for (const ref of refs) {
      try {
        await act(client, ref);
      } catch (error) {
        io.err(`Error: ${(error as Error).message}`);
        code = 1;
      }
    }
    return code;
  });
}

/** `inspect` of several objects: a JSON array of those found, like `docker … inspect`. */
export async function inspectEach(
  flags: GlobalFlags,
  io: Io,
  collection: string,
  refs: readonly string[],
): Promise<number> {
  const found: unknown[] = [];
  const code = await forEachRef(
    flags,
    io,
    refs,
    async (client, ref) =>
      void found.push(await call(client, 'GET', `/${collection}/${encodeURIComponent(ref)}`)),
  );
  io.out(JSON.stringify(found, null, 4));
  return code;
}
