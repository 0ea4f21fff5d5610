/**
 * Sealed snapshot files, and the shared pieces they refer to.
 *
 *   <term:016x>-<index:016x>.snap = header ++ body
 *     header  = "ssnp" | version u16 | flags u16 (0) | index u64 | term u64
 *     version 3: body = chunks (below) of the payload, aad: "snapshot" ++ header
 *     version 2: body = seal(dek, payload, aad: "snapshot" ++ header), payload as in version 3
 *     version 1: body = seal(dek, meta ++ data, aad: "snapshot" ++ header)
 *     payload = meta ++ u32 count ++ parts (_wal-payload.ts, snapshotPartsStream): each part is
 *               bytes held inline, or a shared piece's content id and length (a named piece's
 *               name; a named piece may be kept as bytes that stand in the data as their base64:
 *               SnapshotPiece.base64, a secret's value)
 *   a piece = pieceHeader ++ chunks of the piece's bytes,
 *     aad: "snapshot-piece" ++ pieceHeader ++ content id
 *     pieceHeader = "sspc" | version u16 (2) | flags u16 (0) | name id (32 bytes)
 *     name id     = HMAC-SHA256(HMAC-SHA256(dek, "secretd snapshot piece name"), content id)
 *     (a named piece's id, its maker's name for bytes that never change, takes the content id's
 *     place everywhere: SnapshotPiece.named)
 *   <random id:32 hex>-<keyId:08x>.pack = packHeader ++ piece* ++ index ++ trailer (PackWriter):
 *     the pieces one save wrote, each found through the index by its name id
 *   <name id:64 hex>-<keyId:08x>.piece = a piece, in a file of its own (as saves wrote them until
 *     packs; version 1 pieces, which only version 2 snapshots refer to: named by the content id
 *     itself, body = seal(dek, bytes, aad: "snapshot-piece" ++ pieceHeader))
 *   chunks = one or more of: u32 length | seal(dek, up to sealChunkBytes of plaintext,
 *            aad: <the file's aad> ++ u32 chunk number ++ u8 final); the last is final, no other is
 *
 * Chunks: a file is sealed and written, and opened, a chunk at a time (1 MiB by default), so
 * neither needs a second whole copy of the payload; the chunk's number and whether it is the last
 * are bound into its AEAD, so a chunk removed, swapped, repeated, or the file cut at a chunk
 * boundary or extended, fails to open (`corrupt`) as an altered byte does.
 *
 * Pieces: the data of a snapshot is its parts' bytes in order. A piece that never changes (a full
 * audit segment, a secret version's value: see SnapshotPiece) is written once, and every later
 * snapshot that holds it refers to it by content id (the SHA-256 of its bytes; a secret value's
 * piece, by the id its maker names it with) and length instead of sealing and writing it again:
 * a snapshot costs what changed since the last one. A save
 * writes all its new pieces into one pack: a file each cost the kernel 4 to 16 times as much per
 * piece (bench/piece-files.ts). A piece is named by a keyed hash of its content id, never the
 * content id itself: a plain hash of a secret's value on disk would let anyone who reads the
 * directory test guesses of it. Loading materialises the whole data: each piece's AEAD, length
 * and content id are checked, and a missing or altered piece is the same `corrupt` refusal as an
 * altered snapshot (a named piece's id is not a hash of its bytes: its AEAD, which binds the id,
 * is its check). Piece files and version 1 and 2 files still load, so existing data dirs open.
 *
 * Every file is written as a temp file, synced, renamed, and the directory synced; the pieces a
 * snapshot refers to are durable before the snapshot is renamed into place, so a crash leaves the
 * old set or the new one whole (and at worst a pack no snapshot refers to, deleted by the next
 * save). The index and term are bound into a snapshot's AEAD, the name id and content id into a
 * piece's, so a file renamed, or a pack's entry moved, to pose as another fails. A snapshot's
 * pieces are sealed with the snapshot's key. The previous snapshot is kept besides the newest when
 * it is sealed with the current key; older ones, any sealed with another key (a rotation,
 * `rotateKey`), every piece file that no kept snapshot refers to or that is sealed with another
 * key, and every pack none of whose pieces is still read, are deleted (a save writes each piece
 * it refers to under the current key if it is not there yet, so after a rotation nothing under
 * the old key remains; and it writes again the pieces it refers to in a pack they are less than
 * half of, so that packs do not outlive their pieces for long). A corrupt newest snapshot refuses
 * to start rather than fall back: the WAL behind it may already be compacted.
 */
import { createHash, createHmac } from 'node:crypto';
import { envelopeKeyId, open, sealInto, sealOverheadBytes } from '../crypto/aead.ts';
import type { Random } from '../crypto/random.ts';
import type { Sha256 } from '../crypto/sha256.ts';
import { assert, SecretdError } from '../errors.ts';
import type { FileHandle, FileSystem } from '../io/fs.ts';
import {
  snapshotPackWriteBytes,
  snapshotSpareBytesMax,
  snapshotPieceWritesInFlight,
  snapshotSealChunkBytes,
} from '../limits.ts';
import {
  base64Length,
  decodeSnapshotParts,
  decodeSnapshotPayload,
  pieceIdBytes,
  snapshotPartsStream,
  type DecodedSnapshotPart,
  type SnapshotStreamPart,
} from './_wal-payload.ts';
import { SpareBytes } from './_spare-bytes.ts';
import type { Snapshot, SnapshotMeta, SnapshotPiece, SnapshotSpan } from './types.ts';

