/**
 * `secretd restore`: a new one-manager cluster from a backup file — `--force-new-cluster` from a
 * file. The file is read and authenticated chunk by chunk (crypto/backup-format.ts); the store it
 * holds is then changed the way a forced new cluster is, as entries applied after the backup's
 * index: this machine joins as a new manager (a new node id, a certificate from the restored CA),
 * the old managers are removed (their certificates stop working), the old workers are marked down
 * (their tasks are rescheduled as workers join), and new join tokens are drawn (with `autolock`, a
 * new unlock key; without, autolock is off). The result is written as init writes a data dir: the
 * node's keys and certificate, a Raft snapshot sealed with a new DEK at the last of those entries,
 * an empty log after it, node.json last. Everything is built in a directory beside the target and
 * renamed into place at the end; any failure removes it, so nothing is left behind.
 */
import { hostname } from 'node:os';
import { readdir, rename, rm, rmdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { BackupOpener, type BackupHeader } from '../../crypto/backup-format.ts';
import {
  certDerFromPem,
  createKeyAndCSR,
  generateJoinTokens,
  issueCertificate,
  newId,
  type Random,
} from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { backupChunkBytes } from '../../limits.ts';
import { SnapshotStore } from '../../raft/snapshot-store.ts';
import type { MemberId } from '../../raft/types.ts';
import { WAL } from '../../raft/wal.ts';
import {
  dataDirPaths,
  ensureDir,
  systemFs,
  writeFileAtomic,
  writeNodeKeys,
  writeNodeState,
  type NodeState,
} from '../data-dir/index.ts';
import { initAddressNames, localResources } from '../join/index.ts';
import { nodeCertExpiryOf, Store, toBase64, type Command } from '../store/index.ts';
import { openBackupFile } from './inspect.ts';
import { webCryptoSha256 } from '../../io/sha256.ts';

export interface RestoreOptions {
  /** The data dir to create: absent or empty. */
  readonly dataDir: string;
  /** The backup file. */
  readonly from: string;
  /** The backup key (32 bytes). */
  readonly key: Uint8Array;
  readonly listenAddr: string;
  readonly advertiseAddr: string;
  /** A new unlock key for the restored cluster; without, autolock is off. */
  readonly autolock: boolean;
  readonly random: Random;
  readonly now: Date;
}

export interface Restored {
  readonly header: BackupHeader;
  readonly nodeId: string;
  /** The Raft index of the restored snapshot (the backup's, plus the entries restore applied). */
  readonly index: number;
  readonly unlockKey: Uint8Array | null;
  /** Managers of the old cluster removed, and workers marked down. */
  readonly removedManagers: readonly string[];
  readonly downWorkers: readonly string[];
}

/** Writes a new data dir from the backup; throws (leaving nothing behind) on any problem. */
export async function restoreCluster(options: RestoreOptions): Promise<Restored> {
  await checkTarget(options.dataDir);
  const { header, store } = await readBackup(options.from, options.key);
  const work = join(
    dirname(options.dataDir),
    `.${basename(options.dataDir)}.restore-${Buffer.from(options.random(4)).toString('hex')}`,
  );
  try {
    const restored = await writeDataDir(work, header, store, options);
    await checkTarget(options.dataDir);
    // An empty target directory is replaced; rename(2) would refuse a non-empty one anyway.
    await rmdir(options.dataDir).catch(() => {});
    await rename(work, options.dataDir);
    await systemFs.syncDir(dirname(options.dataDir));
    return restored;
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    throw error;
  }
}

async function checkTarget(dataDir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dataDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    throw new SecretdError(
      'invalid',
      `Cannot restore into ${dataDir}: ${code === 'ENOTDIR' ? 'it is not a directory' : (error as Error).message}`,
    );
  }
  if (entries.length > 0)
    throw new SecretdError(
      'conflict',
      `Cannot restore into ${dataDir}: it is not empty (restore creates a new data dir; give an empty or new --data-dir)`,
    );
}

/** The file read and authenticated chunk by chunk; the store rebuilt from its bytes. */
async function readBackup(
  path: string,
  key: Uint8Array,
): Promise<{ header: BackupHeader; store: Store }> {
  const opener = new BackupOpener(key);
  const pieces: Uint8Array[] = [];
  const handle = await openBackupFile(path);
  try {
    const buffer = new Uint8Array(backupChunkBytes);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      pieces.push(...opener.push(buffer.subarray(0, bytesRead)));
    }
    opener.finish();
  } catch (error) {
    for (const piece of pieces) piece.fill(0);
    throw error;
  } finally {
    await handle.close();
  }
  const header = opener.header!;
  const bytes = Buffer.concat(pieces);
  for (const piece of pieces) piece.fill(0);
  let store: Store;
  try {
    store = Store.restore(bytes);
  } catch {
    throw new SecretdError(
      'corrupt',
      'Cannot restore from this backup: its store does not parse (it was made by another secretd?)',
    );
  } finally {
    bytes.fill(0); // best effort: the store holds its own copies now
  }
  if (store.cluster === null || store.cluster.id !== header.clusterId)
    throw new SecretdError(
      'corrupt',
      "Cannot restore from this backup: the store's cluster is not the one its header names",
    );
  if (store.appliedIndex !== header.index)
    throw new SecretdError(
      'corrupt',
      `Cannot restore from this backup: the store is at index ${store.appliedIndex}, its header says ${header.index}`,
    );
  return { header, store };
}

