import { describe, expect, test } from 'bun:test';
import { createHmac } from 'node:crypto';
import { tempDir } from '../../test/helpers/process.ts';
import { loadedFrom, packEntries, piecesIn } from '../../test/helpers/sealed-files.ts';
import { seal, sealOverheadBytes } from '../crypto/aead.ts';
import { SecretdError } from '../errors.ts';
import type { FileSystem } from '../io/fs.ts';
import { inOrderSha256, webCryptoSha256 } from '../io/sha256.ts';
import { NodeFileSystem } from '../io/node-fs.ts';
import { systemRandom } from '../io/system.ts';
import { encodeSnapshotParts, encodeSnapshotPayload } from './_wal-payload.ts';
import {
  joinPieces,
  pieceContentId,
  SnapshotStore,
  textPiece,
  type ReleasedPiece,
  type SnapshotStoreOptions,
} from './snapshot-store.ts';
import type { MemberId, Snapshot, SnapshotPiece } from './types.ts';

const fs = new NodeFileSystem();
const dek = systemRandom(32);
const options = (extra: Partial<SnapshotStoreOptions> = {}): SnapshotStoreOptions => ({
  dek,
  keyId: 3,
  random: systemRandom,
  fs,
  sha256: webCryptoSha256,
  ...extra,
});
const conf = { voters: ['node-a', 'node-b'] as MemberId[], learners: ['node-c'] as MemberId[] };
const snapshot = (index: number, term: number, data = `state at ${index}`): Snapshot => ({
  meta: { index, term, conf },
  data: new TextEncoder().encode(data),
});
const name = (index: number, term: number): string =>
  `${term.toString(16).padStart(16, '0')}-${index.toString(16).padStart(16, '0')}.snap`;

/** A piece that never changes, as a full audit segment is: `size` bytes made from `label`. */
function shared(label: string, size = 64 * 1024): SnapshotPiece {
  const bytes = new TextEncoder().encode(
    label.repeat(Math.ceil(size / label.length)).slice(0, size),
  );
  return { id: pieceContentId(bytes), length: bytes.length, bytes: () => bytes };
}
/** 64 KiB of text made from `label`, repeated. */
const text64k = (label: string): string =>
  label.repeat(Math.ceil((64 * 1024) / label.length)).slice(0, 64 * 1024);
const [pieceA, pieceB, pieceC, pieceD] = ['"a1",', '"b2",', '"c3",', '"d4",'].map((l) => shared(l));
/** A snapshot whose data is inline text around the shared pieces. */
const pieced = (index: number, term: number, pieces: readonly SnapshotPiece[]) => ({
  meta: { index, term, conf },
  pieces: [textPiece(`{"at":${index},"lines":[`), ...pieces, textPiece(']}')],
});
/** A piece's file name: a keyed hash of its content id (never the content id itself), and the key id. */
const pieceFile = (piece: SnapshotPiece, keyId = 3, key = dek): string => {
  const nameKey = createHmac('sha256', key).update('secretd snapshot piece name').digest();
  const nameId = createHmac('sha256', nameKey).update(Buffer.from(piece.id!, 'hex')).digest('hex');
  return `${nameId}-${keyId.toString(16).padStart(8, '0')}.piece`;
};

/** What the directory holds, its pieces named as piece files whether in a pack or not (piecesIn); sorted. */
async function onDisk(dir: string): Promise<string[]> {
  const files = (await fs.list(dir)).filter((n) => !n.endsWith('.pack') && !n.endsWith('.piece'));
  return [...files, ...piecesIn(dir)].sort();
}

const packsIn = async (dir: string): Promise<string[]> =>
  (await fs.list(dir)).filter((n) => n.endsWith('.pack'));

/** Where a piece lies: the pack holding it and its entry's place there. */
async function entryOf(
  dir: string,
  piece: SnapshotPiece,
): Promise<{ path: string; offset: number; length: number }> {
  const nameId = pieceFile(piece).slice(0, 64);
  for (const pack of await packsIn(dir)) {
    const entry = packEntries(await fs.readFile(`${dir}/${pack}`)).find((e) => e.nameId === nameId);
    if (entry !== undefined) return { path: `${dir}/${pack}`, ...entry };
  }
  throw new Error(`no pack holds piece ${nameId.slice(0, 16)}`);
}

/** The real file system, recording the name (temp suffix dropped) and size of every file written. */
function recordingFs(): { fs: FileSystem; written: Array<{ name: string; bytes: number }> } {
  const written: Array<{ name: string; bytes: number }> = [];
  const recording = Object.create(fs) as FileSystem;
  const nameOf = (path: string): string =>
    path
      .split('/')
      .pop()!
      .replace(/\.tmp$/, '');
  recording.writeFile = (path, bytes, mode) => {
    written.push({ name: nameOf(path), bytes: bytes.length });
    return fs.writeFile(path, bytes, mode);
  };
  // A snapshot file is written as its header, then appended to chunk by chunk: counted as one.
  recording.openAppend = async (path) => {
    const handle = await fs.openAppend(path);
    const record = written.findLast((w) => w.name === nameOf(path))!;
    return {
      write: (bytes) => {
        record.bytes += bytes.length;
        return handle.write(bytes);
      },
      sync: () => handle.sync(),
      close: () => handle.close(),
    };
  };
  return { fs: recording, written };
}