export interface SnapshotStoreOptions {
  readonly dek: Uint8Array;
  readonly keyId: number;
  /** Keys of a rotation not yet finished, besides `dek`: snapshots sealed under them are read. Default: none. */
  readonly olderKeys?: readonly SnapshotKey[];
  readonly random: Random;
  readonly fs: FileSystem;
  /** Plaintext bytes sealed per chunk. Default: snapshotSealChunkBytes. */
  readonly sealChunkBytes?: number;
  /** How a save computes pieces' content ids (src/io/sha256.ts). */
  readonly sha256: Sha256;
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

/**
 * A piece whose bytes are made from a buffer its owner wants to zero once no snapshot needs it
 * (a secret version's value): `save` calls `release()` once the save is over, written or failed.
 */
export interface ReleasedPiece extends SnapshotPiece {
  release(): void;
}

interface SnapshotFile {
  readonly index: number;
  readonly term: number;
  readonly name: string;
}

interface PieceFile {
  /** The id in its name: the keyed name id (version 2), or the content id (version 1). */
  readonly nameId: string;
  readonly keyId: number;
  /** Its name as a piece file's (`<name id>-<key id>.piece`): what snapshots' references use. */
  readonly name: string;
  /** Where it lies when it is an entry of a pack rather than a file of its own. */
  readonly pack?: PackedAt;
}

interface PackedAt {
  /** The pack's file name. */
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

/** A shared piece in a save: its content id, and its name id and file name under the save's key. */
interface NamedPiece {
  readonly id: string;
  readonly nameId: string;
  readonly name: string;
}

interface PackFile {
  readonly keyId: number;
  /** Bytes of all its entries, read or not: a pack mostly unread is written again (writeShared). */
  readonly bytes: number;
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

/** How many bytes a piece stands for in the data: its own, or their base64 (SnapshotPiece.base64). */
export function pieceDataLength(piece: SnapshotPiece): number {
  return piece.base64 === true ? base64Length(piece.length) : piece.length;
}

/**
 * The data the pieces make up: their bytes in order, each written into it (bytesInto) or made,
 * copied and dropped in turn (a fresh piece's copy zeroed); a base64 piece's bytes as their base64.
 */
export function joinPieces(pieces: readonly SnapshotPiece[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((sum, piece) => sum + pieceDataLength(piece), 0));
  let at = 0;
  for (const piece of pieces) {
    const length = pieceDataLength(piece);
    if (piece.bytesInto !== undefined && piece.base64 !== true) {
      checkLength(piece, piece.bytesInto(out.subarray(at, at + length)));
    } else {
      const bytes = checkedBytes(piece);
      if (piece.base64 === true) base64Into(bytes, out.subarray(at, at + length));
      else out.set(bytes, at);
      if (piece.fresh === true) bytes.fill(0);
    }
    at += length;
  }
  return out;
}

const textEncoder = new TextEncoder();

const formatVersion = 3;
const headerBytes = 24;
const magic = [0x73, 0x73, 0x6e, 0x70]; // "ssnp"
const fileName = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const pieceFormatVersion = 2;
const pieceHeaderBytes = 8 + pieceIdBytes;
const pieceMagic = [0x73, 0x73, 0x70, 0x63]; // "sspc"
const pieceName = /^([0-9a-f]{64})-([0-9a-f]{8})\.piece$/;
const packFormatVersion = 1;
const packHeaderBytes = 8;
const packMagic = [0x73, 0x73, 0x70, 0x6b]; // "sspk"
/** name id, offset u64, length u32 */
const packIndexEntryBytes = pieceIdBytes + 12;
/** entry count u32, "sspk" */
const packTrailerBytes = 8;
const packName = /^([0-9a-f]{32})-([0-9a-f]{8})\.pack$/;
const tempSuffix = '.tmp';
/** The newest and the one before it. */
const snapshotsKept = 2;
const snapshotLabel = textEncoder.encode('snapshot');
const pieceLabel = textEncoder.encode('snapshot-piece');
const nameKeyLabel = textEncoder.encode('secretd snapshot piece name');

export class SnapshotStore {
  private queue: Promise<unknown> = Promise.resolve();
  /** The key id each snapshot file on disk is sealed with, by file name. */
  private readonly fileKeyIds = new Map<string, number>();
  /** The piece file names each snapshot file refers to, by file name, once written or read here. */
  private readonly fileRefs = new Map<string, ReadonlySet<string>>();
  /** Pieces on disk, each a file of its own or an entry of a pack, by piece file name. */
  private readonly pieces = new Map<string, PieceFile>();
  /** Pack files on disk, by file name. */
  private readonly packs = new Map<string, PackFile>();
  /** The key that names pieces, by the key id of the key it is derived from. */
  private readonly nameKeys = new Map<number, Uint8Array>();
  /**
   * The names of the last save's shared pieces under its key, by content id: the next save finds
   * most of its pieces here instead of hashing each again (a keyed hash per piece per save was
   * O(pieces) on the loop: 10,000 values, about 9 ms of it at every save).
   */
  private lastNames: { readonly keyId: number; readonly byId: Map<string, NamedPiece> } = {
    keyId: -1,
    byId: new Map(),
  };
  /** The buffer the last file written was held in, for the next (ChunkedFile). */
  private readonly spare = new SpareBytes(snapshotSpareBytesMax);

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
    // The key id is in the first bytes: the rest of a file (megabytes of records) is read on load.
    for (const file of await store.files())
      store.fileKeyIds.set(
        file.name,
        fileKeyId(await fs.readRange(`${dir}/${file.name}`, 0, fileKeyIdBytes)),
      );
    for (const name of names) {
      const piece = parsePieceName(name);
      if (piece !== null) store.pieces.set(name, piece);
      const keyId = parsePackName(name);
      // A pack whose index cannot be read has no piece anyone can read: the next save deletes it.
      if (keyId !== null)
        store.registerPack(name, keyId, (await readPackIndex(fs, `${dir}/${name}`)) ?? []);
    }
    return store;
  }

