import { describe, expect, test } from 'bun:test';
import { rmSync } from 'node:fs';
import { tempDir } from '../../test/helpers/process.ts';
import { systemRandom } from '../io/system.ts';
import { walRecordBytesMax } from '../limits.ts';
import { segmentHeaderBytes } from './wal-codec.ts';
import { WAL, type TornTail, type WALBatch, type WALState } from './wal.ts';
import {
  entries,
  entry,
  fs,
  hs,
  openError,
  options,
  recordOffsets,
  reopen,
  segmentPaths,
} from '../../test/helpers/wal.ts';

const batchA: WALBatch = { hardState: hs(1, 0), entries: entries(1, 2, 1) };
const batchB: WALBatch = { hardState: hs(1, 2), entries: [entry(3, 1)] };
const batchC: WALBatch = { hardState: hs(2, 3, 'node-b'), entries: entries(4, 5, 2) };
const stateAB: WALState = { hardState: hs(1, 2), snapshot: null, entries: entries(1, 3, 1) };
const stateABC: WALState = {
  hardState: hs(2, 3, 'node-b'),
  snapshot: null,
  entries: [...entries(1, 3, 1), ...entries(4, 5, 2)],
};

/** Saves A, B and C into a fresh log; returns the segment's bytes and where A and B end. */
async function writeABC(
  dir: string,
): Promise<{ path: string; bytes: Uint8Array; endA: number; endB: number }> {
  const { wal } = await WAL.open(dir, options());
  const [path] = await segmentPaths(dir);
  await wal.save(batchA);
  const endA = (await fs.readFile(path!)).length;
  await wal.save(batchB);
  const endB = (await fs.readFile(path!)).length;
  await wal.save(batchC);
  await wal.close();
  return { path: path!, bytes: (await fs.readFile(path!)).slice(), endA, endB };
}

/** After recovery a new batch must land after what was recovered and survive a reopen. */
async function expectAppendable(dir: string, wal: WAL, state: WALState): Promise<void> {
  const next = state.entries.length + 1;
  await wal.save({ hardState: hs(3, next - 1, 'node-c'), entries: [entry(next, 3)] });
  await wal.close();
  expect(await reopen(dir)).toEqual({
    hardState: hs(3, next - 1, 'node-c'),
    snapshot: null,
    entries: [...state.entries, entry(next, 3)],
  });
}

/** Deterministic garbage (an LCG), so a failure reproduces. */
function garbage(length: number, seed: number): Uint8Array {
  let x = seed >>> 0;
  return Uint8Array.from({ length }, () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) >>> 24);
}

describe('WAL recovery from a torn tail', () => {
  test('open() after a crash at every byte of the last batch returns A+B or A+B+C, never an error', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes, endB } = await writeABC(dir.path);
    for (let length = endB; length <= bytes.length; length++) {
      await fs.writeFile(path, bytes.subarray(0, length));
      const tails: TornTail[] = [];
      const { wal, state } = await WAL.open(
        dir.path,
        options({ onTornTail: (tail) => tails.push(tail) }),
      );
      const complete = length === bytes.length;
      expect(state).toEqual(complete ? stateABC : stateAB);
      expect((await fs.readFile(path)).length).toBe(complete ? length : endB);
      expect(tails.map((tail) => [tail.offset, tail.discardedBytes])).toEqual(
        complete || length === endB ? [] : [[endB, length - endB]],
      );
      if (length % 16 === 0 || length === endB + 1 || complete)
        await expectAppendable(dir.path, wal, state);
      else await wal.close();
    }
  });

  test('open() discards zeros or garbage written over the last batch, and appends where it ends', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes, endB } = await writeABC(dir.path);
    const tailBytes = bytes.length - endB;
    const magicFirst = garbage(tailBytes, 7);
    magicFirst[0] = bytes[endB]!; // starts like a record, then goes wrong
    const cases: [Uint8Array, WALState][] = [
      [new Uint8Array(tailBytes), stateAB],
      [garbage(tailBytes, 1), stateAB],
      [garbage(tailBytes + 5000, 2), stateAB],
      [magicFirst, stateAB],
      [new Uint8Array(4096), stateAB], // the file grew but the data never reached the disk
      [new Uint8Array(0), stateAB],
    ];
    for (const [tail, expected] of cases) {
      const damaged = new Uint8Array(endB + tail.length);
      damaged.set(bytes.subarray(0, endB));
      damaged.set(tail, endB);
      await fs.writeFile(path, damaged);
      const { wal, state } = await WAL.open(dir.path, options());
      expect(state).toEqual(expected);
      await expectAppendable(dir.path, wal, state);
    }
    const grown = new Uint8Array(bytes.length + 4096); // C complete, then zeros past it
    grown.set(bytes);
    await fs.writeFile(path, grown);
    const { wal, state } = await WAL.open(dir.path, options());
    expect(state).toEqual(stateABC);
    expect((await fs.readFile(path)).length).toBe(bytes.length);
    await expectAppendable(dir.path, wal, state);
  });
});

