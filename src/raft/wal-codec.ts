/**
 * WAL framing (pure): segment headers and sealed records. See wal.ts for the file layout.
 *
 *   segment header (105 B): "swal" | version u16 | flags u16 | seq u64 | firstIndex u64 |
 *                           keyCheck = seal(dek, 32 zero bytes, aad: seq, firstIndex) (77 B;
 *                           segments written before envelope version 2 sealed nothing, also 77 B) |
 *                           crc32c u32
 *   record:  magic u8 | type u8 | reserved u16 (0) | bodyLen u32 | batchOffset u32 |
 *            durableOffset u32 | crc u32 |
 *            body = seal(dek, payload, aad: version, type, seq, offset, batchOffset, durableOffset)
 *     magic 0xa8: crc is CRC-32 (crc32.ts, the runtime's zlib), as records are written now;
 *     magic 0xa7: crc is CRC-32C (crc32c.ts, in JavaScript), as they were written until the ninth
 *     session, still read. The native CRC costs a 64 KiB record 4.5 us instead of 45-68 us of the
 *     Raft loop. The magic is not bound into the AEAD, and need not be: a record whose magic is
 *     changed is checked with the other CRC, which fails as a flipped byte does.
 *
 * batchOffset is where the record's batch begins; durableOffset is how much of the segment was
 * known synced when the batch was written (recovery uses it to tell acknowledged data from a tail
 * of unsynced batches; see _wal-scan.ts).
 *
 * The CRC (over the rest of the header and the body) tells a torn or garbage frame from one
 * that is intact, and lets recovery spot intact records past a damaged one without the key. The
 * AEAD binds each record to its segment, its offset and its batch, so a record copied elsewhere
 * fails even though its CRC holds. The header's key check refuses a wrong DEK before any record is
 * judged, so a wrong key can never be mistaken for a torn tail and truncated away.
 */
import {
  envelopeKeyId,
  open,
  seal,
  sealInto,
  sealOverheadBytes,
  sealOverheadBytesMax,
} from '../crypto/aead.ts';
import type { Random } from '../crypto/random.ts';
import { assert, SecretdError } from '../errors.ts';
import { walRecordBytesMax } from '../limits.ts';
import { crc32 } from './crc32.ts';
import { crc32c } from './crc32c.ts';
import {
  decodePayload,
  payloadParts,
  type InnerRecord,
  type WALRecord,
  type WALRecordType,
} from './_wal-payload.ts';

export type { WALRecord, WALRecordType } from './_wal-payload.ts';

export interface WALKey {
  readonly dek: Uint8Array;
  readonly keyId: number;
}
export interface WALSealKey extends WALKey {
  readonly random: Random;
}

export interface SegmentHeader {
  readonly seq: number;
  readonly firstIndex: number;
}

export const formatVersion = 1;
export const recordHeaderBytes = 20;
const crcAt = 16;
export const segmentHeaderBytes = 28 + sealOverheadBytesMax;
/** The magic of records written now: their CRC is CRC-32. */
export const recordMagic = 0xa8;
/** The magic of records written before: their CRC is CRC-32C. */
export const legacyRecordMagic = 0xa7;

/** Whether `byte` starts a record (either magic). */
export function isRecordMagic(byte: number | undefined): boolean {
  return byte === recordMagic || byte === legacyRecordMagic;
}
const segmentMagic = [0x73, 0x77, 0x61, 0x6c]; // "swal"
const typeCodes: Record<WALRecordType, number> = {
  entry: 1,
  'hard-state': 2,
  snapshot: 3,
  commit: 4,
  group: 5,
};
const codeTypes: readonly (WALRecordType | undefined)[] = [
  undefined,
  'entry',
  'hard-state',
  'snapshot',
  'commit',
  'group',
];

export type Decoded<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

export function encodeSegmentHeader(header: SegmentHeader, key: WALSealKey): Uint8Array {
  const out = new Uint8Array(segmentHeaderBytes);
  const view = new DataView(out.buffer);
  out.set(segmentMagic, 0);
  view.setUint16(4, formatVersion);
  setU64(view, 8, header.seq);
  setU64(view, 16, header.firstIndex);
  // Sealing the padding's zeros keeps the key check at its 77 bytes whatever the envelope version.
  const check = seal(key.dek, new Uint8Array(sealOverheadBytesMax - sealOverheadBytes), {
    aad: headerAad(header),
    keyId: key.keyId,
    random: key.random,
  });
  out.set(check, 24);
  view.setUint32(segmentHeaderBytes - 4, crc32c(out.subarray(0, segmentHeaderBytes - 4)));
  return out;
}

