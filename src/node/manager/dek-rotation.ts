/**
 * This manager's DEK rotations (swarmkit's RaftDEKManager, in spirit). The cluster record counts
 * the rotations asked of every manager (`dekRotations`: `cluster rotate-keys`, and each time
 * autolock is turned on); the keys file records the count its DEK answers. When the cluster's is
 * higher, this manager rotates:
 *
 *   1. a new DEK (key id + 1) is written to the keys file as pending, beside the current one and
 *      wrapped as it is (one atomic write: before anything is sealed with it);
 *   2. Raft seals every new WAL record and snapshot with it at once, then snapshots and compacts
 *      until no record or snapshot sealed with the old DEK is left on disk (RaftNode.rotateKey);
 *   3. the keys file is written with the new DEK only: the old one is forgotten.
 *
 * A crash at any step leaves a keys file that opens what is on disk: the old DEK alone (before 1),
 * both (between 1 and 3: the log is opened with both and the rotation resumes at start), the new
 * one alone (after 3). Requests that arrive during a rotation are folded into one more rotation
 * after it (swarmkit's raft-dek-needs-rotation), which asks for the count current then.
 *
 * A keys file that records no count (a node that has just joined, with a DEK of its own that was
 * never on disk before) adopts the cluster's count once it has caught up, without rotating.
 */
import { zero, type Random } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { beginDekRotation, finishDekRotation, sealingKey } from '../data-dir/index.ts';
import type { RaftNode } from '../raft-io/index.ts';
import type { KeysFile } from './keys-file.ts';

export interface DekRotationOptions {
  readonly file: KeysFile;
  readonly raft: RaftNode;
  readonly random: Random;
  readonly log: (line: string) => void;
}

/** What `GET /secretd/raft/status` reports under `Encryption`. */
export interface EncryptionStatus {
  /** The key id new WAL records and snapshots are sealed with. */
  readonly KeyId: number;
  /** The lowest key id of anything on disk: WAL segments, snapshots and the keys file's DEKs. */
  readonly OldestKeyIdOnDisk: number;
}

export class DekRotation {
  readonly #options: DekRotationOptions;
  /** The highest count the cluster asked for so far. */
  #wanted = 0;
  #started = false;
  #running: Promise<void> | null = null;
  #idleWaiters: Array<() => void> = [];

  constructor(options: DekRotationOptions) {
    this.#options = options;
  }

  /** The cluster record's count, as each change to it is applied (before start too: it is kept). */
  request(count: number): void {
    this.#wanted = Math.max(this.#wanted, count);
    if (this.#started) this.#pump();
  }

  /** Once caught up with the leader: adopt the cluster's count if none is recorded, resume a rotation cut short, or begin one. */
  async start(): Promise<void> {
    const { file } = this.#options;
    const keys = file.keys;
    if (keys.dekRotation === undefined && keys.pendingDek === undefined)
      await file.update((k) => ({ ...k, dekRotation: this.#wanted }));
    this.#started = true;
    this.#pump();
  }

  /** Resolves when no rotation is running or due. */
  idle(): Promise<void> {
    if (this.#running === null && !this.#due()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  status(): EncryptionStatus {
    const keys = this.#options.file.keys;
    const onDisk = [
      ...this.#options.raft.keyIdsOnDisk(),
      keys.dekKeyId,
      ...(keys.pendingDek ? [keys.pendingDek.keyId] : []),
    ];
    return { KeyId: sealingKey(keys).keyId, OldestKeyIdOnDisk: Math.min(...onDisk) };
  }

  #due(): boolean {
    const keys = this.#options.file.keys;
    return keys.pendingDek !== undefined || this.#wanted > (keys.dekRotation ?? this.#wanted);
  }

  #pump(): void {
    if (this.#running !== null) return;
    if (!this.#due()) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
      return;
    }
    this.#running = this.#rotate()
      .catch((error: unknown) => {
        // Raft stopped (the manager is stopping): the keys file still holds both DEKs, and the
        // next start resumes. A failed keys-file write already went to onFatal.
        this.#options.log(
          `secretd: DEK rotation paused: ${(error as Error).message}; it resumes when the manager starts again`,
        );
        this.#started = false;
      })
      .finally(() => {
        this.#running = null;
        if (this.#started) this.#pump();
        else for (const resolve of this.#idleWaiters.splice(0)) resolve();
      });
  }

  async #rotate(): Promise<void> {
    const { file, raft, random, log } = this.#options;
    let keys = file.keys;
    if (keys.pendingDek === undefined) {
      const count = this.#wanted;
      const next = { dek: random(32), keyId: nextKeyId(keys.dekKeyId) };
      keys = await file.update((k) => beginDekRotation(k, next, count));
      log(`secretd: DEK rotation ${count}: sealing new records with key id ${next.keyId}`);
    }
    const pending = keys.pendingDek!;
    await raft.rotateKey(pending);
    const old = file.keys.dek;
    await file.update(finishDekRotation);
    zero(old); // best effort (see key-wrap.ts): nothing on disk is sealed with it any more
    log(
      `secretd: DEK rotation ${file.keys.dekRotation ?? 0} finished: nothing on disk is sealed with an older key than ${pending.keyId}`,
    );
  }
}

function nextKeyId(keyId: number): number {
  if (keyId >= 0xffffffff)
    throw new SecretdError('internal', `Cannot rotate the DEK: key id ${keyId} is the last one`);
  return keyId + 1;
}
