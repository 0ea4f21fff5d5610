import { describe, expect, test } from 'bun:test';
import type { FileSystem } from '../../src/io/fs.ts';
import { inOrderSha256 } from '../../src/io/sha256.ts';
import {
  joinPieces,
  pieceContentId,
  SnapshotStore,
  textPiece,
} from '../../src/raft/snapshot-store.ts';
import type { MemberId, SnapshotPiece } from '../../src/raft/types.ts';
import { WAL } from '../../src/raft/wal.ts';
import { entries, hs } from '../helpers/wal.ts';
import { Prng } from './prng.ts';
import { Scheduler } from './scheduler.ts';
import { type DiskFaults, SimDisk, SimIOError } from './sim-fs.ts';

const faults = (extra: Partial<DiskFaults> = {}): DiskFaults => ({
  opMs: [0.1, 1],
  syncMs: [1, 5],
  spikeRate: 0,
  spikeMs: 0,
  syncErrorRate: 0,
  lyingFsync: false,
  crashKeep: { none: 1, all: 1, prefix: 1 },
  tornRate: 0.5,
  ...extra,
});

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** Runs simulated time until `promise` settles (a disk operation completes only as time passes). */
async function drive<T>(scheduler: Scheduler, promise: Promise<T>): Promise<T> {
  let outcome: { value: T } | { error: unknown } | null = null;
  promise.then(
    (value) => (outcome = { value }),
    (error: unknown) => (outcome = { error }),
  );
  for (;;) {
    await new Promise((resolve) => setImmediate(resolve)); // what the last event set off runs first
    const settled = outcome as { value: T } | { error: unknown } | null;
    if (settled !== null) {
      if ('error' in settled) throw settled.error;
      return settled.value;
    }
    const event = scheduler.next();
    if (event === undefined) throw new Error('The operation never completed');
    event.run();
  }
}

function disk(
  seed: number,
  extra: Partial<DiskFaults> = {},
): { scheduler: Scheduler; disk: SimDisk; fs: FileSystem; run: <T>(p: Promise<T>) => Promise<T> } {
  const scheduler = new Scheduler();
  const simDisk = new SimDisk(scheduler, 0, new Prng(seed), faults(extra));
  return { scheduler, disk: simDisk, fs: simDisk.mount(), run: (p) => drive(scheduler, p) };
}

/** A directory with file `f` holding "synced" (synced, name synced) then "+unsynced" (not synced). */
async function halfSynced(seed: number, extra: Partial<DiskFaults> = {}) {
  const d = disk(seed, extra);
  await d.run(d.fs.mkdirp('/d'));
  await d.run(d.fs.writeFile('/d/f', new Uint8Array(0)));
  await d.run(d.fs.syncDir('/d'));
  const handle = await d.run(d.fs.openAppend('/d/f'));
  await d.run(handle.write(bytes('synced')));
  await d.run(handle.sync());
  await d.run(handle.write(bytes('+unsynced')));
  return d;
}

