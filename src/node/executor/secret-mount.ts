/**
 * One task's secrets, in memory only: a tmpfs of its own (`nodev,nosuid,noexec`, `noswap` where
 * the kernel has it, mode 0700, a small size cap), checked to really be a tmpfs before the first
 * byte is written, and erased (zeroed, unlinked, unmounted) at the end.
 *
 * Layout inside the tmpfs (see targets.ts for why):
 *   run/<target>     relative targets; this directory is bind-mounted read-only at /run/secrets
 *   abs/<hash>       absolute targets, each bind-mounted read-only at its path
 *   tmp/<random>     a file being written; renamed into place only when complete
 * Every write goes through tmp/ and a rename in the same filesystem, so a reader in the container
 * sees the old file or the new one, never an empty or partial one.
 *
 * Buffer ownership: `writeFile` and `updateFile` take ownership of `data` and zero it once it is
 * written (or failed to be). Zeroing is best effort: a garbage-collected runtime may have copied
 * the bytes before, and we cannot reach those copies.
 */
import { constants as fsConstants } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  open,
  readdir,
  realpath,
  rename,
  rmdir,
  statfs,
  unlink,
} from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { SecretdError, assert } from '../../errors.ts';
import { CommandSpawnError, lastLine, runCommand } from './_command.ts';
import { mountAt, readMounts, type MountEntry } from './_mountinfo.ts';
import { commandTimeoutMs, secretsTmpfsBytesMin, tmpfsPageBytes } from './limits.ts';
import type { SecretFile } from './targets.ts';

/** statfs(2) f_type of tmpfs (TMPFS_MAGIC). */
const tmpfsMagic = 0x01021994;
/** The mount's source name: shows whose tmpfs this is in /proc/self/mountinfo and `mount`. */
export const secretsMountSource = 'secretd-secrets';
const requiredMountOptions = ['nodev', 'nosuid', 'noexec'] as const;
const zeroChunk = new Uint8Array(64 * 1024);

/** The cap for a tmpfs holding files of these sizes, with room to replace the largest by rename and to grow. */
export function secretsTmpfsBytes(fileSizes: readonly number[]): number {
  const pages = (bytes: number): number => Math.max(1, Math.ceil(bytes / tmpfsPageBytes));
  const filePages = fileSizes.reduce((sum, size) => sum + pages(size), 0);
  const largest = fileSizes.reduce((max, size) => Math.max(max, pages(size)), 0);
  // Twice the need (so most updates fit without a remount) plus pages for the directories.
  const bytes = (2 * (filePages + largest) + 16) * tmpfsPageBytes;
  const mib = 1024 * 1024;
  return Math.max(secretsTmpfsBytesMin, Math.ceil(bytes / mib) * mib);
}

export class SecretMount {
  /** The real path of the mount point. */
  readonly path: string;
  private sizeBytes: number;
  private readonly files = new Map<string, SecretFile>();
  private writes = 0;

  private constructor(path: string, sizeBytes: number) {
    this.path = path;
    this.sizeBytes = sizeBytes;
  }

  /** Mounts a new tmpfs at `path` (created if needed) and verifies it. */
  static async create(path: string, sizeBytes: number): Promise<SecretMount> {
    await mkdir(path, { recursive: true, mode: 0o700 });
    const real = await realpath(path);
    if (mountAt(await readMounts(), real) !== null)
      throw new SecretdError(
        'conflict',
        `Cannot mount secrets at ${real}: something is already mounted there`,
      );
    const base = ['nodev', 'nosuid', 'noexec', 'mode=0700', 'uid=0', 'gid=0', `size=${sizeBytes}`];
    // noswap (Linux 6.4+) keeps the pages out of swap; older kernels refuse the option.
    let result = await mountCommand([
      '-t',
      'tmpfs',
      '-o',
      [...base, 'noswap'].join(','),
      secretsMountSource,
      real,
    ]);
    if (result.code !== 0)
      result = await mountCommand(['-t', 'tmpfs', '-o', base.join(','), secretsMountSource, real]);
    if (result.code !== 0)
      throw new SecretdError(
        'internal',
        `Cannot mount a tmpfs for secrets at ${real}: ${lastLine(result.stderr) || `mount exited with ${result.code}`}`,
      );
    const mount = new SecretMount(real, sizeBytes);
    try {
      await mount.verify();
      await mkdir(join(real, 'run'), { mode: 0o755 });
      await chmod(join(real, 'run'), 0o755);
      await mkdir(join(real, 'abs'), { mode: 0o700 });
      await mkdir(join(real, 'tmp'), { mode: 0o700 });
    } catch (error) {
      await eraseSecretsDir(real);
      throw error;
    }
    return mount;
  }

