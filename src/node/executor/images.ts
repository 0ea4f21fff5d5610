/**
 * The node's local images: root filesystems imported from tarballs, one directory each:
 *
 *   <dataDir>/images/<encoded name>/rootfs/      the extracted tree (used read-only by containers)
 *   <dataDir>/images/<encoded name>/image.json   { name, digest, importedAt }
 *
 * An import extracts into a temp directory beside the others and renames it into place, so a
 * crash never leaves a half image under a real name. The system's `tar` extracts as root keeping
 * numeric owners; GNU tar refuses members with `..` and defers dangerous symlinks, and the tarball
 * is the operator's (an admin command), not a task's. Names are Docker-like and are encoded into one
 * path component (`/` and `:` escaped), so a name never reaches outside `images/`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecretdError } from '../../errors.ts';
import { CommandSpawnError, lastLine, runCommand } from './_command.ts';
import { imageImportTimeoutMs, imageNameCharsMax } from './limits.ts';

export interface ImageInfo {
  readonly name: string;
  /** sha256 of the imported tarball, `sha256:<hex>`. */
  readonly digest: string;
  readonly importedAt: string;
  readonly rootfsPath: string;
}

export interface ImageStoreOptions {
  /** Clock for `importedAt`; default the system clock. */
  readonly now?: () => Date;
}

const namePattern = /^[a-z0-9][a-z0-9._/:-]*$/;

/** Checks a name and adds Docker's default tag: `busybox` → `busybox:latest`. */
export function normalizeImageName(name: string): string {
  if (name.length === 0 || name.length > imageNameCharsMax || !namePattern.test(name)) {
    throw new SecretdError(
      'invalid',
      `Image name '${name}' must be 1 to ${imageNameCharsMax} characters of [a-z0-9._/:-], starting with a letter or digit`,
    );
  }
  const tagged = name.lastIndexOf(':') > name.lastIndexOf('/');
  return tagged ? name : `${name}:latest`;
}

export class ImageStore {
  readonly dir: string;
  private readonly now: () => Date;

  constructor(dataDir: string, options: ImageStoreOptions = {}) {
    this.dir = join(dataDir, 'images');
    this.now = options.now ?? (() => new Date());
  }

  async importImage(name: string, tarballPath: string): Promise<ImageInfo> {
    const normalized = normalizeImageName(name);
    const fail = (
      code: 'invalid' | 'conflict' | 'internal' | 'unavailable',
      why: string,
    ): SecretdError => new SecretdError(code, `Cannot import image '${normalized}': ${why}`);
    const tarball = await stat(tarballPath).catch(() => null);
    if (tarball === null || !tarball.isFile())
      throw fail('invalid', `${tarballPath} is not a readable file`);
    const finalDir = this.imageDir(normalized);
    if (await exists(finalDir))
      throw fail('conflict', 'an image with this name exists: remove it first');
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const tempDir = join(this.dir, `.import-${randomBytes(8).toString('hex')}`);
    try {
      await mkdir(join(tempDir, 'rootfs'), { recursive: true, mode: 0o755 });
      let result;
      try {
        result = await runCommand(
          'tar',
          ['-x', '--numeric-owner', '-f', tarballPath, '-C', join(tempDir, 'rootfs')],
          { timeoutMs: imageImportTimeoutMs },
        );
      } catch (error) {
        if (error instanceof CommandSpawnError)
          throw fail('unavailable', `\`tar\` cannot be run (${error.errno})`);
        throw error;
      }
      if (result.timedOut)
        throw fail('internal', `tar did not finish within ${imageImportTimeoutMs} ms`);
      if (result.code !== 0)
        throw fail(
          'invalid',
          `tar failed: ${lastLine(result.stderr) || `exit code ${result.code}`}`,
        );
      const info = {
        name: normalized,
        digest: `sha256:${await sha256File(tarballPath)}`,
        importedAt: this.now().toISOString(),
      };
      await writeFile(join(tempDir, 'image.json'), JSON.stringify(info, null, 2) + '\n', {
        mode: 0o644,
      });
      try {
        await rename(tempDir, finalDir);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' || code === 'ENOTEMPTY')
          throw fail('conflict', 'an image with this name was imported meanwhile');
        throw error;
      }
      return { ...info, rootfsPath: join(finalDir, 'rootfs') };
    } finally {
      await rm(tempDir, { recursive: true, force: true });
    }
  }

  /** The root filesystem of an image, or SecretdError('not_found') saying how to import it. */
  async resolveImage(name: string): Promise<string> {
    const normalized = normalizeImageName(name);
    const rootfs = join(this.imageDir(normalized), 'rootfs');
    const info = await stat(rootfs).catch(() => null);
    if (info === null || !info.isDirectory()) {
      throw new SecretdError(
        'not_found',
        `Image '${name}' not found on this node: import it with \`secretd image import ${name} ROOTFS.tar\``,
      );
    }
    return rootfs;
  }

  async listImages(): Promise<ImageInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return [];
    }
    const images: ImageInfo[] = [];
    // Entries starting with '.' are imports or removals in progress.
    for (const entry of names.filter((n) => !n.startsWith('.')).sort()) {
      try {
        const info = JSON.parse(
          await readFile(join(this.dir, entry, 'image.json'), 'utf8'),
        ) as Omit<ImageInfo, 'rootfsPath'>;
        images.push({
          name: info.name,
          digest: info.digest,
          importedAt: info.importedAt,
          rootfsPath: join(this.dir, entry, 'rootfs'),
        });
      } catch {
        // A directory that is not an image (no metadata): not ours to list.
      }
    }
    return images;
  }

  /** Removes an image. The caller makes sure no task uses it (its containers' root would vanish). */
  async removeImage(name: string): Promise<void> {
    const normalized = normalizeImageName(name);
    const dir = this.imageDir(normalized);
    if (!(await exists(dir)))
      throw new SecretdError('not_found', `Image '${normalized}' not found on this node`);
    // Renamed away first, so the name is free at once and a crash mid-removal leaves no half image.
    const doomed = join(this.dir, `.remove-${randomBytes(8).toString('hex')}`);
    await rename(dir, doomed);
    await rm(doomed, { recursive: true, force: true });
  }

  private imageDir(normalized: string): string {
    return join(this.dir, encodeURIComponent(normalized));
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}