describe('SimDisk', () => {
  test('completes operations only as simulated time passes', async () => {
    const { scheduler, fs, run } = disk(1);
    let done = false;
    const made = fs.mkdirp('/a/b').then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(done).toBe(false);
    await run(made);
    expect(scheduler.now).toBeGreaterThan(0);
    await run(fs.writeFile('/a/b/x', bytes('hello')));
    expect(text(await run(fs.readFile('/a/b/x')))).toBe('hello');
    expect(await run(fs.list('/a/b'))).toEqual(['x']);
  });

  test('keeps synced bytes and, on power loss, at most a prefix of the unsynced ones plus a torn tail', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 200; seed++) {
      const d = await halfSynced(seed);
      d.disk.crash('power');
      const after = d.disk.mount();
      const data = await d.run(after.readFile('/d/f'));
      expect(text(data.subarray(0, 6))).toBe('synced');
      expect(data.length).toBeLessThanOrEqual('synced+unsynced'.length);
      const kept = text(data.subarray(6));
      outcomes.add(
        '+unsynced'.startsWith(kept)
          ? kept.length === 0
            ? 'none'
            : kept.length === 9
              ? 'all'
              : 'prefix'
          : 'torn',
      );
    }
    expect([...outcomes].sort()).toEqual(['all', 'none', 'prefix', 'torn']);
  });

  test('loses nothing on a process crash: the page cache survives', async () => {
    const d = await halfSynced(3, { crashKeep: { none: 1, all: 0, prefix: 0 } });
    await d.run(d.fs.writeFile('/d/g', bytes('new name')));
    d.disk.crash('process');
    const after = d.disk.mount();
    expect(text(await d.run(after.readFile('/d/f')))).toBe('synced+unsynced');
    expect((await d.run(after.list('/d'))).sort()).toEqual(['f', 'g']);
  });

  test('loses names created, renamed or removed since the last syncDir, keeping a prefix of those changes', async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 50; seed++) {
      const d = disk(seed);
      await d.run(d.fs.mkdirp('/d'));
      await d.run(d.fs.writeFile('/d/a.tmp', bytes('a')));
      await d.run(d.fs.rename('/d/a.tmp', '/d/a'));
      await d.run(d.fs.writeFile('/d/b', bytes('b')));
      d.disk.crash('power');
      const names = (await d.run(d.disk.mount().list('/d'))).sort().join(',');
      outcomes.add(names);
    }
    // Never 'b' without 'a': the changes survive in order.
    expect([...outcomes].sort()).toEqual(['', 'a', 'a,b', 'a.tmp']);
    const d = disk(7);
    await d.run(d.fs.mkdirp('/d'));
    await d.run(d.fs.writeFile('/d/a', bytes('a')));
    await d.run(d.fs.syncDir('/d'));
    d.disk.crash('power');
    expect(await d.run(d.disk.mount().list('/d'))).toEqual(['a']);
  });

  test('never completes the calls of a crashed process, in flight or made after the crash', async () => {
    const { scheduler, disk: simDisk, fs } = disk(4);
    let completed = 0;
    void fs.mkdirp('/d').then(() => completed++);
    simDisk.crash('process');
    void fs.list('/').then(() => completed++);
    for (let event = scheduler.next(); event !== undefined; event = scheduler.next()) event.run();
    await new Promise((resolve) => setImmediate(resolve));
    expect(completed).toBe(0);
  });

  test('with a lying fsync, acknowledges syncs but loses the data on power loss', async () => {
    const d = await halfSynced(5, {
      lyingFsync: true,
      crashKeep: { none: 1, all: 0, prefix: 0 },
      tornRate: 0,
    });
    d.disk.crash('power');
    expect(text(await d.run(d.disk.mount().readFile('/d/f')))).toBe('');
  });

  test('a preallocating handle leaves zeros past its data after a crash, and none once closed', async () => {
    const d = disk(9);
    await d.run(d.fs.mkdirp('/d'));
    await d.run(d.fs.writeFile('/d/open', new Uint8Array(0)));
    await d.run(d.fs.writeFile('/d/closed', new Uint8Array(0)));
    const open = await d.run(d.fs.openAppend('/d/open', { preallocateBytes: 100 }));
    const closed = await d.run(d.fs.openAppend('/d/closed', { preallocateBytes: 100 }));
    for (const handle of [open, closed]) {
      await d.run(handle.write(bytes('abc')));
      await d.run(handle.write(bytes('x'.repeat(120))));
      await d.run(handle.sync());
    }
    await d.run(closed.close());
    d.disk.crash('process');
    const after = d.disk.mount();
    const left = await d.run(after.readFile('/d/open'));
    expect(left.length).toBe(200);
    expect(text(left.subarray(0, 123))).toBe('abc' + 'x'.repeat(120));
    expect(left.subarray(123).every((b) => b === 0)).toBe(true);
    expect(text(await d.run(after.readFile('/d/closed')))).toBe('abc' + 'x'.repeat(120));
    expect(d.disk.stats.zeroTails).toBe(1);
  });

  test('fails a sync with EIO when told to', async () => {
    const d = disk(6, { syncErrorRate: 1 });
    await d.run(d.fs.mkdirp('/d'));
    await d.run(d.fs.writeFile('/d/f', new Uint8Array(0)));
    const handle = await d.run(d.fs.openAppend('/d/f'));
    await d.run(handle.write(bytes('x')));
    await expect(d.run(handle.sync())).rejects.toBeInstanceOf(SimIOError);
  });

  test('crashes the process in the middle of a chosen operation, which never completes', async () => {
    const { disk: simDisk, fs, run } = disk(8);
    await run(fs.mkdirp('/d'));
    let crashed = false;
    simDisk.crashDuring(2, () => {
      crashed = true;
      simDisk.crash('power');
    });
    await run(fs.writeFile('/d/a', bytes('a')));
    await expect(run(fs.writeFile('/d/b', bytes('b')))).rejects.toThrow(
      'The operation never completed',
    );
    expect(crashed).toBe(true);
  });

  test('gives the production WAL back every synced batch after any power loss', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const d = disk(seed);
      const nonces = new Prng(seed);
      const options = {
        dek: new Uint8Array(32).fill(9),
        keyId: 1,
        random: (n: number) => nonces.bytes(n),
        fs: d.fs,
        segmentBytesTarget: 1200,
        preallocateBytes: 512,
      };
      const { wal } = await d.run(WAL.open('/wal', options));
      for (let batch = 0; batch < 6; batch++) {
        await d.run(
          wal.save(
            { hardState: hs(1, batch * 2), entries: entries(batch * 2 + 1, batch * 2 + 2, 1) },
            { sync: batch % 3 !== 2 },
          ),
        );
      }
      d.disk.crash('power');
      const { state } = await d.run(WAL.open('/wal', { ...options, fs: d.disk.mount() }));
      // Batches 0, 1, 3 and 4 were synced (so was 2, by the sync of batch 3): entries 1-10 are durable.
      expect(state.entries.length).toBeGreaterThanOrEqual(10);
      expect(state.entries.slice(0, 10)).toEqual(entries(1, 10, 1));
    }
  });
});

