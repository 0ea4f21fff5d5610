/** Command-line options of bench/create-secrets.ts, parsed into one typed object. */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import type { ClientTLSFiles } from './secretd-client.ts';

export const usage = `Usage: bun bench/create-secrets.ts [options]

Creates N secrets at concurrency C with S-byte random values on secretd and on Docker Swarm,
and prints throughput and latency for each.

  --n N                  secrets created per measurement (default 2000)
  --concurrency C[,C…]   concurrent requests; a list runs one measurement per value (default 16)
  --size S               bytes of random data per secret (default 64)
  --warmup W             creates before each measurement, not counted (default 200)
  --max-seconds T        wall-clock cap per measurement (default 120)
  --json                 also print the results as one JSON line

secretd (default: start one from src/main.ts in a temp dir):
  --secretd-url URL --cacert FILE --cert FILE --key FILE
                         use a running secretd (https://127.0.0.1:PORT)
  --servername NAME      name to check the server certificate against
  --server-pid PID       count this process's CPU time as the server's (repeatable; a started
                         secretd and Docker are counted without it)
  --secretd-bin PATH     start this executable (e.g. dist/secretd) instead of src/main.ts
  --no-secretd           skip secretd

Docker (default: /var/run/docker.sock if it is a swarm manager):
  --docker-socket PATH   use this dockerd, which must be a swarm manager
  --start-docker         start a private dockerd, swarm init it, remove it afterwards (root)
  --no-docker            skip Docker
`;

export type SecretdChoice =
  | { readonly kind: 'none' }
  | { readonly kind: 'start'; readonly command: readonly string[] | undefined }
  | {
      readonly kind: 'url';
      readonly url: string;
      readonly files: ClientTLSFiles;
      readonly servername: string | undefined;
      /** Processes whose CPU time is the server's; empty: not measured. */
      readonly pids: readonly number[];
    };

export type DockerChoice =
  | { readonly kind: 'none' }
  | { readonly kind: 'auto' }
  | { readonly kind: 'socket'; readonly path: string }
  | { readonly kind: 'start' };

/** A closed-loop load's options, read alike by create-secrets.ts and raft-writes.ts (loadOptions). */
export interface LoadOptions {
  readonly count: number;
  readonly concurrencies: readonly number[];
  readonly valueBytes: number;
  readonly warmupCount: number;
  readonly wallCapMs: number;
  /** One request stuck longer than this counts as an error, so a hung server cannot hang the run. */
  readonly requestTimeoutMs: number;
  readonly json: boolean;
}

export interface BenchOptions extends LoadOptions {
  readonly secretd: SecretdChoice;
  readonly docker: DockerChoice;
}

/** Wrong options: optionsOrExit prints the message and the usage and exits with 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/**
 * A bench script's flags, as parseArgs gives them for `options`: strict (an unknown option or a
 * missing value throws ERR_PARSE_ARGS_*, which optionsOrExit turns into the usage and exit 2), no
 * positionals, and -h/--help, added here, which makes it undefined (optionsOrExit: the usage).
 */
export function readFlags<O extends ParseArgsOptionsConfig>(
  argv: readonly string[],
  options: O,
): FlagValues<O> | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: { ...options, help: { type: 'boolean', short: 'h' } } as ParseArgsOptionsConfig,
  });
  return values.help === true ? undefined : (values as FlagValues<O>);
}

/** What readFlags gives for `options`: each flag typed by its `type` and `multiple`. */
export type FlagValues<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ options: O; strict: true; allowPositionals: false }>
>['values'];

