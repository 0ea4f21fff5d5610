/**
 * DekRotation with a real keys file and a stand-in for Raft: a count adopted without rotating, the
 * pending DEK on disk before Raft seals with it, requests during a rotation folded into one more,
 * a rotation a crash cut short resumed with its own key, and a stopped Raft leaving both keys.
 */
import { describe, expect, test } from 'bun:test';
import { tempDir } from '../../../test/helpers/process.ts';
import { systemRandom } from '../../io/system.ts';
import {
  beginDekRotation,
  readNodeKeys,
  writeNodeKeys,
  type DataKeyPair,
  type NodeKeys,
} from '../data-dir/index.ts';
import type { RaftNode } from '../raft-io/index.ts';
import { DekRotation } from './dek-rotation.ts';
import { KeysFile } from './keys-file.ts';

const start: NodeKeys = { dek: systemRandom(32), dekKeyId: 1, tlsKey: systemRandom(100) };

/** Raft as DekRotation sees it: each rotateKey call is recorded with the keys file as it was then, and waits to be finished. */
class FakeRaft {
  readonly calls: Array<{ keyId: number; fileThen: NodeKeys; finish: (error?: Error) => void }> =
    [];
  onDisk: number[] = [1];
  #called: Array<() => void> = [];
  constructor(private readonly path: string) {}

  /** The `n`th rotateKey call, once it is made. */
  async call(n: number): Promise<FakeRaft['calls'][number]> {
    while (this.calls.length < n) await new Promise<void>((resolve) => this.#called.push(resolve));
    return this.calls[n - 1]!;
  }
  async rotateKey(key: DataKeyPair): Promise<void> {
    const fileThen = await readNodeKeys(this.path, null);
    return new Promise<void>((resolve, reject) => {
      const finish = (error?: Error): void => {
        if (error) return reject(error);
        this.onDisk = [key.keyId];
        resolve();
      };
      this.calls.push({ keyId: key.keyId, fileThen, finish });
      for (const wake of this.#called.splice(0)) wake();
    });
  }
  keyIdsOnDisk(): number[] {
    return this.onDisk;
  }
}

async function setUp(path: string, keys: NodeKeys = start) {
  await writeNodeKeys(path, keys, null, systemRandom);
  const file = new KeysFile(keys, null, {
    path,
    random: systemRandom,
    onFatal: (error) => {
      throw error;
    },
  });
  const raft = new FakeRaft(path);
  const log: string[] = [];
  const rotation = new DekRotation({
    file,
    raft: raft as unknown as RaftNode,
    random: systemRandom,
    log: (line) => log.push(line),
  });
  return { file, raft, rotation, log };
}

const nextCall = (raft: FakeRaft, n: number): Promise<FakeRaft['calls'][number]> => raft.call(n);

describe('DekRotation', () => {
  test("start() adopts the cluster's count when the keys file records none, without rotating", async () => {
    using dir = tempDir('secretd-dek-rot-');
    const path = `${dir.path}/node-keys.json`;
    const { raft, rotation } = await setUp(path);
    rotation.request(3);
    await rotation.start();
    await rotation.idle();
    expect(raft.calls).toEqual([]);
    expect(await readNodeKeys(path, null)).toEqual({ ...start, dekRotation: 3 });
    expect(rotation.status()).toEqual({ KeyId: 1, OldestKeyIdOnDisk: 1 });
  });

  test('a higher count writes the pending DEK before Raft seals with it, and forgets the old DEK once Raft is done', async () => {
    using dir = tempDir('secretd-dek-rot-');
    const path = `${dir.path}/node-keys.json`;
    const { raft, rotation } = await setUp(path, { ...start, dekRotation: 0 });
    await rotation.start();
    rotation.request(1);
    const call = await nextCall(raft, 1);
    expect(call.keyId).toBe(2);
    expect(call.fileThen.pendingDek?.keyId).toBe(2);
    expect(call.fileThen.dekKeyId).toBe(1);
    expect(rotation.status()).toEqual({ KeyId: 2, OldestKeyIdOnDisk: 1 });
    call.finish();
    await rotation.idle();
    const after = await readNodeKeys(path, null);
    expect({
      keyId: after.dekKeyId,
      pending: after.pendingDek,
      rotation: after.dekRotation,
    }).toEqual({ keyId: 2, pending: undefined, rotation: 1 });
    expect(after.dek).toEqual(call.fileThen.pendingDek!.dek);
    expect(rotation.status()).toEqual({ KeyId: 2, OldestKeyIdOnDisk: 2 });
  });

  test('requests during a rotation fold into one more rotation after it', async () => {
    using dir = tempDir('secretd-dek-rot-');
    const path = `${dir.path}/node-keys.json`;
    const { raft, rotation } = await setUp(path, { ...start, dekRotation: 0 });
    await rotation.start();
    rotation.request(1);
    const first = await nextCall(raft, 1);
    rotation.request(2);
    rotation.request(3);
    first.finish();
    const second = await nextCall(raft, 2);
    expect(second.keyId).toBe(3);
    expect(second.fileThen.dekRotation).toBe(3);
    second.finish();
    await rotation.idle();
    expect(raft.calls.length).toBe(2);
    expect((await readNodeKeys(path, null)).dekKeyId).toBe(3);
  });

  test('a keys file holding a pending DEK resumes the rotation with that DEK, not a new one', async () => {
    using dir = tempDir('secretd-dek-rot-');
    const path = `${dir.path}/node-keys.json`;
    const pending = { dek: systemRandom(32), keyId: 2 };
    const { raft, rotation } = await setUp(path, beginDekRotation(start, pending, 1));
    rotation.request(1);
    await rotation.start();
    const call = await nextCall(raft, 1);
    expect(call.keyId).toBe(2);
    call.finish();
    await rotation.idle();
    const after = await readNodeKeys(path, null);
    expect({ dek: after.dek, keyId: after.dekKeyId, pending: after.pendingDek }).toEqual({
      dek: pending.dek,
      keyId: 2,
      pending: undefined,
    });
  });

  test('a rotation Raft gives up on (the manager stops) leaves both DEKs in the keys file', async () => {
    using dir = tempDir('secretd-dek-rot-');
    const path = `${dir.path}/node-keys.json`;
    const { raft, rotation, log } = await setUp(path, { ...start, dekRotation: 0 });
    await rotation.start();
    rotation.request(1);
    (await nextCall(raft, 1)).finish(new Error('Node is shutting down'));
    await rotation.idle();
    const after = await readNodeKeys(path, null);
    expect({ keyId: after.dekKeyId, pending: after.pendingDek?.keyId }).toEqual({
      keyId: 1,
      pending: 2,
    });
    expect(log.at(-1)).toBe(
      'secretd: DEK rotation paused: Node is shutting down; it resumes when the manager starts again',
    );
  });
});
