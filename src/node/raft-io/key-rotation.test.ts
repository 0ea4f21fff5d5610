/**
 * RaftNode.rotateKey on a one-member node with real files: new records under the new key at once,
 * a snapshot and compaction that leave nothing under the old key on disk, and a rotation a crash
 * cut short that opens with both keys and finishes.
 */
import { describe, expect, test } from 'bun:test';
import { tempDir } from '../../../test/helpers/process.ts';
import { oneMemberLeader } from '../../../test/helpers/raft-leader.ts';
import { keyIdsIn, sealedFiles } from '../../../test/helpers/sealed-files.ts';
import { auditSegmentRecords } from '../../limits.ts';
import { systemRandom } from '../../io/system.ts';
import { walMarkerPath } from './open-raft-node.ts';
import type { DataKey, RaftNode } from './raft-node.ts';
const oldKey: DataKey = { dek: systemRandom(32), keyId: 1 };
const newKey: DataKey = { dek: systemRandom(32), keyId: 2 };
const at = '2026-11-28T00:00:00.000Z';

function open(
  root: string,
  key: DataKey,
  olderKeys: DataKey[] = [],
  snapshotEntries = 4,
): Promise<RaftNode> {
  return oneMemberLeader(root, {
    dek: key.dek,
    dekKeyId: key.keyId,
    olderKeys,
    snapshotEntries,
    walSegmentBytesTarget: 2048,
    walMarker: walMarkerPath(root),
  });
}

/** Writes `n` entries (commands the store refuses without a cluster: still log entries). */
async function write(node: RaftNode, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await node.propose({ op: 'dek-rotate', at });
}

const keyIdsOnDisk = (root: string): number[] =>
  keyIdsIn(sealedFiles(`${root}/raft/wal`, `${root}/raft/snap`));

