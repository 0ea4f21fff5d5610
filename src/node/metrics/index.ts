/**
 * The door of src/node/metrics: the process's metrics (`processMetrics`), served in the Prometheus
 * text format on `GET /secretd/metrics` (api/routes/metrics.ts), and the generic registry they are
 * built on (metrics.ts).
 *
 * What a write records, on the leader (raft-io/raft-node.ts; seconds since `RaftNode.propose` was
 * called, so each stage includes the ones before it):
 *   queued     the proposal reached the Raft core (event-loop turns, a Ready in progress);
 *   appended   its WAL batch was written (not yet fsynced);
 *   fsynced    that batch's fdatasync returned;
 *   sent       the Ready carrying it was handed to the transport (followers' append messages);
 *   committed  a Ready listed it as committed (a quorum holds it);
 *   applied    the store applied it and its proposer was answered.
 * On a follower (seconds since the first Raft message of the Ready arrived): appended, fsynced,
 * sent (its acknowledgement handed to the transport).
 * On the create-secret stream route (api/stream-routes.ts; seconds since the stream arrived):
 * body_read, proposed (RaftNode.propose called), replied (the answer written to the stream).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { FileHandle, FileSystem } from '../../io/fs.ts';
import { systemTimers } from '../../io/timers.ts';
import { Counter, Histogram, Registry, sizeBuckets } from './metrics.ts';

export {
  Counter,
  Histogram,
  Registry,
  geometricBuckets,
  latencyBuckets,
  parseMetricsText,
  quantileOf,
  sizeBuckets,
  type Buckets,
  type GaugeSample,
  type Labels,
} from './metrics.ts';

export const leaderStages = [
  'queued',
  'appended',
  'fsynced',
  'sent',
  'committed',
  'applied',
] as const;
export type LeaderStage = (typeof leaderStages)[number];
export const followerStages = ['appended', 'fsynced', 'sent'] as const;
export type FollowerStage = (typeof followerStages)[number];
export const createStages = ['body_read', 'proposed', 'replied'] as const;
export type CreateStage = (typeof createStages)[number];

/** A create request in flight on the stream route: when it arrived (ms, the metrics clock). */
export interface RequestTrace {
  readonly receivedAt: number;
}

/** The create request the current async context serves, if any (set by the stream route). */
export const requestTrace = new AsyncLocalStorage<RequestTrace>();

export class SecretdMetrics {
  readonly registry: Registry;
  readonly leader: Readonly<Record<LeaderStage, Histogram>>;
  readonly follower: Readonly<Record<FollowerStage, Histogram>>;
  readonly create: Readonly<Record<CreateStage, Histogram>>;
  readonly walFsync: Histogram;
  readonly walWrite: Histogram;
  readonly walBytes: Counter;
  readonly snapshotBytes: Histogram;
  readonly proposals: Counter;
  /** When the last WAL write completed (ms), read by the Raft loop right after a save. */
  walWrittenAt = -1;
  readonly #requests = new Map<string, Counter>();

  constructor(now: () => number) {
    const r = (this.registry = new Registry(now));
    const stage = (name: string, help: string, stages: readonly string[]) =>
      Object.fromEntries(stages.map((s) => [s, r.histogram(name, help, { stage: s })]));
    this.leader = stage(
      'secretd_raft_write_stage_seconds',
      'On the leader: seconds from RaftNode.propose to each stage of the write (cumulative).',
      leaderStages,
    ) as Record<LeaderStage, Histogram>;
    this.follower = stage(
      'secretd_raft_follower_stage_seconds',
      'On a follower: seconds from the first Raft message of a Ready with entries to each stage (cumulative).',
      followerStages,
    ) as Record<FollowerStage, Histogram>;
    this.create = stage(
      'secretd_create_secret_stage_seconds',
      'Create-secret stream route: seconds from the stream arriving to each stage (cumulative).',
      createStages,
    ) as Record<CreateStage, Histogram>;
    this.walWrite = r.histogram(
      'secretd_wal_write_seconds',
      'WAL batch writes (before any fsync).',
    );
    this.walFsync = r.histogram('secretd_wal_fsync_seconds', 'WAL fdatasync calls.');
    this.walBytes = r.counter('secretd_wal_written_bytes_total', 'Bytes written to the WAL.');
    this.snapshotBytes = r.histogram(
      'secretd_snapshot_bytes',
      'Sizes of the snapshots this member sealed or installed (plaintext bytes).',
      {},
      sizeBuckets,
    );
    this.proposals = r.counter(
      'secretd_raft_proposals_total',
      'Commands proposed to the Raft core on this member.',
    );
    r.gauge('secretd_process_resident_memory_bytes', 'Resident set size of this process.', () => [
      [{}, process.memoryUsage.rss()],
    ]);
    r.gauge(
      'secretd_process_cpu_seconds_total',
      'User and system CPU time of this process.',
      () => {
        const usage = process.cpuUsage();
        return [
          [{ mode: 'user' }, usage.user / 1e6],
          [{ mode: 'system' }, usage.system / 1e6],
        ];
      },
    );
  }