export function decodeSegmentHeader(bytes: Uint8Array, key: WALKey): Decoded<SegmentHeader> {
  if (bytes.length < segmentHeaderBytes)
    return fail(`the segment header is short (${bytes.length} bytes)`);
  const view = viewOf(bytes);
  if (segmentMagic.some((b, i) => bytes[i] !== b))
    return fail('the segment header has no WAL magic');
  if (
    view.getUint32(segmentHeaderBytes - 4) !== crc32c(bytes.subarray(0, segmentHeaderBytes - 4))
  ) {
    return fail('the segment header checksum does not match');
  }
  const version = view.getUint16(4);
  if (version !== formatVersion)
    return fail(`the segment has format version ${version}, expected ${formatVersion}`);
  if (view.getUint16(6) !== 0) return fail('the segment header has unknown flags');
  const header = { seq: getU64(view, 8), firstIndex: getU64(view, 16) };
  if (!Number.isSafeInteger(header.seq) || !Number.isSafeInteger(header.firstIndex)) {
    return fail('the segment header holds a sequence or index beyond the safe integer range');
  }
  const check = bytes.subarray(24, segmentHeaderBytes - 4);
  const checkKeyId = envelopeKeyId(check);
  if (checkKeyId !== key.keyId) {
    return fail(
      `the segment is sealed with key id ${checkKeyId} but the WAL key has id ${key.keyId}`,
    );
  }
  try {
    open(key.dek, check, { aad: headerAad(header) });
  } catch {
    return fail(
      'the segment key check failed: the WAL key (DEK) is wrong or the header was altered',
    );
  }
  return { ok: true, value: header };
}

/** The key id a segment header's key check claims, or null for a header too short to hold one. */
export function segmentKeyId(bytes: Uint8Array): number | null {
  return bytes.length < segmentHeaderBytes ? null : envelopeKeyId(bytes.subarray(24));
}

/**
 * Seals `records` followed by their COMMIT into one buffer, to be appended at `at.offset` of
 * segment `at.seq` with a single write. Several records travel as one sealed group record, so a
 * batch costs two AEAD calls (group and commit) however many entries it carries.
 */
export function encodeBatch(
  records: readonly WALRecord[],
  at: { readonly seq: number; readonly offset: number; readonly durableOffset: number },
  key: WALSealKey,
  /** Sealed into, when it is large enough (the result is then its start): the caller's to reuse. */
  into?: Uint8Array,
): Uint8Array {
  assert(
    at.durableOffset <= at.offset,
    `WAL durable offset ${at.durableOffset} is past the batch at ${at.offset}`,
  );
  const grouped: readonly WALRecord[] =
    records.length > 1 ? [{ type: 'group', records: records.map(inner) }] : records;
  const all: WALRecord[] = [...grouped, { type: 'commit', records: grouped.length }];
  // Each record is sealed straight into the batch's buffer from its parts (the log's entry data
  // is not copied on the way: see payloadParts).
  const prepared = all.map((record) => {
    const payload = payloadParts(record);
    const size = payload.length + sealOverheadBytes;
    if (size > walRecordBytesMax) {
      for (const part of payload.owned) part.fill(0);
      throw new SecretdError(
        'too_large',
        `Cannot write WAL record: ${size} bytes exceeds walRecordBytesMax (${walRecordBytesMax})`,
      );
    }
    return { record, payload, size };
  });
  const total = prepared.reduce((sum, p) => sum + recordHeaderBytes + p.size, 0);
  assert(
    at.offset + total <= 0xffffffff,
    `WAL segment ${at.seq} would pass 4 GiB (offset ${at.offset + total})`,
  );
  const out =
    into !== undefined && into.length >= total ? into.subarray(0, total) : new Uint8Array(total);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let pos = 0;
  for (const { record, payload, size } of prepared) {
    const code = typeCodes[record.type];
    const aad = recordAad(
      {
        seq: at.seq,
        offset: at.offset + pos,
        batchOffset: at.offset,
        durableOffset: at.durableOffset,
      },
      code,
    );
    const sealed = sealInto(
      key.dek,
      payload.parts,
      { aad, keyId: key.keyId, random: key.random },
      out,
      pos + recordHeaderBytes,
    );
    for (const part of payload.owned) part.fill(0); // best effort: our plaintext copies; the GC may hold others
    assert(sealed === size, `WAL record sealed to ${sealed} bytes, expected ${size}`);
    view.setUint8(pos, recordMagic);
    view.setUint8(pos + 1, code);
    view.setUint16(pos + 2, 0); // reserved (a reused buffer holds an earlier batch's bytes)
    view.setUint32(pos + 4, size);
    view.setUint32(pos + 8, at.offset);
    view.setUint32(pos + 12, at.durableOffset);
    const body = out.subarray(pos + recordHeaderBytes, pos + recordHeaderBytes + size);
    view.setUint32(pos + crcAt, crc32(body, crc32(out.subarray(pos, pos + crcAt))));
    pos += recordHeaderBytes + size;
  }
  return out;
}

function inner(record: WALRecord): InnerRecord {
  assert(
    record.type !== 'group' && record.type !== 'commit',
    `a ${record.type} record cannot be grouped`,
  );
  return record;
}