/** A version 1 snapshot file, as every snapshot was written before shared pieces. */
function versionOneFile(snapshot: Snapshot): Uint8Array {
  const header = new Uint8Array(24);
  const view = new DataView(header.buffer);
  header.set([0x73, 0x73, 0x6e, 0x70], 0);
  view.setUint16(4, 1);
  view.setUint32(12, snapshot.meta.index);
  view.setUint32(20, snapshot.meta.term);
  const aad = new Uint8Array([...new TextEncoder().encode('snapshot'), ...header]);
  const body = seal(dek, encodeSnapshotPayload(snapshot), { aad, keyId: 3, random: systemRandom });
  return new Uint8Array([...header, ...body]);
}

async function loadError(
  dir: string,
  extra: Partial<SnapshotStoreOptions> = {},
): Promise<SecretdError> {
  const store = await SnapshotStore.open(dir, options(extra));
  try {
    await store.loadLatest();
  } catch (error) {
    if (error instanceof SecretdError) return error;
    throw error;
  }
  throw new Error('loadLatest() succeeded but should have refused');
}

describe('SnapshotStore', () => {
  test('loadLatest() returns null when no snapshot was saved', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(`${dir.path}/snapshots`, options());
    expect(await store.loadLatest()).toBe(null);
  });

  test('loadLatest() returns exactly the newest snapshot saved, from a fresh store', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    const big = { meta: { index: 20, term: 2, conf }, data: systemRandom(3 * 1024 * 1024) };
    await store.save(snapshot(10, 1));
    await store.save(big);
    expect(await store.loadLatest()).toEqual(big);
    expect(await (await SnapshotStore.open(dir.path, options())).loadLatest()).toEqual(big);
  });

  test('save() keeps the newest snapshot and the one before it, and deletes older ones', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    for (const [index, term] of [
      [5, 1],
      [9, 1],
      [14, 2],
      [30, 3],
    ] as const)
      await store.save(snapshot(index, term));
    expect((await fs.list(dir.path)).sort()).toEqual([name(14, 2), name(30, 3)]);
    expect(await store.loadLatest()).toEqual(snapshot(30, 3));
  });

  test('open() removes a temp file left by a crash mid-save, and loadLatest() ignores it', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(snapshot(5, 1));
    await fs.writeFile(`${dir.path}/${name(9, 1)}.tmp`, new Uint8Array(100));
    const reopened = await SnapshotStore.open(dir.path, options());
    expect(await fs.list(dir.path)).toEqual([name(5, 1)]);
    expect(await reopened.loadLatest()).toEqual(snapshot(5, 1));
  });

  test('loadLatest() refuses a wrong key or key id, naming the file', async () => {
    using dir = tempDir('secretd-snap-');
    await (await SnapshotStore.open(dir.path, options())).save(snapshot(5, 1));
    const path = `${dir.path}/${name(5, 1)}`;
    const wrongKey = await loadError(dir.path, { dek: systemRandom(32) });
    const wrongId = await loadError(dir.path, { keyId: 4 });
    expect([wrongKey.code, wrongId.code]).toEqual(['corrupt', 'corrupt']);
    expect(wrongKey.message).toStartWith(
      `Snapshot ${path} is corrupt: its chunk 0: Sealed record failed authentication`,
    );
    expect(wrongId.message).toBe(
      `Snapshot ${path} is corrupt: it is sealed with key id 3 but the snapshot key has id 4; refusing to start`,
    );
  });

  test('loadLatest() refuses a flipped byte anywhere in the newest snapshot, naming the file', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(snapshot(5, 1));
    const path = `${dir.path}/${name(5, 1)}`;
    const bytes = (await fs.readFile(path)).slice();
    const wrong: string[] = [];
    for (let at = 0; at < bytes.length; at++) {
      const damaged = bytes.slice();
      damaged[at]! ^= 0x01;
      await fs.writeFile(path, damaged);
      const error = await loadError(dir.path);
      if (error.code !== 'corrupt' || !error.message.startsWith(`Snapshot ${path} is corrupt: `))
        wrong.push(`byte ${at}: ${error.message}`);
    }
    expect(wrong).toEqual([]);
  });

  test('loadLatest() refuses a snapshot file renamed to pose as a newer one', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(snapshot(5, 1));
    await fs.rename(`${dir.path}/${name(5, 1)}`, `${dir.path}/${name(50, 1)}`);
    const error = await loadError(dir.path);
    expect(error.message).toBe(
      `Snapshot ${dir.path}/${name(50, 1)} is corrupt: its header disagrees with its name; refusing to start`,
    );
  });

  test('snapshot files never contain the plaintext of the data or member ids', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    await store.save({
      meta: { index: 1, term: 1, conf: { voters: ['MEMBER-MARKER' as MemberId], learners: [] } },
      data: new TextEncoder().encode('PLAINTEXT-MARKER'),
    });
    const raw = Buffer.from(await fs.readFile(`${dir.path}/${name(1, 1)}`));
    expect([raw.includes('PLAINTEXT-MARKER'), raw.includes('MEMBER-MARKER')]).toEqual([
      false,
      false,
    ]);
  });
});

