import { describe, expect, test } from 'bun:test';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { sealOverheadBytes } from '../../crypto/aead.ts';
import { tempDir } from '../../../test/helpers/process.ts';
import type { FileSystem } from '../../io/fs.ts';
import { inOrderSha256, webCryptoSha256 } from '../../io/sha256.ts';
import { NodeFileSystem } from '../../io/node-fs.ts';
import { systemRandom } from '../../io/system.ts';
import { snapshotVersionPieceBytesMin } from '../../limits.ts';
import { joinPieces, SnapshotStore, type ReleasedPiece } from '../../raft/snapshot-store.ts';
import type { MemberId, SnapshotMeta, SnapshotPiece } from '../../raft/types.ts';
import { toBase64, type Command } from './commands.ts';
import type { SecretRecord } from './types.ts';
import { Store } from './store.ts';
import { recordTemplate, valuePieceId, ValueHolds } from './_snapshot-pieces.ts';
import { packEntries, piecesIn } from '../../../test/helpers/sealed-files.ts';

const at = '2026-12-06T00:00:00.000Z';
const fs = new NodeFileSystem();
const dek = systemRandom(32);
const meta = (index: number): SnapshotMeta => ({
  index,
  term: 1,
  conf: { voters: ['node-a' as MemberId], learners: [] },
});
/** A value of `size` bytes, each byte `fill` (distinct fills, distinct values). */
const value = (fill: number, size = 4096): Uint8Array => new Uint8Array(size).fill(fill);
const create = (id: string, data: Uint8Array): Command => ({
  op: 'secret-create',
  at,
  id,
  name: `name-${id}`,
  labels: { team: 'a', 'quote"d': 'x\u0000y' },
  data,
});

/** A store holding `large` secrets of 4 KiB and two small ones, one with two versions. */
function storeWith(large: number): Store {
  const store = new Store();
  let index = 1;
  for (let i = 0; i < large; i++) store.apply(index++, create(`big${i}`, value(i + 1)));
  store.apply(index++, create('small1', new TextEncoder().encode('short')));
  store.apply(index++, create('small2', value(0xee, snapshotVersionPieceBytesMin - 1)));
  store.apply(index++, {
    op: 'secret-version-add',
    at,
    id: 'small1',
    data: new TextEncoder().encode('shorter'),
    ifVersion: null,
  });
  return store;
}

/** The real file system, recording the names of the files written (temp suffix dropped). */
function recordingFs(): { fs: FileSystem; written: string[] } {
  const written: string[] = [];
  const recording = Object.create(fs) as FileSystem;
  recording.writeFile = (path, bytes, mode) => {
    written.push(
      path
        .split('/')
        .pop()!
        .replace(/\.tmp$/, ''),
    );
    return fs.writeFile(path, bytes, mode);
  };
  return { fs: recording, written };
}

