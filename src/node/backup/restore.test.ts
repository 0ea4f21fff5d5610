import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRootCA, generateJoinToken, parseIdentity, type Random } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { SnapshotStore } from '../../raft/snapshot-store.ts';
import {
  dataDirPaths,
  nodeKeysLocked,
  readNodeKeys,
  readNodeState,
  systemFs,
} from '../data-dir/index.ts';
import { Store, toBase64 } from '../store/index.ts';
import { backupStream, restoreCluster } from './index.ts';
import { webCryptoSha256 } from '../../io/sha256.ts';

const random: Random = (n) => crypto.getRandomValues(new Uint8Array(n));
const at = '2026-12-06T05:00:00.000Z';
const dir = mkdtempSync(join(tmpdir(), 'secretd-restore-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A store as a two-node cluster leaves it: a manager, a worker, two secrets (one with two versions). */
async function oldCluster(): Promise<{
  store: Store;
  tokens: { worker: string; manager: string };
}> {
  const ca = await createRootCA({ now: new Date(at) });
  const tokens = {
    worker: generateJoinToken(ca.certDer, random),
    manager: generateJoinToken(ca.certDer, random),
  };
  const store = new Store();
  const apply = (index: number, command: unknown): void => {
    const result = store.apply(index, command);
    if (!result.ok) throw new Error(result.message);
  };
  apply(1, {
    op: 'cluster-init',
    at,
    clusterId: 'cluster0000000000000000000',
    caCertPem: ca.certPem,
    caKey: toBase64(ca.keyPkcs8),
    joinTokens: tokens,
    unlockKey: null,
    node: {
      id: 'oldmanager000000000000000',
      role: 'manager',
      hostname: 'm',
      addr: '10.0.0.1:4377',
    },
  });
  apply(2, {
    op: 'node-add',
    at,
    node: { id: 'oldworker0000000000000000', role: 'worker', hostname: 'w', addr: '10.0.0.2:4377' },
  });
  apply(3, { op: 'node-status', at, id: 'oldworker0000000000000000', status: 'ready' });
  apply(4, {
    op: 'secret-create',
    at,
    id: 'secret1000000000000000000',
    name: 'db_password',
    labels: {},
    data: toBase64(new TextEncoder().encode('v1-value')),
  });
  apply(5, {
    op: 'secret-version-add',
    at,
    id: 'secret1000000000000000000',
    data: toBase64(new TextEncoder().encode('v2-value')),
    ifVersion: null,
  });
  return { store, tokens };
}

/** restoreCluster() into `dataDir` from `from` with `key`, on 127.0.0.1:4377, at `at`. */
function restoreInto(
  dataDir: string,
  from: string,
  key: Uint8Array,
  autolock = false,
): ReturnType<typeof restoreCluster> {
  return restoreCluster({
    dataDir,
    from,
    key,
    listenAddr: '127.0.0.1:4377',
    advertiseAddr: '127.0.0.1:4377',
    autolock,
    random,
    now: new Date(at),
  });
}

async function backupFile(store: Store, key: Uint8Array, name: string): Promise<string> {
  const { stream } = backupStream(store, { key, random, at });
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

async function restoredStore(dataDir: string, kek: Uint8Array | null): Promise<Store> {
  const paths = dataDirPaths(dataDir);
  const keys = await readNodeKeys(paths.nodeKeys, kek);
  const snapshots = await SnapshotStore.open(paths.snapshots, {
    dek: keys.dek,
    keyId: keys.dekKeyId,
    olderKeys: [],
    sha256: webCryptoSha256,
    random,
    fs: systemFs,
  });
  const snapshot = await snapshots.loadLatest();
  return Store.restore(snapshot!.data);
}

describe('restoreCluster()', () => {
  test('writes a data dir whose store is the backup plus this node, the old managers removed, the old workers down and new join tokens', async () => {
    const { store, tokens } = await oldCluster();
    const key = random(32);
    const from = await backupFile(store, key, 'plain.bak');
    const dataDir = join(dir, 'plain');
    const restored = await restoreInto(dataDir, from, key);
    expect(restored.header.index).toBe(5);
    expect(restored.removedManagers).toEqual(['oldmanager000000000000000']);
    expect(restored.downWorkers).toEqual(['oldworker0000000000000000']);
    const state = await readNodeState(dataDirPaths(dataDir).nodeState, dataDir);
    expect(state).toMatchObject({
      nodeId: restored.nodeId,
      clusterId: 'cluster0000000000000000000',
      role: 'manager',
      bootstrapVoters: [restored.nodeId],
      peers: [],
    });
    const identity = parseIdentity(readFileSync(dataDirPaths(dataDir).nodeCert, 'utf8'));
    expect([identity.nodeId, identity.role, identity.clusterId]).toEqual([
      restored.nodeId,
      'manager',
      'cluster0000000000000000000',
    ]);
    expect(await nodeKeysLocked(dataDirPaths(dataDir).nodeKeys)).toBe(false);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);

    const after = await restoredStore(dataDir, null);
    expect(after.appliedIndex).toBe(restored.index);
    expect(after.node(restored.nodeId)?.role).toBe('manager');
    expect(after.node('oldmanager000000000000000')).toBeUndefined();
    expect(after.isRemovedNode('oldmanager000000000000000')).toBe(true);
    expect(after.node('oldworker0000000000000000')?.status).toBe('down');
    expect(after.cluster!.joinTokens.worker).not.toBe(tokens.worker);
    expect(after.cluster!.joinTokens.manager).not.toBe(tokens.manager);
    expect(after.cluster!.caCertPem).toBe(store.cluster!.caCertPem);
    const versions = after.secret('secret1000000000000000000')!.versions;
    expect(versions.map((v) => new TextDecoder().decode(v.data))).toEqual(['v1-value', 'v2-value']);
    expect(after.audit.size).toBe(store.audit.size + 1);
  });

  test('with autolock: the keys file is wrapped by a new unlock key that the store holds', async () => {
    const { store } = await oldCluster();
    const key = random(32);
    const from = await backupFile(store, key, 'locked.bak');
    const dataDir = join(dir, 'locked');
    const restored = await restoreInto(dataDir, from, key, true);
    expect(restored.unlockKey).toHaveLength(32);
    expect(await nodeKeysLocked(dataDirPaths(dataDir).nodeKeys)).toBe(true);
    const after = await restoredStore(dataDir, restored.unlockKey);
    expect(after.cluster!.unlockKey).toEqual(restored.unlockKey);
  });

  test('a truncated file, a wrong key and a non-empty target are refused, leaving nothing beside the target', async () => {
    const { store } = await oldCluster();
    const key = random(32);
    const from = await backupFile(store, key, 'cut.bak');
    const whole = readFileSync(from);
    writeFileSync(from, whole.subarray(0, whole.length - 10));
    const parent = join(dir, 'refused');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(parent);
    const attempt = (dataDir: string, k: Uint8Array, file = from): Promise<unknown> =>
      restoreInto(dataDir, file, k).then(
        () => null,
        (error: unknown) => error,
      );
    const cut = (await attempt(join(parent, 'a'), key)) as SecretdError;
    expect(cut.message).toBe('Cannot restore from this backup: it is truncated inside chunk 0');
    const good = await backupFile(store, key, 'good.bak');
    const wrong = (await attempt(join(parent, 'b'), random(32), good)) as SecretdError;
    expect(wrong.code).toBe('invalid');
    expect(readdirSync(parent)).toEqual([]);
    mkdirSync(join(parent, 'busy'));
    writeFileSync(join(parent, 'busy', 'x'), '');
    const busy = (await attempt(join(parent, 'busy'), key, good)) as SecretdError;
    expect([busy.code, busy.message]).toEqual([
      'conflict',
      `Cannot restore into ${join(parent, 'busy')}: it is not empty (restore creates a new data dir; give an empty or new --data-dir)`,
    ]);
    expect(readdirSync(parent)).toEqual(['busy']);
    // An empty directory is taken.
    mkdirSync(join(parent, 'empty'));
    expect(await attempt(join(parent, 'empty'), key, good)).toBeNull();
    expect(readdirSync(join(parent, 'empty')).sort()).toEqual([
      'certificates',
      'node.json',
      'raft',
    ]);
  });
});