  /** Records a pack on disk, and each of its pieces as lying there. */
  private registerPack(file: string, keyId: number, entries: readonly PackEntry[]): void {
    this.packs.set(file, { keyId, bytes: entries.reduce((sum, e) => sum + e.length, 0) });
    for (const { nameId, offset, length } of entries) {
      const name = pieceFileName(nameId, keyId);
      this.pieces.set(name, { nameId, keyId, name, pack: { file, offset, length } });
    }
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

  private keys(): SnapshotKey[] {
    return [this.currentKey(), ...(this.options.olderKeys ?? [])];
  }

  /**
   * Durably writes `snapshot` (and each shared piece not yet on disk under the current key), then
   * deletes all but it and the one before it, and the pieces neither refers to. Saves and loads
   * run one at a time. Each piece's bytes are made when they are written, one piece at a time;
   * a piece's `release()` (ReleasedPiece) is called once the save is over.
   */
  save(snapshot: Snapshot | PiecedSnapshot): Promise<void> {
    const pieces: readonly SnapshotPiece[] =
      'pieces' in snapshot
        ? snapshot.pieces
        : [{ length: snapshot.data.length, bytes: () => snapshot.data }];
    return this.serially(async () => {
      try {
        await this.write(snapshot.meta, pieces);
      } finally {
        for (const piece of pieces) (piece as Partial<ReleasedPiece>).release?.();
      }
    });
  }

  private serially<T>(run: () => Promise<T>): Promise<T> {
    const result = this.queue.then(run);
    this.queue = result.catch(() => {});
    return result;
  }

  private async write(meta: SnapshotMeta, pieces: readonly SnapshotPiece[]): Promise<void> {
    const { fs } = this.options;
    const key = this.currentKey();
    const { parts, refs } = await this.partsOf(pieces, key);
    const header = snapshotHeader(meta.index, meta.term);
    const name = nameFor(meta.index, meta.term);
    const path = `${this.dir}/${name}`;
    const file = new ChunkedFile(fs, path + tempSuffix, header, this.chunkBytes(), this.spare);
    try {
      const sealer = new ChunkSealer(
        this.sealer(key, concatBytes([snapshotLabel, header])),
        (length, sealInto) => file.writeWith(length, sealInto),
      );
      for (const bytes of snapshotPartsStream(meta, parts)) await sealer.push(bytes);
      await sealer.finish();
      await file.finish();
    } finally {
      await file.close();
    }
    await fs.rename(path + tempSuffix, path);
    this.fileKeyIds.set(name, key.keyId);
    this.fileRefs.set(name, refs);
    await fs.syncDir(this.dir);
    await this.prune();
  }

  /**
   * The parts of a snapshot file: adjacent inline pieces as one part (their bytes made only when
   * the file reaches them), shared ones by reference, each written first (durably: synced,
   * the directory synced) if it is not on disk under `key`; and the pieces referred to, by name.
   */
  private async partsOf(
    pieces: readonly SnapshotPiece[],
    key: SnapshotKey,
  ): Promise<{ parts: SnapshotStreamPart[]; refs: Set<string> }> {
    const names = await this.writeShared(pieces, key);
    const parts: SnapshotStreamPart[] = [];
    const refs = new Set<string>();
    let inline: SnapshotPiece[] = [];
    const flush = (): void => {
      if (inline.length === 0) return;
      const run = inline;
      parts.push({
        kind: 'inline',
        length: run.reduce((sum, p) => sum + p.length, 0),
        chunks: () => run.map((p) => checkedBytes(p)),
      });
      inline = [];
    };
    pieces.forEach((piece, i) => {
      const shared = names[i];
      if (shared === undefined) {
        inline.push(piece);
        return;
      }
      flush();
      refs.add(shared.name);
      parts.push({
        kind: 'shared',
        id: Buffer.from(shared.id, 'hex'),
        length: pieceDataLength(piece),
        named: piece.named === true,
        ...(piece.base64 === true ? { stored: piece.length } : {}),
      });
    });
    flush();
    return { parts, refs };
  }

  /**
   * Each shared piece's content id and file name under `key` (undefined for an inline piece), once
   * every shared piece not on disk under `key` is written: all of them into one new pack, its
   * index last, synced and renamed into place (`PackWriter`). A piece with its maker's content id
   * is checked against its bytes through the `sha256` port, and only if it is new (the check a
   * read makes: a wrong id would be a wrong snapshot); a named piece is not hashed at all. The
   * pieces this snapshot refers to in a pack of which they are less than half (the rest no longer
   * referred to) are written into the new pack too, so that the old one is deleted and packs do
   * not pile up. Several at a time, with the loop
   * turning between groups, so that hundreds of new values do not hold it.
   */
  private async writeShared(
    pieces: readonly SnapshotPiece[],
    key: SnapshotKey,
  ): Promise<(NamedPiece | undefined)[]> {
    const known = this.lastNames.keyId === key.keyId ? this.lastNames.byId : undefined;
    const used = new Map<string, NamedPiece>();
    const nameOf = (id: string): NamedPiece => {
      const named = used.get(id) ?? known?.get(id) ?? this.named(id, key);
      used.set(id, named);
      return named;
    };
    const names = pieces.map((piece) => {
      const id = piece.id;
      if (id === undefined) {
        if (piece.named === true) throw pieceError('a named piece has no id');
        if (piece.base64 === true) throw pieceError('a base64 piece has no id');
        return undefined;
      }
      if (piece.base64 === true && piece.named !== true)
        throw pieceError(`base64 piece ${id.slice(0, 16)} is not a named one`);
      if (!known?.has(id) && !/^[0-9a-f]{64}$/.test(id))
        throw pieceError(`piece id ${id.slice(0, 16)} is not 64 hex digits`);
      return nameOf(id);
    });
    // Names depend on the content id and the key alone: right whether or not this save succeeds.
    this.lastNames = { keyId: key.keyId, byId: used };
    const sparse = this.sparsePacks(names, key);
    const stays = (name: string): boolean => {
      const file = this.pieces.get(name);
      return file !== undefined && (file.pack === undefined || !sparse.has(file.pack.file));
    };
    const work = [...names.keys()].filter((i) => {
      const known = names[i];
      return known !== undefined && !stays(known.name);
    });
    if (work.length === 0) return names;
    const pack = new PackWriter(
      this.options.fs,
      this.dir,
      packFileName(Buffer.from(this.options.random(16)).toString('hex'), key.keyId),
      this.spare,
    );
    const packed = new Set<string>(); // piece names, in the new pack
    const lent = new LentBuffers();
    const settle = async (i: number): Promise<void> => {
      const piece = pieces[i]!;
      const made = lent.make(piece);
      const bytes = made.bytes;
      try {
        const named = names[i]!;
        // A named piece's id is its maker's name for it: no hash. A content id is checked.
        if (piece.named !== true && (await this.contentId(bytes)) !== named.id)
          throw pieceError(`piece ${named.id.slice(0, 16)} is not the SHA-256 of its bytes`);
        if (packed.has(named.name)) return; // twice in this snapshot
        packed.add(named.name);
        await pack.add(named.nameId, this.sealedPiece(named, bytes, key));
      } finally {
        // Hashed, and sealed once add() has settled (or never to be): a secret's copy goes.
        made.done();
      }
    };
    try {
      for (let at = 0; at < work.length; at += snapshotPieceWritesInFlight) {
        // Every piece of the group done before a failure is thrown: nothing runs on after the save.
        const group = work.slice(at, at + snapshotPieceWritesInFlight);
        const failed = (await Promise.allSettled(group.map(settle))).find(
          (outcome) => outcome.status === 'rejected',
        );
        if (failed !== undefined) throw failed.reason;
      }
      if (packed.size === 0) return names; // every piece was on disk after all: no file made
      const entries = await pack.finish();
      await this.options.fs.syncDir(this.dir);
      this.registerPack(pack.name, key.keyId, entries);
    } catch (error) {
      await pack.abort();
      throw error;
    }
    return names;
  }

  /** Packs under `key` of which the pieces named here are less than half the bytes. */
  private sparsePacks(names: readonly (NamedPiece | undefined)[], key: SnapshotKey): Set<string> {
    const referenced = new Map<string, number>();
    const seen = new Set<string>();
    for (const known of names) {
      if (known === undefined || seen.has(known.name)) continue;
      seen.add(known.name);
      const at = this.pieces.get(known.name)?.pack;
      if (at !== undefined) referenced.set(at.file, (referenced.get(at.file) ?? 0) + at.length);
    }
    const sparse = new Set<string>();
    for (const [file, pack] of this.packs)
      if (pack.keyId === key.keyId && 2 * (referenced.get(file) ?? 0) < pack.bytes)
        sparse.add(file);
    return sparse;
  }

  /** pieceContentId through the `sha256` port. */
  private async contentId(bytes: Uint8Array): Promise<string> {
    const digest = await this.options.sha256(bytes);
    return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex');
  }

  /** A piece's name id and file name under `key` (one keyed hash). */
  private named(id: string, key: SnapshotKey): NamedPiece {
    const nameId = this.nameId(id, key);
    return { id, nameId, name: pieceFileName(nameId, key.keyId) };
  }

  /**
   * A piece as a version 2 piece file's bytes (a pack's entry): its header, then its chunks; sealed
   * when the pack places them (PackWriter.add).
   */
  private sealedPiece(piece: NamedPiece, bytes: Uint8Array, key: SnapshotKey): SealedBytes {
    const header = pieceHeader(piece.nameId, pieceFormatVersion);
    const aad = concatBytes([pieceLabel, header, Buffer.from(piece.id, 'hex')]);
    const sealer = this.sealer(key, aad);
    return {
      length: sealedWholeLength(header, bytes, sealer.chunkBytes),
      sealInto: (out, at) => sealWholeInto(header, bytes, sealer, out, at),
    };
  }

  private chunkBytes(): number {
    return this.options.sealChunkBytes ?? snapshotSealChunkBytes;
  }

  private sealer(key: SnapshotKey, aad: Uint8Array): ChunkSealerOptions {
    return {
      chunkBytes: this.chunkBytes(),
      sealInto: (plain, n, final, out, at) => {
        sealInto(
          key.dek,
          [plain],
          { aad: chunkAad(aad, n, final), keyId: key.keyId, random: this.options.random },
          out,
          at,
        );
      },
    };
  }

  /** The id a piece file is named by under `key`: a keyed hash of the content id (see the header). */
  private nameId(contentId: string, key: SnapshotKey): string {
    let nameKey = this.nameKeys.get(key.keyId);
    if (nameKey === undefined) {
      nameKey = createHmac('sha256', key.dek).update(nameKeyLabel).digest();
      this.nameKeys.set(key.keyId, nameKey);
    }
    return createHmac('sha256', nameKey).update(Buffer.from(contentId, 'hex')).digest('hex');
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
    const opened = await this.openFile(file, corrupt);
    let snapshot: Snapshot;
    try {
      if (opened.version === 1) {
        snapshot = decodeSnapshotPayload(opened.payload[0]!);
        this.fileRefs.set(file.name, new Set());
      } else {
        const { meta, parts } = decodeSnapshotParts(opened.payload);
        this.fileRefs.set(file.name, this.refsOf(parts, opened));
        const data = await this.materialise(parts, opened, corrupt);
        const shared = sharedSpans(parts);
        snapshot = shared.length === 0 ? { meta, data } : { meta, data, shared };
      }
    } catch (error) {
      if (error instanceof SecretdError) throw error;
      throw corrupt(`its payload is malformed (${(error as Error).message})`);
    }
    if (snapshot.meta.index !== file.index || snapshot.meta.term !== file.term)
      throw corrupt('its meta disagrees with its name');
    return snapshot;
  }

  /** Checks a snapshot file's header and opens its sealed payload (chunk by chunk in version 3). */
  private async openFile(
    file: SnapshotFile,
    corrupt: (reason: string) => SecretdError,
  ): Promise<OpenedSnapshot> {
    const bytes = await this.options.fs.mapFile(`${this.dir}/${file.name}`);
    if (bytes.length < headerBytes || magic.some((b, i) => bytes[i] !== b))
      throw corrupt('it has no snapshot header');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const version = view.getUint16(4);
    if (version < 1 || version > formatVersion)
      throw corrupt(`it has format version ${version}, expected 1 to ${formatVersion}`);
    if (view.getUint16(6) !== 0) throw corrupt('it has unknown flags');
    if (getU64(view, 8) !== file.index || getU64(view, 16) !== file.term)
      throw corrupt('its header disagrees with its name');
    const header = bytes.subarray(0, headerBytes);
    const body = bytes.subarray(headerBytes);
    const aad = concatBytes([snapshotLabel, header]);
    if (version === 3) {
      const chunks: Uint8Array[] = [];
      const key = openChunks(body, this.keys(), aad, corrupt, (plain) => chunks.push(plain));
      return { version, payload: chunks, key };
    }
    const key = this.keyFor(body, corrupt);
    try {
      return { version, payload: [open(key.dek, body, { aad })], key };
    } catch (error) {
      throw corrupt(`${(error as Error).message} (wrong key or altered file)`);
    }
  }

  private keyFor(body: Uint8Array, corrupt: (reason: string) => SecretdError): SnapshotKey {
    return keyNamed(body.length >= 5 ? envelopeKeyId(body) : -1, this.keys(), corrupt);
  }

  /** The piece files a version 2 or 3 snapshot refers to. */
  private refsOf(parts: readonly DecodedSnapshotPart[], opened: OpenedSnapshot): Set<string> {
    const refs = new Set<string>();
    for (const part of parts)
      if (part.kind === 'shared')
        for (const name of this.pieceNames(Buffer.from(part.id).toString('hex'), opened))
          refs.add(name);
    return refs;
  }

  /**
   * The names a shared part's piece may have: under the snapshot's own key (version 3), or, for a
   * version 2 snapshot, its content id under any key this store reads (current first).
   */
  private pieceNames(contentId: string, opened: OpenedSnapshot): string[] {
    if (opened.version === 3)
      return [pieceFileName(this.nameId(contentId, opened.key), opened.key.keyId)];
    return this.keys().map((k) => pieceFileName(contentId, k.keyId));
  }

  /**
   * The data: inline parts as they are, shared ones read from their files and checked. A pack is
   * mapped once for all the pieces read from it (a piece each for 10,000 values of 1 KiB or more):
   * snapshot files and packs never change in place, and what is read from them is opened into
   * fresh memory (FileSystem.mapFile).
   */
  private async materialise(
    parts: readonly DecodedSnapshotPart[],
    opened: OpenedSnapshot,
    corrupt: (reason: string) => SecretdError,
  ): Promise<Uint8Array> {
    const data = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    const packs = new Map<string, Promise<Uint8Array>>();
    const scratch = new Scratch();
    let at = 0;
    try {
      for (const part of parts) {
        if (part.kind === 'inline')
          for (const view of part.views) {
            data.set(view, at);
            at += view.length;
          }
        else {
          const into = data.subarray(at, at + part.length);
          await this.readPiece(part, opened, into, corrupt, packs, scratch);
          at += part.length;
        }
      }
    } finally {
      scratch.zero(); // a piece refused halfway leaves its bytes there
    }
    return data;
  }

  /** Reads a shared part's piece into `into` (exactly its length), checking everything. */
  private async readPiece(
    part: Extract<DecodedSnapshotPart, { kind: 'shared' }>,
    opened: OpenedSnapshot,
    into: Uint8Array,
    corrupt: (reason: string) => SecretdError,
    packs: Map<string, Promise<Uint8Array>>,
    scratch: Scratch,
  ): Promise<void> {
    const id = Buffer.from(part.id).toString('hex');
    const what = `its piece ${id.slice(0, 16)}`;
    const file = this.pieceNames(id, opened)
      .map((name) => this.pieces.get(name))
      .find((f) => f !== undefined);
    if (file === undefined) throw corrupt(`${what} is missing`);
    const { pack } = file;
    const bytes = await (
      pack === undefined
        ? this.options.fs.readFile(`${this.dir}/${file.name}`)
        : this.packEntry(pack, packs)
    ).catch(() => {
      throw corrupt(`${what} is missing`);
    });
    const version = opened.version === 3 ? pieceFormatVersion : 1;
    const header = pieceHeader(file.nameId, version);
    if (bytes.length < pieceHeaderBytes || header.some((b, i) => bytes[i] !== b))
      throw corrupt(`${what} has no piece header naming it`);
    const body = bytes.subarray(pieceHeaderBytes);
    const inPiece = (reason: string): SecretdError => corrupt(`${what}: ${reason}`);
    // A piece stored raw is opened into the load's scratch bytes, then stands in the data as its
    // base64: one array for all of them, where a new one per piece cost a restart of 3,000 values
    // of 64 KiB their page faults.
    const target = part.stored === undefined ? into : scratch.take(part.stored);
    let length = 0;
    const sink = (plain: Uint8Array): void => {
      if (length + plain.length > target.length)
        throw corrupt(`${what} has more bytes than the snapshot says (${target.length})`);
      target.set(plain, length);
      length += plain.length;
      plain.fill(0); // best effort: copied into the data
    };
    let key: SnapshotKey;
    if (version === 1) {
      key = this.keyFor(body, inPiece);
      let plain: Uint8Array;
      try {
        plain = open(key.dek, body, { aad: concatBytes([pieceLabel, header]) });
      } catch (error) {
        throw corrupt(`${what}: ${(error as Error).message} (wrong key or altered file)`);
      }
      sink(plain);
    } else {
      const aad = concatBytes([pieceLabel, header, part.id]);
      key = openChunks(body, [opened.key], aad, inPiece, sink);
    }
    if (key.keyId !== file.keyId)
      throw corrupt(`${what} is sealed with another key than its name says`);
    if (length !== target.length)
      throw corrupt(`${what} has ${length} bytes, the snapshot says ${target.length}`);
    if (target !== into) {
      base64Into(target, into);
      target.fill(0); // best effort: its base64 is in the data
    }
    // A named piece's id is its maker's, bound by the AEAD above; a content id is also checked.
    if (part.named !== true && pieceContentId(into) !== id)
      throw corrupt(`${what} is not the SHA-256 of its bytes`);
  }

  /** A pack entry's bytes (fewer where the pack ends first), the pack mapped once into `packs`. */
  private async packEntry(
    pack: PackedAt,
    packs: Map<string, Promise<Uint8Array>>,
  ): Promise<Uint8Array> {
    let whole = packs.get(pack.file);
    if (whole === undefined) {
      whole = this.options.fs.mapFile(`${this.dir}/${pack.file}`);
      packs.set(pack.file, whole);
    }
    return (await whole).subarray(pack.offset, pack.offset + pack.length);
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
            (p) => p.keyId !== this.options.keyId || !referenced.has(p.name),
          );
    for (const piece of unused) {
      if (piece.pack === undefined) await fs.remove(`${this.dir}/${piece.name}`);
      this.pieces.delete(piece.name);
    }
    // A pack goes once no piece is read from it: its pieces unused, or written again elsewhere.
    const located = new Set([...this.pieces.values()].map((p) => p.pack?.file));
    const emptied =
      referenced === null ? [] : [...this.packs.keys()].filter((file) => !located.has(file));
    for (const file of emptied) {
      await fs.remove(`${this.dir}/${file}`);
      this.packs.delete(file);
    }
    if (old.length > 0 || unused.length > 0 || emptied.length > 0) await fs.syncDir(this.dir);
  }

