/**
 * The real `FileSystem` over `node:fs/promises` (implemented by Bun and Deno alike). Data syncs
 * use fdatasync: it flushes the file size too, which is all the WAL needs, and skips timestamps.
 * A failed sync is reported, never retried: after an fsync error the page cache may have dropped
 * the dirty pages, so the caller must stop rather than carry on (fsyncgate).
 *
 * Appends of up to `syncWriteBytesMax` go to the page cache with `writeSync`, on the event loop: a
 * WAL batch is a few KiB, which the kernel copies in microseconds, while Bun's `FileHandle.write`
 * spends more of the loop's time handing it to a thread than the copy takes, and answers later
 * (2 KiB: 26 µs of the loop and 80 µs until resolved, against 8 µs). Larger appends, every sync,
 * and the bytes of a new file (`writeFile`) go to a thread, so the loop goes on meanwhile: a new
 * file's first write allocates for it, and when a snapshot wrote its pieces as files, 16 at a
 * time and each synced, such writes on the loop held it for milliseconds (bench/README.md).
 */
import { writeSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { syncWriteBytesMax } from '../limits.ts';
import { dirname, resolve } from 'node:path';
import type { FileHandle as NodeFileHandle } from 'node:fs/promises';
import { preallocatedEnd, type AppendOptions, type FileHandle, type FileSystem } from './fs.ts';

/** Bun's read-only mapping of a whole file (undefined under Deno). */
const mmap = (
  globalThis as { Bun?: { mmap?: (path: string, options: { shared: boolean }) => Uint8Array } }
).Bun?.mmap;

export class NodeFileSystem implements FileSystem {
  async mkdirp(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true, mode: 0o700 }); // data dirs hold sealed secrets: owner only
    if (first === undefined) return;
    // Each new directory's name lives in its parent: sync from the deepest up to the first created.
    for (let path = resolve(dir); path !== dirname(path); path = dirname(path)) {
      await this.syncDir(dirname(path));
      if (path === resolve(first)) break;
    }
  }

  list(dir: string): Promise<string[]> {
    return readdir(dir);
  }

  async readFile(path: string): Promise<Uint8Array> {
    const buffer = await readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  }

  async mapFile(path: string): Promise<Uint8Array> {
    if (mmap === undefined) return this.readFile(path);
    try {
      return mmap(path, { shared: false });
    } catch {
      return this.readFile(path); // an empty file (nothing to map), or readFile's own error
    }
  }

  async size(path: string): Promise<number> {
    return (await stat(path)).size;
  }

  async readRange(path: string, offset: number, length: number): Promise<Uint8Array> {
    const handle = await open(path, 'r');
    try {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(out, done, length - done, offset + done);
        if (bytesRead === 0) break; // the file ends here
        done += bytesRead;
      }
      return done === length ? out : out.subarray(0, done);
    } finally {
      await handle.close();
    }
  }

  async writeFile(path: string, bytes: Uint8Array, mode = 0o600): Promise<void> {
    const handle = await open(path, 'w', mode);
    try {
      await writeAll(handle, bytes, 0, { onLoop: false });
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  async openAppend(path: string, options: AppendOptions = {}): Promise<FileHandle> {
    const handle = await open(path, 'r+');
    // Appends go at the end we track, not O_APPEND's: a position we own survives a truncate.
    let position = (await handle.stat()).size;
    // Preallocation extends the file sparsely (ftruncate): on ext4 an fdatasync into that space
    // measured 75-100 µs against 110-145 µs for one that also records a larger size
    // (fallocate and written zeros did no better than the sparse extension).
    const step = options.preallocateBytes ?? 0;
    let allocated = position;
    return {
      write: async (bytes) => {
        const end = position + bytes.length;
        if (step > 0 && end > allocated) {
          allocated = preallocatedEnd(end, step);
          await handle.truncate(allocated);
        }
        await writeAll(handle, bytes, position);
        position = end;
      },
      sync: () => handle.datasync(),
      close: async () => {
        try {
          if (allocated > position) {
            await handle.truncate(position);
            await handle.datasync();
          }
        } finally {
          await handle.close();
        }
      },
    };
  }

  async truncate(path: string, size: number): Promise<void> {
    const handle = await open(path, 'r+');
    try {
      await handle.truncate(size);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  rename(from: string, to: string): Promise<void> {
    return rename(from, to);
  }

  remove(path: string): Promise<void> {
    return unlink(path);
  }

  async syncDir(dir: string): Promise<void> {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/** All of `bytes` at `position`: small appends with writeSync, the rest on a thread (see the header). */
async function writeAll(
  handle: NodeFileHandle,
  bytes: Uint8Array,
  position: number,
  { onLoop = true } = {},
): Promise<void> {
  const inline = onLoop && bytes.length <= syncWriteBytesMax;
  let done = 0;
  while (done < bytes.length) {
    const [at, length] = [position + done, bytes.length - done];
    const bytesWritten = inline
      ? writeSync(handle.fd, bytes, done, length, at)
      : (await handle.write(bytes, done, length, at)).bytesWritten;
    if (bytesWritten <= 0)
      throw new Error(`Cannot write: the file accepted no bytes at offset ${position + done}`);
    done += bytesWritten;
  }
}
