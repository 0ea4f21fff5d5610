import { describe, expect, test } from 'bun:test';
import { tempDir } from '../../test/helpers/process.ts';
import type { SecretdError } from '../errors.ts';
import type { FileHandle, FileSystem } from '../io/fs.ts';
import { NodeFileSystem } from '../io/node-fs.ts';
import type { Entry, MemberId } from './types.ts';
import { WAL } from './wal.ts';
import {
  entries,
  entry,
  fs,
  hs,
  meta,
  openError,
  options,
  reopen,
  segmentPaths,
  text,
} from '../../test/helpers/wal.ts';

describe('WAL round trip', () => {
  test('open() of a missing directory creates an empty log', async () => {
    using dir = tempDir('secretd-wal-');
    const state = await reopen(`${dir.path}/raft/wal`);
    expect(state).toEqual({ hardState: null, snapshot: null, entries: [] });
    expect((await segmentPaths(`${dir.path}/raft/wal`)).length).toBe(1);
  });

  test('open() returns exactly the hard states and entries saved in several batches', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options());
    const confEntry: Entry = { index: 5, term: 2, type: 'conf', data: text('add node-d') };
    await wal.save({ hardState: hs(1, 0), entries: entries(1, 2, 1) });
    await wal.save({ hardState: null, entries: [entry(3, 1)] });
    await wal.save({ hardState: hs(2, 3, null), entries: [] });
    await wal.save({ hardState: hs(2, 4, 'node-b'), entries: [entry(4, 2, ''), confEntry] });
    await wal.close();
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(2, 4, 'node-b'),
      snapshot: null,
      entries: [...entries(1, 3, 1), entry(4, 2, ''), confEntry],
    });
  });

  test('save() of entries at indexes already written replaces them and everything after', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({ hardState: hs(1, 0), entries: entries(1, 5, 1) });
    await wal.save({ hardState: hs(2, 2), entries: entries(3, 4, 2) });
    await wal.close();
    const expected = {
      hardState: hs(2, 2),
      snapshot: null,
      entries: [...entries(1, 2, 1), ...entries(3, 4, 2)],
    };
    expect(await reopen(dir.path)).toEqual(expected);
    const again = await WAL.open(dir.path, options());
    await again.wal.save({ hardState: null, entries: [entry(5, 2)] });
    await again.wal.close();
    expect(await reopen(dir.path)).toEqual({
      ...expected,
      entries: [...expected.entries, entry(5, 2)],
    });
  });

  test('save() refuses a gap, an index at or below the snapshot and a falling term, and stays usable', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({ hardState: hs(2, 0), entries: [entry(1, 2), entry(2, 2)] });
    await wal.markSnapshot(meta(1, 2));
    const attempts = [[entry(4, 2)], [entry(1, 2)], [entry(3, 1)], [entry(3, 2), entry(5, 2)]];
    const codes = await Promise.all(
      attempts.map((batch) =>
        wal.save({ hardState: null, entries: batch }).then(
          () => 'ok',
          (e: SecretdError) => e.code,
        ),
      ),
    );
    expect(codes).toEqual(['invalid', 'invalid', 'invalid', 'invalid']);
    await wal.save({ hardState: null, entries: [entry(3, 2)] });
    await wal.close();
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(2, 0),
      snapshot: meta(1, 2),
      entries: [entry(2, 2), entry(3, 2)],
    });
  });
});