  /** The piece files the kept snapshots refer to, or null when one cannot be read (then no piece is deleted). */
  private async referencedPieces(kept: readonly SnapshotFile[]): Promise<Set<string> | null> {
    const referenced = new Set<string>();
    for (const file of kept) {
      let refs = this.fileRefs.get(file.name);
      if (refs === undefined) {
        try {
          const opened = await this.openFile(file, (reason) => pieceError(reason));
          refs =
            opened.version === 1
              ? new Set()
              : this.refsOf(decodeSnapshotParts(opened.payload).parts, opened);
        } catch {
          return null;
        }
        this.fileRefs.set(file.name, refs);
      }
      for (const name of refs) referenced.add(name);
    }
    return referenced;
  }
}

interface OpenedSnapshot {
  readonly version: number;
  /** As it was opened: a chunk at a time in version 3, whole before. */
  readonly payload: readonly Uint8Array[];
  /** The key the snapshot is sealed with (and, in version 3, its pieces). */
  readonly key: SnapshotKey;
}

interface ChunkSealerOptions {
  readonly chunkBytes: number;
  /** Seals `plain` as chunk `n` into `out` at `at` (plain.length + sealOverheadBytes bytes). */
  readonly sealInto: (
    plain: Uint8Array,
    n: number,
    final: boolean,
    out: Uint8Array,
    at: number,
  ) => void;
}

/**
 * Seals what is pushed into it in chunks of `chunkBytes` and hands each out (its u32 length, then
 * its envelope) as soon as it is full; `finish` seals the rest as the final chunk (possibly empty).
 * A full chunk is sealed only once more bytes arrive, so the last chunk is always the final one.
 */
class ChunkSealer {
  private readonly buffer: Uint8Array;
  private filled = 0;
  private n = 0;