async function writeDataDir(
  root: string,
  header: BackupHeader,
  store: Store,
  options: RestoreOptions,
): Promise<Restored> {
  const paths = dataDirPaths(root);
  const cluster = store.cluster!;
  const at = options.now.toISOString();
  await ensureDir(root);
  await ensureDir(join(root, 'certificates'), 0o755);
  let nodeId = newId(options.random);
  while (store.node(nodeId) !== undefined || store.isRemovedNode(nodeId))
    nodeId = newId(options.random);
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const certPem = await issueCertificate(
    { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
    csrPem,
    {
      nodeId,
      role: 'manager',
      clusterId: cluster.id,
      now: options.now,
      lifetimeMs: nodeCertExpiryOf(cluster),
      serial: options.random(16),
      // The SANs init gives its manager: loopback, this host, the given addresses.
      ...initAddressNames(options.listenAddr, options.advertiseAddr),
    },
  );
  const unlockKey = options.autolock ? options.random(32) : null;
  const old = [...store.nodes()];
  const removedManagers = old.filter((n) => n.role === 'manager').map((n) => n.id as string);
  const downWorkers = old
    .filter((n) => n.role !== 'manager' && n.status !== 'down')
    .map((n) => n.id as string);
  const caDer = certDerFromPem(cluster.caCertPem);
  const commands: Command[] = [
    {
      op: 'node-add',
      at,
      node: {
        id: nodeId,
        role: 'manager',
        hostname: hostname(),
        addr: options.advertiseAddr,
        resources: localResources(),
      },
    },
    ...(removedManagers.length > 0
      ? [{ op: 'node-remove' as const, at, ids: removedManagers }]
      : []),
    ...downWorkers.map((id): Command => ({ op: 'node-status', at, id, status: 'down' })),
    {
      op: 'cluster-update',
      at,
      expectedIndex: null,
      joinTokens: generateJoinTokens(caDer, options.random),
      unlockKey: unlockKey && toBase64(unlockKey),
    },
    {
      op: 'audit-append',
      at,
      records: [
        {
          at,
          actor: { kind: 'admin-socket', name: 'admin-socket', role: 'admin' },
          source: 'restore',
          action: 'restore',
          object: { id: nodeId },
          detail: `restored from a backup of index ${header.index} taken at ${header.createdAt}; managers removed: ${removedManagers.length}, workers marked down: ${downWorkers.length}`,
          result: 'ok',
        },
      ],
    },
  ];
  let index = store.appliedIndex;
  for (const command of commands) {
    const result = store.apply(++index, command);
    if (!result.ok)
      throw new SecretdError(
        'internal',
        `Cannot restore: applying ${command.op} to the restored store failed: ${result.message}`,
      );
  }
  const dek = options.random(32);
  const sealing = {
    dek,
    keyId: 1,
    olderKeys: [],
    random: options.random,
    fs: systemFs,
    sha256: webCryptoSha256,
  };
  const id = nodeId as MemberId;
  const meta = { index, term: 1, conf: { voters: [id], learners: [] } };
  const snapshots = await SnapshotStore.open(paths.snapshots, sealing);
  await snapshots.save({ meta, data: store.snapshot() });
  const { wal } = await WAL.open(paths.wal, sealing);
  await wal.markSnapshot(meta);
  await wal.save({ hardState: { term: 1, vote: id, commit: index }, entries: [] });
  await wal.close();
  await writeFileAtomic(paths.caCert, cluster.caCertPem, 0o644);
  await writeFileAtomic(paths.nodeCert, certPem, 0o644);
  await writeNodeKeys(
    paths.nodeKeys,
    {
      dek,
      dekKeyId: 1,
      tlsKey: keyPkcs8,
      tlsCert: certPem,
      dekRotation: store.cluster?.dekRotations ?? 0,
    },
    unlockKey,
    options.random,
  );
  keyPkcs8.fill(0);
  const state: NodeState = {
    format: 1,
    nodeId,
    clusterId: cluster.id,
    role: 'manager',
    listenAddr: options.listenAddr,
    advertiseAddr: options.advertiseAddr,
    createdAt: at,
    bootstrapVoters: [nodeId],
    peers: [],
  };
  await writeNodeState(paths.nodeState, state);
  return { header, nodeId, index, unlockKey, removedManagers, downWorkers };
}