describe('WAL segments and snapshots', () => {
  test('markSnapshot() deletes segments before it, and the hard state survives in the later ones', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options({ segmentBytesTarget: 1024 }));
    await wal.save({ hardState: hs(3, 0, 'node-c'), entries: [entry(1, 3)] });
    for (let i = 2; i <= 40; i++) await wal.save({ hardState: null, entries: [entry(i, 3)] });
    await wal.save({ hardState: null, entries: [] }); // nothing to write: no batch, no sync
    const before = await segmentPaths(dir.path);
    expect(before.length).toBeGreaterThan(5);
    await wal.markSnapshot(meta(30, 3));
    const after = await segmentPaths(dir.path);
    expect(after.length).toBeLessThan(before.length);
    expect(after).toEqual(before.slice(before.length - after.length)); // the oldest went, nothing else
    await wal.save({ hardState: null, entries: [entry(41, 3)] });
    await wal.close();
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(3, 0, 'node-c'),
      snapshot: meta(30, 3),
      entries: entries(31, 41, 3),
    });
  });

  test('cut() starts a new segment only when the current one holds something, and a snapshot at the last index then leaves only it', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({ hardState: hs(2, 1), entries: entries(1, 6, 2) });
    const first = await segmentPaths(dir.path);
    await wal.cut();
    const cut = await segmentPaths(dir.path);
    await wal.cut(); // the new segment holds nothing yet: no third one
    expect([first.length, cut.length, (await segmentPaths(dir.path)).length]).toEqual([1, 2, 2]);
    await wal.markSnapshot(meta(6, 2));
    expect(await segmentPaths(dir.path)).toEqual(cut.slice(1));
    await wal.save({ hardState: null, entries: [entry(7, 2)] });
    await wal.close();
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(2, 1),
      snapshot: meta(6, 2),
      entries: [entry(7, 2)],
    });
  });

  test('markSnapshot() of a snapshot the log does not match (installed from a leader) drops the log', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({ hardState: hs(1, 2), entries: entries(1, 5, 1) });
    await wal.markSnapshot(meta(2, 1)); // local compaction: 3..5 stay
    expect((await reopen(dir.path)).entries).toEqual(entries(3, 5, 1));
    await wal.markSnapshot(meta(4, 2)); // the entry at 4 has term 1: everything after the snapshot goes
    await wal.save({ hardState: hs(2, 5), entries: [entry(5, 2)] });
    await wal.close();
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(2, 5),
      snapshot: meta(4, 2),
      entries: [entry(5, 2)],
    });
  });

  test('open() removes a temp segment left by a crash while creating a segment', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({ hardState: hs(1, 0), entries: [entry(1, 1)] });
    await wal.close();
    await fs.writeFile(
      `${dir.path}/0000000000000002-0000000000000002.wal.tmp`,
      text('half a segment'),
    );
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(1, 0),
      snapshot: null,
      entries: [entry(1, 1)],
    });
    expect((await fs.list(dir.path)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  test('open() refuses a log with a segment missing in the middle', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options({ segmentBytesTarget: 1 }));
    for (let i = 1; i <= 3; i++) await wal.save({ hardState: hs(1, 0), entries: [entry(i, 1)] });
    await wal.close();
    const paths = await segmentPaths(dir.path);
    await fs.remove(paths[1]!);
    const error = await openError(dir.path);
    expect(error.code).toBe('corrupt');
    expect(error.message).toContain(`is missing a segment between ${paths[0]} and ${paths[2]}`);
  });
});

/** Wraps a FileSystem to record handle writes and syncs and how many ran at once. */
class RecordingFileSystem implements FileSystem {
  readonly calls: string[] = [];
  maxInFlight = 0;
  private inFlight = 0;
  constructor(private readonly inner: FileSystem) {}
  mkdirp = (dir: string): Promise<void> => this.inner.mkdirp(dir);
  list = (dir: string): Promise<string[]> => this.inner.list(dir);
  readFile = (path: string): Promise<Uint8Array> => this.inner.readFile(path);
  mapFile = (path: string): Promise<Uint8Array> => this.inner.mapFile(path);
  size = (path: string): Promise<number> => this.inner.size(path);
  readRange = (path: string, offset: number, length: number): Promise<Uint8Array> =>
    this.inner.readRange(path, offset, length);
  writeFile = (path: string, bytes: Uint8Array): Promise<void> =>
    this.track('writeFile', () => this.inner.writeFile(path, bytes));
  truncate = (path: string, size: number): Promise<void> => this.inner.truncate(path, size);
  rename = (from: string, to: string): Promise<void> => this.inner.rename(from, to);
  remove = (path: string): Promise<void> => this.inner.remove(path);
  syncDir = (dir: string): Promise<void> => this.track('syncDir', () => this.inner.syncDir(dir));
  async openAppend(path: string): Promise<FileHandle> {
    const handle = await this.inner.openAppend(path);
    return {
      write: (bytes) => this.track('write', () => handle.write(bytes)),
      sync: () => this.track('sync', () => handle.sync()),
      close: () => handle.close(),
    };
  }
  private async track<T>(name: string, operation: () => Promise<T>): Promise<T> {
    this.calls.push(name);
    this.maxInFlight = Math.max(this.maxInFlight, ++this.inFlight);
    try {
      return await operation();
    } finally {
      this.inFlight--;
    }
  }
}