  constructor(
    private readonly options: ChunkSealerOptions,
    /** Takes a chunk's frame of `length` bytes, which `sealInto` seals where it is placed. */
    private readonly emit: (
      length: number,
      sealInto: (out: Uint8Array, at: number) => void,
    ) => Promise<void>,
  ) {
    if (!Number.isInteger(options.chunkBytes) || options.chunkBytes < 1)
      throw new SecretdError(
        'invalid',
        `Cannot save snapshot: chunk size ${options.chunkBytes} is not a positive integer`,
      );
    this.buffer = new Uint8Array(options.chunkBytes);
  }

  async push(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      if (this.filled === this.buffer.length) await this.seal(false);
      const take = Math.min(bytes.length - at, this.buffer.length - this.filled);
      this.buffer.set(bytes.subarray(at, at + take), this.filled);
      this.filled += take;
      at += take;
    }
  }

  async finish(): Promise<void> {
    await this.seal(true);
    this.buffer.fill(0); // best effort: drops our plaintext copy; the GC may hold others
  }

  private async seal(final: boolean): Promise<void> {
    const plain = this.buffer.subarray(0, this.filled);
    const n = this.n++;
    // The frame is sealed in place before emit's first await: the buffer may be refilled after.
    let sealed = false;
    const emitted = this.emit(4 + plain.length + sealOverheadBytes, (out, at) => {
      chunkFrame(plain, n, final, this.options, out, at);
      sealed = true;
    });
    assert(sealed, 'a chunk is sealed as it is emitted');
    this.filled = 0;
    await emitted;
  }
}

/**
 * A file written as it is made, durably once `finish` resolves: what is written is held until it
 * passes `holdBytes` and written then in one call, so a small file is one writeFile (one fsync),
 * and a larger one is created with what was held first, appended to in writes of at least
 * `holdBytes` (a snapshot's sealed chunks, a pack's pieces), each synced before the next (the
 * file is written on a thread, and the loop goes on meanwhile). Writes must not overlap.
 *
 * Why a sync per write, not one at the end: the WAL's fdatasync shares the file system's journal
 * with these files. While a save synced a 16 MiB pack at its end, a WAL fdatasync that came
 * meanwhile took 17-47 ms instead of 1-2 (strace -T, 64 KiB creates at C=16), and every request
 * waited for it; synced 2 MiB at a time, a WAL sync waits behind one step at most.
 *
 * What is held is made in place: `writeWith` hands its maker the held buffer and where to put
 * its bytes, so a pack's pieces are sealed straight into the bytes that are written, where each
 * was sealed into an array of its own and every held array joined into another before its write
 * (two 87 KB allocations and copies per 64 KiB value). A buffer written is filled again only
 * once its write has returned (a thread may read it until then): it goes back to the store's
 * SpareBytes then, for the next write or the next file.
 */
class ChunkedFile {
  private held: Uint8Array | null = null;
  private heldBytes = 0;
  private handle: FileHandle | null = null;

