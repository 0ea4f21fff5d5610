/** Command-line options of bench/raft-writes.ts, parsed into one typed object. */
import {
  loadFlags,
  loadOptions,
  positiveInteger,
  readFlags,
  secretdCommandOf,
  UsageError,
  type LoadOptions,
} from './create-secrets-options.ts';

/** The most members either cluster gets here: each is a process of its own on this machine. */
const membersMax = 7;

export const raftWritesUsage = `Usage: bun bench/raft-writes.ts [options]

Starts a 3-manager secretd and a 3-member etcd on loopback (--members M: M of each), both with
mutual TLS and fsync, and writes N values of S random bytes to each leader at concurrency C:
secretd POST /secrets/create, etcd POST /v3/kv/put (its HTTP/JSON gateway), from the same Bun
HTTP/2 client. Prints throughput and latency for each, and the ratios.

  --members M            secretd managers and etcd members, 1 to ${membersMax} (default 3; 1: a
                         one-node secretd against a single-member etcd)
  --n N                  writes per measurement (default 2000)
  --concurrency C[,C…]   concurrent requests; one measurement per value (default 1,16)
  --size S               bytes of random data per value (default 64)
  --warmup W             writes before each measurement, not counted (default 200)
  --max-seconds T        wall-clock cap per measurement (default 120)
  --json                 also print the results as one JSON line
  --secretd-bin PATH     run this secretd executable (e.g. dist/secretd) instead of src/main.ts
  --etcd-bin PATH        run this etcd (default: etcd on PATH; apt-get install -y etcd-server)
  --no-secretd           skip secretd
  --no-etcd              skip etcd
`;

export interface RaftWritesOptions extends LoadOptions {
  /** undefined: skip secretd; [] : this Bun running src/main.ts; else the executable. */
  readonly secretdCommand: readonly string[] | undefined;
  /** undefined: skip etcd; '' : etcd on PATH; else the executable. */
  readonly etcdExecutable: string | undefined;
  /** secretd managers, and etcd members (default 3). */
  readonly members: number;
}

/** Undefined for --help. */
export function parseRaftWritesOptions(argv: readonly string[]): RaftWritesOptions | undefined {
  const values = readFlags(argv, {
    ...loadFlags,
    'secretd-bin': { type: 'string' },
    'etcd-bin': { type: 'string' },
    'no-secretd': { type: 'boolean' },
    'no-etcd': { type: 'boolean' },
    members: { type: 'string' },
  });
  if (values === undefined) return undefined;
  const secretdCommand = secretdCommandOf(values);
  if (values['no-etcd'] === true && values['etcd-bin'] !== undefined)
    throw new UsageError('--no-etcd contradicts --etcd-bin');
  const members = positiveInteger('--members', values.members ?? '3');
  if (members > membersMax)
    throw new UsageError(`--members must be at most ${membersMax}, not '${values.members}'`);
  return {
    ...loadOptions(values, '1,16'),
    secretdCommand,
    etcdExecutable: values['no-etcd'] === true ? undefined : (values['etcd-bin'] ?? ''),
    members,
  };
}
