/**
 * The file operations the WAL and the snapshot store need, and nothing more, so a simulated disk
 * can implement the same port and lose exactly what a crash may lose. What is durable is explicit:
 *
 *   - bytes written through a `FileHandle` are durable only once a later `sync()` resolves; until
 *     then a crash may keep any prefix of them, possibly followed by garbage or zeros (a torn tail);
 *     a handle that preallocates may also leave zeros past its last write after a crash;
 *   - `writeFile` and `truncate` are durable (contents and size) when they resolve;
 *   - a name created, renamed or removed is durable only once `syncDir` of its directory resolves;
 *   - `mkdirp` is durable when it resolves (it syncs every parent it changed).
 *
 * Paths are absolute POSIX paths joined with '/'. Every call is asynchronous so a slow disk never
 * blocks the event loop (heartbeats and election timers must keep running while we wait on fsync).
 */
export interface FileHandle {
  /** Appends all of `bytes` at the end of the file. */
  write(bytes: Uint8Array): Promise<void>;
  /** fdatasync: every byte written through this handle before the call is durable when it resolves. */
  sync(): Promise<void>;
  /** Cuts off what a preallocating handle extended past its last write (durably), then closes. */
  close(): Promise<void>;
}

export interface AppendOptions {
  /**
   * Extend the file this many bytes at a time ahead of the writes, so that a sync does not also
   * have to record a new file size (on ext4 an fdatasync of a small append costs about a third
   * less then). What lies past the last write reads as zeros; `close` cuts it off, durably, but
   * a crash may leave it. Default 0: the file grows with each write.
   */
  readonly preallocateBytes?: number;
}

/** Where a handle preallocating `step` bytes at a time extends the file to once a write ends at `end`. */
export function preallocatedEnd(end: number, step: number): number {
  return (Math.floor(end / step) + 1) * step;
}

export interface FileSystem {
  mkdirp(dir: string): Promise<void>;
  /** Names (not paths) of the entries in `dir`, in no particular order. */
  list(dir: string): Promise<string[]>;
  readFile(path: string): Promise<Uint8Array>;
  /**
   * `readFile`, mapped where the runtime can (Bun.mmap): the kernel then maps the page cache's
   * pages, up to 16 at a fault, where a read copies every byte into fresh memory faulted in a page
   * at a time (a 4.9 MB snapshot: 14 ms against 40, bench/README.md, seventeenth session). For a
   * file nothing writes while its bytes are read (a snapshot, a pack, a WAL segment at open), read
   * at once and opened into fresh memory: a byte read after the file was cut short faults the
   * process. Where nothing can map (Deno, a simulated disk), it is readFile.
   */
  mapFile(path: string): Promise<Uint8Array>;
  /** The file's size in bytes. */
  size(path: string): Promise<number>;
  /** `length` bytes of the file from `offset`: fewer only where the file ends first. */
  readRange(path: string, offset: number, length: number): Promise<Uint8Array>;
  /**
   * Creates or replaces `path` with `bytes`, durably; the name itself needs `syncDir`. `mode`: the
   * permissions of a file it creates (default 0600: owner only); a simulated disk may ignore it.
   */
  writeFile(path: string, bytes: Uint8Array, mode?: number): Promise<void>;
  /** Opens an existing file for appending, at its end. */
  openAppend(path: string, options?: AppendOptions): Promise<FileHandle>;
  /** Cuts the file to `size` bytes, durably. */
  truncate(path: string, size: number): Promise<void>;
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  /** Makes the names created, renamed or removed in `dir` durable (fsync of the directory). */
  syncDir(dir: string): Promise<void>;
}