describe('Store.snapshotPieces', () => {
  test('snapshot() is the JSON of every record with each version value in base64, whatever its size', () => {
    const store = storeWith(3);
    const text = new TextDecoder().decode(store.snapshot());
    const body = JSON.parse(text) as { secrets: unknown[] };
    expect(JSON.stringify(body)).toBe(text);
    expect(body.secrets).toEqual(
      [...store.secrets()].map((s) => ({
        ...s,
        versions: s.versions.map((v) => ({ ...v, data: toBase64(v.data) })),
      })),
    );
    expect(JSON.stringify(body.secrets)).toBe(
      JSON.stringify(
        [...store.secrets()].map((s) => ({
          ...s,
          versions: s.versions.map((v) => ({ ...v, data: toBase64(v.data) })),
        })),
      ),
    );
    expect(Store.restore(store.snapshot()).snapshot()).toEqual(store.snapshot());
  });

  test("the text around a large value's record is made once and reused by later snapshots; every change (a new record) is in the next snapshot, and the values are written as they are then", () => {
    const store = storeWith(3);
    const expected = (): string =>
      JSON.stringify(
        [...store.secrets()].map((s) => ({
          ...s,
          versions: s.versions.map((v) => ({ ...v, data: toBase64(v.data) })),
        })),
      );
    const secretsText = (): string => {
      const text = new TextDecoder().decode(store.snapshot());
      return JSON.stringify((JSON.parse(text) as { secrets: unknown }).secrets);
    };
    expect(secretsText()).toBe(expected());
    const large = (): SecretRecord[] =>
      [...store.secrets()].filter((s) =>
        s.versions.some((v) => v.data.length >= snapshotVersionPieceBytesMin),
      );
    const before = new Map(large().map((s) => [s.id, recordTemplate(s)]));
    // The template holds the text and the values by reference, never a value's text.
    const big0 = store.secret('big0')!;
    expect(recordTemplate(big0).values).toEqual(big0.versions.map((v) => v.data));
    expect(recordTemplate(big0).texts.join('')).not.toContain(toBase64(big0.versions[0]!.data));
    let index = 100;
    store.apply(index++, {
      op: 'secret-update',
      at,
      id: 'big0',
      expectedIndex: big0.metaIndex,
      labels: { changed: 'yes "quoted"' },
    });
    store.apply(index++, {
      op: 'secret-version-add',
      at,
      id: 'big1',
      data: value(0x77),
      ifVersion: null,
    });
    store.apply(index++, { op: 'secret-rollback', at, id: 'small1', to: 1, ifVersion: null });
    store.apply(index++, {
      op: 'secret-grant',
      at,
      id: 'small2',
      constraints: ['node.role==worker'],
      version: null,
    });
    store.apply(index++, create('new1', value(0x55, 2 * snapshotVersionPieceBytesMin)));
    expect(secretsText()).toBe(expected());
    expect(large().map((s) => s.id as string)).toEqual(['big0', 'big1', 'big2', 'new1']);
    for (const secret of large()) {
      // Only the record no command touched (big2) keeps its template.
      expect([secret.id, before.get(secret.id) === recordTemplate(secret)]).toEqual([
        secret.id,
        secret.id === 'big2',
      ]);
    }
    // Unchanged since the last snapshot: the same template, the same text.
    const now = new Map(large().map((s) => [s.id, recordTemplate(s)]));
    expect(secretsText()).toBe(expected());
    for (const secret of large()) expect(recordTemplate(secret)).toBe(now.get(secret.id)!);
  });

  test('a record whose values are all pieces keeps its text encoded, one with a small value too does not; both write the same JSON, in slices and whole', async () => {
    const store = storeWith(3);
    store.apply(50, {
      op: 'secret-version-add',
      at,
      id: 'big2',
      data: new TextEncoder().encode('small after large'),
      ifVersion: null,
    });
    const big0 = store.secret('big0')!;
    const cached = recordTemplate(big0).pieces!;
    const decode = (piece: SnapshotPiece): string => new TextDecoder().decode(piece.bytes());
    expect([decode(cached.first), ...cached.after.map(decode)]).toEqual([
      ...recordTemplate(big0).texts,
    ]);
    expect(decode(cached.firstAfterComma)).toBe(`,${recordTemplate(big0).texts[0]}`);
    // The small value's base64 would be in the text: never kept.
    expect(recordTemplate(store.secret('big2')!).pieces).toBeNull();
    const text = new TextDecoder().decode(store.snapshot());
    expect(JSON.stringify(JSON.parse(text))).toBe(text);
    expect(JSON.stringify((JSON.parse(text) as { secrets: unknown }).secrets)).toBe(
      JSON.stringify(
        [...store.secrets()].map((s) => ({
          ...s,
          versions: s.versions.map((v) => ({ ...v, data: toBase64(v.data) })),
        })),
      ),
    );
    for (const perSlice of [1, 2, 3]) {
      const pieces = await store.snapshotPiecesInSlices(async () => {}, perSlice);
      expect(new TextDecoder().decode(joinPieces(pieces))).toBe(text);
      for (const piece of pieces) (piece as Partial<ReleasedPiece>).release?.();
    }
    // Twice: the cached pieces are not used up by a snapshot.
    expect(new TextDecoder().decode(store.snapshot())).toBe(text);
  });

  test('each version value of at least snapshotVersionPieceBytesMin bytes is a piece named by its secret and version: its bytes, standing as their base64', () => {
    const store = storeWith(3);
    const pieces = store.snapshotPieces();
    const shared = pieces.filter((p) => p.named === true);
    const large = [...store.secrets()].flatMap((s) =>
      s.versions.filter((v) => v.data.length >= snapshotVersionPieceBytesMin),
    );
    expect(shared.map((p) => p.id)).toEqual(
      [...store.secrets()].flatMap((s) =>
        s.versions
          .filter((v) => v.data.length >= snapshotVersionPieceBytesMin)
          .map((v) => valuePieceId(s.id, v.version)),
      ),
    );
    expect(new Set(shared.map((p) => p.id)).size).toBe(3);
    expect(shared.every((p) => p.base64 === true)).toBe(true);
    expect(shared.map((p) => p.length)).toEqual([4096, 4096, 4096]);
    // The value itself, not a copy made per save: nothing to make, nothing to zero.
    for (const [i, piece] of shared.entries()) {
      expect(piece.bytes()).toBe(large[i]!.data);
      expect(piece.fresh).toBeUndefined();
    }
    // In the data each stands as its base64, exactly: the text a store restores from.
    const text = new TextDecoder().decode(joinPieces(pieces));
    for (const version of large) expect(text).toContain(`"data":"${toBase64(version.data)}"`);
    expect((JSON.parse(text) as { secrets: unknown }).secrets).toEqual(
      [...store.secrets()].map((s) => ({
        ...s,
        versions: s.versions.map((v) => ({ ...v, data: toBase64(v.data) })),
      })),
    );
  });

  test("a value's piece is never hashed: not when first saved, not at the next save, not after a restart", async () => {
    using dir = tempDir('secretd-store-snap-');
    const hashed: number[] = [];
    const recording = recordingFs();
    const options = {
      dek,
      keyId: 1,
      random: systemRandom,
      fs: recording.fs,
      sha256: (bytes: Uint8Array) => (hashed.push(bytes.length), inOrderSha256(bytes)),
    };
    const snapshots = await SnapshotStore.open(dir.path, options);
    const store = storeWith(3);
    await snapshots.save({ meta: meta(10), pieces: store.snapshotPieces() });
    const packs = (): string[] => recording.written.filter((n) => n.endsWith('.pack'));
    expect(packs().length).toBe(1);
    await snapshots.save({ meta: meta(11), pieces: store.snapshotPieces() });
    expect((await snapshots.loadLatest())?.data).toEqual(store.snapshot());
    // Restarted: a new snapshot store and the store restored from the last snapshot; its values
    // are new buffers, their pieces' ids the same, so the next save finds them on disk.
    const reopened = await SnapshotStore.open(dir.path, options);
    const restored = Store.restore((await reopened.loadLatest())!.data);
    await reopened.save({ meta: meta(12), pieces: restored.snapshotPieces() });
    expect(packs().length).toBe(1);
    expect(hashed).toEqual([]);
    expect((await reopened.loadLatest())?.data).toEqual(store.snapshot());
  });

  test("a data dir of a build that kept each value's base64 loads as before, and its next snapshot writes each value once more, as its bytes", async () => {
    using dir = tempDir('secretd-store-snap-');
    const options = { dek, keyId: 1, random: systemRandom, fs, sha256: webCryptoSha256 };
    const store = storeWith(3);
    // What that build saved: the same text, each large value's base64 a named piece under the
    // id of its label then (so never taken for a piece of bytes).
    const large = [...store.secrets()].flatMap((s) =>
      s.versions
        .filter((v) => v.data.length >= snapshotVersionPieceBytesMin)
        .map((v) => ({ id: s.id, version: v.version, data: v.data })),
    );
    let next = 0;
    const earlier = store.snapshotPieces().map((piece): SnapshotPiece => {
      if (piece.base64 !== true) return piece;
      const { id, version, data } = large[next++]!;
      const text = new TextEncoder().encode(toBase64(data));
      const label = `secretd snapshot value piece\0${id}\0${version}`;
      const oldId = createHash('sha256').update(label).digest('hex');
      return { id: oldId, named: true, length: text.length, bytes: () => text };
    });
    expect(next).toBe(3);
    const snapshots = await SnapshotStore.open(dir.path, options);
    await snapshots.save({ meta: meta(10), pieces: earlier });
    const sizes = (): number[] =>
      readdirSync(dir.path)
        .filter((name) => name.endsWith('.pack'))
        .flatMap((name) => packEntries(readFileSync(`${dir.path}/${name}`)).map((e) => e.length))
        .sort();
    const asText = 8 + 32 + 4 + sealOverheadBytes + 5464;
    const asBytes = 8 + 32 + 4 + sealOverheadBytes + 4096;
    expect(sizes()).toEqual([asText, asText, asText]);

    const reopened = await SnapshotStore.open(dir.path, options);
    const restored = Store.restore((await reopened.loadLatest())!.data);
    expect(restored.snapshot()).toEqual(store.snapshot());
    await reopened.save({ meta: meta(11), pieces: restored.snapshotPieces() });
    expect(sizes()).toEqual([asBytes, asBytes, asBytes, asText, asText, asText]);
    expect((await reopened.loadLatest())?.data).toEqual(store.snapshot());
    // Once no kept snapshot refers to the text pieces, they go.
    await reopened.save({ meta: meta(12), pieces: restored.snapshotPieces() });
    expect(sizes()).toEqual([asBytes, asBytes, asBytes]);
    expect((await reopened.loadLatest())?.data).toEqual(store.snapshot());
  });

  test('a snapshot with N large versions writes N pieces once, in one pack; the next writes none of them again; pieces of removed versions are pruned', async () => {
    using dir = tempDir('secretd-store-snap-');
    const recording = recordingFs();
    const snapshots = await SnapshotStore.open(dir.path, {
      dek,
      keyId: 1,
      random: systemRandom,
      fs: recording.fs,
      sha256: webCryptoSha256,
    });
    const store = storeWith(4);
    await snapshots.save({ meta: meta(10), pieces: store.snapshotPieces() });
    const packs = (): string[] => recording.written.filter((n) => n.endsWith('.pack'));
    expect(packs().length).toBe(1);
    expect(piecesIn(dir.path).length).toBe(4);
    expect((await snapshots.loadLatest())?.data).toEqual(store.snapshot());

    recording.written.length = 0;
    store.apply(20, create('big9', value(99)));
    await snapshots.save({ meta: meta(20), pieces: store.snapshotPieces() });
    expect(packs().length).toBe(1);
    expect((await snapshots.loadLatest())?.data).toEqual(store.snapshot());

    const onDisk = (): number => piecesIn(dir.path).length;
    expect(onDisk()).toBe(5);
    store.apply(21, { op: 'secret-remove', at, ids: ['big0', 'big1'] });
    recording.written.length = 0;
    await snapshots.save({ meta: meta(21), pieces: store.snapshotPieces() });
    expect(packs()).toEqual([]);
    expect(onDisk()).toBe(5); // the snapshot at 20, still kept, refers to them
    await snapshots.save({ meta: meta(22), pieces: store.snapshotPieces() });
    // big0 and big1 are gone with the snapshot at 20, but the pack they are in holds big2 and big3.
    expect(onDisk()).toBe(5);
    // With big2 gone too, big3 is a quarter of that pack: written again into a pack of its own,
    // and the old pack deleted once no kept snapshot reads from it.
    store.apply(23, { op: 'secret-remove', at, ids: ['big2'] });
    recording.written.length = 0;
    await snapshots.save({ meta: meta(23), pieces: store.snapshotPieces() });
    expect(packs().length).toBe(1);
    await snapshots.save({ meta: meta(24), pieces: store.snapshotPieces() });
    expect(onDisk()).toBe(2); // big3 and big9
    const reopened = await SnapshotStore.open(dir.path, {
      dek,
      keyId: 1,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    const loaded = await reopened.loadLatest();
    expect(loaded?.data).toEqual(store.snapshot());
    expect(Store.restore(loaded!.data).snapshot()).toEqual(store.snapshot());
  });

  test('a value removed while a snapshot holding it is being written is written intact, and zeroed once the save is over', async () => {
    using dir = tempDir('secretd-store-snap-');
    const snapshots = await SnapshotStore.open(dir.path, {
      dek,
      keyId: 1,
      random: systemRandom,
      fs,
      sha256: webCryptoSha256,
    });
    const store = storeWith(2);
    const expected = store.snapshot();
    const big0 = store.secret('big0')!.versions[0]!.data;
    const big1 = store.secret('big1')!.versions[0]!.data;
    const pieces = store.snapshotPieces(); // taken: its bytes are made when written
    store.apply(10, { op: 'secret-remove', at, ids: ['big0'] });
    expect(big0).toEqual(value(1)); // held back: the snapshot refers to it
    await snapshots.save({ meta: meta(9), pieces });
    expect((await snapshots.loadLatest())?.data).toEqual(expected);
    expect([big0.every((b) => b === 0), big1.every((b) => b === 2)]).toEqual([true, true]);
    store.apply(11, { op: 'secret-remove', at, ids: ['big1'] });
    expect(big1.every((b) => b === 0)).toBe(true); // no snapshot holds it: zeroed at once
  });
});

describe('Store.snapshotPiecesInSlices', () => {
  test('gives the bytes snapshotPieces() gives, pausing between slices of secrets', async () => {
    const store = storeWith(5);
    let pauses = 0;
    const pieces = await store.snapshotPiecesInSlices(async () => void pauses++, 2);
    expect(pauses).toBe(4); // 7 secrets, 2 a slice, a pause before each
    expect(joinPieces(pieces)).toEqual(store.snapshot());
    for (const piece of pieces) (piece as Partial<ReleasedPiece>).release?.();
  });

  test('is the state of its call: changes during a pause do not show, and values removed meanwhile are written intact, then zeroed once released', async () => {
    const store = storeWith(3);
    const expected = store.snapshot();
    const small = store.secret('small2')!.versions[0]!.data;
    const big2 = store.secret('big2')!.versions[0]!.data;
    let index = 20;
    const pieces = await store.snapshotPiecesInSlices(async () => {
      if (index > 20) return;
      // At the first pause, before any secret is written: a removal of two of them, and a create.
      store.apply(index++, { op: 'secret-remove', at, ids: ['small2', 'big2'] });
      store.apply(index++, create('later', value(0x44)));
    }, 1);
    expect(joinPieces(pieces)).toEqual(expected);
    // The large one is still held by its piece; the small one was written and released already.
    expect([small.every((b) => b === 0), big2.every((b) => b === 3)]).toEqual([true, true]);
    for (const piece of pieces) (piece as Partial<ReleasedPiece>).release?.();
    expect(big2.every((b) => b === 0)).toBe(true);
  });

  test('a pause that fails releases what was taken: values removed meanwhile are zeroed', async () => {
    const store = storeWith(2);
    const big1 = store.secret('big1')!.versions[0]!.data;
    let index = 20;
    const failing = store.snapshotPiecesInSlices(async () => {
      store.apply(index++, { op: 'secret-remove', at, ids: ['big0', 'big1'] });
      throw new Error('stopping');
    }, 1);
    await expect(failing).rejects.toThrow('stopping');
    expect(big1.every((b) => b === 0)).toBe(true);
  });
});

describe('ValueHolds.holdAll', () => {
  const values = (): Uint8Array[] => [1, 2, 3].map((n) => new Uint8Array(4).fill(n));

  test('holds back the zeroing of every value until released; a value also held alone waits for its own release', () => {
    const holds = new ValueHolds();
    const [a, b, c] = values();
    const releaseAll = holds.holdAll();
    holds.hold(b!);
    holds.zero(a!);
    holds.zero(b!);
    expect([a![0], b![0]]).toEqual([1, 2]);
    releaseAll();
    releaseAll(); // a second call changes nothing
    expect([a![0], b![0]]).toEqual([0, 2]);
    holds.release(b!);
    expect(b![0]).toBe(0);
    holds.zero(c!);
    expect(c![0]).toBe(0);
    expect(holds.heldCount).toBe(0);
  });

  test('with two holds of everything, a value zeroed meanwhile waits for both', () => {
    const holds = new ValueHolds();
    const [a] = values();
    const first = holds.holdAll();
    const second = holds.holdAll();
    holds.zero(a!);
    first();
    expect(a![0]).toBe(1);
    second();
    expect(a![0]).toBe(0);
  });
});