  constructor(
    private readonly fs: FileSystem,
    readonly path: string,
    header: Uint8Array,
    private readonly holdBytes: number,
    private readonly spare: SpareBytes,
  ) {
    this.place(header.length).set(header, 0);
    this.heldBytes = header.length;
  }

  write(bytes: Uint8Array): Promise<void> {
    return this.writeWith(bytes.length, (out, at) => out.set(bytes, at));
  }

  /** Holds the `length` bytes `make` writes into `out` at `at`, after those held; see the class. */
  async writeWith(length: number, make: (out: Uint8Array, at: number) => void): Promise<void> {
    make(this.place(length), this.heldBytes);
    this.heldBytes += length;
    if (this.heldBytes < this.holdBytes) return;
    if (this.handle === null) {
      await this.put((bytes) => this.fs.writeFile(this.path, bytes));
      this.handle = await this.fs.openAppend(this.path);
      return;
    }
    const handle = this.handle;
    await this.put((bytes) => handle.write(bytes));
    await handle.sync();
  }

  async finish(): Promise<void> {
    if (this.handle === null) return this.put((bytes) => this.fs.writeFile(this.path, bytes));
    const handle = this.handle;
    if (this.heldBytes > 0) await this.put((bytes) => handle.write(bytes));
    await handle.sync();
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close();
  }

  /** The held buffer, with room for `length` more bytes after those held. */
  private place(length: number): Uint8Array {
    const needed = this.heldBytes + length;
    if (this.held === null || needed > this.held.length) {
      const grown = this.spare.take(Math.max(needed, this.holdBytes));
      if (this.held !== null) {
        grown.set(this.held.subarray(0, this.heldBytes), 0);
        this.spare.give(this.held);
      }
      this.held = grown;
    }
    return this.held;
  }

