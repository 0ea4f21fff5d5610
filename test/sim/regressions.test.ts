/**
 * Bugs the simulator found, each pinned by a direct test (a seed alone stops reproducing once the
 * simulator changes) and by the seed that found it, which stays in the fixed seed list.
 */
import { describe, expect, test } from 'bun:test';
import { statSync } from 'node:fs';
import { openRaftNode } from '../../src/node/raft-io/index.ts';
import { Store } from '../../src/node/store/index.ts';
import { SnapshotStore } from '../../src/raft/snapshot-store.ts';
import type { RaftNode, Transport } from '../../src/node/raft-io/index.ts';
import type { MemberId, Message } from '../../src/raft/types.ts';
import { WAL } from '../../src/raft/wal.ts';
import { tempDir } from '../helpers/process.ts';
import {
  conf,
  dek,
  entries,
  entry,
  fs,
  hs,
  meta,
  options,
  reopen,
  segmentPaths,
} from '../helpers/wal.ts';
import { webCryptoSha256 } from '../../src/io/sha256.ts';

async function openRaftNodeAt(
  dir: string,
  transport: Transport = { send: () => {} },
): Promise<RaftNode> {
  return openRaftNode({
    id: 'node-a' as MemberId,
    walDir: `${dir}/wal`,
    snapshotDir: `${dir}/snapshots`,
    dek,
    dekKeyId: 1,
    fs,
    random: options().random,
    electionRandom: () => 0.5,
    bootstrapConf: conf,
    transport,
    tickMs: 50,
    onFatal: (error) => {
      throw error;
    },
  });
}

describe('WAL recovery', () => {
  // Found by simulation seeds 41, 67 and 151: a member that had compacted its log could never
  // restart ("entry 7 would leave a gap after index 4; refusing to start").
  test('reopens after a lagging snapshot marker heads a segment whose predecessor was deleted behind a later marker', async () => {
    using dir = tempDir();
    const { wal } = await WAL.open(dir.path, options({ segmentBytesTarget: 1500 }));
    let index = 1;
    while (statSync((await segmentPaths(dir.path))[0]!).size < 1500) {
      await wal.save({ hardState: hs(1, index), entries: [entry(index, 1)] });
      index++;
    }
    // The cut to segment 2 (first index 7) is queued behind the last save; this marker follows it,
    // before any entry: the snapshot lags the log, as the applied index lags the last index.
    await wal.markSnapshot(meta(index - 3, 1));
    await wal.save({ hardState: hs(1, index), entries: [entry(index, 1)] });
    await wal.markSnapshot(meta(index, 1)); // deletes segment 1, which held entries 5 and 6
    await wal.close();
    expect((await segmentPaths(dir.path)).length).toBe(1);
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(1, index),
      snapshot: meta(index, 1),
      entries: [],
    });
  });
});

describe("openRaftNode() after a crash while installing a leader's snapshot", () => {
  /** A data dir whose WAL holds entries 1-3 of term 1, and a snapshot at index 5 of term 2 (from a leader). */
  async function crashedInstall(dir: string, marked: boolean): Promise<void> {
    const { wal } = await WAL.open(`${dir}/wal`, options());
    await wal.save({ hardState: hs(1, 2), entries: entries(1, 3, 1) });
    const snapshots = await SnapshotStore.open(`${dir}/snapshots`, {
      ...options(),
      sha256: webCryptoSha256,
    });
    const store = new Store();
    for (let index = 1; index <= 5; index++) store.skip(index);
    await snapshots.save({ meta: meta(5, 2), data: store.snapshot() });
    if (marked) await wal.markSnapshot(meta(5, 2));
    await wal.close();
  }

  // Found by simulation (seed 256, and seed 53 of the commit-old-term variant): after a crash
  // between the snapshot file and its WAL marker, every restart stopped at the first append with
  // "Cannot save entry 6: the log holds indexes 1 to 3, and the next is 4".
  test('records a snapshot the WAL does not know, so the next entry can be saved', async () => {
    using dir = tempDir();
    await crashedInstall(dir.path, false);
    const node = await openRaftNodeAt(dir.path);
    expect(node.core.status()).toMatchObject({ term: 2, commit: 5, lastIndex: 5 });
    await node.stop();
    const { wal, state } = await WAL.open(`${dir.path}/wal`, options());
    expect(state.snapshot).toEqual(meta(5, 2));
    expect(state.entries).toEqual([]);
    await wal.save({ hardState: hs(2, 5), entries: [entry(6, 2)] });
    await wal.close();
  });

  // Found while fixing the case above: after a crash between the WAL marker and the HardState
  // saved with it, every restart failed "term 1 is below the last log term 2".
  test("raises a saved term below the snapshot's, with no vote", async () => {
    using dir = tempDir();
    await crashedInstall(dir.path, true);
    const node = await openRaftNodeAt(dir.path);
    expect(node.core.status()).toMatchObject({ term: 2, commit: 5, lastIndex: 5 });
    await node.stop();
  });

  test('keeps the entries after a snapshot of its own whose marker was not written', async () => {
    using dir = tempDir();
    const { wal } = await WAL.open(`${dir.path}/wal`, options());
    await wal.save({ hardState: hs(1, 3), entries: entries(1, 4, 1) });
    await wal.close();
    const snapshots = await SnapshotStore.open(`${dir.path}/snapshots`, {
      ...options(),
      sha256: webCryptoSha256,
    });
    const store = new Store();
    for (let index = 1; index <= 3; index++) store.skip(index);
    await snapshots.save({ meta: meta(3, 1), data: store.snapshot() });
    const node = await openRaftNodeAt(dir.path);
    expect(node.core.status()).toMatchObject({ term: 1, commit: 3, lastIndex: 4 });
    await node.stop();
    expect(await reopen(`${dir.path}/wal`)).toEqual({
      hardState: hs(1, 3),
      snapshot: meta(3, 1),
      entries: [entry(4, 1)],
    });
  });
});

describe('RaftNode reads', () => {
  // Found by simulation seed 7264 (sim-long): a member restarted and numbered its reads from r1
  // again; the leader's late answer to the old r2, at an old index, answered the new r2, and the
  // client read a value overwritten by a write acknowledged before the read began.
  test('a restarted member never reuses a ReadIndex context', async () => {
    using dir = tempDir();
    const contexts: string[] = [];
    const transport: Transport = {
      send: (messages) =>
        contexts.push(...messages.flatMap((m) => (m.type === 'read-index' ? [m.context] : []))),
    };
    for (let start = 1; start <= 2; start++) {
      const node = await openRaftNodeAt(dir.path, transport);
      const heartbeat: Message = {
        type: 'heartbeat',
        from: 'node-b' as MemberId,
        to: 'node-a' as MemberId,
        term: 1,
        commit: 0,
      };
      node.step(heartbeat); // now it knows its leader, to whom it forwards reads
      const read = node.linearizableRead(20).catch(() => {});
      while (contexts.length < start) await Bun.sleep(1);
      await read;
      await node.stop();
    }
    expect(contexts.length).toBe(2);
    expect(contexts[0]).not.toBe(contexts[1]);
  });
});
