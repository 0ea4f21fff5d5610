/** The keys file through a DEK rotation: current → current and pending → the new one only, each read back as a start-up reads it. */
import { describe, expect, test } from 'bun:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { tempDir } from '../../../test/helpers/process.ts';
import { systemRandom } from '../../io/system.ts';
import {
  beginDekRotation,
  finishDekRotation,
  openingKeys,
  readNodeKeys,
  sealingKey,
  writeNodeKeys,
  type NodeKeys,
} from './node-keys.ts';

const current: NodeKeys = { dek: systemRandom(32), dekKeyId: 1, tlsKey: systemRandom(138) };
const next = { dek: systemRandom(32), keyId: 2 };

describe('DEK rotation in the keys file', () => {
  for (const kek of [null, systemRandom(32)]) {
    const mode = kek ? 'under autolock' : 'without autolock';
    test(`each state of a rotation reads back as written, ${mode}`, async () => {
      using dir = tempDir('secretd-node-keys-');
      const path = `${dir.path}/node-keys.json`;
      await writeNodeKeys(path, current, kek, systemRandom);
      const start = await readNodeKeys(path, kek);
      expect(start).toEqual(current);
      expect(sealingKey(start)).toEqual({ dek: current.dek, keyId: 1 });
      expect(openingKeys(start)).toEqual([]);

      const pending = beginDekRotation(start, next, 3);
      await writeNodeKeys(path, pending, kek, systemRandom);
      const during = await readNodeKeys(path, kek);
      expect(during).toEqual({ ...current, pendingDek: next, dekRotation: 3 });
      expect(sealingKey(during)).toEqual(next);
      expect(openingKeys(during)).toEqual([{ dek: current.dek, keyId: 1 }]);

      await writeNodeKeys(path, finishDekRotation(during), kek, systemRandom);
      const after = await readNodeKeys(path, kek);
      expect(after).toEqual({ ...current, dek: next.dek, dekKeyId: 2, dekRotation: 3 });
      expect(openingKeys(after)).toEqual([]);
      const text = readFileSync(path, 'utf8');
      expect(JSON.parse(text)).not.toHaveProperty('pendingDek');
      expect(text).not.toContain(Buffer.from(current.dek).toString('base64'));
    });
  }

  test('the pending DEK is wrapped by the unlock key like the current one, never in the clear', async () => {
    using dir = tempDir('secretd-node-keys-');
    const path = `${dir.path}/node-keys.json`;
    const kek = systemRandom(32);
    await writeNodeKeys(path, beginDekRotation(current, next, 1), kek, systemRandom);
    expect(readFileSync(path, 'utf8')).not.toContain(Buffer.from(next.dek).toString('base64'));
    await expect(readNodeKeys(path, systemRandom(32))).rejects.toThrow('Invalid unlock key');
  });

  test('beginDekRotation() refuses a second rotation before the first finished, and finishDekRotation() one that never began', () => {
    const pending = beginDekRotation(current, next, 1);
    expect(() => beginDekRotation(pending, { dek: systemRandom(32), keyId: 3 }, 2)).toThrow(
      'Cannot start DEK rotation 2: the rotation to key id 2 is not finished',
    );
    expect(() => beginDekRotation(current, { dek: systemRandom(32), keyId: 1 }, 1)).toThrow(
      'the new DEK must be 32 bytes with a key id other than 1',
    );
    expect(() => finishDekRotation(current)).toThrow(
      'Cannot finish a DEK rotation: none is under way',
    );
  });

  test('a keys file whose pending DEK lacks its key id or shares the current one refuses to open', async () => {
    using dir = tempDir('secretd-node-keys-');
    const path = `${dir.path}/node-keys.json`;
    await writeNodeKeys(path, beginDekRotation(current, next, 1), null, systemRandom);
    const file = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    writeFileSync(path, JSON.stringify({ ...file, pendingDekKeyId: undefined }));
    await expect(readNodeKeys(path, null)).rejects.toThrow(
      `Cannot read this node's keys from ${path}: the pending DEK or its key id is missing`,
    );
    writeFileSync(path, JSON.stringify({ ...file, pendingDekKeyId: 1 }));
    await expect(readNodeKeys(path, null)).rejects.toThrow(
      "the pending DEK has the current DEK's key id 1",
    );
  });
});
