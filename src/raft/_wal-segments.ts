/**
 * Segment files of the WAL, through the FileSystem port: listing, creating (whole, via a temp
 * file) and replaying one segment into a Replay, truncating a torn tail. See wal.ts.
 */
import { SecretdError } from '../errors.ts';
import type { FileHandle, FileSystem } from '../io/fs.ts';
import type { Replay } from './_wal-log.ts';
import { endsInZeros, judgeTail, scanSegment } from './_wal-scan.ts';
import {
  decodeSegmentHeader,
  encodeBatch,
  encodeSegmentHeader,
  type SegmentHeader,
  segmentKeyId,
  type WALKey,
  type WALRecord,
  type WALSealKey,
} from './wal-codec.ts';

export interface Segment extends SegmentHeader {
  readonly path: string;
}

/** A segment whose header was read or written: the key its header and every record are sealed with. */
export interface KeyedSegment extends Segment {
  readonly keyId: number;
}

/** What recovery cut off the last segment: sizes and indexes only, never contents. */
export interface TornTail {
  readonly path: string;
  /** Where the file now ends: the end of the last complete batch. */
  readonly offset: number;
  readonly discardedBytes: number;
  /** Records of the unfinished batch that still decoded (the damaged rest cannot be counted). */
  readonly discardedRecords: number;
  /** The entry indexes among them, or null when they held none. */
  readonly discardedEntries: { readonly first: number; readonly last: number } | null;
  readonly reason: string;
}

export interface SegmentIO {
  readonly fs: FileSystem;
  /** The key new segments and records are sealed with. */
  readonly key: WALSealKey;
  /** Keys of an unfinished rotation, besides `key`: segments sealed under them are read, never appended to. */
  readonly olderKeys: readonly WALKey[];
  readonly onTornTail?: ((tail: TornTail) => void) | undefined;
  /** The marker file recording the newest segment (_wal-marker.ts), if any. */
  readonly marker?: string | undefined;
  /** How far ahead of its writes the segment appended to is extended (AppendOptions). */
  readonly preallocateBytes: number;
}

const segmentName = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;
const tempSuffix = '.tmp';

/** The segments in `dir`, oldest first, after removing temp files a crash left behind. */
export async function listSegments(fs: FileSystem, dir: string): Promise<Segment[]> {
  const names = await fs.list(dir);
  const temps = names.filter((name) => name.endsWith(tempSuffix));
  for (const name of temps) await fs.remove(`${dir}/${name}`);
  if (temps.length > 0) await fs.syncDir(dir);
  const segments: Segment[] = [];
  for (const name of names) {
    const match = segmentName.exec(name);
    if (match === null) continue;
    segments.push({
      seq: parseInt(match[1]!, 16),
      firstIndex: parseInt(match[2]!, 16),
      path: `${dir}/${name}`,
    });
  }
  segments.sort((a, b) => a.seq - b.seq);
  for (let i = 1; i < segments.length; i++) {
    const [before, after] = [segments[i - 1]!, segments[i]!];
    if (after.seq !== before.seq + 1) {
      throw new SecretdError(
        'corrupt',
        `WAL in ${dir} is missing a segment between ${before.path} and ${after.path}; refusing to start`,
      );
    }
  }
  return segments;
}

/** Writes the header and a first batch under a temp name, so a segment never exists half-made. */
export async function createSegment(
  io: SegmentIO,
  dir: string,
  header: SegmentHeader,
  records: readonly WALRecord[],
): Promise<{ segment: KeyedSegment; handle: FileHandle; offset: number }> {
  const head = encodeSegmentHeader(header, io.key);
  const batch =
    records.length > 0
      ? encodeBatch(records, { seq: header.seq, offset: head.length, durableOffset: 0 }, io.key)
      : new Uint8Array(0);
  const bytes = new Uint8Array(head.length + batch.length);
  bytes.set(head, 0);
  bytes.set(batch, head.length);
  const hex = (n: number): string => n.toString(16).padStart(16, '0');
  const path = `${dir}/${hex(header.seq)}-${hex(header.firstIndex)}.wal`;
  await io.fs.writeFile(path + tempSuffix, bytes);
  await io.fs.rename(path + tempSuffix, path);
  await io.fs.syncDir(dir);
  const handle = await io.fs.openAppend(path, { preallocateBytes: io.preallocateBytes });
  return { segment: { ...header, path, keyId: io.key.keyId }, handle, offset: bytes.length };
}

