/**
 * A member's disk, in memory: the FileSystem port (src/io/fs.ts) with exactly the durability that
 * port promises, and a crash that takes away whatever it does not promise.
 *
 *   - Bytes written through a handle land in the "page cache" at once (a read sees them) and are
 *     durable only when a later sync() completes. writeFile and truncate are durable on completion.
 *   - A name created, renamed or removed is durable only once syncDir of its directory completes.
 *   - Every operation completes after a seeded delay, on the scheduler, so disk and network
 *     interleave; a sync is slower than the rest, and any operation may spike.
 *   - A power loss (crash 'power') keeps, per directory, a prefix of the name changes made since its
 *     last syncDir (a journaling file system commits metadata in order), and per file all, none or a
 *     prefix of the unsynced bytes, the prefix cut at any byte and sometimes followed by zeros or
 *     garbage (a torn write). A process crash (crash 'process') loses nothing: the kernel keeps the
 *     page cache. Either way, operations in flight never complete, and a crashed process's later
 *     calls never return.
 *   - A handle opened with `preallocateBytes` extends the file ahead of its writes as the real one
 *     does (sparsely, not durably); its close cuts that off durably. A crash leaves the extension,
 *     zeros past whatever bytes survived: always after a process crash (the kernel keeps the file
 *     size), on half of power losses (as if a sync after the extension had recorded the size).
 *   - Knobs: sync() may fail with EIO (the WAL must then stop, never retry), and `lyingFsync` makes
 *     sync() return without making anything durable (the broken-disk variant).
 *
 * Not modelled: corruption of synced data, misdirected writes, ENOSPC, the page cache lying after
 * EIO without a crash. Directories are flat (list() shows files only): the WAL and snapshot store
 * need nothing more.
 */
import { preallocatedEnd, type FileHandle, type FileSystem } from '../../src/io/fs.ts';
import type { Prng } from './prng.ts';
import type { Scheduler } from './scheduler.ts';

export interface DiskFaults {
  /** Completion delay of ordinary operations, and of sync, in ms. */
  opMs: readonly [number, number];
  syncMs: readonly [number, number];
  /** Chance that an operation takes up to `spikeMs` longer. */
  spikeRate: number;
  spikeMs: number;
  /** Chance that a sync() fails with EIO. */
  syncErrorRate: number;
  /** sync() returns without making anything durable. */
  lyingFsync: boolean;
  /** Of a file's unsynced bytes on power loss: weights of keeping none, all, or a prefix. */
  crashKeep: { readonly none: number; readonly all: number; readonly prefix: number };
  /** Chance that a cut unsynced tail ends in zeros or garbage (a torn write). */
  tornRate: number;
}

export class SimIOError extends Error {
  readonly code = 'EIO';
}

export interface DiskStats {
  crashes: number;
  tornFiles: number;
  lostBytes: number;
  lostNameChanges: number;
  syncErrors: number;
  truncates: number;
  /** Crashes that left a preallocated file longer than its data, zeros past it. */
  zeroTails: number;
}

interface Inode {
  bytes: Uint8Array;
  size: number;
  /** Bytes [0, durable) survive a power loss. */
  durable: number;
  /** The size a preallocating handle extended the file to, zeros past `size` (0: none). */
  allocated: number;
}

/** One atomic change to a directory: a create or remove is one binding, a rename two. */
type NameChange = readonly (readonly [name: string, inode: Inode | null])[];

interface Dir {
  current: Map<string, Inode>;
  durable: Map<string, Inode>;
  pending: NameChange[];
}

export class SimDisk {
  readonly #scheduler: Scheduler;
  readonly #owner: number;
  readonly #prng: Prng;
  readonly #dirs = new Map<string, Dir>();
  #generation = 0;
  #crashAfter: { ops: number; readonly crash: () => void } | null = null;
  /** Until this time, every operation is `slowFactor` times slower (a nemesis action). */
  #slowUntil = 0;
  #slowFactor = 1;
  /** Mutable: the heal phase turns the faults off. */
  readonly faults: DiskFaults;
  readonly stats: DiskStats = {
    crashes: 0,
    tornFiles: 0,
    lostBytes: 0,
    lostNameChanges: 0,
    syncErrors: 0,
    truncates: 0,
    zeroTails: 0,
  };

  constructor(scheduler: Scheduler, owner: number, prng: Prng, faults: DiskFaults) {
    this.#scheduler = scheduler;
    this.#owner = owner;
    this.#prng = prng;
    this.faults = faults;
  }

  /**
   * Crashes the member in the middle of its `ops`-th next disk operation, which never completes:
   * a crash at a chosen point of a multi-step sequence (snapshot install, segment rotation,
   * torn-tail truncation), which random crash times rarely hit.
   */
  crashDuring(ops: number, crash: () => void): void {
    this.#crashAfter = { ops, crash };
  }