describe('WAL recovery of unsynced batches', () => {
  /** A synced, then B and C with `sync: false` (or B synced); then B's first sector is lost. */
  async function loseSectorOfB(
    dir: string,
    syncB: boolean,
  ): Promise<{ path: string; endA: number }> {
    const { wal } = await WAL.open(dir, options());
    const [path] = await segmentPaths(dir);
    await wal.save(batchA);
    const endA = (await fs.readFile(path!)).length;
    await wal.save(
      { hardState: hs(1, 2), entries: [entry(3, 1, 'b'.repeat(2000))] },
      { sync: syncB },
    );
    await wal.save({ hardState: hs(1, 3), entries: [entry(4, 1)] }, { sync: false });
    await wal.close();
    const bytes = (await fs.readFile(path!)).slice();
    bytes.fill(0, endA, (Math.floor(endA / 512) + 1) * 512); // the sector B began in reverts to A's data and zeros
    await fs.writeFile(path!, bytes);
    return { path: path!, endA };
  }

  test('open() discards a run of unsynced batches from a lost sector on, even with later pages intact', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, endA } = await loseSectorOfB(dir.path, false);
    const { wal, state } = await WAL.open(dir.path, options());
    expect(state).toEqual({ hardState: hs(1, 0), snapshot: null, entries: entries(1, 2, 1) });
    expect((await fs.readFile(path)).length).toBe(endA);
    await expectAppendable(dir.path, wal, state);
  });

  test('open() refuses the same loss when B was synced, since C records that B was durable', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, endA } = await loseSectorOfB(dir.path, true);
    const error = await openError(dir.path);
    expect(error.message).toStartWith(
      `WAL record at ${path} offset ${endA} is corrupt: bad record magic 0x00, and an intact record at offset `,
    );
    expect(error.message).toContain('shows it was synced');
  });
});