/**
 * Replays one segment into `replay`; returns the offset appends continue from and the key the
 * segment is sealed with (its header's, which every record in it must share: a segment is never
 * sealed under two keys, so that a rotation can delete the old key's segments whole).
 */
export async function replaySegment(
  io: SegmentIO,
  segment: Segment,
  isLast: boolean,
  replay: Replay,
): Promise<{ offset: number; keyId: number }> {
  const { path } = segment;
  // Mapped where it can be (FileSystem.mapFile): nothing writes the log while it is replayed, the
  // records are opened into fresh memory, and the bytes are not read again once it is cut below.
  // The last segment after a kill is its preallocated size (4 MiB, mostly zeros): read, it cost
  // a restart 25 ms.
  const bytes = await io.fs.mapFile(path);
  const key = keyFor(io, bytes);
  const header = decodeSegmentHeader(bytes, key);
  if (!header.ok)
    throw new SecretdError(
      'corrupt',
      `WAL segment ${path} cannot be opened: ${header.reason}; refusing to start`,
    );
  if (header.value.seq !== segment.seq || header.value.firstIndex !== segment.firstIndex) {
    throw corruptAt(
      path,
      0,
      `the header says segment ${header.value.seq} from index ${header.value.firstIndex}, unlike its name`,
    );
  }
  const scan = scanSegment(bytes, segment.seq, key);
  for (const { record, offset } of scan.records) {
    const reason = replay.apply(record);
    if (reason !== null) throw corruptAt(path, offset, reason);
  }
  if (scan.damage === null) return { offset: bytes.length, keyId: key.keyId };
  const { offset, reason } = scan.damage;
  if (!isLast) throw corruptAt(path, offset, `${reason}, in a segment that is not the last`);
  if (endsInZeros(bytes, scan)) {
    // Zeros after the last complete batch: space preallocated and not yet written (or a batch
    // none of whose bytes reached the disk: unsynced, so never acknowledged).
    await io.fs.truncate(path, scan.validBytes);
    return { offset: scan.validBytes, keyId: key.keyId };
  }
  const verdict = judgeTail(bytes, scan.validBytes, offset);
  if (!verdict.torn) throw corruptAt(path, offset, `${reason}, and ${verdict.reason}`);
  await io.fs.truncate(path, scan.validBytes); // durable before anything is appended after it
  const indexes = scan.unfinished.flatMap((record) =>
    record.type === 'entry' ? [record.entry.index] : [],
  );
  const discardedEntries =
    indexes.length === 0 ? null : { first: Math.min(...indexes), last: Math.max(...indexes) };
  io.onTornTail?.({
    path,
    offset: scan.validBytes,
    discardedBytes: bytes.length - scan.validBytes,
    discardedRecords: scan.unfinished.length,
    discardedEntries,
    reason,
  });
  return { offset: scan.validBytes, keyId: key.keyId };
}

/** The key among this node's that the segment's header names; the sealing key when none does (decoding then says why it fails). */
function keyFor(io: SegmentIO, bytes: Uint8Array): WALKey {
  const keyId = segmentKeyId(bytes);
  return [io.key, ...io.olderKeys].find((key) => key.keyId === keyId) ?? io.key;
}

function corruptAt(path: string, offset: number, reason: string): SecretdError {
  return new SecretdError(
    'corrupt',
    `WAL record at ${path} offset ${offset} is corrupt: ${reason}; refusing to start`,
  );
}
