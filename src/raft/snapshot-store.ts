/**
 * Sealed snapshot files, and the shared pieces they refer to.
 *
 *   <term:016x>-<index:016x>.snap = header ++ seal(dek, payload, aad: "snapshot" ++ header)
 *     header  = "ssnp" | version u16 | flags u16 (0) | index u64 | term u64
 *     payload = version 1: meta ++ data
 *               version 2: meta ++ u32 count ++ parts (_wal-payload.ts, encodeSnapshotParts):
 *                          each part is bytes held inline, or a shared piece's id and length
 *   <id:64 hex>-<keyId:08x>.piece = pieceHeader ++ seal(dek, bytes, aad: "snapshot-piece" ++ pieceHeader)
 *     pieceHeader = "sspc" | version u16 (1) | flags u16 (0) | id (32 bytes)
 *
 * The data of a snapshot is its parts' bytes in order. A piece that never changes (a full audit
 * segment: see SnapshotPiece) is written once, as its own file under its content id (the SHA-256
 * of its bytes), and every later snapshot that holds it refers to it by id and length instead of
 * sealing and writing it again: a snapshot costs what changed since the last one, not the whole
 * audit trail. Loading materialises the whole data: each piece's AEAD, id and length are
 * checked, and a missing or altered piece is the same `corrupt` refusal as an altered snapshot.
 * Version 1 files (one sealed body, data inline) still load, so existing data dirs open.
 *
 * Every file is written as a temp file, synced, renamed, and the directory synced; the pieces a
 * snapshot refers to are durable before the snapshot is renamed into place, so a crash leaves the
 * old set or the new one whole (and at worst a piece file no snapshot refers to, deleted by the
 * next save). The index and term are bound into a snapshot's AEAD, the content id into a piece's,
 * so a file renamed to pose as another fails. The previous snapshot is kept besides the newest
 * when it is sealed with the current key; older ones, any sealed with another key (a rotation,
 * `rotateKey`), and every piece file that no kept snapshot refers to or that is sealed with
 * another key, are deleted (a save writes each piece it refers to under the current key if it is
 * not there yet, so after a rotation nothing under the old key remains). A corrupt newest
 * snapshot refuses to start rather than fall back: the WAL behind it may already be compacted.
 */
import { createHash } from 'node:crypto';
import { envelopeKeyId, open, seal } from '../crypto/aead.ts';
import type { Random } from '../crypto/random.ts';
import { SecretdError } from '../errors.ts';
import type { FileSystem } from '../io/fs.ts';
import {
  decodeSnapshotParts,
  decodeSnapshotPayload,
  encodeSnapshotParts,
  pieceIdBytes,
  type SnapshotPart,
} from './_wal-payload.ts';
import type { Snapshot, SnapshotMeta, SnapshotPiece } from './types.ts';

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

/** A snapshot handed over in pieces (the store's `snapshotPieces()`), so shared ones are written once. */
export interface PiecedSnapshot {
  readonly meta: SnapshotMeta;
  readonly pieces: readonly SnapshotPiece[];
}

interface SnapshotFile {
  readonly index: number;
  readonly term: number;
  readonly name: string;
}

interface PieceFile {
  readonly id: string;
  readonly keyId: number;
  readonly name: string;
}

