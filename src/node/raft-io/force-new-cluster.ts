/**
 * `secretd run --force-new-cluster`: recover from a lost quorum with the data this manager has.
 * Everything it knows to be committed is kept (the sealed snapshot plus the log up to its commit
 * index); what was never committed is dropped, as Docker drops it. The result is a fresh snapshot
 * whose configuration is this manager alone and a new, empty log after it; the old log is removed
 * only once the new state is durable. The other managers are removed from the store afterwards
 * (see Manager): they must join again with a fresh data dir.
 */
import { rename, rm } from 'node:fs/promises';
import type { Random } from '../../crypto/random.ts';
import type { FileSystem } from '../../io/fs.ts';
import type { Sha256 } from '../../crypto/sha256.ts';
import { SnapshotStore } from '../../raft/snapshot-store.ts';
import type { MemberId } from '../../raft/types.ts';
import { WAL } from '../../raft/wal.ts';
import { Store } from '../store/index.ts';
import type { DataKey } from './raft-node.ts';
import { replayCommitted } from './_replay.ts';
import { sealingOf } from './_sealing.ts';

export interface ForceNewClusterOptions {
  readonly id: MemberId;
  readonly walDir: string;
  readonly snapshotDir: string;
  readonly dek: Uint8Array;
  readonly dekKeyId: number;
  /** Keys of an unfinished rotation, read but never written with (see openRaftNode). */
  readonly olderKeys?: readonly DataKey[];
  readonly fs: FileSystem;
  readonly sha256?: Sha256;
  readonly random: Random;
}

export async function forceNewCluster(
  options: ForceNewClusterOptions,
): Promise<{ index: number; term: number }> {
  const sealing = sealingOf(options);
  const snapshots = await SnapshotStore.open(options.snapshotDir, sealing);
  const snapshot = await snapshots.loadLatest();
  const { wal, state } = await WAL.open(options.walDir, sealing);
  await wal.close();
  const store = snapshot ? Store.restore(snapshot.data, snapshot.shared) : new Store();
  let index = snapshot?.meta.index ?? 0;
  let term = snapshot?.meta.term ?? 0;
  replayCommitted(store, state.entries, state.hardState?.commit ?? index, (entry) => {
    index = entry.index;
    term = entry.term;
  });
  const meta = { index, term, conf: { voters: [options.id], learners: [] } };
  // In pieces: the audit trail's full segments already on disk are not written again.
  await snapshots.save({ meta, pieces: store.snapshotPieces() });
  // A new log that starts after the snapshot, in the member's own vote and term.
  const fresh = `${options.walDir}.new`;
  await rm(fresh, { recursive: true, force: true });
  const { wal: next } = await WAL.open(fresh, sealing);
  await next.markSnapshot(meta);
  await next.save({
    hardState: {
      term: Math.max(term, state.hardState?.term ?? 0),
      vote: options.id,
      commit: index,
    },
    entries: [],
  });
  await next.close();
  const old = `${options.walDir}.old`;
  await rm(old, { recursive: true, force: true });
  await rename(options.walDir, old);
  await rename(fresh, options.walDir);
  await options.fs.syncDir(options.walDir.replace(/\/[^/]+$/, ''));
  await rm(old, { recursive: true, force: true });
  return { index, term };
}
