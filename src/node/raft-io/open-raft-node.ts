/**
 * Opening a Raft member from disk: the latest sealed snapshot, then the sealed WAL after it, into a
 * core, a store and the loop that drives them. The manager and the deterministic simulator both
 * start members through this one function, with only the ports (disk, clock, network) differing.
 *
 * A log that is gone, or lost its newest segments, refuses to open when the caller gives the WAL
 * marker (`walMarkerPath`), or when a snapshot shows the log existed; a torn tail that recovery
 * cut off is logged with its size and entry indexes (never contents).
 */
import type { Random } from '../../crypto/random.ts';
import type { FileSystem } from '../../io/fs.ts';
import type { Sha256 } from '../../crypto/sha256.ts';
import { systemTimers, type Timers } from '../../io/timers.ts';
import { RaftCore, type RaftOptions } from '../../raft/core.ts';
import { SnapshotStore } from '../../raft/snapshot-store.ts';
import type { ConfState, Entry, HardState, MemberId, SnapshotMeta } from '../../raft/types.ts';
import { WAL, type TornTail, type WALState } from '../../raft/wal.ts';
import { RaftNode, type DataKey, type Transport } from './raft-node.ts';
import { Store } from '../store/index.ts';
import { sealingOf } from './_sealing.ts';
import { timedFileSystem, type SecretdMetrics } from '../metrics/index.ts';

export interface OpenRaftOptions {
  readonly id: MemberId;
  readonly walDir: string;
  readonly snapshotDir: string;
  /** The key new records and snapshots are sealed with. */
  readonly dek: Uint8Array;
  readonly dekKeyId: number;
  /**
   * Keys of a rotation a crash cut short: what is sealed under them is read, nothing more is
   * written with them. Call `rotateKey` with the `dek` to finish the rotation. Default: none.
   */
  readonly olderKeys?: readonly DataKey[];
  readonly fs: FileSystem;
  /** How snapshot pieces' content ids are hashed (default: webCryptoSha256; the simulator's hashes in order). */
  readonly sha256?: Sha256;
  /** Nonces for sealing. */
  readonly random: Random;
  /** The election timeout's jitter, in [0, 1). */
  readonly electionRandom: () => number;
  /** The configuration before entry 1: the founders (one for `init`). */
  readonly bootstrapConf: ConfState;
  readonly transport: Transport;
  readonly tickMs: number;
  /** Ticks without a leader before an election (default 10); heartbeats every `heartbeatTicks` (default 1). */
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  readonly timers?: Timers;
  readonly snapshotEntries?: number;
  /** Bytes of applied entry data after which a snapshot is taken (default snapshotLogBytesInterval). */
  readonly snapshotLogBytes?: number;
  readonly onFatal: (error: unknown) => void;
  /** Called with the store now, and again whenever a snapshot from the leader replaces it. */
  readonly onStore?: (store: Store) => void;
  /** The WAL's marker file (see `walMarkerPath`); none: a missing log is only refused when a snapshot exists. */
  readonly walMarker?: string;
  /** Where recovery reports what it truncated. Default: nothing. */
  readonly log?: (line: string) => void;
  /** Default walSegmentBytesTarget; the simulator makes segments tiny so that it crashes members mid-rotation. */
  readonly walSegmentBytesTarget?: number;
  /** Default walPreallocateBytes; the simulator makes it tiny too, so that crashes leave zeros past the end. */
  readonly walPreallocateBytes?: number;
  /** Core settings the simulator varies (flow control) or breaks on purpose (its self-test). Production leaves them unset. */
  /** Where the writes' stages and the WAL's timings are recorded (default: the process's metrics). */
  readonly metrics?: SecretdMetrics;
  readonly coreOptions?: Pick<
    RaftOptions,
    'maxEntriesPerMessage' | 'maxInflightMessages' | 'unsafeTestingMutations'
  >;
}

