/**
 * This manager's keys file (certificates/node-keys.json) while it runs: the keys as they are on
 * disk now, and the one writer that changes them. As swarmkit's KeyReadWriter, every write goes
 * through one queue, applies its change to the keys as the writes before it left them and wraps
 * them with the unlock key current at that moment, so a re-wrap (unlock key changed), a DEK
 * rotation step and a renewed TLS key never undo one another.
 *
 * EVERY write of the keys file by a running manager goes through `update` (or `rewrap`): a write
 * from a copy of the keys read earlier would drop a pending DEK or bring back a forgotten one,
 * and the log sealed under it could no longer be read.
 */
import type { Random } from '../../crypto/index.ts';
import type { FileSystem } from '../../io/fs.ts';
import { writeNodeKeys, type NodeKeys } from '../data-dir/index.ts';

export interface KeysFileOptions {
  readonly path: string;
  readonly random: Random;
  /** The data dir's disk (default: the real one). */
  readonly fs?: FileSystem;
  /** A write that failed: the file's state is unknown, the manager must stop. */
  readonly onFatal: (error: unknown) => void;
}

export class KeysFile {
  #keys: NodeKeys;
  #kek: Uint8Array | null;
  #writes: Promise<unknown> = Promise.resolve();
  readonly #options: KeysFileOptions;

  constructor(keys: NodeKeys, kek: Uint8Array | null, options: KeysFileOptions) {
    this.#keys = keys;
    this.#kek = kek;
    this.#options = options;
  }

  /** The keys as the last finished write left them (or as read at start). */
  get keys(): NodeKeys {
    return this.#keys;
  }

  /**
   * Queues a write: `change` gets the keys as the writes before it left them, its result is
   * written (wrapped by the unlock key current then), then `after` runs (still in the queue; a
   * renewal writes node.pem there). Resolves with the keys written.
   */
  update(
    change: (keys: NodeKeys) => NodeKeys,
    after?: (keys: NodeKeys) => Promise<void>,
  ): Promise<NodeKeys> {
    const run = this.#writes.then(async () => {
      const keys = change(this.#keys);
      await writeNodeKeys(
        this.#options.path,
        keys,
        this.#kek,
        this.#options.random,
        this.#options.fs,
      );
      this.#keys = keys;
      await after?.(keys);
      return keys;
    });
    this.#writes = run.catch((error: unknown) => this.#options.onFatal(error));
    return run;
  }

  /** The unlock key changed (or autolock went on or off): the same keys, wrapped by `kek`. */
  rewrap(kek: Uint8Array | null): Promise<NodeKeys> {
    this.#kek = kek;
    return this.update((keys) => keys);
  }

  /** Resolves once every write queued so far has finished (or failed: failures go to `onFatal`). */
  async settled(): Promise<void> {
    await this.#writes;
  }
}