  /** Milliseconds on the metrics clock. */
  now(): number {
    return this.registry.now();
  }

  /** Counts one answered request: `routeClass` from `routeClassOf`, `status` its HTTP status. */
  request(routeClass: string, status: number): void {
    const key = `${routeClass} ${status}`;
    let counter = this.#requests.get(key);
    if (!counter) {
      counter = this.registry.counter(
        'secretd_http_requests_total',
        'Requests answered, by route class and HTTP status.',
        { route: routeClass, status: String(status) },
      );
      this.#requests.set(key, counter);
    }
    counter.inc();
  }

  render(): string {
    return this.registry.render();
  }
}

/**
 * A request's route class for the requests counter: the API area (the path's first segment after
 * an optional Docker version prefix and `/secretd/`) and read or write, so the label set stays small.
 */
export function routeClassOf(method: string, path: string): string {
  let start = path.charCodeAt(0) === 47 ? 1 : 0;
  if (path.startsWith('v1.', start)) {
    const slash = path.indexOf('/', start);
    start = slash === -1 ? path.length : slash + 1;
  }
  if (path.startsWith('secretd/', start)) start += 8;
  let end = start;
  while (end < path.length) {
    const c = path.charCodeAt(end);
    if (c === 47 || c === 63) break; // '/' or '?'
    end++;
  }
  const area = known.has(path.slice(start, end)) ? path.slice(start, end) : 'other';
  const kind = method === 'GET' || method === 'HEAD' ? 'read' : 'write';
  return `${area}_${kind}`;
}

const known = new Set([
  'secrets',
  'services',
  'tasks',
  'nodes',
  'swarm',
  'raft',
  'dispatch',
  'audit',
  'backup',
  'certificates',
  'grants',
  'join',
  'peers',
  'local',
  'metrics',
  '_ping',
  'version',
  'info',
]);

/** The process's metrics, on the system's monotonic clock (the Timers port). */
export const processMetrics = new SecretdMetrics(() => systemTimers.now());

/**
 * `fs` with its append handles timed (the WAL's) on `now` (the Raft loop's clock: simulated time in
 * the simulator): each write and fdatasync is recorded, and `walWrittenAt` set when a write
 * completes. Behaviour is unchanged.
 */
export function timedFileSystem(
  fs: FileSystem,
  metrics: SecretdMetrics = processMetrics,
  now: () => number = () => metrics.now(),
): FileSystem {
  return {
    mkdirp: (dir) => fs.mkdirp(dir),
    list: (dir) => fs.list(dir),
    readFile: (path) => fs.readFile(path),
    mapFile: (path) => fs.mapFile(path),
    size: (path) => fs.size(path),
    readRange: (path, offset, length) => fs.readRange(path, offset, length),
    writeFile: (path, bytes, mode) => fs.writeFile(path, bytes, mode),
    truncate: (path, size) => fs.truncate(path, size),
    rename: (from, to) => fs.rename(from, to),
    remove: (path) => fs.remove(path),
    syncDir: (dir) => fs.syncDir(dir),
    openAppend: async (path, options) =>
      timedHandle(await fs.openAppend(path, options), metrics, now),
  };
}

function timedHandle(handle: FileHandle, metrics: SecretdMetrics, now: () => number): FileHandle {
  return {
    async write(bytes) {
      const start = now();
      await handle.write(bytes);
      const end = now();
      metrics.walWrite.observe((end - start) / 1000);
      metrics.walBytes.inc(bytes.byteLength);
      metrics.walWrittenAt = end;
    },
    async sync() {
      const start = now();
      await handle.sync();
      metrics.walFsync.observe((now() - start) / 1000);
    },
    close: () => handle.close(),
  };
}