describe('SnapshotStore with shared pieces', () => {
  test("save() writes a snapshot's new shared pieces once, into one pack; a later snapshot holding them writes only itself and a pack of the new one", async () => {
    using dir = tempDir('secretd-snap-');
    const recording = recordingFs();
    const written = (): string[] =>
      recording.written.map((w) => (w.name.endsWith('.pack') ? 'a pack' : w.name));
    const store = await SnapshotStore.open(dir.path, options({ fs: recording.fs }));
    await store.save(pieced(10, 1, [pieceA!, pieceB!]));
    expect(written()).toEqual(['a pack', name(10, 1)]);
    expect(await onDisk(dir.path)).toEqual(
      [name(10, 1), pieceFile(pieceA!), pieceFile(pieceB!)].sort(),
    );
    recording.written.length = 0;
    await store.save(pieced(20, 1, [pieceA!, pieceB!, pieceC!]));
    expect(written()).toEqual(['a pack', name(20, 1)]);
    expect(recording.written[0]!.bytes).toBeGreaterThan(pieceC!.length);
    expect(recording.written[0]!.bytes).toBeLessThan(pieceC!.length + 1024);
    // The snapshot file refers to the 192 KiB of pieces: it holds its own bytes only.
    expect(recording.written[1]!.bytes).toBeLessThan(1024);
    recording.written.length = 0;
    await store.save(pieced(30, 1, [pieceA!, pieceB!, pieceC!]));
    expect(written()).toEqual([name(30, 1)]);
    expect((await packsIn(dir.path)).length).toBe(2);
    const { meta, pieces } = pieced(30, 1, [pieceA!, pieceB!, pieceC!]);
    const expected = loadedFrom(meta, pieces);
    expect(expected.shared?.map((s) => s.id)).toEqual([pieceA!.id!, pieceB!.id!, pieceC!.id!]);
    expect(await store.loadLatest()).toEqual(expected);
    expect(await (await SnapshotStore.open(dir.path, options())).loadLatest()).toEqual(expected);
  });

  test('save() seals pieces and chunks into the bytes it writes, and fills those bytes again only once their write has returned (a thread may read them until then)', async () => {
    using dir = tempDir('secretd-snap-');
    // Every array handed to a write: whether it changed before the write returned.
    const handed: Array<{ given: Uint8Array; changed: boolean }> = [];
    const keeping = Object.create(fs) as FileSystem;
    const watch = async (bytes: Uint8Array, write: () => Promise<void>): Promise<void> => {
      const copy = bytes.slice();
      await write();
      await new Promise((resolve) => setTimeout(resolve, 1)); // everything else runs meanwhile
      handed.push({ given: bytes, changed: Buffer.compare(bytes, copy) !== 0 });
    };
    keeping.writeFile = (path, bytes, mode) => watch(bytes, () => fs.writeFile(path, bytes, mode));
    keeping.openAppend = async (path) => {
      const handle = await fs.openAppend(path);
      return {
        write: (bytes) => watch(bytes, () => handle.write(bytes)),
        sync: () => handle.sync(),
        close: () => handle.close(),
      };
    };
    // 48 pieces of 64 KiB (3 MiB: two pack writes and the rest) and 1.5 MiB of inline text in
    // chunks of 256 KiB.
    const many = Array.from({ length: 48 }, (_, i) => shared(`"p${i}",`));
    const inline = textPiece('"' + 'x'.repeat(1536 * 1024) + '",');
    const store = await SnapshotStore.open(
      dir.path,
      options({ fs: keeping, sealChunkBytes: 256 * 1024 }),
    );
    const first = pieced(10, 1, [inline, ...many.slice(0, 24)]);
    const second = pieced(20, 1, [inline, ...many]);
    await store.save(first);
    await store.save(second);
    expect(handed.length).toBeGreaterThan(10);
    expect(handed.filter(({ changed }) => changed)).toEqual([]);
    // The buffers are reused: fewer of them than writes.
    expect(new Set(handed.map(({ given }) => given.buffer)).size).toBeLessThan(handed.length / 2);
    const expected = loadedFrom(second.meta, second.pieces);
    expect(await store.loadLatest()).toEqual(expected);
    expect(await (await SnapshotStore.open(dir.path, options())).loadLatest()).toEqual(expected);
  });

  test('save() syncs a large pack or snapshot file after each write, not only at its end, so that a WAL sync meanwhile never waits behind the whole file', async () => {
    using dir = tempDir('secretd-snap-');
    const ops: string[] = [];
    const logging = Object.create(fs) as FileSystem;
    const kind = (path: string): string => (path.includes('.pack') ? 'pack' : 'snap');
    logging.writeFile = (path, bytes, mode) => {
      ops.push(`${kind(path)} create+sync`);
      return fs.writeFile(path, bytes, mode);
    };
    logging.openAppend = async (path) => {
      const handle = await fs.openAppend(path);
      return {
        write: (bytes) => {
          ops.push(`${kind(path)} write`);
          return handle.write(bytes);
        },
        sync: () => {
          ops.push(`${kind(path)} sync`);
          return handle.sync();
        },
        close: () => handle.close(),
      };
    };
    const store = await SnapshotStore.open(
      dir.path,
      options({ fs: logging, sealChunkBytes: 256 * 1024 }),
    );
    // 96 pieces of 64 KiB (6 MiB: a pack of 2 MiB writes) and 1 MiB of inline text (4 chunks).
    const many = Array.from({ length: 96 }, (_, i) => shared(`"q${i}",`));
    await store.save(pieced(10, 1, [textPiece('"' + 'y'.repeat(1024 * 1024) + '",'), ...many]));
    for (const file of ['pack', 'snap']) {
      const own = ops.filter((op) => op.startsWith(file));
      expect(own[0]).toBe(`${file} create+sync`);
      expect(own.filter((op) => op.endsWith('write')).length).toBeGreaterThanOrEqual(2);
      // Every write is followed by its sync before the next write.
      own.forEach((op, i) => {
        if (op.endsWith('write')) expect(own[i + 1]).toBe(`${file} sync`);
      });
    }
    expect(await store.loadLatest()).not.toBeNull();
  });

  test("save() zeroes the bytes a fresh piece (a secret's copy) made for it once they are sealed, and does not make a named piece already on disk; other pieces' bytes are left alone", async () => {
    using dir = tempDir('secretd-snap-');
    const made: Uint8Array[] = [];
    const fresh = (label: string): SnapshotPiece => {
      const text = text64k(label);
      return {
        length: text.length,
        id: Buffer.from(systemRandom(32)).toString('hex'),
        named: true,
        fresh: true,
        bytes: () => {
          const bytes = new TextEncoder().encode(text);
          made.push(bytes);
          return bytes;
        },
      };
    };
    const [one, two] = [fresh('"f1",'), fresh('"f2",')];
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(pieced(10, 1, [one!, two!, pieceA!]));
    // Named, on disk: the next save refers to them without making their bytes again.
    await store.save(pieced(20, 1, [one!, two!, pieceA!]));
    expect(made.length).toBe(2);
    for (const bytes of made) expect(bytes.every((b) => b === 0)).toBe(true);
    expect(pieceA!.bytes().every((b) => b === 0)).toBe(false);
    const loaded = await store.loadLatest();
    expect(new TextDecoder().decode(loaded!.data)).toContain('"f1","f1"');
    expect(new TextDecoder().decode(loaded!.data)).toContain('"f2","f2"');
  });

  test('save() makes a fresh piece that offers bytesInto in a buffer it lends: the same snapshot as bytes() would give, each buffer zeroed once its piece is sealed, and lent again rather than one new per piece', async () => {
    using dir = tempDir('secretd-snap-');
    const lent: Uint8Array[] = [];
    const intoPiece = (label: string): SnapshotPiece => {
      const text = text64k(label);
      return {
        length: text.length,
        id: Buffer.from(systemRandom(32)).toString('hex'),
        named: true,
        fresh: true,
        bytes: () => {
          throw new Error('bytes() called for a piece that offers bytesInto');
        },
        bytesInto: (out) => {
          lent.push(out);
          return new TextEncoder().encodeInto(text, out).written;
        },
      };
    };
    const labels = Array.from({ length: 40 }, (_, i) => `"v${String(i).padStart(2, '0')}",`);
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(pieced(10, 1, labels.map(intoPiece)));
    expect(lent.length).toBe(40);
    // At most one buffer per piece in flight (16 at once), each zeroed after its piece.
    expect(new Set(lent.map((out) => out.buffer)).size).toBeLessThanOrEqual(16);
    for (const out of lent) expect(out.every((b) => b === 0)).toBe(true);
    const plain = labels.map((label) => {
      const text = text64k(label);
      const bytes = new TextEncoder().encode(text);
      return { length: bytes.length, bytes: () => bytes } satisfies SnapshotPiece;
    });
    const loaded = await store.loadLatest();
    expect(Buffer.from(loaded!.data).equals(joinPieces(pieced(10, 1, plain).pieces))).toBe(true);
  });

  test('save() refuses a piece whose bytesInto writes other than its length, and leaves no pack behind', async () => {
    using dir = tempDir('secretd-snap-');
    const short: SnapshotPiece = {
      length: 64 * 1024,
      id: Buffer.from(systemRandom(32)).toString('hex'),
      named: true,
      fresh: true,
      bytes: () => new Uint8Array(64 * 1024),
      bytesInto: (out) => {
        out.fill(7, 0, 1000);
        return 1000;
      },
    };
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(pieced(10, 1, [pieceA!]));
    const before = await onDisk(dir.path);
    const failed = await store
      .save(pieced(20, 1, [short, pieceB!]))
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(SecretdError);
    expect((failed as Error).message).toContain('a piece says it has 65536 bytes but has 1000');
    expect(await onDisk(dir.path)).toEqual(before);
  });

  test("joinPieces() writes a piece that offers bytesInto straight into the data and zeroes a fresh piece's own copy once copied", () => {
    const made: Uint8Array[] = [];
    const fresh: SnapshotPiece = {
      length: 5,
      fresh: true,
      bytes: () => {
        const bytes = new TextEncoder().encode('"ab",');
        made.push(bytes);
        return bytes;
      },
    };
    const into: SnapshotPiece = {
      length: 5,
      fresh: true,
      bytes: () => {
        throw new Error('bytes() called for a piece that offers bytesInto');
      },
      bytesInto: (out) => new TextEncoder().encodeInto('"cd",', out).written,
    };
    const data = joinPieces(pieced(1, 1, [fresh, into]).pieces);
    expect(new TextDecoder().decode(data)).toBe('{"at":1,"lines":["ab","cd",]}');
    expect(made.length).toBe(1);
    expect(made[0]!.every((b) => b === 0)).toBe(true);
    const wrong: SnapshotPiece = { length: 5, bytes: () => new Uint8Array(5), bytesInto: () => 4 };
    expect(() => joinPieces([wrong])).toThrow('a piece says it has 5 bytes but has 4');
  });

  test('save() deletes a pack once neither kept snapshot refers to any piece in it', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(pieced(10, 1, [pieceA!, pieceB!]));
    await store.save(pieced(20, 1, [pieceB!, pieceC!]));
    await store.save(pieced(30, 1, [pieceC!, pieceD!]));
    // A is referred to no more, but B, in the same pack, still is (by the snapshot at 20).
    expect(await onDisk(dir.path)).toEqual(
      [
        name(20, 1),
        name(30, 1),
        pieceFile(pieceA!),
        pieceFile(pieceB!),
        pieceFile(pieceC!),
        pieceFile(pieceD!),
      ].sort(),
    );
    await store.save(pieced(40, 1, [pieceD!]));
    expect(await onDisk(dir.path)).toEqual(
      [name(30, 1), name(40, 1), pieceFile(pieceC!), pieceFile(pieceD!)].sort(),
    );
    expect((await packsIn(dir.path)).length).toBe(2);
  });

  test('save() writes the pieces it refers to in a pack they are less than half of into its own pack, so that the old pack goes', async () => {
    using dir = tempDir('secretd-snap-');
    const recording = recordingFs();
    const store = await SnapshotStore.open(dir.path, options({ fs: recording.fs }));
    await store.save(pieced(10, 1, [pieceA!, pieceB!, pieceC!, pieceD!]));
    const first = await packsIn(dir.path);
    recording.written.length = 0;
    await store.save(pieced(20, 1, [pieceA!]));
    // A is a quarter of the first pack: written again, into a pack of its own.
    expect(recording.written.map((w) => w.name.endsWith('.pack'))).toEqual([true, false]);
    const second = (await packsIn(dir.path)).filter((n) => !first.includes(n));
    expect(second.length).toBe(1);
    expect(packEntries(await fs.readFile(`${dir.path}/${second[0]}`)).map((e) => e.nameId)).toEqual(
      [pieceFile(pieceA!).slice(0, 64)],
    );
    // The snapshot at 10, still kept, reads B, C and D from the first pack, and A from the second.
    expect((await store.load({ index: 10, term: 1 }))?.data).toEqual(
      joinPieces(pieced(10, 1, [pieceA!, pieceB!, pieceC!, pieceD!]).pieces),
    );
    recording.written.length = 0;
    await store.save(pieced(30, 1, [pieceA!]));
    expect(recording.written.map((w) => w.name)).toEqual([name(30, 1)]);
    expect(await packsIn(dir.path)).toEqual(second);
    expect(await onDisk(dir.path)).toEqual([name(20, 1), name(30, 1), pieceFile(pieceA!)].sort());
    expect((await (await SnapshotStore.open(dir.path, options())).loadLatest())?.data).toEqual(
      joinPieces(pieced(30, 1, [pieceA!]).pieces),
    );
  });

  test('a store opened again knows the pieces on disk: it writes none of them again, and prunes by the snapshots it reads back', async () => {
    using dir = tempDir('secretd-snap-');
    await (await SnapshotStore.open(dir.path, options())).save(pieced(10, 1, [pieceA!, pieceB!]));
    const recording = recordingFs();
    const reopened = await SnapshotStore.open(dir.path, options({ fs: recording.fs }));
    expect(reopened.keyIds()).toEqual([3, 3, 3]);
    await reopened.save(pieced(20, 1, [pieceB!, pieceC!]));
    expect(recording.written.map((w) => (w.name.endsWith('.pack') ? 'a pack' : w.name))).toEqual([
      'a pack',
      name(20, 1),
    ]);
    // The snapshot at 10 is kept and refers to A: A stays until that snapshot goes.
    expect(await onDisk(dir.path)).toContain(pieceFile(pieceA!));
    const again = await SnapshotStore.open(dir.path, options());
    await again.save(pieced(30, 1, [pieceC!]));
    // A's pack stays for B (the snapshot at 20 refers to it), and goes with the next save.
    expect(await onDisk(dir.path)).toEqual(
      [name(20, 1), name(30, 1), pieceFile(pieceA!), pieceFile(pieceB!), pieceFile(pieceC!)].sort(),
    );
    await again.save(pieced(40, 1, [pieceC!]));
    expect(await onDisk(dir.path)).toEqual([name(30, 1), name(40, 1), pieceFile(pieceC!)].sort());
  });

  test('loadLatest() refuses a missing piece, an altered piece and a piece posing as another, naming the snapshot', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(pieced(10, 1, [pieceA!, pieceB!]));
    const path = `${dir.path}/${name(10, 1)}`;
    const a = await entryOf(dir.path, pieceA!);
    const b = await entryOf(dir.path, pieceB!);
    const original = (await fs.readFile(a.path)).slice();
    const refusal = async (): Promise<string> => {
      const error = await loadError(dir.path);
      return `${error.code}: ${error.message}`;
    };
    const prefix = `corrupt: Snapshot ${path} is corrupt: its piece ${pieceA!.id!.slice(0, 16)}`;

    await fs.remove(a.path);
    expect(await refusal()).toBe(`${prefix} is missing; refusing to start`);
    const wrong: string[] = [];
    for (const at of [0, 10, 45, 80, a.length - 1]) {
      const damaged = original.slice();
      damaged[a.offset + at]! ^= 0x01;
      await fs.writeFile(a.path, damaged);
      const said = await refusal();
      if (!said.startsWith(prefix)) wrong.push(`byte ${at}: ${said}`);
    }
    expect(wrong).toEqual([]);
    // B's entry where A's should be (the two are the same size).
    const posing = original.slice();
    posing.set(original.subarray(b.offset, b.offset + b.length), a.offset);
    await fs.writeFile(a.path, posing);
    expect(await refusal()).toBe(`${prefix} has no piece header naming it; refusing to start`);
    // A pack cut short: its index is gone, and with it every piece in it.
    await fs.writeFile(a.path, original.subarray(0, original.length - 100));
    expect(await refusal()).toBe(`${prefix} is missing; refusing to start`);
  });

  test('loadLatest() reads a version 1 snapshot file, and the next save writes version 3 beside it', async () => {
    using dir = tempDir('secretd-snap-');
    await fs.writeFile(`${dir.path}/${name(5, 1)}`, versionOneFile(snapshot(5, 1)));
    const store = await SnapshotStore.open(dir.path, options());
    expect(store.keyIds()).toEqual([3]);
    expect(await store.loadLatest()).toEqual(snapshot(5, 1));
    await store.save(pieced(9, 1, [pieceA!]));
    expect(await onDisk(dir.path)).toEqual([name(5, 1), name(9, 1), pieceFile(pieceA!)].sort());
    expect((await store.loadLatest())?.data).toEqual(joinPieces(pieced(9, 1, [pieceA!]).pieces));
  });

  test('load() returns the snapshot at an index and term, and null for one not on disk', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(pieced(10, 1, [pieceA!]));
    await store.save(snapshot(20, 2));
    const { meta, pieces } = pieced(10, 1, [pieceA!]);
    expect(await store.load({ index: 10, term: 1 })).toEqual(loadedFrom(meta, pieces));
    expect(await store.load({ index: 20, term: 2 })).toEqual(snapshot(20, 2));
    expect(await store.load({ index: 20, term: 1 })).toBe(null);
  });

  test("a named piece is saved and loaded by its maker's id, never hashed, and a flipped byte in it is refused", async () => {
    using dir = tempDir('secretd-snap-');
    const hashed: number[] = [];
    const opts = options({
      sha256: (bytes: Uint8Array) => (hashed.push(bytes.length), inOrderSha256(bytes)),
    });
    const namedPiece = (label: string): SnapshotPiece => ({
      ...shared(label),
      id: Buffer.from(systemRandom(32)).toString('hex'),
      named: true,
    });
    const [x, y] = [namedPiece('"x9",'), namedPiece('"y8",')];
    const store = await SnapshotStore.open(dir.path, opts);
    await store.save(pieced(10, 1, [x!, pieceA!, y!]));
    await store.save(pieced(11, 1, [x!, pieceA!, y!]));
    const expected = joinPieces(pieced(11, 1, [x!, pieceA!, y!]).pieces);
    const reopened = await SnapshotStore.open(dir.path, opts);
    expect((await reopened.loadLatest())?.data).toEqual(expected);
    // Only the content-addressed piece went through the port: its maker's id checked, once.
    expect(hashed).toEqual([64 * 1024]);
    const xAt = await entryOf(dir.path, x!);
    const original = (await fs.readFile(xAt.path)).slice();
    const damaged = original.slice();
    damaged[xAt.offset + xAt.length - 1]! ^= 0x01;
    await fs.writeFile(xAt.path, damaged);
    expect((await loadError(dir.path)).message).toContain(`its piece ${x!.id!.slice(0, 16)}`);
    // A named piece without its id is refused, not written inline.
    await fs.writeFile(xAt.path, original);
    await expect(reopened.save(pieced(12, 1, [{ ...x!, id: undefined }]))).rejects.toThrow(
      'a named piece has no id',
    );
  });

  test('a base64 piece is kept as its bytes and stands in the loaded data as their padded base64, at every length; a flipped byte is refused', async () => {
    using dir = tempDir('secretd-snap-');
    const raw = (size: number): SnapshotPiece => {
      const bytes = systemRandom(size);
      const id = Buffer.from(systemRandom(32)).toString('hex');
      return { id, named: true, base64: true, length: size, bytes: () => bytes };
    };
    const values = [1, 2, 3, 4, 5, 64 * 1024 + 1].map(raw);
    const between = values.flatMap((piece, i) => (i === 0 ? [piece] : [textPiece('","'), piece]));
    const { meta, pieces } = pieced(10, 1, between);
    const b64 = (piece: SnapshotPiece): string => Buffer.from(piece.bytes()).toString('base64');
    const expected = `{"at":10,"lines":[${values.map(b64).join('","')}]}`;
    expect(new TextDecoder().decode(joinPieces(pieces))).toBe(expected);
    const store = await SnapshotStore.open(dir.path, options());
    await store.save({ meta, pieces });
    const loaded = (await (await SnapshotStore.open(dir.path, options())).loadLatest())!;
    expect(new TextDecoder().decode(loaded.data)).toBe(expected);
    // Each span is where its base64 lies in the data: the text a state machine reads there.
    expect(loaded.shared!.map((span) => span.id)).toEqual(values.map((v) => v.id!));
    for (const [i, span] of loaded.shared!.entries()) {
      const text = new TextDecoder().decode(
        loaded.data.subarray(span.offset, span.offset + span.length),
      );
      expect(text).toBe(b64(values[i]!));
    }
    // On disk, the bytes, not their text: a header, one chunk's frame and the 64 KiB + 1 bytes.
    const big = values.at(-1)!;
    const entry = await entryOf(dir.path, big);
    expect(entry.length).toBe(8 + 32 + 4 + sealOverheadBytes + big.length);
    const damaged = (await fs.readFile(entry.path)).slice();
    damaged[entry.offset + entry.length - 1]! ^= 0x01;
    await fs.writeFile(entry.path, damaged);
    expect((await loadError(dir.path)).message).toContain(`its piece ${big.id!.slice(0, 16)}`);
  });

  test('save() refuses a base64 piece that is not a named one, or has no id, writing nothing', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    const bytes = systemRandom(100);
    const piece: SnapshotPiece = {
      id: pieceContentId(bytes),
      base64: true,
      length: 100,
      bytes: () => bytes,
    };
    await expect(store.save(pieced(10, 1, [piece]))).rejects.toThrow(
      `Cannot save snapshot: base64 piece ${piece.id!.slice(0, 16)} is not a named one`,
    );
    await expect(store.save(pieced(10, 1, [{ ...piece, id: undefined }]))).rejects.toThrow(
      'Cannot save snapshot: a base64 piece has no id',
    );
    expect(await fs.list(dir.path)).toEqual([]);
  });

  test('save() refuses a shared piece whose id is not the SHA-256 of its bytes, writing nothing', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    const lying = { ...pieceA!, bytes: () => pieceB!.bytes() };
    await expect(store.save(pieced(10, 1, [lying]))).rejects.toThrow(
      `Cannot save snapshot: piece ${pieceA!.id!.slice(0, 16)} is not the SHA-256 of its bytes`,
    );
    expect(await fs.list(dir.path)).toEqual([]);
  });
});