describe('RaftNode.rotateKey', () => {
  test('resolves once no WAL record or snapshot on disk is sealed with the old key; the node then opens with the new key alone', async () => {
    using dir = tempDir('secretd-raft-rot-');
    const node = await open(dir.path, oldKey);
    await write(node, 30);
    expect(keyIdsOnDisk(dir.path)).toEqual([1]);
    await node.rotateKey(newKey);
    expect(keyIdsOnDisk(dir.path)).toEqual([2]);
    expect(node.keyIdsOnDisk().every((keyId) => keyId === 2)).toBe(true);
    await write(node, 3);
    const applied = node.store.appliedIndex;
    await node.stop();
    expect(keyIdsOnDisk(dir.path)).toEqual([2]);

    const reopened = await open(dir.path, newKey);
    await write(reopened, 1);
    expect(reopened.store.appliedIndex).toBeGreaterThan(applied);
    await reopened.stop();
  });

  test('after a crash mid-rotation the node opens with both keys, seals only with the new one, and finishes the rotation', async () => {
    using dir = tempDir('secretd-raft-rot-');
    const node = await open(dir.path, oldKey);
    await write(node, 10);
    await node.stop();
    // The keys file held both keys when it stopped: it opens with both, as the manager does.
    // No snapshot of its own meanwhile (one would compact the old key's segments away too).
    const resumed = await open(dir.path, newKey, [oldKey], 1000);
    await write(resumed, 2);
    await resumed.stop(); // crash before the snapshot: both keys still on disk
    expect(keyIdsOnDisk(dir.path)).toEqual([1, 2]);
    const files = sealedFiles(`${dir.path}/raft/wal`, `${dir.path}/raft/snap`);
    for (const file of files) expect(new Set(file.keyIds).size).toBe(1); // one key per file

    const again = await open(dir.path, newKey, [oldKey], 1000);
    const applied = again.store.appliedIndex;
    await again.rotateKey(newKey);
    expect(again.store.appliedIndex).toBeGreaterThanOrEqual(applied);
    expect(keyIdsOnDisk(dir.path)).toEqual([2]);
    await again.stop();
    const finished = await open(dir.path, newKey);
    await write(finished, 1);
    await finished.stop();
  });

  test('with secret values in shared pieces: resolves once every one is sealed with the new key too, and the node opens with it alone, every value intact', async () => {
    using dir = tempDir('secretd-raft-rot-');
    const node = await open(dir.path, oldKey);
    for (let i = 0; i < 6; i++)
      await node.propose({
        op: 'secret-create',
        at,
        id: `secret${i}`,
        name: `big-${i}`,
        labels: {},
        data: new Uint8Array(4096).fill(i + 1),
      });
    await node.snapshotNow();
    // The values' pieces, in one pack or more (as the snapshots fell): each a chunk, and its key.
    const pieces = (): string => {
      const keyIds = sealedFiles(`${dir.path}/raft/wal`, `${dir.path}/raft/snap`)
        .filter((f) => f.path.endsWith('.pack'))
        .flatMap((f) => f.keyIds);
      return `${keyIds.length} under key ${[...new Set(keyIds)].join()}`;
    };
    expect(pieces()).toBe('6 under key 1');
    await node.rotateKey(newKey);
    expect(pieces()).toBe('6 under key 2');
    expect(keyIdsOnDisk(dir.path)).toEqual([2]);
    const secretsOf = (n: RaftNode): unknown =>
      (JSON.parse(new TextDecoder().decode(n.store.snapshot())) as { secrets: unknown }).secrets;
    const secrets = secretsOf(node);
    await node.stop();

    const reopened = await open(dir.path, newKey);
    expect(secretsOf(reopened)).toEqual(secrets);
    expect(reopened.store.secret('secret5')?.versions[0]?.data).toEqual(
      new Uint8Array(4096).fill(6),
    );
    await reopened.stop();
  });

  test('with a full audit segment in a shared piece: resolves once that piece is sealed with the new key too, and the node opens with it alone', async () => {
    using dir = tempDir('secretd-raft-rot-');
    const node = await open(dir.path, oldKey);
    const actor = { kind: 'admin-socket', name: 'admin-socket', role: 'admin', uid: 0 } as const;
    const record = { at, actor, source: 'admin-socket', action: 'denied', result: 'denied' };
    // A snapshot every 4 entries: the last ones hold a full segment.
    for (let n = 0; n < auditSegmentRecords + 5 * 256; n += 256)
      await node.propose({ op: 'audit-append', at, records: Array(256).fill(record) });
    // The last of those snapshots may still be being written (a CI run once looked before it was).
    await node.snapshotNow();
    const pieces = (): string[] =>
      sealedFiles(`${dir.path}/raft/wal`, `${dir.path}/raft/snap`)
        .filter((f) => f.path.endsWith('.pack'))
        .map((f) => `${f.path.split('-').pop()} ${[...new Set(f.keyIds)].join()}`); // every chunk's key
    expect(pieces()).toEqual(['00000001.pack 1']);
    await node.rotateKey(newKey);
    expect(pieces()).toEqual(['00000002.pack 2']);
    expect(keyIdsOnDisk(dir.path)).toEqual([2]);
    expect(node.keyIdsOnDisk().every((keyId) => keyId === 2)).toBe(true);
    const lines = [...node.store.audit.lines()];
    await node.stop();

    const reopened = await open(dir.path, newKey);
    expect([...reopened.store.audit.lines()]).toEqual(lines);
    await reopened.stop();
  });

  test('a second rotation while one is under way is refused', async () => {
    using dir = tempDir('secretd-raft-rot-');
    const node = await open(dir.path, oldKey);
    await write(node, 2);
    const first = node.rotateKey(newKey);
    await expect(node.rotateKey({ dek: systemRandom(32), keyId: 3 })).rejects.toThrow(
      'Cannot rotate to key id 3: a rotation to key id 2 is under way',
    );
    await first;
    await node.stop();
  });
});
