/**
 * The key id of every sealed envelope in a data dir's Raft files, read straight from the bytes
 * (src/crypto/aead.ts: `version u8 | keyId u32 BE | nonce | box`), without any key: for each
 * WAL segment its header's key check and every record's body (wal-codec.ts framing), for each
 * snapshot and shared snapshot piece each sealed chunk (snapshot-store.ts: a 24-byte header for a
 * snapshot, 40 for a piece, then from format 3 (pieces: 2) chunks, each a u32 length and an
 * envelope; before, one envelope), and for each pack every chunk of every entry its index lists
 * (each entry a version 2 piece file's bytes).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { envelopeKeyId } from '../../src/crypto/aead.ts';
import { decodeFrame, segmentHeaderBytes } from '../../src/raft/wal-codec.ts';
import { joinPieces, pieceDataLength } from '../../src/raft/snapshot-store.ts';
import type { Snapshot, SnapshotMeta, SnapshotPiece, SnapshotSpan } from '../../src/raft/types.ts';

export interface SealedFile {
  readonly path: string;
  /** One per envelope, in file order. */
  readonly keyIds: readonly number[];
}

/** Every `.wal` file in `walDir` and `.snap`, `.piece` and `.pack` file in `snapDir`, with the key ids of its envelopes. */
export function sealedFiles(walDir: string, snapDir: string): SealedFile[] {
  const files: SealedFile[] = [];
  for (const name of readdirSync(walDir).sort()) {
    if (!name.endsWith('.wal')) continue;
    const path = `${walDir}/${name}`;
    const bytes = new Uint8Array(readFileSync(path));
    const keyIds = [envelopeKeyId(bytes.subarray(24, segmentHeaderBytes - 4))];
    for (let at = segmentHeaderBytes; at < bytes.length;) {
      const frame = decodeFrame(bytes, at);
      if (!frame.ok) break; // a torn tail: nothing past it is read back
      keyIds.push(envelopeKeyId(frame.value.body));
      at = frame.value.end;
    }
    files.push({ path, keyIds });
  }
  for (const [suffix, headerBytes, chunked] of [
    ['.snap', 24, 3],
    ['.piece', 40, 2],
  ] as const) {
    for (const name of readdirSync(snapDir).sort()) {
      if (!name.endsWith(suffix)) continue;
      const path = `${snapDir}/${name}`;
      files.push({
        path,
        keyIds: chunkKeyIds(new Uint8Array(readFileSync(path)), headerBytes, chunked),
      });
    }
  }
  for (const name of readdirSync(snapDir).sort()) {
    if (!name.endsWith('.pack')) continue;
    const path = `${snapDir}/${name}`;
    const bytes = new Uint8Array(readFileSync(path));
    const keyIds = packEntries(bytes).flatMap(({ offset, length }) =>
      chunkKeyIds(bytes.subarray(offset, offset + length), 40, 2),
    );
    files.push({ path, keyIds });
  }
  return files;
}

export interface PackEntry {
  readonly nameId: string;
  readonly offset: number;
  readonly length: number;
}

/**
 * A pack's entries as its index lists them (snapshot-store.ts: the entries, then per entry its
 * name id (32 bytes) | offset u64 | length u32, then the entry count u32 | "sspk").
 */
export function packEntries(bytes: Uint8Array): PackEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(bytes.length - 8);
  const indexAt = bytes.length - 8 - count * 44;
  return Array.from({ length: count }, (_, i) => {
    const at = indexAt + i * 44;
    return {
      nameId: Buffer.from(bytes.subarray(at, at + 32)).toString('hex'),
      offset: Number(view.getBigUint64(at + 32)),
      length: view.getUint32(at + 40),
    };
  });
}

/**
 * The snapshot pieces in `snapDir`, each named as a piece file (`<name id>-<key id>.piece`)
 * whether it is a file of its own or an entry of a pack (`<id>-<key id>.pack`); sorted.
 */
export function piecesIn(snapDir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(snapDir)) {
    if (name.endsWith('.piece')) out.push(name);
    if (!name.endsWith('.pack')) continue;
    const keyId = name.slice(-13, -5);
    for (const { nameId } of packEntries(new Uint8Array(readFileSync(`${snapDir}/${name}`))))
      out.push(`${nameId}-${keyId}.piece`);
  }
  return out.sort();
}

/** The key id of each envelope after the header: chunked from format `chunked` on, else one. */
function chunkKeyIds(bytes: Uint8Array, headerBytes: number, chunked: number): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint16(4) < chunked) return [envelopeKeyId(bytes.subarray(headerBytes))];
  const keyIds: number[] = [];
  for (let at = headerBytes; at + 4 <= bytes.length; at += 4 + view.getUint32(at))
    keyIds.push(envelopeKeyId(bytes.subarray(at + 4)));
  return keyIds;
}

/** The distinct key ids found, ascending. */
export function keyIdsIn(files: readonly SealedFile[]): number[] {
  return [...new Set(files.flatMap((f) => f.keyIds))].sort((a, b) => a - b);
}

/**
 * What loading a snapshot saved as `pieces` gives back: their bytes joined, and where each
 * shared piece (one with an id) lies in them (Snapshot.shared, left out when there is none).
 */
export function loadedFrom(meta: SnapshotMeta, pieces: readonly SnapshotPiece[]): Snapshot {
  const shared: SnapshotSpan[] = [];
  let offset = 0;
  for (const piece of pieces) {
    const length = pieceDataLength(piece);
    if (piece.id !== undefined)
      shared.push({ offset, length, id: piece.id, named: piece.named === true });
    offset += length;
  }
  const data = joinPieces(pieces);
  return shared.length === 0 ? { meta, data } : { meta, data, shared };
}
