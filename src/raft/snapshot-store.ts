/**
 * Sealed snapshot files: `<term:016x>-<index:016x>.snap`, one seal over meta and data.
 *
 *   file = header ++ seal(dek, meta ++ data, aad: "snapshot" ++ header)
 *   header = "ssnp" | version u16 | flags u16 (0) | index u64 | term u64
 *
 * A snapshot is written as a temp file, synced, renamed and the directory synced, so a crash
 * leaves either the old set or the new file whole. The index and term are bound into the AEAD, so
 * a file renamed to pose as another snapshot fails. The previous snapshot is kept besides the
 * newest; older ones are deleted. A corrupt newest snapshot refuses to start rather than fall back:
 * the WAL behind it may already be compacted.
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
  readonly random: Random;
  readonly fs: FileSystem;
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

  private constructor(
    private readonly dir: string,
    private readonly options: SnapshotStoreOptions,
  ) {}

  /** Opens (creating) the directory and removes temp files a crash left behind. */
  static async open(dir: string, options: SnapshotStoreOptions): Promise<SnapshotStore> {
    const { fs } = options;
    await fs.mkdirp(dir);
    const temps = (await fs.list(dir)).filter((name) => name.endsWith(tempSuffix));
    for (const name of temps) await fs.remove(`${dir}/${name}`);
    if (temps.length > 0) await fs.syncDir(dir);
    return new SnapshotStore(dir, options);
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
    const body = seal(this.options.dek, payload, {
      aad: aadFor(header),
      keyId: this.options.keyId,
      random: this.options.random,
    });
    payload.fill(0); // best effort: drops our plaintext copy; the GC may hold others
    const bytes = new Uint8Array(headerBytes + body.length);
    bytes.set(header, 0);
    bytes.set(body, headerBytes);
    const path = `${this.dir}/${nameFor(index, term)}`;
    await fs.writeFile(path + tempSuffix, bytes);
    await fs.rename(path + tempSuffix, path);
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
    if (keyId !== this.options.keyId)
      throw corrupt(
        `it is sealed with key id ${keyId} but the snapshot key has id ${this.options.keyId}`,
      );
    let payload: Uint8Array;
    try {
      payload = open(this.options.dek, body, { aad: aadFor(bytes.subarray(0, headerBytes)) });
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
      const match = fileName.exec(name);
      if (match !== null)
        files.push({ term: parseInt(match[1]!, 16), index: parseInt(match[2]!, 16), name });
    }
    return files.sort((a, b) => a.index - b.index || a.term - b.term);
  }

  private async prune(): Promise<void> {
    const old = (await this.files()).slice(0, -snapshotsKept);
    for (const file of old) await this.options.fs.remove(`${this.dir}/${file.name}`);
    if (old.length > 0) await this.options.fs.syncDir(this.dir);
  }
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