/** A snapshot file's chunks (version 3: after the 24-byte header, each a u32 length and an envelope). */
function chunksOf(file: Uint8Array): { header: Uint8Array; chunks: Uint8Array[] } {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const chunks: Uint8Array[] = [];
  for (let at = 24; at < file.length; at += 4 + view.getUint32(at))
    chunks.push(file.subarray(at, at + 4 + view.getUint32(at)));
  return { header: file.subarray(0, 24), chunks };
}

const concat = (parts: readonly Uint8Array[]): Uint8Array =>
  new Uint8Array(parts.flatMap((p) => [...p]));

/** A version 2 snapshot file (one sealed body of parts) and the version 1 piece files it refers to. */
function versionTwoFiles(
  index: number,
  pieces: readonly SnapshotPiece[],
): Array<{ name: string; bytes: Uint8Array }> {
  const header = new Uint8Array(24);
  const view = new DataView(header.buffer);
  header.set([0x73, 0x73, 0x6e, 0x70], 0);
  view.setUint16(4, 2);
  view.setUint32(12, index);
  view.setUint32(20, 1);
  const parts = pieces.map((p) =>
    p.id === undefined
      ? { kind: 'inline' as const, bytes: p.bytes() }
      : { kind: 'shared' as const, id: Buffer.from(p.id, 'hex'), length: p.length },
  );
  const aad = concat([new TextEncoder().encode('snapshot'), header]);
  const payload = encodeSnapshotParts({ index, term: 1, conf }, parts);
  const files = [
    {
      name: name(index, 1),
      bytes: concat([header, seal(dek, payload, { aad, keyId: 3, random: systemRandom })]),
    },
  ];
  for (const piece of pieces) {
    if (piece.id === undefined) continue;
    const pieceHeader = new Uint8Array(40);
    pieceHeader.set([0x73, 0x73, 0x70, 0x63], 0);
    new DataView(pieceHeader.buffer).setUint16(4, 1);
    pieceHeader.set(Buffer.from(piece.id, 'hex'), 8);
    const pieceAad = concat([new TextEncoder().encode('snapshot-piece'), pieceHeader]);
    const body = seal(dek, piece.bytes(), { aad: pieceAad, keyId: 3, random: systemRandom });
    files.push({ name: `${piece.id}-00000003.piece`, bytes: concat([pieceHeader, body]) });
  }
  return files;
}

