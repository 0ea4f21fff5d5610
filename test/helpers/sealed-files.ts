/**
 * The key id of every sealed envelope in a data dir's Raft files, read straight from the bytes
 * (src/crypto/aead.ts: `version u8 | keyId u32 BE | nonce | box`), without any key: for each
 * WAL segment its header's key check and every record's body (wal-codec.ts framing), for each
 * snapshot and shared snapshot piece each sealed chunk (snapshot-store.ts: a 24-byte header for a
 * snapshot, 40 for a piece, then from format 3 (pieces: 2) chunks, each a u32 length and an
 * envelope; before, one envelope).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { envelopeKeyId } from '../../src/crypto/aead.ts';
import { decodeFrame, segmentHeaderBytes } from '../../src/raft/wal-codec.ts';

export interface SealedFile {
  readonly path: string;
  /** One per envelope, in file order. */
  readonly keyIds: readonly number[];
}

/** Every `.wal` file in `walDir` and `.snap` and `.piece` file in `snapDir`, with the key ids of its envelopes. */
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
  return files;
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