/** The content id of a piece: the SHA-256 of its bytes, in hex. */
export function pieceContentId(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A piece held inline in the snapshot file: `text` as UTF-8. */
export function textPiece(text: string): SnapshotPiece {
  const bytes = textEncoder.encode(text);
  return { length: bytes.length, bytes: () => bytes };
}

/** The data the pieces make up: their bytes in order. */
export function joinPieces(pieces: readonly SnapshotPiece[]): Uint8Array {
  return concat(pieces.map((piece) => piece.bytes()));
}

const textEncoder = new TextEncoder();

const formatVersion = 2;
const headerBytes = 24;
const magic = [0x73, 0x73, 0x6e, 0x70]; // "ssnp"
const fileName = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const pieceFormatVersion = 1;
const pieceHeaderBytes = 8 + pieceIdBytes;
const pieceMagic = [0x73, 0x73, 0x70, 0x63]; // "sspc"
const pieceName = /^([0-9a-f]{64})-([0-9a-f]{8})\.piece$/;
const tempSuffix = '.tmp';
/** The newest and the one before it. */
const snapshotsKept = 2;

export class SnapshotStore {
  private queue: Promise<unknown> = Promise.resolve();
  /** The key id each snapshot file on disk is sealed with, by file name. */
  private readonly fileKeyIds = new Map<string, number>();
  /** The piece ids each snapshot file refers to, by file name, once written or read here. */
  private readonly fileRefs = new Map<string, ReadonlySet<string>>();
  /** Piece files on disk, by file name. */
  private readonly pieces = new Map<string, PieceFile>();

  private constructor(
    private readonly dir: string,
    private options: SnapshotStoreOptions,
  ) {}

  /** Opens (creating) the directory and removes temp files a crash left behind. */
  static async open(dir: string, options: SnapshotStoreOptions): Promise<SnapshotStore> {
    const { fs } = options;
    await fs.mkdirp(dir);
    const names = await fs.list(dir);
    const temps = names.filter((name) => name.endsWith(tempSuffix));
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
    for (const name of names) {
      const piece = parsePieceName(name);
      if (piece !== null) store.pieces.set(name, piece);
    }
    return store;
  }

  /** Seals later snapshots with `key`; the next save deletes every snapshot and piece sealed with another. */
  rotateKey(key: SnapshotKey): void {
    const older = [this.currentKey(), ...(this.options.olderKeys ?? [])].filter(
      (k) => k.keyId !== key.keyId,
    );
    this.options = { ...this.options, dek: key.dek, keyId: key.keyId, olderKeys: older };
  }

  /**
   * The key id of each snapshot file on disk, oldest first (-1 for a file too short to say), then
   * of each piece file (its name says: the store names it so when it seals it).
   */
  keyIds(): number[] {
    const snapshots = [...this.fileKeyIds.entries()]
      .map(([name, keyId]) => ({ keyId, file: parseName(name)! }))
      .sort((a, b) => a.file.index - b.file.index || a.file.term - b.file.term)
      .map((f) => f.keyId);
    return [...snapshots, ...[...this.pieces.values()].map((p) => p.keyId)];
  }

  private currentKey(): SnapshotKey {
    return { dek: this.options.dek, keyId: this.options.keyId };
  }

  /**
   * Durably writes `snapshot` (and each shared piece not yet on disk under the current key), then
   * deletes all but it and the one before it, and the pieces neither refers to. Saves and loads
   * run one at a time.
   */
  save(snapshot: Snapshot | PiecedSnapshot): Promise<void> {
    const pieces: readonly SnapshotPiece[] =
      'pieces' in snapshot
        ? snapshot.pieces
        : [{ length: snapshot.data.length, bytes: () => snapshot.data }];
    return this.serially(() => this.write(snapshot.meta, pieces));
  }

  private serially<T>(run: () => Promise<T>): Promise<T> {
    const result = this.queue.then(run);
    this.queue = result.catch(() => {});
    return result;
  }

  private async write(meta: SnapshotMeta, pieces: readonly SnapshotPiece[]): Promise<void> {
    const { fs } = this.options;
    const { index, term } = meta;
    const header = snapshotHeader(index, term);
    const parts = await this.partsOf(pieces);
    const payload = encodeSnapshotParts(meta, parts);
    const { dek, keyId } = this.options;
    const body = seal(dek, payload, { aad: aadFor(header), keyId, random: this.options.random });
    payload.fill(0); // best effort: drops our plaintext copy; the GC may hold others
    const bytes = new Uint8Array(headerBytes + body.length);
    bytes.set(header, 0);
    bytes.set(body, headerBytes);
    const name = nameFor(index, term);
    const path = `${this.dir}/${name}`;
    await fs.writeFile(path + tempSuffix, bytes);
    await fs.rename(path + tempSuffix, path);
    this.fileKeyIds.set(name, keyId);
    this.fileRefs.set(name, new Set(pieces.flatMap((p) => (p.id === undefined ? [] : [p.id]))));
    await fs.syncDir(this.dir);
    await this.prune();
  }

  /**
   * The parts of a snapshot file: adjacent inline pieces joined, shared ones by reference, each
   * written first (durably: synced, renamed, the directory synced) if it is not on disk under
   * the current key.
   */
  private async partsOf(pieces: readonly SnapshotPiece[]): Promise<SnapshotPart[]> {
    const parts: SnapshotPart[] = [];
    let inline: Uint8Array[] = [];
    const flush = (): void => {
      if (inline.length === 0) return;
      parts.push({ kind: 'inline', bytes: concat(inline) });
      inline = [];
    };
    let written = 0;
    for (const piece of pieces) {
      if (piece.id === undefined) {
        const bytes = piece.bytes();
        if (piece.length !== bytes.length)
          throw pieceError(`a piece says it has ${piece.length} bytes but has ${bytes.length}`);
        inline.push(bytes);
        continue;
      }
      flush();
      if (!this.pieces.has(pieceFileName(piece.id, this.options.keyId))) {
        await this.writePiece(piece.id, piece);
        written++;
      }
      parts.push({ kind: 'shared', id: Buffer.from(piece.id, 'hex'), length: piece.length });
    }
    flush();
    if (written > 0) await this.options.fs.syncDir(this.dir);
    return parts;
  }

  private async writePiece(id: string, piece: SnapshotPiece): Promise<void> {
    const bytes = piece.bytes();
    // Checked before it is written, as after it is read back: a wrong id would be a wrong snapshot.
    if (!/^[0-9a-f]{64}$/.test(id) || pieceContentId(bytes) !== id)
      throw pieceError(`piece ${id.slice(0, 16)} is not the SHA-256 of its bytes`);
    if (piece.length !== bytes.length)
      throw pieceError(
        `piece ${id.slice(0, 16)} says it has ${piece.length} bytes but has ${bytes.length}`,
      );
    const { dek, keyId, fs } = this.options;
    const header = pieceHeader(id);
    const body = seal(dek, bytes, { aad: pieceAadFor(header), keyId, random: this.options.random });
    const out = new Uint8Array(pieceHeaderBytes + body.length);
    out.set(header, 0);
    out.set(body, pieceHeaderBytes);
    const name = pieceFileName(id, keyId);
    await fs.writeFile(`${this.dir}/${name}${tempSuffix}`, out);
    await fs.rename(`${this.dir}/${name}${tempSuffix}`, `${this.dir}/${name}`);
    this.pieces.set(name, { id, keyId, name });
  }

  /** The newest snapshot, or null if there is none. */
  loadLatest(): Promise<Snapshot | null> {
    return this.serially(async () => {
      const newest = (await this.files()).at(-1);
      return newest === undefined ? null : this.read(newest);
    });
  }

  /**
   * The snapshot at `meta`'s index and term (a leader sending it to a follower behind its log),
   * or null when no such file is on disk (a newer one replaced it meanwhile).
   */
  load(meta: { readonly index: number; readonly term: number }): Promise<Snapshot | null> {
    return this.serially(async () => {
      const file = (await this.files()).find((f) => f.index === meta.index && f.term === meta.term);
      return file === undefined ? null : this.read(file);
    });
  }

  private async read(file: SnapshotFile): Promise<Snapshot> {
    const path = `${this.dir}/${file.name}`;
    const corrupt = (reason: string): SecretdError =>
      new SecretdError('corrupt', `Snapshot ${path} is corrupt: ${reason}; refusing to start`);
    const { version, payload } = await this.openFile(file, corrupt);
    let snapshot: Snapshot;
    try {
      if (version === 1) {
        snapshot = decodeSnapshotPayload(payload);
        this.fileRefs.set(file.name, new Set());
      } else {
        const { meta, parts } = decodeSnapshotParts(payload);
        this.fileRefs.set(file.name, refsOf(parts));
        snapshot = { meta, data: await this.materialise(parts, corrupt) };
      }
    } catch (error) {
      if (error instanceof SecretdError) throw error;
      throw corrupt(`its payload is malformed (${(error as Error).message})`);
    }
    if (snapshot.meta.index !== file.index || snapshot.meta.term !== file.term)
      throw corrupt('its meta disagrees with its name');
    return snapshot;
  }

  /** Checks a snapshot file's header and opens its sealed payload. */
  private async openFile(
    file: SnapshotFile,
    corrupt: (reason: string) => SecretdError,
  ): Promise<{ version: number; payload: Uint8Array }> {
    const bytes = await this.options.fs.readFile(`${this.dir}/${file.name}`);
    if (bytes.length < headerBytes || magic.some((b, i) => bytes[i] !== b))
      throw corrupt('it has no snapshot header');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const version = view.getUint16(4);
    if (version !== 1 && version !== formatVersion)
      throw corrupt(`it has format version ${version}, expected 1 or ${formatVersion}`);
    if (view.getUint16(6) !== 0) throw corrupt('it has unknown flags');
    if (getU64(view, 8) !== file.index || getU64(view, 16) !== file.term)
      throw corrupt('its header disagrees with its name');
    const body = bytes.subarray(headerBytes);
    const key = this.keyFor(body, corrupt);
    try {
      return {
        version,
        payload: open(key.dek, body, { aad: aadFor(bytes.subarray(0, headerBytes)) }),
      };
    } catch (error) {
      throw corrupt(`${(error as Error).message} (wrong key or altered file)`);
    }
  }

  private keyFor(body: Uint8Array, corrupt: (reason: string) => SecretdError): SnapshotKey {
    const keyId = body.length >= 5 ? envelopeKeyId(body) : -1;
    const keys = [this.currentKey(), ...(this.options.olderKeys ?? [])];
    const key = keys.find((k) => k.keyId === keyId);
    if (key === undefined)
      throw corrupt(
        `it is sealed with key id ${keyId} but the snapshot key has id ${keys.map((k) => k.keyId).join(' or ')}`,
      );
    return key;
  }

  /** The data: inline parts as they are, shared ones read from their files and checked. */
  private async materialise(
    parts: readonly SnapshotPart[],
    corrupt: (reason: string) => SecretdError,
  ): Promise<Uint8Array> {
    const data = new Uint8Array(parts.reduce((sum, part) => sum + partLength(part), 0));
    let at = 0;
    for (const part of parts) {
      const bytes = part.kind === 'inline' ? part.bytes : await this.readPiece(part, corrupt);
      data.set(bytes, at);
      at += bytes.length;
    }
    return data;
  }

  private async readPiece(
    part: Extract<SnapshotPart, { kind: 'shared' }>,
    corrupt: (reason: string) => SecretdError,
  ): Promise<Uint8Array> {
    const id = Buffer.from(part.id).toString('hex');
    const what = `its piece ${id.slice(0, 16)}`;
    // Under the current key if there is one, else under any key this store reads.
    const keys = [this.currentKey(), ...(this.options.olderKeys ?? [])];
    const file = keys
      .map((k) => this.pieces.get(pieceFileName(id, k.keyId)))
      .find((f) => f !== undefined);
    if (file === undefined) throw corrupt(`${what} is missing`);
    const bytes = await this.options.fs.readFile(`${this.dir}/${file.name}`).catch(() => {
      throw corrupt(`${what} is missing`);
    });
    const expected = pieceHeader(id);
    if (bytes.length < pieceHeaderBytes || expected.some((b, i) => bytes[i] !== b))
      throw corrupt(`${what} has no piece header naming it`);
    const body = bytes.subarray(pieceHeaderBytes);
    const key = this.keyFor(body, (reason) => corrupt(`${what}: ${reason}`));
    if (key.keyId !== file.keyId)
      throw corrupt(`${what} is sealed with another key than its name says`);
    let plain: Uint8Array;
    try {
      plain = open(key.dek, body, { aad: pieceAadFor(expected) });
    } catch (error) {
      throw corrupt(`${what}: ${(error as Error).message} (wrong key or altered file)`);
    }
    if (plain.length !== part.length)
      throw corrupt(`${what} has ${plain.length} bytes, the snapshot says ${part.length}`);
    if (pieceContentId(plain) !== id) throw corrupt(`${what} is not the SHA-256 of its bytes`);
    return plain;
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

  /**
   * Keeps the newest snapshot, and the one before it if it is sealed with the current key; then
   * the pieces they refer to, under the current key.
   */
  private async prune(): Promise<void> {
    const { fs } = this.options;
    const files = await this.files();
    const kept = files.slice(-snapshotsKept, -1);
    const old = [
      ...files.slice(0, -snapshotsKept),
      ...kept.filter((f) => this.fileKeyIds.get(f.name) !== this.options.keyId),
    ];
    for (const file of old) {
      await fs.remove(`${this.dir}/${file.name}`);
      this.fileKeyIds.delete(file.name);
      this.fileRefs.delete(file.name);
    }
    const referenced = await this.referencedPieces(files.filter((f) => !old.includes(f)));
    const unused =
      referenced === null
        ? []
        : [...this.pieces.values()].filter(
            (p) => p.keyId !== this.options.keyId || !referenced.has(p.id),
          );
    for (const piece of unused) {
      await fs.remove(`${this.dir}/${piece.name}`);
      this.pieces.delete(piece.name);
    }
    if (old.length > 0 || unused.length > 0) await fs.syncDir(this.dir);
  }

  /** The ids the kept snapshots refer to, or null when one cannot be read (then no piece is deleted). */
  private async referencedPieces(kept: readonly SnapshotFile[]): Promise<Set<string> | null> {
    const referenced = new Set<string>();
    for (const file of kept) {
      let refs = this.fileRefs.get(file.name);
      if (refs === undefined) {
        try {
          const { version, payload } = await this.openFile(file, (reason) => pieceError(reason));
          refs = version === 1 ? new Set() : refsOf(decodeSnapshotParts(payload).parts);
        } catch {
          return null;
        }
        this.fileRefs.set(file.name, refs);
      }
      for (const id of refs) referenced.add(id);
    }
    return referenced;
  }
}

function refsOf(parts: readonly SnapshotPart[]): Set<string> {
  const refs = new Set<string>();
  for (const part of parts)
    if (part.kind === 'shared') refs.add(Buffer.from(part.id).toString('hex'));
  return refs;
}

function partLength(part: SnapshotPart): number {
  return part.kind === 'inline' ? part.bytes.length : part.length;
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function pieceError(reason: string): SecretdError {
  return new SecretdError('invalid', `Cannot save snapshot: ${reason}`);
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

function parsePieceName(name: string): PieceFile | null {
  const match = pieceName.exec(name);
  return match === null ? null : { id: match[1]!, keyId: parseInt(match[2]!, 16), name };
}

function pieceFileName(id: string, keyId: number): string {
  return `${id}-${keyId.toString(16).padStart(8, '0')}.piece`;
}

function snapshotHeader(index: number, term: number): Uint8Array {
  const header = new Uint8Array(headerBytes);
  const view = new DataView(header.buffer);
  header.set(magic, 0);
  view.setUint16(4, formatVersion);
  setU64(view, 8, index);
  setU64(view, 16, term);
  return header;
}

function pieceHeader(id: string): Uint8Array {
  const header = new Uint8Array(pieceHeaderBytes);
  const view = new DataView(header.buffer);
  header.set(pieceMagic, 0);
  view.setUint16(4, pieceFormatVersion);
  header.set(Buffer.from(id, 'hex'), 8);
  return header;
}

/** The whole header (magic, version, flags, index, term) is authenticated with the body. */
function aadFor(header: Uint8Array): Uint8Array {
  const aad = new Uint8Array(8 + headerBytes);
  aad.set(new TextEncoder().encode('snapshot'), 0);
  aad.set(header, 8);
  return aad;
}

/** A piece's header (magic, version, flags, content id) is authenticated with its bytes. */
function pieceAadFor(header: Uint8Array): Uint8Array {
  const label = new TextEncoder().encode('snapshot-piece');
  const aad = new Uint8Array(label.length + pieceHeaderBytes);
  aad.set(label, 0);
  aad.set(header, label.length);
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
