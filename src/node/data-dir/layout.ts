/**
 * The data directory's layout, in one place:
 *
 *   <data-dir>/                 0700
 *     node.json                 public facts: node id, cluster id, role, addresses, autolock flag
 *     certificates/ca.pem       the cluster's root certificate (public)
 *     certificates/node.pem     this node's certificate (public)
 *     certificates/node-keys.json  0600: the DEK and the TLS private key, wrapped by the unlock key
 *                               under autolock, otherwise stored as Docker stores them (plain, 0600)
 *     raft/wal/*.wal            the sealed write-ahead log
 *     raft/snap/*.snap          sealed snapshots
 *     admin.sock                0600 local admin socket (root only)
 */
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface DataDirPaths {
  readonly root: string;
  readonly nodeState: string;
  readonly caCert: string;
  readonly nodeCert: string;
  readonly nodeKeys: string;
  readonly wal: string;
  readonly snapshots: string;
  readonly adminSocket: string;
}

export const defaultDataDir = '/var/lib/secretd';

export function dataDirPaths(root: string): DataDirPaths {
  return {
    root,
    nodeState: join(root, 'node.json'),
    caCert: join(root, 'certificates', 'ca.pem'),
    nodeCert: join(root, 'certificates', 'node.pem'),
    nodeKeys: join(root, 'certificates', 'node-keys.json'),
    wal: join(root, 'raft', 'wal'),
    snapshots: join(root, 'raft', 'snap'),
    adminSocket: join(root, 'admin.sock'),
  };
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export async function ensureDir(path: string, mode = 0o700): Promise<void> {
  await mkdir(path, { recursive: true, mode });
}

/** Write to a temp file, fsync, rename over the target, fsync the directory: all or nothing. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode: number,
): Promise<void> {
  const tmp = `${path}.tmp`;
  await rm(tmp, { force: true });
  const handle = await open(tmp, 'wx', mode);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

export async function syncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