export interface Frame {
  readonly type: WALRecordType;
  readonly batchOffset: number;
  readonly durableOffset: number;
  readonly body: Uint8Array;
  readonly end: number;
}

/**
 * Checks a record's framing and CRC, without the key. The body length is checked against the
 * limit and the bytes present before anything is read or allocated for it.
 */
export function decodeFrame(bytes: Uint8Array, offset: number): Decoded<Frame> {
  if (bytes.length - offset < recordHeaderBytes)
    return fail(`short record header (${bytes.length - offset} bytes)`);
  const view = viewOf(bytes);
  const magic = view.getUint8(offset);
  if (!isRecordMagic(magic))
    return fail(`bad record magic 0x${magic.toString(16).padStart(2, '0')}`);
  const type = codeTypes[view.getUint8(offset + 1)];
  if (type === undefined || view.getUint16(offset + 2) !== 0)
    return fail('bad record type or reserved field');
  const bodyLength = view.getUint32(offset + 4);
  if (bodyLength > walRecordBytesMax)
    return fail(`body length ${bodyLength} exceeds walRecordBytesMax (${walRecordBytesMax})`);
  if (bodyLength < sealOverheadBytes)
    return fail(`body length ${bodyLength} is below the sealed minimum`);
  const end = offset + recordHeaderBytes + bodyLength;
  if (end > bytes.length)
    return fail(
      `short record body (${bytes.length - offset - recordHeaderBytes} of ${bodyLength} bytes)`,
    );
  const body = bytes.subarray(offset + recordHeaderBytes, end);
  const checksum = magic === recordMagic ? crc32 : crc32c;
  if (
    checksum(body, checksum(bytes.subarray(offset, offset + crcAt))) !==
    view.getUint32(offset + crcAt)
  ) {
    return fail('record checksum mismatch');
  }
  const batchOffset = view.getUint32(offset + 8);
  const durableOffset = view.getUint32(offset + 12);
  if (batchOffset > offset || durableOffset > batchOffset)
    return fail('record offsets point past the record');
  return { ok: true, value: { type, batchOffset, durableOffset, body, end } };
}

/** Decodes and opens the record at `offset`, which must belong to the batch starting at `batchOffset`. */
export function decodeRecord(
  bytes: Uint8Array,
  at: { readonly seq: number; readonly offset: number; readonly batchOffset: number },
  key: WALKey,
): Decoded<{ readonly record: WALRecord; readonly end: number }> {
  const frame = decodeFrame(bytes, at.offset);
  if (!frame.ok) return frame;
  const { type, batchOffset, durableOffset, body, end } = frame.value;
  if (batchOffset !== at.batchOffset)
    return fail(`record claims a batch at offset ${batchOffset}, expected ${at.batchOffset}`);
  const keyId = envelopeKeyId(body);
  if (keyId !== key.keyId)
    return fail(`record is sealed with key id ${keyId} but the WAL key has id ${key.keyId}`);
  let payload: Uint8Array;
  try {
    payload = open(key.dek, body, {
      aad: recordAad(
        { seq: at.seq, offset: at.offset, batchOffset, durableOffset },
        typeCodes[type],
      ),
    });
  } catch (error) {
    return fail(`record failed authentication (${(error as Error).message})`);
  }
  try {
    return { ok: true, value: { record: decodePayload(type, payload), end } };
  } catch (error) {
    return fail(`record payload is malformed (${(error as Error).message})`);
  }
}

interface RecordPlace {
  readonly seq: number;
  readonly offset: number;
  readonly batchOffset: number;
  readonly durableOffset: number;
}

function recordAad(place: RecordPlace, typeCode: number): Uint8Array {
  const aad = new Uint8Array(24);
  const view = new DataView(aad.buffer);
  aad.set([0x52, formatVersion, typeCode, 0]); // 'R': a record, never confusable with a header
  setU64(view, 4, place.seq);
  view.setUint32(12, place.offset);
  view.setUint32(16, place.batchOffset);
  view.setUint32(20, place.durableOffset);
  return aad;
}

function headerAad(header: SegmentHeader): Uint8Array {
  const aad = new Uint8Array(20);
  const view = new DataView(aad.buffer);
  aad.set([0x48, formatVersion, 0, 0]); // 'H'
  setU64(view, 4, header.seq);
  setU64(view, 12, header.firstIndex);
  return aad;
}

function setU64(view: DataView, at: number, n: number): void {
  assert(
    Number.isSafeInteger(n) && n >= 0,
    `WAL header field ${n} is not a non-negative safe integer`,
  );
  view.setUint32(at, Math.floor(n / 2 ** 32));
  view.setUint32(at + 4, n >>> 0);
}

function getU64(view: DataView, at: number): number {
  return view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function fail(reason: string): { readonly ok: false; readonly reason: string } {
  return { ok: false, reason };
}