/** The flags of a closed-loop load (`--n`, `--concurrency`, `--size`, `--warmup`, `--max-seconds`, `--json`). */
export const loadFlags = {
  n: { type: 'string' },
  concurrency: { type: 'string', multiple: true },
  size: { type: 'string' },
  warmup: { type: 'string' },
  'max-seconds': { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies ParseArgsOptionsConfig;

/** loadFlags' values, checked; `--concurrency` defaults to `concurrency`. */
export function loadOptions(
  values: FlagValues<typeof loadFlags>,
  concurrency: string,
): LoadOptions {
  return {
    count: positiveInteger('--n', values.n ?? '2000'),
    concurrencies: positiveIntegers('--concurrency', values.concurrency ?? [concurrency]),
    valueBytes: positiveInteger('--size', values.size ?? '64'),
    warmupCount: nonNegativeInteger('--warmup', values.warmup ?? '200'),
    wallCapMs: positiveInteger('--max-seconds', values['max-seconds'] ?? '120') * 1000,
    requestTimeoutMs: 30_000,
    json: values.json === true,
  };
}

/** Undefined for --help. */
export function parseOptions(argv: readonly string[]): BenchOptions | undefined {
  const values = readFlags(argv, {
    ...loadFlags,
    'secretd-url': { type: 'string' },
    cacert: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    servername: { type: 'string' },
    'server-pid': { type: 'string', multiple: true },
    'secretd-bin': { type: 'string' },
    'no-secretd': { type: 'boolean' },
    'docker-socket': { type: 'string' },
    'start-docker': { type: 'boolean' },
    'no-docker': { type: 'boolean' },
  });
  if (values === undefined) return undefined;
  return {
    ...loadOptions(values, '16'),
    secretd: secretdChoice(values),
    docker: dockerChoice(values),
  };
}

interface SecretdValues {
  readonly 'secretd-url'?: string | undefined;
  readonly cacert?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly servername?: string | undefined;
  readonly 'server-pid'?: string[] | undefined;
  readonly 'secretd-bin'?: string | undefined;
  readonly 'no-secretd'?: boolean | undefined;
}

function secretdChoice(values: SecretdValues): SecretdChoice {
  const url = values['secretd-url'];
  const { cacert, cert, key } = values;
  if (values['no-secretd'] === true) {
    if (url !== undefined || values['secretd-bin'] !== undefined)
      throw new UsageError('--no-secretd contradicts --secretd-url and --secretd-bin');
    return { kind: 'none' };
  }
  if (url === undefined) {
    if (cacert !== undefined || cert !== undefined || key !== undefined)
      throw new UsageError('--cacert, --cert and --key go with --secretd-url');
    if (values['server-pid'] !== undefined)
      throw new UsageError('--server-pid goes with --secretd-url');
    const bin = values['secretd-bin'];
    return { kind: 'start', command: bin === undefined ? undefined : [bin] };
  }
  if (!url.startsWith('https://'))
    throw new UsageError(`--secretd-url must be https://HOST:PORT, not '${url}'`);
  if (cacert === undefined || cert === undefined || key === undefined)
    throw new UsageError('--secretd-url needs --cacert, --cert and --key');
  if (values['secretd-bin'] !== undefined)
    throw new UsageError('--secretd-bin contradicts --secretd-url');
  const pids = (values['server-pid'] ?? []).map((pid) => positiveInteger('--server-pid', pid));
  return { kind: 'url', url, files: { cacert, cert, key }, servername: values.servername, pids };
}

interface DockerValues {
  readonly 'docker-socket'?: string | undefined;
  readonly 'start-docker'?: boolean | undefined;
  readonly 'no-docker'?: boolean | undefined;
}

function dockerChoice(values: DockerValues): DockerChoice {
  const chosen = [
    values['docker-socket'] !== undefined,
    values['start-docker'] === true,
    values['no-docker'] === true,
  ];
  if (chosen.filter(Boolean).length > 1)
    throw new UsageError('Choose one of --docker-socket, --start-docker and --no-docker');
  if (values['no-docker'] === true) return { kind: 'none' };
  if (values['start-docker'] === true) return { kind: 'start' };
  const path = values['docker-socket'];
  return path === undefined ? { kind: 'auto' } : { kind: 'socket', path };
}

/**
 * An entry point's options, read before it starts anything: `parse` gives them, or undefined for
 * --help, which prints `usage` to stdout and exits with 0. A wrong option (a UsageError, or
 * parseArgs' ERR_PARSE_ARGS_* for an unknown option or a missing value) prints its one-line
 * message and then `usage` to stderr, and exits with 2. Any other error is thrown on.
 */
export function optionsOrExit<T>(usage: string, parse: () => T | undefined): T {
  let options: T | undefined;
  try {
    options = parse();
  } catch (error) {
    const wrongOption =
      error instanceof UsageError ||
      (error as { code?: unknown } | null)?.code?.toString().startsWith('ERR_PARSE_ARGS') === true;
    if (!wrongOption) throw error;
    console.error(`${(error as Error).message}\n\n${usage}`);
    process.exit(2);
  }
  if (options === undefined) {
    console.log(usage);
    process.exit(0);
  }
  return options;
}

/**
 * Whole numbers from 1, comma-separated, in one value or several (a repeatable flag): `1,16` and
 * `--concurrency 1 --concurrency 16` alike.
 */
export function positiveIntegers(option: string, lists: string | readonly string[]): number[] {
  return (typeof lists === 'string' ? [lists] : lists)
    .flatMap((list) => list.split(','))
    .map((value) => positiveInteger(option, value));
}

/**
 * What `--secretd-bin` and `--no-secretd` ask for: undefined to skip secretd, [] for this Bun
 * running src/main.ts, else the executable. Both at once is a UsageError.
 */
export function secretdCommandOf(values: {
  readonly 'secretd-bin'?: string | undefined;
  readonly 'no-secretd'?: boolean | undefined;
}): readonly string[] | undefined {
  const bin = values['secretd-bin'];
  if (values['no-secretd'] !== true) return bin === undefined ? [] : [bin];
  if (bin !== undefined) throw new UsageError('--no-secretd contradicts --secretd-bin');
  return undefined;
}

export function positiveInteger(option: string, text: string): number {
  const value = nonNegativeInteger(option, text);
  if (value === 0) throw new UsageError(`${option} must be at least 1, not '${text}'`);
  return value;
}

export function nonNegativeInteger(option: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value))
    throw new UsageError(`${option} must be a whole number, not '${text}'`);
  return value;
}