describe('SnapshotStore chunks and formats', () => {
  test('loadLatest() refuses a snapshot file with a chunk removed, swapped, repeated, cut or extended, naming the file', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options({ sealChunkBytes: 64 }));
    const data = systemRandom(1000);
    await store.save({ meta: { index: 5, term: 1, conf }, data });
    const path = `${dir.path}/${name(5, 1)}`;
    const original = (await fs.readFile(path)).slice();
    const { header, chunks } = chunksOf(original);
    expect(chunks.length).toBe(17); // 1,057 bytes of payload: 44 of meta, 4 of count, 9 of part head, the data
    expect(await store.loadLatest()).toEqual({ meta: { index: 5, term: 1, conf }, data });

    const variants: Record<string, Uint8Array[]> = {
      'first removed': chunks.slice(1),
      'middle removed': [...chunks.slice(0, 3), ...chunks.slice(4)],
      'last removed': chunks.slice(0, -1),
      'two swapped': [chunks[0]!, chunks[2]!, chunks[1]!, ...chunks.slice(3)],
      'one repeated': [...chunks.slice(0, 3), chunks[2]!, ...chunks.slice(3)],
      'final repeated': [...chunks, chunks.at(-1)!],
      'cut mid-chunk': [...chunks.slice(0, 3), chunks[3]!.subarray(0, 20)],
      'no chunk': [],
    };
    const said: Record<string, string> = {};
    for (const [what, variant] of Object.entries(variants)) {
      await fs.writeFile(path, concat([header, ...variant]));
      const error = await loadError(dir.path, { sealChunkBytes: 64 });
      said[what] = `${error.code} ${error.message.startsWith(`Snapshot ${path} is corrupt: `)}`;
    }
    expect(said).toEqual(Object.fromEntries(Object.keys(variants).map((k) => [k, 'corrupt true'])));
  });

  test('save() seals a large snapshot in chunks of sealChunkBytes, and a flipped byte in any chunk is refused', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options({ sealChunkBytes: 256 * 1024 }));
    const big = { meta: { index: 20, term: 2, conf }, data: systemRandom(1024 * 1024) };
    await store.save(big);
    const path = `${dir.path}/${name(20, 2)}`;
    const file = (await fs.readFile(path)).slice();
    const { chunks } = chunksOf(file);
    // The payload: 44 bytes of meta, a 4-byte part count, a 9-byte part head, then the data.
    expect(chunks.map((c) => c.length - 4 - sealOverheadBytes)).toEqual([
      262144, 262144, 262144, 262144, 57,
    ]);
    expect(await (await SnapshotStore.open(dir.path, options())).loadLatest()).toEqual(big);
    const wrong: string[] = [];
    let at = 24;
    for (const chunk of chunks) {
      const damaged = file.slice();
      damaged[at + Math.floor(chunk.length / 2)]! ^= 0x01;
      at += chunk.length;
      await fs.writeFile(path, damaged);
      const error = await loadError(dir.path);
      if (error.code !== 'corrupt') wrong.push(error.message);
    }
    expect(wrong).toEqual([]);
  });

  test('loadLatest() reads a version 2 snapshot file and its version 1 piece files; later saves write version 3 and prune them', async () => {
    using dir = tempDir('secretd-snap-');
    const v2 = [textPiece('{"lines":['), pieceA!, textPiece(','), pieceB!, textPiece(']}')];
    for (const file of versionTwoFiles(10, v2))
      await fs.writeFile(`${dir.path}/${file.name}`, file.bytes);
    const store = await SnapshotStore.open(dir.path, options());
    expect(await store.loadLatest()).toEqual(loadedFrom({ index: 10, term: 1, conf }, v2));
    await store.save(pieced(20, 1, [pieceB!, pieceC!]));
    // The version 2 snapshot is kept, and so are the version 1 pieces it refers to.
    expect(await onDisk(dir.path)).toEqual(
      [
        name(10, 1),
        name(20, 1),
        `${pieceA!.id}-00000003.piece`,
        `${pieceB!.id}-00000003.piece`,
        pieceFile(pieceB!),
        pieceFile(pieceC!),
      ].sort(),
    );
    expect((await store.load({ index: 10, term: 1 }))?.data).toEqual(joinPieces(v2));
    await store.save(pieced(30, 1, [pieceC!]));
    expect(await onDisk(dir.path)).toEqual(
      [name(20, 1), name(30, 1), pieceFile(pieceB!), pieceFile(pieceC!)].sort(),
    );
    expect((await store.loadLatest())?.data).toEqual(joinPieces(pieced(30, 1, [pieceC!]).pieces));
  });

  test('no file name or byte on disk holds a piece content id or its plaintext', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    await store.save(pieced(10, 1, [pieceA!, pieceB!]));
    const names = await fs.list(dir.path);
    const ids = [pieceA!.id!, pieceB!.id!];
    const found: string[] = [];
    for (const n of names) {
      const raw = Buffer.from(await fs.readFile(`${dir.path}/${n}`));
      for (const id of ids) {
        if (n.includes(id)) found.push(`${n} names ${id.slice(0, 8)}`);
        if (raw.includes(Buffer.from(id, 'hex'))) found.push(`${n} holds ${id.slice(0, 8)}`);
      }
      if (raw.includes('"a1",') || raw.includes('"b2",')) found.push(`${n} holds plaintext`);
    }
    expect({ files: names.length, found }).toEqual({ files: 2, found: [] });
  });

  test('save() calls release() of each piece once the save is over, written or refused', async () => {
    using dir = tempDir('secretd-snap-');
    const store = await SnapshotStore.open(dir.path, options());
    const released: string[] = [];
    const releasing = (piece: SnapshotPiece, label: string): ReleasedPiece => ({
      ...piece,
      release: () => void released.push(label),
    });
    await store.save(pieced(10, 1, [releasing(pieceA!, 'a'), releasing(pieceB!, 'b')]));
    expect(released).toEqual(['a', 'b']);
    released.length = 0;
    const lying = releasing({ ...pieceC!, bytes: () => pieceD!.bytes() }, 'lying');
    await expect(store.save(pieced(20, 1, [lying]))).rejects.toThrow(
      'is not the SHA-256 of its bytes',
    );
    expect(released).toEqual(['lying']);
  });
});
