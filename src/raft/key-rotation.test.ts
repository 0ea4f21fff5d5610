/** DEK rotation in the WAL and the snapshot store: two keys read, one written, old files deleted whole. */
import { describe, expect, test } from 'bun:test';
import { tempDir } from '../../test/helpers/process.ts';
import { keyIdsIn, loadedFrom, sealedFiles } from '../../test/helpers/sealed-files.ts';
import {
  dek,
  entries,
  entry,
  fs,
  hs,
  meta,
  openError,
  options,
  reopen,
  segmentPaths,
} from '../../test/helpers/wal.ts';
import { systemRandom } from '../io/system.ts';
import { pieceContentId, SnapshotStore, textPiece } from './snapshot-store.ts';
import type { Snapshot, SnapshotPiece } from './types.ts';
import { WAL } from './wal.ts';
import { webCryptoSha256 } from '../io/sha256.ts';

const oldKey = { dek, keyId: 1 };
const newKey = { dek: systemRandom(32), keyId: 2 };
/** Options of a log opened during a rotation: sealed with the new key, the old one read too. */
const rotating = { dek: newKey.dek, keyId: 2, olderKeys: [oldKey] };
const snapshot = (index: number, term: number): Snapshot => ({
  meta: meta(index, term),
  data: new TextEncoder().encode(`state at ${index}`),
});