  /** Takes over a mount made by an earlier process (after an agent restart); `files` say what it holds. */
  static async open(path: string, files: readonly SecretFile[]): Promise<SecretMount> {
    const real = await realpath(path);
    const entry = await verifiedMount(real);
    const size = [...entry.superOptions].find((option) => option.startsWith('size='));
    const mount = new SecretMount(real, parseSize(size?.slice(5) ?? '') ?? secretsTmpfsBytesMin);
    for (const file of files) mount.files.set(file.target, file);
    return mount;
  }

  /** Secret files written by this mount, for stats (never their contents). */
  get filesWritten(): number {
    return this.writes;
  }

  /** The directory bind-mounted at /run/secrets. */
  get relativeDir(): string {
    return join(this.path, 'run');
  }

  hostPath(file: SecretFile): string {
    return join(this.path, file.hostName);
  }

  /** The files now held, by normalized target. */
  list(): SecretFile[] {
    return [...this.files.values()];
  }

  /** Checks, from the kernel's mount table and statfs, that `path` is still our tmpfs. */
  async verify(): Promise<void> {
    await verifiedMount(this.path);
  }

  /** Grows the cap (never shrinks it: live files may need the room). */
  async ensureSize(sizeBytes: number): Promise<void> {
    if (sizeBytes <= this.sizeBytes) return;
    const result = await mountCommand(['-o', `remount,size=${sizeBytes}`, this.path]);
    if (result.code !== 0)
      throw new SecretdError(
        'internal',
        `Cannot grow the secrets tmpfs at ${this.path}: ${lastLine(result.stderr)}`,
      );
    this.sizeBytes = sizeBytes;
  }

  /** Writes (or atomically replaces) one file with its owner and mode. Zeroes `data` afterwards. */
  async writeFile(file: SecretFile, data: Uint8Array): Promise<void> {
    try {
      await this.verify();
      const finalPath = this.hostPath(file);
      assert(finalPath.startsWith(this.path + '/'), 'a secret file path stays inside its tmpfs');
      if (file.placement.kind === 'relative')
        await mkdirInside(this.relativeDir, dirname(finalPath));
      const tempPath = join(this.path, 'tmp', randomBytes(12).toString('hex'));
      try {
        const handle = await open(
          tempPath,
          fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW,
          0o600,
        );
        try {
          await handle.writeFile(data);
          await handle.chown(file.uid, file.gid);
          await handle.chmod(file.mode);
        } finally {
          await handle.close();
        }
        await rename(tempPath, finalPath);
      } catch (error) {
        await zeroAndUnlink(tempPath);
        throw error;
      }
      this.files.set(file.target, file);
      this.writes += 1;
    } catch (error) {
      if (error instanceof SecretdError) throw error;
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      const why = code === 'ENOSPC' ? 'the secrets tmpfs is full' : code;
      throw new SecretdError(
        'internal',
        `Cannot write the secret file for target '${file.target}' (secret ${file.secretId}): ${why}`,
      );
    } finally {
      data.fill(0);
    }
  }

  /** Replaces the content of an existing file, keeping its owner and mode; atomic for readers. */
  async updateFile(target: string, data: Uint8Array): Promise<void> {
    const file = this.files.get(target);
    if (file === undefined) {
      data.fill(0);
      throw new SecretdError(
        'not_found',
        `Cannot update secret target '${target}': no such file in ${this.path}`,
      );
    }
    await this.writeFile(file, data);
  }

  /**
   * Whether the file for `target` holds exactly `data` (read back from the tmpfs, the only copy we
   * keep; the read buffer is zeroed). Lets an unchanged secret without a version skip a rewrite.
   */
  async contentEquals(target: string, data: Uint8Array): Promise<boolean> {
    const file = this.files.get(target);
    if (file === undefined) return false;
    const handle = await open(
      this.hostPath(file),
      fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW,
    ).catch(() => null);
    if (handle === null) return false;
    let stored: Uint8Array | null = null;
    try {
      if ((await handle.stat()).size !== data.length) return false;
      stored = await handle.readFile();
      let difference = 0;
      for (let i = 0; i < data.length; i++) difference |= stored[i]! ^ data[i]!;
      return difference === 0 && stored.length === data.length;
    } finally {
      stored?.fill(0);
      await handle.close();
    }
  }

