/**
 * The file operations the WAL and the snapshot store need, and nothing more, so a simulated disk
 * can implement the same port and lose exactly what a crash may lose. What is durable is explicit:
 *
 *   - bytes written through a `FileHandle` are durable only once a later `sync()` resolves; until
 *     then a crash may keep any prefix of them, possibly followed by garbage or zeros (a torn tail);
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
  close(): Promise<void>;
}

export interface FileSystem {
  mkdirp(dir: string): Promise<void>;
  /** Names (not paths) of the entries in `dir`, in no particular order. */
  list(dir: string): Promise<string[]>;
  readFile(path: string): Promise<Uint8Array>;
  /**
   * Creates or replaces `path` with `bytes`, durably; the name itself needs `syncDir`. `mode`: the
   * permissions of a file it creates (default 0600: owner only); a simulated disk may ignore it.
   */
  writeFile(path: string, bytes: Uint8Array, mode?: number): Promise<void>;
  /** Opens an existing file for appending. */
  openAppend(path: string): Promise<FileHandle>;
  /** Cuts the file to `size` bytes, durably. */
  truncate(path: string, size: number): Promise<void>;
  /** Atomically replaces `to` with `from`. */
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  /** Makes the names created, renamed or removed in `dir` durable (fsync of the directory). */
  syncDir(dir: string): Promise<void>;
}