  slowDown(factor: number, untilMs: number): void {
    this.#slowFactor = factor;
    this.#slowUntil = untilMs;
  }

  /** The FileSystem one process sees; it goes dead when the disk crashes. */
  mount(): FileSystem {
    const generation = this.#generation;
    const op = <T>(sync: boolean, effect: () => T): Promise<T> =>
      this.#op(generation, sync, effect);
    const readFile = (path: string): Promise<Uint8Array> =>
      op(false, () => {
        const inode = this.#inode(path);
        return inode.bytes.slice(0, inode.size);
      });
    return {
      mkdirp: (dir) => op(false, () => this.#mkdirp(dir)),
      list: (dir) => op(false, () => [...this.#dir(dir).current.keys()]),
      readFile,
      mapFile: readFile, // nothing to map: a copy, as a read makes
      size: (path) => op(false, () => this.#inode(path).size),
      readRange: (path, offset, length) =>
        op(false, () => {
          const inode = this.#inode(path);
          return inode.bytes.slice(offset, Math.min(offset + length, inode.size));
        }),
      writeFile: (path, bytes) => op(false, () => this.#writeFile(path, bytes)),
      openAppend: (path, options) =>
        op(false, () =>
          this.#handle(generation, this.#inode(path), options?.preallocateBytes ?? 0),
        ),
      truncate: (path, size) => op(false, () => this.#truncate(this.#inode(path), size)),
      rename: (from, to) => op(false, () => this.#rename(from, to)),
      remove: (path) => op(false, () => this.#remove(path)),
      syncDir: (dir) => {
        const changes = this.#generation === generation ? this.#dir(dir).pending.length : 0;
        return op(true, () => this.#flushNames(this.#dir(dir), changes));
      },
    };
  }

  /** Every file as the running process sees it, for failure reports and tests. */
  files(): { readonly path: string; readonly bytes: Uint8Array; readonly durable: number }[] {
    const out: { path: string; bytes: Uint8Array; durable: number }[] = [];
    for (const [dirPath, dir] of [...this.#dirs].sort(([a], [b]) => (a < b ? -1 : 1))) {
      for (const [name, inode] of [...dir.current].sort(([a], [b]) => (a < b ? -1 : 1))) {
        out.push({
          path: `${dirPath}/${name}`,
          bytes: inode.bytes.slice(0, inode.size),
          durable: inode.durable,
        });
      }
    }
    return out;
  }

  /** The process dies; on 'power' the machine loses what was not durable. */
  crash(kind: 'power' | 'process'): void {
    this.#generation++;
    this.#crashAfter = null;
    this.stats.crashes++;
    const inodes = new Set<Inode>();
    for (const dir of this.#dirs.values()) {
      const kept =
        kind === 'process' ? dir.pending.length : this.#prng.intBetween(0, dir.pending.length);
      this.stats.lostNameChanges += dir.pending.length - kept;
      for (const change of dir.pending.slice(0, kept)) applyChange(dir.durable, change);
      dir.pending = [];
      dir.current = new Map(dir.durable);
      for (const inode of dir.durable.values()) inodes.add(inode);
    }
    for (const inode of inodes) {
      if (kind === 'power' && inode.size > inode.durable) this.#tear(inode);
      if (inode.allocated > inode.size && (kind === 'process' || this.#prng.chance(0.5))) {
        grow(inode, inode.allocated);
        inode.bytes.fill(0, inode.size, inode.allocated);
        inode.size = inode.allocated;
        this.stats.zeroTails++;
      }
      inode.allocated = 0;
      inode.durable = inode.size;
    }
  }

  #op<T>(generation: number, sync: boolean, effect: () => T): Promise<T> {
    // A crashed process's calls never return: it is not running any more.
    if (generation !== this.#generation) return new Promise<T>(() => {});
    const [lo, hi] = sync ? this.faults.syncMs : this.faults.opMs;
    let delay = this.#prng.between(lo, hi);
    if (this.#prng.chance(this.faults.spikeRate)) delay += this.#prng.float() * this.faults.spikeMs;
    if (this.#scheduler.now < this.#slowUntil) delay *= this.#slowFactor;
    return new Promise<T>((resolve, reject) => {
      this.#scheduler.after(delay, this.#owner, () => {
        if (generation !== this.#generation) return; // in flight at the crash: never completes
        if (this.#crashAfter !== null && --this.#crashAfter.ops <= 0) {
          const { crash } = this.#crashAfter;
          this.#crashAfter = null;
          crash();
          if (generation !== this.#generation) return; // crashed with this operation in flight
        }
        try {
          resolve(effect());
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  #handle(generation: number, inode: Inode, preallocateBytes: number): FileHandle {
    let position = inode.size;
    return {
      write: (bytes) => {
        if (generation !== this.#generation) return new Promise(() => {});
        // In the page cache at once: a crash before the write returns may keep any part of it.
        if (position !== inode.size)
          throw new Error(`sim-fs only appends (handle at ${position}, file size ${inode.size})`);
        const end = position + bytes.length;
        if (preallocateBytes > 0 && end > inode.allocated)
          inode.allocated = preallocatedEnd(end, preallocateBytes);
        grow(inode, end);
        inode.bytes.set(bytes, position);
        inode.size = position = end;
        return this.#op(generation, false, () => undefined);
      },
      sync: () => {
        const upTo = inode.size;
        return this.#op(generation, true, () => {
          if (this.#prng.chance(this.faults.syncErrorRate)) {
            this.stats.syncErrors++;
            throw new SimIOError('EIO: fdatasync failed (simulated)');
          }
          if (!this.faults.lyingFsync)
            inode.durable = Math.max(inode.durable, Math.min(upTo, inode.size));
        });
      },
      close: () =>
        this.#op(generation, false, () => {
          inode.allocated = 0; // cut off and synced
        }),
    };
  }

  #mkdirp(dir: string): void {
    const parts = dir.split('/').filter((part) => part.length > 0);
    for (let i = 1; i <= parts.length; i++) {
      const path = '/' + parts.slice(0, i).join('/');
      if (!this.#dirs.has(path))
        this.#dirs.set(path, { current: new Map(), durable: new Map(), pending: [] });
    }
  }

  #writeFile(path: string, bytes: Uint8Array): void {
    const [dir, name] = this.#split(path);
    const existing = dir.current.get(name);
    const inode = existing ?? { bytes: new Uint8Array(0), size: 0, durable: 0, allocated: 0 };
    inode.bytes = bytes.slice();
    inode.size = inode.durable = bytes.length;
    inode.allocated = 0;
    if (existing === undefined) this.#change(dir, [[name, inode]]);
  }

  #truncate(inode: Inode, size: number): void {
    this.stats.truncates++;
    grow(inode, size);
    inode.bytes.fill(0, inode.size, size);
    inode.size = inode.durable = size;
    inode.allocated = 0;
  }

  #rename(from: string, to: string): void {
    const [fromDir, fromName] = this.#split(from);
    const [toDir, toName] = this.#split(to);
    if (fromDir !== toDir)
      throw new Error(`sim-fs renames within one directory only: ${from} -> ${to}`);
    const inode = this.#inode(from);
    this.#change(fromDir, [
      [toName, inode],
      [fromName, null],
    ]);
  }

  #remove(path: string): void {
    const [dir, name] = this.#split(path);
    this.#inode(path);
    this.#change(dir, [[name, null]]);
  }

  #change(dir: Dir, change: NameChange): void {
    applyChange(dir.current, change);
    dir.pending.push(change);
  }

  #flushNames(dir: Dir, changes: number): void {
    for (const change of dir.pending.splice(0, changes)) applyChange(dir.durable, change);
  }

  /** Power loss on a file with unsynced bytes: keep none, all or a prefix, maybe torn. */
  #tear(inode: Inode): void {
    const unsynced = inode.size - inode.durable;
    const keep = this.#prng.weighted(this.faults.crashKeep);
    let cut =
      keep === 'none'
        ? inode.durable
        : keep === 'all'
          ? inode.size
          : inode.durable + this.#prng.intBetween(1, unsynced - 1);
    let size = cut;
    if (cut < inode.size && this.#prng.chance(this.faults.tornRate)) {
      size = cut + this.#prng.intBetween(1, inode.size - cut);
      const tail = this.#prng.chance(0.5)
        ? new Uint8Array(size - cut)
        : this.#prng.bytes(size - cut);
      inode.bytes.set(tail, cut);
      this.stats.tornFiles++;
    }
    cut = Math.min(cut, size);
    this.stats.lostBytes += inode.size - cut;
    inode.size = size;
  }

  #dir(path: string): Dir {
    const dir = this.#dirs.get(path);
    if (dir === undefined) throw fsError('ENOENT', `no such directory: ${path}`);
    return dir;
  }

  #split(path: string): [Dir, string] {
    const slash = path.lastIndexOf('/');
    return [this.#dir(path.slice(0, slash) || '/'), path.slice(slash + 1)];
  }

  #inode(path: string): Inode {
    const [dir, name] = this.#split(path);
    const inode = dir.current.get(name);
    if (inode === undefined) throw fsError('ENOENT', `no such file: ${path}`);
    return inode;
  }
}

function applyChange(names: Map<string, Inode>, change: NameChange): void {
  for (const [name, inode] of change) {
    if (inode === null) names.delete(name);
    else names.set(name, inode);
  }
}

function grow(inode: Inode, size: number): void {
  if (size <= inode.bytes.length) return;
  const bytes = new Uint8Array(Math.max(size, inode.bytes.length * 2, 4096));
  bytes.set(inode.bytes.subarray(0, inode.size));
  inode.bytes = bytes;
}

function fsError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}