  /** Writes what is held with `write`; its buffer is spare again once the write has returned. */
  private async put(write: (bytes: Uint8Array) => Promise<void>): Promise<void> {
    const held = this.held;
    const bytes = held === null ? new Uint8Array(0) : held.subarray(0, this.heldBytes);
    this.held = null;
    this.heldBytes = 0;
    await write(bytes);
    if (held !== null) this.spare.give(held);
  }
}

/** One chunk as the file holds it: its u32 length, then its envelope, sealed in place. */
function chunkFrame(
  plain: Uint8Array,
  n: number,
  final: boolean,
  options: ChunkSealerOptions,
  out: Uint8Array,
  at: number,
): void {
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(
    at,
    plain.length + sealOverheadBytes,
  );
  options.sealInto(plain, n, final, out, at + 4);
}

/** The length of `bytes` sealed by sealWholeInto: its header, then its chunks as ChunkSealer frames them. */
function sealedWholeLength(header: Uint8Array, bytes: Uint8Array, chunkBytes: number): number {
  const count = Math.max(1, Math.ceil(bytes.length / chunkBytes));
  return header.length + count * (4 + sealOverheadBytes) + bytes.length;
}

/**
 * `header` then `bytes` in chunks, as ChunkSealer writes them, into `out` at `at`
 * (sealedWholeLength bytes): each chunk is sealed straight from `bytes` into it, with no staging
 * copy (a piece is a few MiB at most).
 */
function sealWholeInto(
  header: Uint8Array,
  bytes: Uint8Array,
  options: ChunkSealerOptions,
  out: Uint8Array,
  start: number,
): void {
  const count = Math.max(1, Math.ceil(bytes.length / options.chunkBytes));
  out.set(header, start);
  let at = start + header.length;
  for (let n = 0; n < count; n++) {
    const plain = bytes.subarray(n * options.chunkBytes, (n + 1) * options.chunkBytes);
    chunkFrame(plain, n, n === count - 1, options, out, at);
    at += 4 + plain.length + sealOverheadBytes;
  }
  assert(
    at - start === sealedWholeLength(header, bytes, options.chunkBytes),
    'a piece is the size it was allotted',
  );
}

/**
 * Opens chunks (see the header) with `aad`, handing each plaintext to `sink` in order; returns
 * the key they are sealed with (every chunk's, one of `keys`). A chunk that does not open as the
 * next number, or as final exactly when it ends the file, is corrupt.
 */
function openChunks(
  body: Uint8Array,
  keys: readonly SnapshotKey[],
  aad: Uint8Array,
  corrupt: (reason: string) => SecretdError,
  sink: (plain: Uint8Array) => void,
): SnapshotKey {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let key: SnapshotKey | null = null;
  let at = 0;
  for (let n = 0; ; n++) {
    if (at + 4 > body.length)
      throw corrupt(
        n === 0 ? 'it has no sealed chunk' : `it ends after chunk ${n - 1}, which is not the last`,
      );
    const length = view.getUint32(at);
    const end = at + 4 + length;
    if (end > body.length) throw corrupt(`its chunk ${n} is cut short`);
    const envelope = body.subarray(at + 4, end);
    const keyId = envelope.length >= 5 ? envelopeKeyId(envelope) : -1;
    if (key !== null && keyId !== key.keyId)
      throw corrupt(`its chunk ${n} is sealed with key id ${keyId}, its first with ${key.keyId}`);
    key ??= keyNamed(keyId, keys, corrupt);
    const final = end === body.length;
    let plain: Uint8Array;
    try {
      plain = open(key.dek, envelope, { aad: chunkAad(aad, n, final) });
    } catch (error) {
      throw corrupt(`its chunk ${n}: ${(error as Error).message}`);
    }
    sink(plain);
    if (final) return key;
    at = end;
  }
}

function keyNamed(
  keyId: number,
  keys: readonly SnapshotKey[],
  corrupt: (reason: string) => SecretdError,
): SnapshotKey {
  const key = keys.find((k) => k.keyId === keyId);
  if (key === undefined)
    throw corrupt(
      `it is sealed with key id ${keyId} but the snapshot key has id ${keys.map((k) => k.keyId).join(' or ')}`,
    );
  return key;
}

/** A chunk's aad: the file's, its number and whether it is the last. */
function chunkAad(aad: Uint8Array, n: number, final: boolean): Uint8Array {
  const out = new Uint8Array(aad.length + 5);
  out.set(aad, 0);
  const view = new DataView(out.buffer);
  view.setUint32(aad.length, n);
  view.setUint8(aad.length + 4, final ? 1 : 0);
  return out;
}

/** The bytes of a snapshot file that fileKeyId reads: the header, version 3's chunk length, the envelope's version and key id. */
const fileKeyIdBytes = headerBytes + 4 + 5;

/** The key id a snapshot file's first bytes (fileKeyIdBytes of them, or all of a shorter file) say it is sealed with; -1 when they cannot say. */
function fileKeyId(bytes: Uint8Array): number {
  if (bytes.length < headerBytes) return -1;
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(4);
  const at = headerBytes + (version === 3 ? 4 : 0);
  return bytes.length >= at + 5 ? envelopeKeyId(bytes.subarray(at)) : -1;
}

function checkedBytes(piece: SnapshotPiece): Uint8Array {
  const bytes = piece.bytes();
  checkLength(piece, bytes.length);
  return bytes;
}

function checkLength(piece: SnapshotPiece, made: number): void {
  if (made !== piece.length)
    throw pieceError(`a piece says it has ${piece.length} bytes but has ${made}`);
}

/**
 * The buffers one save lends to the pieces that can write their bytes into one (bytesInto): at
 * most one per piece in flight, each zeroed when its piece is done and lent again, so that a save
 * of hundreds of new values does not allocate (and the kernel fault in) a new array for each.
 */
class LentBuffers {
  readonly #free: Uint8Array[] = [];

  /** The piece's bytes, and what to call once they are hashed and sealed (a fresh piece's are zeroed). */
  make(piece: SnapshotPiece): { readonly bytes: Uint8Array; done(): void } {
    if (piece.bytesInto === undefined || piece.fresh !== true) {
      const bytes = checkedBytes(piece);
      return { bytes, done: () => void (piece.fresh === true && bytes.fill(0)) };
    }
    const at = this.#free.findIndex((buffer) => buffer.length >= piece.length);
    const buffer = at === -1 ? new Uint8Array(piece.length) : this.#free.splice(at, 1)[0]!;
    const bytes = buffer.subarray(0, piece.length);
    try {
      checkLength(piece, piece.bytesInto(bytes));
    } catch (error) {
      bytes.fill(0);
      this.#free.push(buffer);
      throw error;
    }
    return {
      bytes,
      done: () => {
        bytes.fill(0);
        this.#free.push(buffer);
      },
    };
  }
}

/** Where each shared part's bytes lie in the data the parts make (Snapshot.shared). */
function sharedSpans(parts: readonly DecodedSnapshotPart[]): SnapshotSpan[] {
  const spans: SnapshotSpan[] = [];
  let offset = 0;
  for (const part of parts) {
    if (part.kind === 'shared') {
      const id = Buffer.from(part.id).toString('hex');
      spans.push({ offset, length: part.length, id, named: part.named === true });
    }
    offset += part.length;
  }
  return spans;
}

/** Bytes a load opens each raw piece into in turn, grown to the largest and never shrunk. */
class Scratch {
  #bytes = new Uint8Array(0);