describe('WAL writes', () => {
  test('save() does one write and one sync; concurrent saves queue and never overlap', async () => {
    using dir = tempDir('secretd-wal-');
    const recording = new RecordingFileSystem(fs);
    const { wal } = await WAL.open(dir.path, options({ fs: recording }));
    recording.calls.length = 0;
    recording.maxInFlight = 0;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        wal.save({ hardState: hs(1, i), entries: [entry(i + 1, 1)] }),
      ),
    );
    expect(recording.calls).toEqual(Array.from({ length: 20 }, () => ['write', 'sync']).flat());
    expect(recording.maxInFlight).toBe(1);
    await wal.close();
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(1, 19),
      snapshot: null,
      entries: entries(1, 20, 1),
    });
  });

  test('save() seals a batch into the bytes of an earlier one only once their write has returned', async () => {
    using dir = tempDir('secretd-wal-');
    const handed: Array<{ given: Uint8Array; copy: Uint8Array; changedBeforeReturn: boolean }> = [];
    const slow = Object.create(fs) as FileSystem;
    slow.openAppend = async (path, appendOptions) => {
      const handle = await fs.openAppend(path, appendOptions);
      return {
        write: async (bytes) => {
          const record = { given: bytes, copy: bytes.slice(), changedBeforeReturn: false };
          handed.push(record);
          await handle.write(bytes);
          // A thread may still read the bytes until the write returns: let everything else run.
          await new Promise((resolve) => setTimeout(resolve, 1));
          record.changedBeforeReturn = Buffer.compare(record.given, record.copy) !== 0;
        },
        sync: () => handle.sync(),
        close: () => handle.close(),
      };
    };
    const { wal } = await WAL.open(dir.path, options({ fs: slow }));
    const big = (index: number): Entry => ({
      index,
      term: 1,
      type: 'normal',
      data: new Uint8Array(4096 * (1 + (index % 3))).fill(index),
    });
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        wal.save({ hardState: hs(1, i), entries: [big(i + 1)] }),
      ),
    );
    await wal.close();
    expect(handed.length).toBeGreaterThan(10);
    expect(handed.some(({ changedBeforeReturn }) => changedBeforeReturn)).toBe(false);
    // Later batches were sealed into the same bytes (the buffer is reused), and all of it reads back.
    expect(new Set(handed.map(({ given }) => given.buffer)).size).toBeLessThan(handed.length);
    const state = await reopen(dir.path);
    expect(state.entries).toEqual(Array.from({ length: 30 }, (_, i) => big(i + 1)));
  });

  test('concurrent saves across segment rollovers keep every entry and segments near their target size', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options({ segmentBytesTarget: 600 }));
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        wal.save({ hardState: hs(1, i), entries: [entry(i + 1, 1)] }),
      ),
    );
    await wal.close();
    const paths = await segmentPaths(dir.path);
    expect(paths.length).toBeGreaterThan(3);
    const sizes = await Promise.all(paths.map(async (path) => (await fs.readFile(path)).length));
    expect(sizes.slice(0, -1).every((size) => size >= 600 && size < 1200)).toBe(true); // full, and one batch over at most
    expect(await reopen(dir.path)).toEqual({
      hardState: hs(1, 29),
      snapshot: null,
      entries: entries(1, 30, 1),
    });
  });

  test('save() with sync false skips the fdatasync, and close() syncs', async () => {
    using dir = tempDir('secretd-wal-');
    const recording = new RecordingFileSystem(fs);
    const { wal } = await WAL.open(dir.path, options({ fs: recording }));
    recording.calls.length = 0;
    await wal.save({ hardState: hs(1, 1), entries: [] }, { sync: false });
    expect(recording.calls).toEqual(['write']);
    await wal.close();
    expect(recording.calls).toEqual(['write', 'sync']);
    await expect(wal.save({ hardState: hs(1, 2), entries: [] })).rejects.toThrow('it is closed');
  });

  test('a failed write leaves the WAL refusing every later write', async () => {
    using dir = tempDir('secretd-wal-');
    let failing = false;
    class FlakyFileSystem extends NodeFileSystem {
      override async openAppend(path: string): Promise<FileHandle> {
        const handle = await super.openAppend(path);
        return {
          ...handle,
          sync: () =>
            failing ? Promise.reject(new Error('EIO: fdatasync failed')) : handle.sync(),
        };
      }
    }
    const flaky = new FlakyFileSystem();
    const { wal } = await WAL.open(dir.path, options({ fs: flaky }));
    failing = true;
    await expect(wal.save({ hardState: hs(1, 0), entries: [] })).rejects.toThrow('EIO');
    failing = false;
    await expect(wal.save({ hardState: hs(1, 0), entries: [] })).rejects.toThrow(
      'an earlier write failed',
    );
    await wal.close();
  });
});

describe('WAL on-disk bytes', () => {
  test('segment files never contain the plaintext of entries, votes or member ids', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({
      hardState: hs(1, 1, 'VOTE-MARKER-node'),
      entries: [entry(1, 1, 'PLAINTEXT-MARKER-secret-value')],
    });
    await wal.markSnapshot({
      index: 1,
      term: 1,
      conf: { voters: ['MEMBER-MARKER-a' as MemberId], learners: [] },
    });
    await wal.close();
    const [path] = await segmentPaths(dir.path);
    const raw = Buffer.from(await fs.readFile(path!));
    expect(
      ['PLAINTEXT-MARKER', 'VOTE-MARKER', 'MEMBER-MARKER'].map((marker) => raw.includes(marker)),
    ).toEqual([false, false, false]);
  });
});