export async function openRaftNode(options: OpenRaftOptions): Promise<RaftNode> {
  // The WAL's writes and fsyncs are timed for /secretd/metrics (metrics/index.ts); nothing else
  // changes. The snapshot store's (a snapshot file's chunks, a pack) are not the WAL's.
  const timers = options.timers ?? systemTimers;
  const fs = timedFileSystem(options.fs, options.metrics, () => timers.now());
  const sealing = sealingOf({ ...options, fs });
  const snapshots = await SnapshotStore.open(options.snapshotDir, { ...sealing, fs: options.fs });
  const snapshot = await snapshots.loadLatest();
  const walSizes = {
    ...(options.walSegmentBytesTarget === undefined
      ? {}
      : { segmentBytesTarget: options.walSegmentBytesTarget }),
    ...(options.walPreallocateBytes === undefined
      ? {}
      : { preallocateBytes: options.walPreallocateBytes }),
  };
  const log = options.log;
  const recovery = {
    ...(options.walMarker === undefined ? {} : { marker: options.walMarker }),
    ...(log === undefined ? {} : { onTornTail: (tail: TornTail) => log(describeTornTail(tail)) }),
    mustExist: snapshot !== null,
  };
  const { wal, state } = await WAL.open(options.walDir, {
    ...sealing,
    ...walSizes,
    ...recovery,
  });
  const store = snapshot ? Store.restore(snapshot.data, snapshot.shared) : new Store();
  const snapshotIndex = snapshot?.meta.index ?? 0;
  const { hardState, entries } = snapshot
    ? await finishSnapshotInstall(wal, state, snapshot.meta)
    : state;
  const core = new RaftCore({
    id: options.id,
    electionTicks: options.electionTicks ?? 10,
    heartbeatTicks: options.heartbeatTicks ?? 1,
    random: options.electionRandom,
    ...options.coreOptions,
    initial: { hardState, snapshot: snapshot?.meta ?? null, entries, conf: options.bootstrapConf },
  });
  // The core names the snapshot to send to followers too far behind (the node reads it from disk then);
  // after a restart it must be told it again.
  if (snapshot) core.compact(snapshot.meta);
  options.onStore?.(store);
  return new RaftNode(
    {
      core,
      wal,
      snapshots,
      store,
      transport: options.transport,
      tickMs: options.tickMs,
      onFatal: options.onFatal,
      readContextPrefix: Buffer.from(options.random(8)).toString('hex'),
      ...(options.timers ? { timers: options.timers } : {}),
      ...(options.snapshotEntries ? { snapshotEntries: options.snapshotEntries } : {}),
      ...(options.snapshotLogBytes ? { snapshotLogBytes: options.snapshotLogBytes } : {}),
      ...(options.onStore ? { onStoreReplaced: options.onStore } : {}),
      ...(options.metrics ? { metrics: options.metrics } : {}),
    },
    {
      hardState,
      lastIndex: entries.at(-1)?.index ?? snapshotIndex,
      snapshotIndex,
      snapshotTerm: snapshot?.meta.term ?? 0,
    },
  );
}

/** The WAL marker of a node's data dir: beside `raft/`, so that it outlives a deleted `raft/wal` or `raft/`. */
export function walMarkerPath(dataDir: string): string {
  return `${dataDir.replace(/\/+$/, '')}/raft-log.json`;
}

/** A log line saying what recovery cut off: sizes and indexes only. */
export function describeTornTail(tail: TornTail): string {
  const entries =
    tail.discardedEntries === null
      ? 'no entries'
      : tail.discardedEntries.first === tail.discardedEntries.last
        ? `entry ${tail.discardedEntries.first}`
        : `entries ${tail.discardedEntries.first}-${tail.discardedEntries.last}`;
  return (
    `secretd: WAL recovery truncated ${tail.path} at offset ${tail.offset}: dropped ${tail.discardedBytes} bytes of a batch that never completed ` +
    `(${tail.discardedRecords} readable record(s), ${entries}; ${tail.reason}): a crash in the middle of a write leaves this; if there was no crash, the log was cut and acknowledged writes may be lost`
  );
}

/**
 * RaftNode installs a leader's snapshot in three durable steps: the snapshot file, its WAL marker,
 * then the HardState that came with it. A crash between them must not leave a member that cannot
 * start, so what the steps left undone is finished here:
 *   - a snapshot newer than the WAL's marker is marked now (the WAL keeps its entries after it if
 *     it holds the snapshot's last entry, else drops them, as when it was received);
 *   - a saved term below the snapshot's is raised to it with no vote: a vote is saved before it is
 *     sent, so none was given in any term after the saved one.
 * Found by the deterministic simulator (test/sim/regressions.test.ts).
 */
async function finishSnapshotInstall(
  wal: WAL,
  state: WALState,
  meta: SnapshotMeta,
): Promise<{ hardState: HardState | null; entries: Entry[] }> {
  let entries = state.entries.filter((e) => e.index > meta.index);
  if (meta.index > (state.snapshot?.index ?? 0)) {
    const holdsLast = state.entries.some((e) => e.index === meta.index && e.term === meta.term);
    await wal.markSnapshot(meta);
    if (!holdsLast) entries = [];
  }
  let hardState = state.hardState;
  if (hardState === null || hardState.term < meta.term) {
    hardState = {
      term: meta.term,
      vote: null,
      commit: Math.max(hardState?.commit ?? 0, meta.index),
    };
  }
  return { hardState, entries };
}
