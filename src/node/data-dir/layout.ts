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
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FileSystem } from '../../io/fs.ts';
import { NodeFileSystem } from '../../io/node-fs.ts';

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

/** The real disk: the default `fs` of every reader and writer here (a simulator passes its own). */
export const systemFs: FileSystem = new NodeFileSystem();

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
  fs: FileSystem = systemFs,
): Promise<void> {
  const tmp = `${path}.tmp`;
  // A leftover of a write a crash cut short: removed first, so the new file gets `mode`.
  await removeIfPresent(fs, tmp);
  await fs.writeFile(tmp, typeof data === 'string' ? new TextEncoder().encode(data) : data, mode);
  await fs.rename(tmp, path);
  await fs.syncDir(dirname(path));
}

/** A file's text (UTF-8) through `fs`. */
export async function readTextFile(path: string, fs: FileSystem = systemFs): Promise<string> {
  return new TextDecoder().decode(await fs.readFile(path));
}

/** Removes `path`; one that does not exist is not an error. */
export async function removeIfPresent(fs: FileSystem, path: string): Promise<void> {
  try {
    await fs.remove(path);
  } catch (error) {
    if ((error as { code?: unknown } | null)?.code !== 'ENOENT') throw error;
  }
}
