import { describe, expect, test } from 'bun:test';
import { tempDir } from '../../test/helpers/process.ts';
import { SecretdError } from '../errors.ts';
import { NodeFileSystem } from '../io/node-fs.ts';
import { systemRandom } from '../io/system.ts';
import { SnapshotStore, type SnapshotStoreOptions } from './snapshot-store.ts';
import type { MemberId, Snapshot } from './types.ts';

const fs = new NodeFileSystem();
const dek = systemRandom(32);
const options = (extra: Partial<SnapshotStoreOptions> = {}): SnapshotStoreOptions => ({
  dek,
  keyId: 3,
  random: systemRandom,
  fs,
  ...extra,
});
const conf = { voters: ['node-a', 'node-b'] as MemberId[], learners: ['node-c'] as MemberId[] };
const snapshot = (index: number, term: number, data = `state at ${index}`): Snapshot => ({
  meta: { index, term, conf },
  data: new TextEncoder().encode(data),
});
const name = (index: number, term: number): string =>
  `${term.toString(16).padStart(16, '0')}-${index.toString(16).padStart(16, '0')}.snap`;

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
      `Snapshot ${path} is corrupt: Sealed record failed authentication`,
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