describe('WAL corruption refuses to start', () => {
  test('open() refuses a flipped byte anywhere in an earlier batch, naming the file and record offset', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes, endA } = await writeABC(dir.path);
    const starts = recordOffsets(bytes, segmentHeaderBytes, endA);
    const wrong: string[] = [];
    for (let at = segmentHeaderBytes; at < endA; at++) {
      const damaged = bytes.slice();
      damaged[at]! ^= 0xff;
      await fs.writeFile(path, damaged);
      const error = await openError(dir.path);
      const expected = `WAL record at ${path} offset ${starts.filter((start) => start <= at).at(-1)} is corrupt: `;
      const untouched = Buffer.from(await fs.readFile(path)).equals(damaged);
      if (
        error.code !== 'corrupt' ||
        !error.message.startsWith(expected) ||
        !error.message.endsWith('; refusing to start') ||
        !untouched
      ) {
        wrong.push(`byte ${at}: ${error.message} (file untouched: ${untouched})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test('open() refuses a flipped byte in the last batch when its commit record is intact', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes, endB } = await writeABC(dir.path);
    const commit = recordOffsets(bytes, endB, bytes.length).at(-1)!;
    const outcomes = new Set<string>();
    for (let at = endB; at < bytes.length; at++) {
      const damaged = bytes.slice();
      damaged[at]! ^= 0xff;
      await fs.writeFile(path, damaged);
      if (at < commit) {
        const error = await openError(dir.path);
        outcomes.add(
          `${error.code}: ${error.message.includes('commit record at offset') ? 'intact commit' : error.message}`,
        );
      } else {
        // A flip in the commit record itself looks like a torn write: the batch is dropped.
        outcomes.add(
          `commit flip recovers A+B: ${JSON.stringify(await reopen(dir.path)) === JSON.stringify(stateAB)}`,
        );
      }
    }
    expect([...outcomes]).toEqual(['corrupt: intact commit', 'commit flip recovers A+B: true']);
  });

  test('open() refuses a flipped byte anywhere in a segment header, naming the file', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes } = await writeABC(dir.path);
    const wrong: string[] = [];
    for (let at = 0; at < segmentHeaderBytes; at++) {
      const damaged = bytes.slice();
      damaged[at]! ^= 0x01;
      await fs.writeFile(path, damaged);
      const error = await openError(dir.path);
      if (
        error.code !== 'corrupt' ||
        !error.message.startsWith(`WAL segment ${path} cannot be opened: `)
      )
        wrong.push(`byte ${at}: ${error.message}`);
    }
    expect(wrong).toEqual([]);
  });

  test('open() refuses a record copied over another of the same size', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes, endA, endB } = await writeABC(dir.path);
    // Every batch ends with a commit record counting one group: A's commit seals to the size of B's.
    const [, commitA] = recordOffsets(bytes, segmentHeaderBytes, endA);
    const [, second, endOfB] = recordOffsets(bytes, endA, endB);
    expect(endOfB).toBeUndefined();
    expect(endB - second!).toBe(endA - commitA!);
    const damaged = bytes.slice();
    damaged.copyWithin(second!, commitA!, endA);
    await fs.writeFile(path, damaged);
    const error = await openError(dir.path);
    expect(error.message).toStartWith(
      `WAL record at ${path} offset ${second} is corrupt: record claims a batch at offset ${segmentHeaderBytes}, expected ${endA}`,
    );
  });

  test('open() refuses a record copied from one segment into the same place in another', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options({ segmentBytesTarget: 1 })); // a new segment after every save
    await wal.save({ hardState: hs(1, 0), entries: [] });
    await wal.save({ hardState: hs(2, 0), entries: [] });
    await wal.close();
    const paths = await segmentPaths(dir.path); // each begins with a HARDSTATE record at the same offset
    expect(paths.length).toBe(3);
    const [one, two, three] = await Promise.all(paths.map((path) => fs.readFile(path)));
    const recordLength =
      recordOffsets(one!, segmentHeaderBytes, one!.length)[1]! - segmentHeaderBytes;
    for (const [target, bytes, source] of [
      [1, two!, one!],
      [2, three!, two!],
    ] as const) {
      const damaged = bytes.slice();
      damaged.set(
        source.subarray(segmentHeaderBytes, segmentHeaderBytes + recordLength),
        segmentHeaderBytes,
      );
      await fs.writeFile(paths[target]!, damaged);
      const error = await openError(dir.path);
      expect(error.message).toStartWith(
        `WAL record at ${paths[target]} offset ${segmentHeaderBytes} is corrupt: record failed authentication`,
      );
      await fs.writeFile(paths[target]!, bytes);
    }
    expect((await reopen(dir.path)).hardState).toEqual(hs(2, 0));
  });

  test('open() refuses damage in the last batch of a segment that is not the last', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options({ segmentBytesTarget: 1 }));
    await wal.save({ hardState: hs(1, 0), entries: [entry(1, 1)] });
    await wal.close();
    const [first] = await segmentPaths(dir.path);
    const bytes = (await fs.readFile(first!)).slice();
    await fs.writeFile(first!, bytes.subarray(0, bytes.length - 1));
    const error = await openError(dir.path);
    expect(error.message).toContain(`WAL record at ${first} offset `);
    expect(error.message).toContain('in a segment that is not the last; refusing to start');
  });

  test('open() refuses a body length of 2 GiB in an earlier batch without reading it', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes, endA } = await writeABC(dir.path);
    const second = recordOffsets(bytes, segmentHeaderBytes, endA)[1]!;
    const damaged = bytes.slice();
    new DataView(damaged.buffer).setUint32(second + 4, 2 ** 31);
    await fs.writeFile(path, damaged);
    const error = await openError(dir.path);
    expect(error.message).toStartWith(
      `WAL record at ${path} offset ${second} is corrupt: body length 2147483648 exceeds walRecordBytesMax (${walRecordBytesMax})`,
    );
  });

  test('open() with a wrong key or key id refuses with a clear error and truncates nothing', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes } = await writeABC(dir.path);
    const wrongKey = await openError(dir.path, { dek: systemRandom(32) });
    const wrongId = await openError(dir.path, { keyId: 2 });
    expect([wrongKey.code, wrongId.code]).toEqual(['corrupt', 'corrupt']);
    expect(wrongKey.message).toBe(
      `WAL segment ${path} cannot be opened: the segment key check failed: the WAL key (DEK) is wrong or the header was altered; refusing to start`,
    );
    expect(wrongId.message).toBe(
      `WAL segment ${path} cannot be opened: the segment is sealed with key id 1 but the WAL key has id 2; refusing to start`,
    );
    expect(Buffer.from(await fs.readFile(path)).equals(bytes)).toBe(true);
    expect(await reopen(dir.path)).toEqual(stateABC);
  });
});

describe('WAL recovery never silently drops acknowledged writes', () => {
  /** A log in `<root>/raft/wal` with its marker at `<root>/raft-log.json`, a new segment after every save. */
  async function writeSegments(
    root: string,
  ): Promise<{ walDir: string; marker: string; paths: string[] }> {
    const walDir = `${root}/raft/wal`;
    const marker = `${root}/raft-log.json`;
    const { wal } = await WAL.open(walDir, options({ marker, segmentBytesTarget: 1 }));
    await wal.save({ hardState: hs(1, 0), entries: entries(1, 2, 1) }); // segment 1
    await wal.save({ hardState: hs(1, 2), entries: entries(3, 4, 1) }); // segment 2 (after its restated HardState)
    await wal.save({ hardState: hs(1, 4), entries: [] }); // segment 3: no entries
    await wal.close();
    return { walDir, marker, paths: await segmentPaths(walDir) };
  }

  test('open() records the newest segment in the marker and reopens the whole log', async () => {
    using dir = tempDir('secretd-wal-');
    const { walDir, marker, paths } = await writeSegments(dir.path);
    expect(paths.length).toBe(4);
    expect(JSON.parse(new TextDecoder().decode(await fs.readFile(marker)))).toEqual({
      format: 1,
      lastSegment: 4,
    });
    expect(await reopen(walDir, { marker })).toEqual({
      hardState: hs(1, 4),
      snapshot: null,
      entries: entries(1, 4, 1),
    });
  });

  test('open() refuses a WAL directory that was deleted, naming the marker, instead of starting an empty log', async () => {
    using dir = tempDir('secretd-wal-');
    const { walDir, marker } = await writeSegments(dir.path);
    for (const removed of [walDir, `${dir.path}/raft`]) {
      rmSync(removed, { recursive: true, force: true });
      const error = await openError(walDir, { marker });
      expect(error.code).toBe('corrupt');
      expect(error.message).toStartWith(
        `WAL in ${walDir} is gone (no segments) but ${marker} records that this node wrote 4 segment(s): refusing to start with an empty log`,
      );
      expect(error.message).toContain(
        'restore the data dir from a backup, or remove this node from the cluster',
      );
    }
  });

  test('open() refuses a log whose newest segment was deleted', async () => {
    using dir = tempDir('secretd-wal-');
    const { walDir, marker, paths } = await writeSegments(dir.path);
    await fs.remove(paths.at(-1)!);
    const error = await openError(walDir, { marker });
    expect(error.message).toStartWith(
      `WAL in ${walDir} ends at segment 3 but ${marker} records that segment 4 was written: its newest segments are missing; refusing to start`,
    );
  });

  test('open() refuses a log with no segments when the caller holds a snapshot taken from it', async () => {
    using dir = tempDir('secretd-wal-');
    const error = await openError(`${dir.path}/wal`, { mustExist: true });
    expect(error.message).toStartWith(
      `WAL in ${dir.path}/wal is gone (no segments) but this node holds a snapshot taken from it: refusing to start`,
    );
  });

  test('open() refuses an earlier segment cut at a batch boundary, though what is left reads as a valid log', async () => {
    using dir = tempDir('secretd-wal-');
    const { walDir, paths } = await writeSegments(dir.path);
    const second = (await fs.readFile(paths[1]!)).slice();
    const [, , entriesBatch] = recordOffsets(second, segmentHeaderBytes, second.length); // restated HardState: group + commit
    await fs.writeFile(paths[1]!, second.subarray(0, entriesBatch!));
    const error = await openError(walDir); // without the marker too: the HardState tells
    expect(error.code).toBe('corrupt');
    expect(error.message).toBe(
      `WAL in ${walDir} is inconsistent: the HardState says entries up to index 4 are committed but the log ends at index 2, so acknowledged entries are missing; refusing to start`,
    );
  });

  test('open() truncates a torn last batch and reports its size and entry indexes, never its contents', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes, endB } = await writeABC(dir.path);
    await fs.writeFile(path, bytes.subarray(0, bytes.length - 1)); // C's commit record is torn
    const tails: TornTail[] = [];
    expect(await reopen(dir.path, { onTornTail: (tail) => tails.push(tail) })).toEqual(stateAB);
    expect(tails).toEqual([
      {
        path,
        offset: endB,
        discardedBytes: bytes.length - 1 - endB,
        discardedRecords: 3,
        discardedEntries: { first: 4, last: 5 },
        reason: expect.any(String),
      },
    ]);
  });
});

describe('WAL preallocation', () => {
  /** Every file of `dir` as it is now, the log still open: what a kill -9 would leave. */
  async function filesNow(dir: string): Promise<Map<string, Uint8Array>> {
    const names = await fs.list(dir);
    const entries = await Promise.all(
      names.map(async (name) => [name, (await fs.readFile(`${dir}/${name}`)).slice()] as const),
    );
    return new Map(entries);
  }

  async function restore(dir: string, files: Map<string, Uint8Array>): Promise<void> {
    for (const name of await fs.list(dir)) rmSync(`${dir}/${name}`);
    for (const [name, bytes] of files) await fs.writeFile(`${dir}/${name}`, bytes);
  }

  test('after a crash, open() cuts off the zeros past the last batch without reporting a torn tail', async () => {
    using dir = tempDir('secretd-wal-');
    const { wal } = await WAL.open(dir.path, options({ preallocateBytes: 4096 }));
    const [path] = await segmentPaths(dir.path);
    await wal.save(batchA);
    await wal.save(batchB);
    const crashed = await filesNow(dir.path);
    await wal.close();
    const endB = (await fs.readFile(path!)).length; // close cut the reserved space off
    const left = crashed.get(path!.slice(dir.path.length + 1))!;
    expect(left.length).toBe(4096);
    expect(left.subarray(endB).every((b) => b === 0)).toBe(true);

    await restore(dir.path, crashed);
    const tails: TornTail[] = [];
    const reopened = await WAL.open(
      dir.path,
      options({ preallocateBytes: 4096, onTornTail: (tail) => tails.push(tail) }),
    );
    expect(reopened.state).toEqual(stateAB);
    expect(tails).toEqual([]);
    expect((await fs.readFile(path!)).length).toBe(endB);
    await expectAppendable(dir.path, reopened.wal, reopened.state);
  });

  test('a byte that is not zero far past the last batch (after the first 64 KiB of zeros) is damage, not reserved space', async () => {
    using dir = tempDir('secretd-wal-');
    const reserve = 256 * 1024;
    const { wal } = await WAL.open(dir.path, options({ preallocateBytes: reserve }));
    const [path] = await segmentPaths(dir.path);
    await wal.save(batchA);
    await wal.save(batchB);
    const crashed = await filesNow(dir.path);
    await wal.close();
    const endB = (await fs.readFile(path!)).length;
    const left = crashed.get(path!.slice(dir.path.length + 1))!;
    expect(left.length).toBe(reserve);
    left[200 * 1024] = 1;
    await restore(dir.path, crashed);
    const tails: TornTail[] = [];
    const reopened = await WAL.open(
      dir.path,
      options({ preallocateBytes: reserve, onTornTail: (tail) => tails.push(tail) }),
    );
    expect(reopened.state).toEqual(stateAB);
    expect(tails.map((tail) => [tail.offset, tail.discardedBytes])).toEqual([
      [endB, reserve - endB],
    ]);
    await expectAppendable(dir.path, reopened.wal, reopened.state);
  });

  test('a batch torn before the zeros is still a torn tail, reported and cut off', async () => {
    using dir = tempDir('secretd-wal-');
    const { path, bytes, endB } = await writeABC(dir.path);
    const crashed = new Uint8Array(4096); // half of C reached the disk, then the reserved zeros
    crashed.set(bytes.subarray(0, endB + Math.floor((bytes.length - endB) / 2)));
    await fs.writeFile(path, crashed);
    const tails: TornTail[] = [];
    const { wal, state } = await WAL.open(
      dir.path,
      options({ preallocateBytes: 4096, onTornTail: (tail) => tails.push(tail) }),
    );
    expect(state).toEqual(stateAB);
    expect(tails.map((tail) => [tail.offset, tail.discardedBytes])).toEqual([[endB, 4096 - endB]]);
    await expectAppendable(dir.path, wal, state);
  });

  test('a segment that is cut ends where its data ends, so a crash later leaves no zeros but in the last', async () => {
    using dir = tempDir('secretd-wal-');
    const settings = { preallocateBytes: 4096, segmentBytesTarget: 400 };
    const { wal } = await WAL.open(dir.path, options(settings));
    const saved = [batchA, batchB, batchC];
    for (const batch of saved) await wal.save(batch);
    await wal.save({ hardState: hs(2, 5, 'node-b'), entries: entries(6, 9, 2) });
    const crashed = await filesNow(dir.path);
    await wal.close();
    const segments = [...crashed.keys()].filter((name) => name.endsWith('.wal')).sort();
    expect(segments.length).toBeGreaterThanOrEqual(3);
    for (const name of segments.slice(0, -1)) expect(crashed.get(name)!.length % 4096).not.toBe(0);

    await restore(dir.path, crashed);
    expect(await reopen(dir.path, settings)).toEqual({
      hardState: hs(2, 5, 'node-b'),
      snapshot: null,
      entries: [...stateABC.entries, ...entries(6, 9, 2)],
    });
  });
});
