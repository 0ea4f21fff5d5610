/**
 * Sealed snapshot files: `<term:016x>-<index:016x>.snap`, one seal over meta and data.
 *
 *   file = header ++ seal(dek, meta ++ data, aad: "snapshot" ++ header)
 *   header = "ssnp" | version u16 | flags u16 (0) | index u64 | term u64
 *
 * A snapshot is written as a temp file, synced, renamed and the directory synced, so a crash
 * leaves either the old set or the new file whole. The index and term are bound into the AEAD, so
 * a file renamed to pose as another snapshot fails. The previous snapshot is kept besides the
 * newest when it is sealed with the current key; older ones, and any sealed with another key (a
 * rotation, `rotateKey`), are deleted. A corrupt newest snapshot refuses to start rather than fall
 * back: the WAL behind it may already be compacted.
 */
import { envelopeKeyId, open, seal } from '../crypto/aead.ts';
import type { Random } from '../crypto/random.ts';
import { SecretdError } from '../errors.ts';
import type { FileSystem } from '../io/fs.ts';
import { decodeSnapshotPayload, encodeSnapshotPayload } from './_wal-payload.ts';
import type { Snapshot } from './types.ts';

export interface SnapshotStoreOptions {
  readonly dek: Uint8Array;
  readonly keyId: number;
  /** Keys of a rotation not yet finished, besides `dek`: snapshots sealed under them are read. Default: none. */
  readonly olderKeys?: readonly SnapshotKey[];
  readonly random: Random;
  readonly fs: FileSystem;
}

export interface SnapshotKey {
  readonly dek: Uint8Array;
  readonly keyId: number;
}

interface SnapshotFile {
  readonly index: number;
  readonly term: number;
  readonly name: string;
}

const formatVersion = 1;
const headerBytes = 24;
const magic = [0x73, 0x73, 0x6e, 0x70]; // "ssnp"
const fileName = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const tempSuffix = '.tmp';
/** The newest and the one before it. */
const snapshotsKept = 2;

export class SnapshotStore {
  private queue: Promise<unknown> = Promise.resolve();
  /** The key id each snapshot file on disk is sealed with, by file name. */
  private readonly fileKeyIds = new Map<string, number>();

  private constructor(
    private readonly dir: string,
    private options: SnapshotStoreOptions,
  ) {}

  /** Opens (creating) the directory and removes temp files a crash left behind. */
  static async open(dir: string, options: SnapshotStoreOptions): Promise<SnapshotStore> {
    const { fs } = options;
    await fs.mkdirp(dir);
    const temps = (await fs.list(dir)).filter((name) => name.endsWith(tempSuffix));
    for (const name of temps) await fs.remove(`${dir}/${name}`);
    if (temps.length > 0) await fs.syncDir(dir);
    const store = new SnapshotStore(dir, options);
    for (const file of await store.files()) {
      const bytes = await fs.readFile(`${dir}/${file.name}`);
      store.fileKeyIds.set(
        file.name,
        bytes.length >= headerBytes + 5 ? envelopeKeyId(bytes.subarray(headerBytes)) : -1,
      );
    }
    return store;
  }

  /** Seals later snapshots with `key`; the next save deletes every snapshot sealed with another. */
  rotateKey(key: SnapshotKey): void {
    const older = [this.currentKey(), ...(this.options.olderKeys ?? [])].filter(
      (k) => k.keyId !== key.keyId,
    );
    this.options = { ...this.options, dek: key.dek, keyId: key.keyId, olderKeys: older };
  }

  /** The key id of each snapshot file on disk, oldest first (-1 for a file too short to say). */
  keyIds(): number[] {
    return [...this.fileKeyIds.entries()]
      .map(([name, keyId]) => ({ keyId, file: parseName(name)! }))
      .sort((a, b) => a.file.index - b.file.index || a.file.term - b.file.term)
      .map((f) => f.keyId);
  }

  private currentKey(): SnapshotKey {
    return { dek: this.options.dek, keyId: this.options.keyId };
  }

  /** Durably writes `snapshot`, then deletes all but it and the one before it. Saves run one at a time. */
  save(snapshot: Snapshot): Promise<void> {
    const run = this.queue.then(() => this.write(snapshot));
    this.queue = run.catch(() => {});
    return run;
  }