describe('WAL key rotation', () => {
  test('rotateKey() seals later records in a new segment with the new key, and open() reads records under both keys', async () => {
    using dir = tempDir('secretd-wal-rot-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({ hardState: hs(2, 3), entries: entries(1, 3, 2) });
    expect(await wal.rotateKey(newKey)).toBe(3);
    await wal.save({ hardState: hs(2, 5), entries: entries(4, 5, 2) });
    expect(wal.keyIds()).toEqual([1, 2]);
    await wal.close();

    const files = sealedFiles(dir.path, dir.path);
    expect(files.map((f) => [...new Set(f.keyIds)])).toEqual([[1], [2]]);
    expect(await reopen(dir.path, rotating)).toEqual({
      hardState: hs(2, 5),
      snapshot: null,
      entries: entries(1, 5, 2),
    });
  });

  test('open() without the old key refuses a segment sealed with it, naming its key id', async () => {
    using dir = tempDir('secretd-wal-rot-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({ hardState: hs(2, 1), entries: [entry(1, 2)] });
    await wal.rotateKey(newKey);
    await wal.close();
    const error = await openError(dir.path, { dek: newKey.dek, keyId: 2 });
    expect(error.message).toContain('the segment is sealed with key id 1 but the WAL key has id 2');
  });

  test('open() with an older key starts a new segment under the new key before appending (a rotation a crash cut short)', async () => {
    using dir = tempDir('secretd-wal-rot-');
    const first = await WAL.open(dir.path, options());
    await first.wal.save({ hardState: hs(2, 2), entries: entries(1, 2, 2) });
    await first.wal.close();

    const { wal, state } = await WAL.open(dir.path, options(rotating));
    expect(state.entries).toEqual(entries(1, 2, 2));
    expect(wal.keyIds()).toEqual([1, 2]);
    await wal.save({ hardState: hs(2, 3), entries: [entry(3, 2)] });
    await wal.close();
    expect(sealedFiles(dir.path, dir.path).map((f) => [...new Set(f.keyIds)])).toEqual([[1], [2]]);
    expect((await reopen(dir.path, rotating)).entries).toEqual(entries(1, 3, 2));
  });

  test('a snapshot at the index rotateKey() returned deletes every segment sealed with the old key', async () => {
    using dir = tempDir('secretd-wal-rot-');
    const { wal } = await WAL.open(dir.path, options({ segmentBytesTarget: 600 }));
    for (let i = 1; i <= 20; i++) await wal.save({ hardState: hs(2, i), entries: [entry(i, 2)] });
    expect((await segmentPaths(dir.path)).length).toBeGreaterThan(2);
    const boundary = await wal.rotateKey(newKey);
    expect(boundary).toBe(20);
    await wal.save({ hardState: hs(2, 21), entries: [entry(21, 2)] });
    await wal.markSnapshot(meta(boundary, 2));
    expect(wal.keyIds()).toEqual([2]);
    await wal.close();
    expect(keyIdsIn(sealedFiles(dir.path, dir.path))).toEqual([2]);
    // The old key is no longer needed to open the log.
    expect(await reopen(dir.path, { dek: newKey.dek, keyId: 2 })).toEqual({
      hardState: hs(2, 21),
      snapshot: meta(20, 2),
      entries: [entry(21, 2)],
    });
  });

  test('a snapshot short of the boundary keeps the old key segment that holds entries after it', async () => {
    using dir = tempDir('secretd-wal-rot-');
    const { wal } = await WAL.open(dir.path, options());
    await wal.save({ hardState: hs(2, 5), entries: entries(1, 5, 2) });
    expect(await wal.rotateKey(newKey)).toBe(5);
    await wal.markSnapshot(meta(4, 2));
    expect(wal.keyIds()).toEqual([1, 2]);
    await wal.close();
  });
});

describe('SnapshotStore key rotation', () => {
  test('loadLatest() opens a snapshot sealed with an older key, and refuses it without that key', async () => {
    using dir = tempDir('secretd-snap-rot-');
    const store = await SnapshotStore.open(dir.path, {
      ...oldKey,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    await store.save(snapshot(5, 1));
    const both = await SnapshotStore.open(dir.path, {
      ...rotating,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    expect(both.keyIds()).toEqual([1]);
    expect(await both.loadLatest()).toEqual(snapshot(5, 1));
    const onlyNew = await SnapshotStore.open(dir.path, {
      ...newKey,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    await expect(onlyNew.loadLatest()).rejects.toThrow(
      'it is sealed with key id 1 but the snapshot key has id 2',
    );
  });

  test('save() after rotateKey() seals with the new key and deletes every snapshot sealed with the old one', async () => {
    using dir = tempDir('secretd-snap-rot-');
    const store = await SnapshotStore.open(dir.path, {
      ...oldKey,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    await store.save(snapshot(5, 1));
    await store.save(snapshot(8, 1));
    expect(store.keyIds()).toEqual([1, 1]);
    store.rotateKey(newKey);
    await store.save(snapshot(8, 1)); // the same index, re-sealed
    expect(store.keyIds()).toEqual([2]);
    expect(keyIdsIn(sealedFiles(dir.path, dir.path))).toEqual([2]);
    await store.save(snapshot(9, 1));
    expect(store.keyIds()).toEqual([2, 2]); // the previous one stays once it has the current key
    const reopened = await SnapshotStore.open(dir.path, {
      ...newKey,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    expect(await reopened.loadLatest()).toEqual(snapshot(9, 1));
  });

  test('save() after rotateKey() writes every shared piece it refers to again under the new key, and leaves no piece under the old one', async () => {
    using dir = tempDir('secretd-snap-rot-');
    const piece = (label: string): SnapshotPiece => {
      const bytes = new TextEncoder().encode(label.repeat(4096));
      return { id: pieceContentId(bytes), length: bytes.length, bytes: () => bytes };
    };
    const [a, b] = [piece('"segment a",'), piece('"segment b",')];
    const pieced = (index: number, pieces: readonly SnapshotPiece[]) => ({
      meta: meta(index, 1),
      pieces: [textPiece('['), ...pieces, textPiece(']')],
    });
    const store = await SnapshotStore.open(dir.path, {
      ...oldKey,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    await store.save(pieced(5, [a!]));
    await store.save(pieced(8, [a!, b!]));
    expect(store.keyIds()).toEqual([1, 1, 1, 1]);
    store.rotateKey(newKey);
    await store.save(pieced(8, [a!, b!])); // the same index, re-sealed
    expect(store.keyIds()).toEqual([2, 2, 2]);
    expect(
      sealedFiles(dir.path, dir.path).map((f) => [f.path.split('.').pop(), ...f.keyIds]),
    ).toEqual([
      ['snap', 2],
      ['pack', 2, 2],
    ]);
    const reopened = await SnapshotStore.open(dir.path, {
      ...newKey,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    expect(await reopened.loadLatest()).toEqual(loadedFrom(meta(8, 1), pieced(8, [a!, b!]).pieces));
  });
});