describe('SnapshotStore on the simulated disk', () => {
  const conf = { voters: ['a'] as MemberId[], learners: [] };
  const piece = (label: string): SnapshotPiece => {
    const data = bytes(label.repeat(3000));
    return { id: pieceContentId(data), length: data.length, bytes: () => data };
  };
  const [a, b, c] = [piece('"aa",'), piece('"bb",'), piece('"cc",')];
  /** A value's piece as the store makes it: named, kept as its bytes, standing as their base64. */
  const value = (fill: number): SnapshotPiece => {
    const data = new Uint8Array(5000).fill(fill);
    const id = Buffer.from(new Uint8Array(32).fill(fill)).toString('hex');
    return { id, named: true, base64: true, length: data.length, bytes: () => data };
  };
  const [x, y] = [value(1), value(2)];
  const pieced = (index: number, pieces: readonly SnapshotPiece[]) => ({
    meta: { index, term: 1, conf },
    pieces: [textPiece('['), ...pieces, textPiece(']')],
  });
  const dataOf = (index: number, pieces: readonly SnapshotPiece[]): Uint8Array =>
    joinPieces(pieced(index, pieces).pieces);

  test('a power loss at any step of a save that writes a pack leaves the snapshot before it or the new one, whole; the next save and open succeed', async () => {
    const outcomes = new Set<number>();
    let steps = 0;
    for (let ops = 1; ; ops++) {
      const d = disk(ops);
      const nonces = new Prng(ops);
      const options = (fs: FileSystem) => ({
        dek: new Uint8Array(32).fill(7),
        keyId: 1,
        random: (n: number) => nonces.bytes(n),
        fs,
        sha256: inOrderSha256,
      });
      const store = await d.run(SnapshotStore.open('/s', options(d.fs)));
      await d.run(store.save(pieced(10, [a!, x!, b!])));
      d.disk.crashDuring(ops, () => d.disk.crash('power'));
      const saved = await d
        .run(store.save(pieced(20, [b!, y!, c!])))
        .then(() => true)
        .catch(() => false);
      if (saved) break; // the save took fewer operations than `ops`: every step was tried
      steps = ops;
      const fs = d.disk.mount();
      const reopened = await d.run(SnapshotStore.open('/s', options(fs)));
      const loaded = await d.run(reopened.loadLatest());
      expect([10, 20]).toContain(loaded!.meta.index);
      expect(loaded!.data).toEqual(
        loaded!.meta.index === 10 ? dataOf(10, [a!, x!, b!]) : dataOf(20, [b!, y!, c!]),
      );
      outcomes.add(loaded!.meta.index);
      await d.run(reopened.save(pieced(30, [c!, x!, a!])));
      const again = await d.run(SnapshotStore.open('/s', options(fs)));
      expect((await d.run(again.loadLatest()))!.data).toEqual(dataOf(30, [c!, x!, a!]));
      // Nothing left behind but the two kept snapshots and what they read.
      expect(
        (await d.run(fs.list('/s'))).filter((n) => !n.endsWith('.snap') && !n.endsWith('.pack')),
      ).toEqual([]);
    }
    expect(steps).toBeGreaterThan(5);
    expect([...outcomes].sort()).toEqual([10, 20]);
  });
});