  private async write(snapshot: Snapshot): Promise<void> {
    const { fs } = this.options;
    const { index, term } = snapshot.meta;
    const header = new Uint8Array(headerBytes);
    const view = new DataView(header.buffer);
    header.set(magic, 0);
    view.setUint16(4, formatVersion);
    setU64(view, 8, index);
    setU64(view, 16, term);
    const payload = encodeSnapshotPayload(snapshot);
    const { dek, keyId } = this.options;
    const body = seal(dek, payload, { aad: aadFor(header), keyId, random: this.options.random });
    payload.fill(0); // best effort: drops our plaintext copy; the GC may hold others
    const bytes = new Uint8Array(headerBytes + body.length);
    bytes.set(header, 0);
    bytes.set(body, headerBytes);
    const path = `${this.dir}/${nameFor(index, term)}`;
    await fs.writeFile(path + tempSuffix, bytes);
    await fs.rename(path + tempSuffix, path);
    this.fileKeyIds.set(nameFor(index, term), keyId);
    await fs.syncDir(this.dir);
    await this.prune();
  }

  /** The newest snapshot, or null if there is none. */
  async loadLatest(): Promise<Snapshot | null> {
    const newest = (await this.files()).at(-1);
    if (newest === undefined) return null;
    const path = `${this.dir}/${newest.name}`;
    const bytes = await this.options.fs.readFile(path);
    const corrupt = (reason: string): SecretdError =>
      new SecretdError('corrupt', `Snapshot ${path} is corrupt: ${reason}; refusing to start`);
    if (bytes.length < headerBytes || magic.some((b, i) => bytes[i] !== b))
      throw corrupt('it has no snapshot header');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const version = view.getUint16(4);
    if (version !== formatVersion)
      throw corrupt(`it has format version ${version}, expected ${formatVersion}`);
    if (view.getUint16(6) !== 0) throw corrupt('it has unknown flags');
    if (getU64(view, 8) !== newest.index || getU64(view, 16) !== newest.term)
      throw corrupt('its header disagrees with its name');
    const body = bytes.subarray(headerBytes);
    const keyId = body.length >= 5 ? envelopeKeyId(body) : -1;
    const keys = [this.currentKey(), ...(this.options.olderKeys ?? [])];
    const key = keys.find((k) => k.keyId === keyId);
    if (key === undefined)
      throw corrupt(
        `it is sealed with key id ${keyId} but the snapshot key has id ${keys.map((k) => k.keyId).join(' or ')}`,
      );
    let payload: Uint8Array;
    try {
      payload = open(key.dek, body, { aad: aadFor(bytes.subarray(0, headerBytes)) });
    } catch (error) {
      throw corrupt(`${(error as Error).message} (wrong key or altered file)`);
    }
    let snapshot: Snapshot;
    try {
      snapshot = decodeSnapshotPayload(payload);
    } catch (error) {
      throw corrupt(`its payload is malformed (${(error as Error).message})`);
    }
    if (snapshot.meta.index !== newest.index || snapshot.meta.term !== newest.term)
      throw corrupt('its meta disagrees with its name');
    return snapshot;
  }

  /** Snapshot files, oldest first. */
  private async files(): Promise<SnapshotFile[]> {
    const files: SnapshotFile[] = [];
    for (const name of await this.options.fs.list(this.dir)) {
      const file = parseName(name);
      if (file !== null) files.push(file);
    }
    return files.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  /** Keeps the newest, and the one before it if it is sealed with the current key. */
  private async prune(): Promise<void> {
    const files = await this.files();
    const kept = files.slice(-snapshotsKept, -1);
    const old = [
      ...files.slice(0, -snapshotsKept),
      ...kept.filter((f) => this.fileKeyIds.get(f.name) !== this.options.keyId),
    ];
    for (const file of old) {
      await this.options.fs.remove(`${this.dir}/${file.name}`);
      this.fileKeyIds.delete(file.name);
    }
    if (old.length > 0) await this.options.fs.syncDir(this.dir);
  }
}

function parseName(name: string): SnapshotFile | null {
  const match = fileName.exec(name);
  return match === null
    ? null
    : { term: parseInt(match[1]!, 16), index: parseInt(match[2]!, 16), name };
}

function nameFor(index: number, term: number): string {
  return `${term.toString(16).padStart(16, '0')}-${index.toString(16).padStart(16, '0')}.snap`;
}

/** The whole header (magic, version, flags, index, term) is authenticated with the body. */
function aadFor(header: Uint8Array): Uint8Array {
  const aad = new Uint8Array(8 + headerBytes);
  aad.set(new TextEncoder().encode('snapshot'), 0);
  aad.set(header, 8);
  return aad;
}

function setU64(view: DataView, at: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new SecretdError('invalid', `Cannot save snapshot: ${n} is not a valid index or term`);
  view.setUint32(at, Math.floor(n / 2 ** 32));
  view.setUint32(at + 4, n >>> 0);
}

function getU64(view: DataView, at: number): number {
  return view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
}