  /** Zeroes and removes one file (and the directories its target created, once empty). */
  async removeFile(target: string): Promise<void> {
    const file = this.files.get(target);
    if (file === undefined) return;
    const path = this.hostPath(file);
    await zeroAndUnlink(path);
    this.files.delete(target);
    if (file.placement.kind === 'relative') {
      for (let dir = dirname(path); dir.startsWith(this.relativeDir + '/'); dir = dirname(dir)) {
        if ((await readdir(dir)).length > 0) break;
        await rmdir(dir);
      }
    }
  }

  /** Zeroes every file, unmounts (lazily if busy) and removes the mount point. */
  async destroy(): Promise<void> {
    this.files.clear();
    await eraseSecretsDir(this.path);
  }
}

/**
 * Erases a secrets directory, mounted or not: every regular file is overwritten with zeros and
 * unlinked, the tmpfs unmounted (lazily if the normal unmount is refused), the directory removed.
 */
export async function eraseSecretsDir(given: string): Promise<void> {
  // The kernel's mount table names real paths.
  const path = await realpath(given).catch(() => null);
  if (path === null) return;
  await zeroTree(path);
  const mounted = async (): Promise<boolean> => mountAt(await readMounts(), path) !== null;
  // Stacked mounts (never made by us, but possible) each need an unmount.
  for (let attempt = 0; attempt < 8 && (await mounted()); attempt++) {
    const result = await mountCommand(['--no-canonicalize', path], 'umount');
    if (result.code !== 0) await mountCommand(['--lazy', '--no-canonicalize', path], 'umount');
  }
  if (await mounted())
    throw new SecretdError('internal', `Cannot unmount the secrets tmpfs at ${path}`);
  try {
    await zeroTree(path);
    await rmdir(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

async function verifiedMount(path: string): Promise<MountEntry> {
  const entry = mountAt(await readMounts(), path);
  const refuse = (why: string): SecretdError =>
    new SecretdError('internal', `Refusing to write secrets at ${path}: ${why}`);
  if (entry === null) throw refuse('nothing is mounted there');
  if (entry.fsType !== 'tmpfs') throw refuse(`it is ${entry.fsType}, not tmpfs`);
  for (const option of requiredMountOptions)
    if (!entry.mountOptions.has(option)) throw refuse(`the mount lacks ${option}`);
  // A second opinion from the filesystem itself.
  const stats = await statfs(path);
  if (stats.type !== tmpfsMagic)
    throw refuse(`statfs reports filesystem type 0x${stats.type.toString(16)}, not tmpfs`);
  return entry;
}

/** Creates `dir` and its parents below `root` (mode 0755 so any uid can reach its file). */
async function mkdirInside(root: string, dir: string): Promise<void> {
  assert(dir === root || dir.startsWith(root + '/'), 'a secret directory stays inside run/');
  if (dir === root) return;
  await mkdirInside(root, dirname(dir));
  try {
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    if (!(await lstat(dir)).isDirectory())
      throw new SecretdError(
        'invalid',
        `Cannot create secret directory ${dir}: a file is in the way`,
      );
  }
}

async function zeroTree(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const path = join(dir, name);
    const stats = await lstat(path).catch(() => null);
    if (stats === null) continue;
    if (stats.isDirectory()) {
      await zeroTree(path);
      await rmdir(path).catch(() => undefined);
    } else {
      await zeroAndUnlink(path);
    }
  }
}

/** Overwrites a regular file with zeros, then unlinks it; best effort on the zeroing. */
async function zeroAndUnlink(path: string): Promise<void> {
  try {
    const handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_NOFOLLOW);
    try {
      const { size } = await handle.stat();
      for (let offset = 0; offset < size; offset += zeroChunk.length)
        await handle.write(zeroChunk, 0, Math.min(zeroChunk.length, size - offset), offset);
    } finally {
      await handle.close();
    }
  } catch {
    // Not a regular file we can open (a symlink, a vanished file): unlinking is all we can do.
  }
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

function parseSize(text: string): number | null {
  const match = /^(\d+)([kmg]?)$/i.exec(text);
  if (match === null) return null;
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
    match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'
  ];
  return Number(match[1]) * unit;
}

async function mountCommand(
  args: readonly string[],
  binary: 'mount' | 'umount' = 'mount',
): Promise<{ code: number | null; stderr: string }> {
  try {
    return await runCommand(binary, args, { timeoutMs: commandTimeoutMs });
  } catch (error) {
    if (error instanceof CommandSpawnError)
      throw new SecretdError(
        'unavailable',
        `Cannot manage the secrets tmpfs: \`${binary}\` cannot be run (${error.errno})`,
      );
    throw error;
  }
}