  /** `length` bytes, zero: the caller zeroes what it wrote before it takes them again. */
  take(length: number): Uint8Array {
    if (this.#bytes.length < length) this.#bytes = new Uint8Array(length);
    return this.#bytes.subarray(0, length);
  }

  zero(): void {
    this.#bytes.fill(0);
  }
}

/** Writes the standard base64 of `bytes` at the start of `out`; returns its length. */
function base64Into(bytes: Uint8Array, out: Uint8Array): number {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  return textEncoder.encodeInto(text, out).written;
}

function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
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
  return match === null ? null : { nameId: match[1]!, keyId: parseInt(match[2]!, 16), name };
}

/** A pack's key id, or null when `name` is not a pack's. */
function parsePackName(name: string): number | null {
  const match = packName.exec(name);
  return match === null ? null : parseInt(match[2]!, 16);
}

function packFileName(id: string, keyId: number): string {
  return `${id}-${keyId.toString(16).padStart(8, '0')}.pack`;
}

interface PackEntry {
  readonly nameId: string;
  readonly offset: number;
  readonly length: number;
}

/**
 * A pack's entries as its index lists them, or null when the file is not a whole pack (no header,
 * no trailer, an index that does not fit, an entry outside the entries). What an entry holds is
 * checked when it is read, as a piece file's is.
 */
async function readPackIndex(fs: FileSystem, path: string): Promise<PackEntry[] | null> {
  const size = await fs.size(path);
  if (size < packHeaderBytes + packTrailerBytes) return null;
  const head = await fs.readRange(path, 0, packHeaderBytes);
  const headView = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (packMagic.some((b, i) => head[i] !== b)) return null;
  if (headView.getUint16(4) !== packFormatVersion || headView.getUint16(6) !== 0) return null;
  const trailer = await fs.readRange(path, size - packTrailerBytes, packTrailerBytes);
  if (trailer.length !== packTrailerBytes || packMagic.some((b, i) => trailer[4 + i] !== b))
    return null;
  const count = new DataView(trailer.buffer, trailer.byteOffset).getUint32(0);
  const indexAt = size - packTrailerBytes - count * packIndexEntryBytes;
  if (indexAt < packHeaderBytes) return null;
  const index = await fs.readRange(path, indexAt, count * packIndexEntryBytes);
  if (index.length !== count * packIndexEntryBytes) return null;
  const view = new DataView(index.buffer, index.byteOffset, index.byteLength);
  const entries: PackEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * packIndexEntryBytes;
    const offset = getU64(view, at + pieceIdBytes);
    const length = view.getUint32(at + pieceIdBytes + 8);
    if (offset < packHeaderBytes || length < pieceHeaderBytes || offset + length > indexAt)
      return null;
    entries.push({
      nameId: Buffer.from(index.subarray(at, at + pieceIdBytes)).toString('hex'),
      offset,
      length,
    });
  }
  return entries;
}

/** Bytes of a known length, sealed when they are placed (PackWriter.add). */
interface SealedBytes {
  readonly length: number;
  readonly sealInto: (out: Uint8Array, at: number) => void;
}

/**
 * The pack a save writes its new pieces into, as `<random id>-<key id>.pack`:
 *
 *   pack    = packHeader ++ entry* ++ index ++ trailer
 *   header  = "sspk" | version u16 (1) | flags u16 (0)
 *   entry   = a version 2 piece file's bytes (its header naming it, then its sealed chunks)
 *   index   = per entry: name id (32 bytes) | offset u64 | length u32
 *   trailer = entry count u32 | "sspk"
 *
 * Written as a temp file (ChunkedFile): the header, the entries sealed straight into the bytes
 * written, 2 MiB per write (more than syncWriteBytesMax: on a thread, off the event loop, where a
 * write that grows the file may wait for the journal), each synced before the next, the index and
 * trailer, then renamed into place (the caller syncs the directory). One file for all of a save's
 * new pieces, where a file each cost the kernel 4 to 16 times as much (bench/README.md,
 * piece-files.ts).
 */
class PackWriter {
  private readonly file: ChunkedFile;
  /** The writes so far, one after another (pieces are added by several saves' steps at once). */
  private appended: Promise<void> = Promise.resolve();
  private end = packHeaderBytes;
  private readonly entries: PackEntry[] = [];

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    readonly name: string,
    spare: SpareBytes,
  ) {
    const header = new Uint8Array(packHeaderBytes);
    header.set(packMagic, 0);
    new DataView(header.buffer).setUint16(4, packFormatVersion);
    this.file = new ChunkedFile(
      fs,
      `${dir}/${name}${tempSuffix}`,
      header,
      snapshotPackWriteBytes,
      spare,
    );
  }

  /**
   * Adds a piece, sealed into the bytes the pack writes when its turn comes; resolves once they
   * are written, or held to be written with the next.
   */
  add(nameId: string, piece: SealedBytes): Promise<void> {
    this.entries.push({ nameId, offset: this.end, length: piece.length });
    this.end += piece.length;
    this.appended = this.appended.then(() => this.file.writeWith(piece.length, piece.sealInto));
    return this.appended;
  }

  /** Writes the index and trailer, syncs, closes and renames the pack into place; its entries. */
  async finish(): Promise<PackEntry[]> {
    await this.appended;
    await this.file.write(packIndex(this.entries));
    await this.file.finish();
    await this.file.close();
    await this.fs.rename(this.file.path, `${this.dir}/${this.name}`);
    return this.entries;
  }

  /** Closes and removes the temp file, if any (best effort: a temp file left is removed at open). */
  async abort(): Promise<void> {
    await this.appended.catch(() => {});
    await this.file.close().catch(() => {});
    await this.fs.remove(this.file.path).catch(() => {});
  }
}

function packIndex(entries: readonly PackEntry[]): Uint8Array {
  const out = new Uint8Array(entries.length * packIndexEntryBytes + packTrailerBytes);
  const view = new DataView(out.buffer);
  entries.forEach(({ nameId, offset, length }, i) => {
    const at = i * packIndexEntryBytes;
    out.set(Buffer.from(nameId, 'hex'), at);
    setU64(view, at + pieceIdBytes, offset);
    view.setUint32(at + pieceIdBytes + 8, length);
  });
  view.setUint32(entries.length * packIndexEntryBytes, entries.length);
  out.set(packMagic, entries.length * packIndexEntryBytes + 4);
  return out;
}

function pieceFileName(nameId: string, keyId: number): string {
  return `${nameId}-${keyId.toString(16).padStart(8, '0')}.piece`;
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

function pieceHeader(nameId: string, version: number): Uint8Array {
  const header = new Uint8Array(pieceHeaderBytes);
  const view = new DataView(header.buffer);
  header.set(pieceMagic, 0);
  view.setUint16(4, version);
  header.set(Buffer.from(nameId, 'hex'), 8);
  return header;
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
