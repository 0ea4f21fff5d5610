import {
  decodePayload,
  decodeSnapshotParts,
  payloadParts,
  pieceIdBytes,
  snapshotPartsStream,
  type InnerRecord,
} from './_wal-payload.ts';
import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../errors.ts';
import { systemRandom } from '../io/system.ts';
import { walRecordBytesMax } from '../limits.ts';
import { crc32 } from './crc32.ts';
import { crc32c } from './crc32c.ts';
import type { MemberId } from './types.ts';
import {
  decodeFrame,
  decodeRecord,
  decodeSegmentHeader,
  encodeBatch,
  encodeSegmentHeader,
  legacyRecordMagic,
  recordHeaderBytes,
  recordMagic,
  segmentHeaderBytes,
  type WALRecord,
} from './wal-codec.ts';

const key = { dek: systemRandom(32), keyId: 7, random: systemRandom };
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

const records: WALRecord[] = [
  { type: 'entry', entry: { index: 1, term: 1, type: 'normal', data: new Uint8Array(0) } },
  { type: 'entry', entry: { index: 2, term: 2 ** 40, type: 'conf', data: text('conf change') } },
  { type: 'hard-state', hardState: { term: 3, vote: null, commit: 0 } },
  {
    type: 'hard-state',
    hardState: { term: 4, vote: 'node-b' as MemberId, commit: Number.MAX_SAFE_INTEGER },
  },
  {
    type: 'snapshot',
    meta: {
      index: 9,
      term: 2,
      conf: { voters: ['a' as MemberId, 'b' as MemberId], learners: ['c' as MemberId] },
    },
    keepLog: true,
  },
  {
    type: 'snapshot',
    meta: { index: 10, term: 3, conf: { voters: [], learners: [] } },
    keepLog: false,
  },
];

/** Decodes a whole batch written at `offset` of segment `seq`. */
function decodeAll(bytes: Uint8Array, base: number, seq: number): WALRecord[] {
  const padded = new Uint8Array(base + bytes.length);
  padded.set(bytes, base);
  const out: WALRecord[] = [];
  for (let offset = base; offset < padded.length;) {
    const decoded = decodeRecord(padded, { seq, offset, batchOffset: base }, key);
    if (!decoded.ok) throw new Error(decoded.reason);
    out.push(decoded.value.record);
    offset = decoded.value.end;
  }
  return out;
}

describe('encodeBatch / decodeRecord', () => {
  test('decodeRecord() returns several records as one sealed group, then the commit counting it', () => {
    const batch = encodeBatch(records, { seq: 3, offset: 200, durableOffset: 150 }, key);
    expect(decodeAll(batch, 200, 3)).toEqual([
      { type: 'group', records: records as InnerRecord[] },
      { type: 'commit', records: 1 },
    ]);
  });

  test('decodeRecord() returns a lone record as itself, then the commit counting it', () => {
    const batch = encodeBatch([records[0]!], { seq: 3, offset: 200, durableOffset: 150 }, key);
    expect(decodeAll(batch, 200, 3)).toEqual([records[0]!, { type: 'commit', records: 1 }]);
  });

  test('decodeRecord() rejects a record read at another offset, segment or batch', () => {
    const batch = encodeBatch([records[1]!], { seq: 3, offset: 200, durableOffset: 150 }, key);
    const at = (offset: number): Uint8Array => {
      const bytes = new Uint8Array(offset + batch.length);
      bytes.set(batch, offset);
      return bytes;
    };
    expect(decodeRecord(at(200), { seq: 3, offset: 200, batchOffset: 200 }, key).ok).toBe(true);
    const moved = decodeRecord(at(208), { seq: 3, offset: 208, batchOffset: 200 }, key);
    const otherSegment = decodeRecord(at(200), { seq: 4, offset: 200, batchOffset: 200 }, key);
    const otherBatch = decodeRecord(at(200), { seq: 3, offset: 200, batchOffset: 105 }, key);
    expect([moved.ok, otherSegment.ok, otherBatch.ok]).toEqual([false, false, false]);
    expect(!moved.ok && moved.reason).toContain('failed authentication');
    expect(!otherBatch.ok && otherBatch.reason).toContain('claims a batch at offset 200');
  });

  test('decodeRecord() rejects a record sealed under another key id or key', () => {
    const batch = encodeBatch([records[0]!], { seq: 1, offset: 0, durableOffset: 0 }, key);
    const otherId = decodeRecord(
      batch,
      { seq: 1, offset: 0, batchOffset: 0 },
      { ...key, keyId: 8 },
    );
    const otherKey = decodeRecord(
      batch,
      { seq: 1, offset: 0, batchOffset: 0 },
      { dek: systemRandom(32), keyId: 7 },
    );
    expect(!otherId.ok && otherId.reason).toBe(
      'record is sealed with key id 7 but the WAL key has id 8',
    );
    expect(!otherKey.ok && otherKey.reason).toContain('failed authentication');
  });

  test('encodeBatch() refuses a record whose sealed body exceeds walRecordBytesMax', () => {
    const big: WALRecord = {
      type: 'entry',
      entry: { index: 1, term: 1, type: 'normal', data: new Uint8Array(walRecordBytesMax) },
    };
    let error: unknown;
    try {
      encodeBatch([big], { seq: 1, offset: 0, durableOffset: 0 }, key);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SecretdError);
    expect((error as SecretdError).code).toBe('too_large');
  });

  test('the sealed bytes never contain the plaintext of entry data', () => {
    const marker = 'PLAINTEXT-MARKER-codec';
    const batch = encodeBatch(
      [{ type: 'entry', entry: { index: 1, term: 1, type: 'normal', data: text(marker) } }],
      { seq: 1, offset: 0, durableOffset: 0 },
      key,
    );
    expect(Buffer.from(batch).includes(marker)).toBe(false);
  });
});

describe('payloadParts', () => {
  test('its parts joined are the payload decodePayload() reads back, for every kind of record, and entry data is referenced, not copied', () => {
    const all: WALRecord[] = [...records, { type: 'group', records: records as InnerRecord[] }];
    for (const record of all) {
      const { parts, length } = payloadParts(record);
      const joined = new Uint8Array(length);
      let at = 0;
      for (const part of parts) {
        joined.set(part, at);
        at += part.length;
      }
      expect([at, decodePayload(record.type, joined)]).toEqual([length, record]);
    }
    const entry = records[1] as Extract<WALRecord, { type: 'entry' }>;
    expect(payloadParts(entry).parts).toContain(entry.entry.data);
  });

  test('encodeBatch() leaves the entries it seals as they were: it zeroes only its own copies', () => {
    const data = text('a value the log still holds');
    const batch: WALRecord[] = [
      { type: 'entry', entry: { index: 5, term: 1, type: 'normal', data } },
      { type: 'entry', entry: { index: 6, term: 1, type: 'normal', data: text('another') } },
    ];
    encodeBatch(batch, { seq: 1, offset: segmentHeaderBytes, durableOffset: 0 }, key);
    encodeBatch([batch[0]!], { seq: 1, offset: segmentHeaderBytes, durableOffset: 0 }, key);
    expect(new TextDecoder().decode(data)).toBe('a value the log still holds');
  });
});

describe('encodeBatch into a buffer', () => {
  test('encodeBatch() sealed into a reused buffer holding other bytes writes every byte of the batch, which decodes as one sealed into a new array', () => {
    const at = { seq: 3, offset: segmentHeaderBytes, durableOffset: 0 };
    const fresh = encodeBatch(records.slice(0, 4), at, key);
    const dirty = new Uint8Array(fresh.length + 100).fill(0xff);
    const reused = encodeBatch(records.slice(0, 4), at, key, dirty);
    expect(reused.buffer).toBe(dirty.buffer);
    expect(reused.length).toBe(fresh.length);
    const segment = new Uint8Array(segmentHeaderBytes + reused.length);
    segment.set(reused, segmentHeaderBytes);
    const group = decodeRecord(
      segment,
      { seq: 3, offset: segmentHeaderBytes, batchOffset: segmentHeaderBytes },
      key,
    );
    expect(group.ok && group.value.record).toEqual({
      type: 'group',
      records: records.slice(0, 4),
    } as WALRecord);
    // Too small a buffer is left alone: the batch gets an array of its own.
    const small = new Uint8Array(10).fill(0xff);
    const own = encodeBatch(records.slice(0, 4), at, key, small);
    expect(own.buffer).not.toBe(small.buffer);
    expect(small.every((b) => b === 0xff)).toBe(true);
  });
});

describe('decodeFrame', () => {
  const frame = encodeBatch([records[0]!], { seq: 1, offset: 0, durableOffset: 0 }, key);

  test('decodeFrame() refuses a body length of 2 GiB from the header alone, before reading a body', () => {
    const header = frame.slice(0, recordHeaderBytes); // no body present at all
    new DataView(header.buffer).setUint32(4, 2 ** 31);
    const decoded = decodeFrame(header, 0);
    expect(decoded).toEqual({
      ok: false,
      reason: `body length 2147483648 exceeds walRecordBytesMax (${walRecordBytesMax})`,
    });
  });

  test('decodeFrame() reports short headers, short bodies, zeros and checksum mismatches', () => {
    const flipped = frame.slice();
    flipped[recordHeaderBytes + 40]! ^= 0x01;
    const reasons = [frame.subarray(0, 10), frame.subarray(0, 60), new Uint8Array(64), flipped].map(
      (bytes) => {
        const decoded = decodeFrame(bytes, 0);
        return decoded.ok ? 'ok' : decoded.reason;
      },
    );
    expect(reasons).toEqual([
      'short record header (10 bytes)',
      `short record body (40 of ${new DataView(frame.buffer).getUint32(4)} bytes)`,
      'bad record magic 0x00',
      'record checksum mismatch',
    ]);
    expect(frame[0]).toBe(recordMagic);
  });

  test('a record carries a CRC-32 (magic 0xa8) over its header and body', () => {
    const crcAt = recordHeaderBytes - 4;
    const view = new DataView(frame.buffer, frame.byteOffset);
    const stored = view.getUint32(crcAt);
    const body = frame.subarray(recordHeaderBytes, recordHeaderBytes + view.getUint32(4));
    expect(stored).toBe(crc32(body, crc32(frame.subarray(0, crcAt))));
    expect(stored).not.toBe(crc32c(body, crc32c(frame.subarray(0, crcAt))));
  });

  test('records written before, with magic 0xa7 and a CRC-32C, are still read; a magic and CRC that do not match are refused', () => {
    const batch = encodeBatch(
      [records[1]!, records[2]!],
      { seq: 4, offset: segmentHeaderBytes, durableOffset: 0 },
      key,
    );
    const legacy = asLegacy(batch);
    expect(legacy[0]).toBe(legacyRecordMagic);
    // decodeRecord reads at the record's offset in its segment: the batch laid where it was written.
    const segment = new Uint8Array(segmentHeaderBytes + legacy.length);
    segment.set(legacy, segmentHeaderBytes);
    const decoded: WALRecord[] = [];
    for (let offset = segmentHeaderBytes; offset < segment.length;) {
      const record = decodeRecord(
        segment,
        { seq: 4, offset, batchOffset: segmentHeaderBytes },
        key,
      );
      if (!record.ok) throw new Error(record.reason);
      decoded.push(record.value.record);
      offset = record.value.end;
    }
    expect(decoded[0]).toEqual({ type: 'group', records: [records[1]!, records[2]!] } as WALRecord);
    expect(decoded[1]).toEqual({ type: 'commit', records: 1 });
    // A new record relabelled 0xa7 (or an old one 0xa8) is checked with the other CRC and fails.
    const relabelled = frame.slice();
    relabelled[0] = legacyRecordMagic;
    expect(decodeFrame(relabelled, 0)).toEqual({ ok: false, reason: 'record checksum mismatch' });
    const old = asLegacy(frame);
    old[0] = recordMagic;
    expect(decodeFrame(old, 0)).toEqual({ ok: false, reason: 'record checksum mismatch' });
    // A flipped byte in an old record fails its CRC-32C as it always did.
    const flipped = asLegacy(frame);
    flipped[recordHeaderBytes + 40]! ^= 0x01;
    expect(decodeFrame(flipped, 0)).toEqual({ ok: false, reason: 'record checksum mismatch' });
  });
});

/** `batch` as it was written before CRC-32: each record's magic 0xa7 and its CRC a CRC-32C. */
function asLegacy(batch: Uint8Array): Uint8Array {
  const out = batch.slice();
  const view = new DataView(out.buffer);
  const crcAt = recordHeaderBytes - 4;
  for (let at = 0; at < out.length;) {
    const end = at + recordHeaderBytes + view.getUint32(at + 4);
    out[at] = legacyRecordMagic;
    const crc = crc32c(
      out.subarray(at + recordHeaderBytes, end),
      crc32c(out.subarray(at, at + crcAt)),
    );
    view.setUint32(at + crcAt, crc);
    at = end;
  }
  return out;
}

describe('segment header', () => {
  const header = encodeSegmentHeader({ seq: 2 ** 33, firstIndex: 12345 }, key);

  test('decodeSegmentHeader() returns the encoded sequence and first index', () => {
    expect(header.length).toBe(segmentHeaderBytes);
    expect(decodeSegmentHeader(header, key)).toEqual({
      ok: true,
      value: { seq: 2 ** 33, firstIndex: 12345 },
    });
  });

  test('decodeSegmentHeader() refuses a wrong key, a wrong key id and a flipped byte', () => {
    const flipped = header.slice();
    flipped[17]! ^= 0x10;
    const reasons = [
      decodeSegmentHeader(header, { dek: systemRandom(32), keyId: 7 }),
      decodeSegmentHeader(header, { ...key, keyId: 1 }),
      decodeSegmentHeader(flipped, key),
    ].map((decoded) => (decoded.ok ? 'ok' : decoded.reason));
    expect(reasons).toEqual([
      'the segment key check failed: the WAL key (DEK) is wrong or the header was altered',
      'the segment is sealed with key id 7 but the WAL key has id 1',
      'the segment header checksum does not match',
    ]);
  });
});

describe('decodeSnapshotParts', () => {
  const meta = {
    index: 2 ** 40 + 7,
    term: 3,
    conf: { voters: ['m1', 'm2'] as MemberId[], learners: ['m3'] as MemberId[] },
  };
  const inline = systemRandom(300);
  const id = systemRandom(pieceIdBytes);
  const whole = Buffer.concat([
    ...snapshotPartsStream(meta, [
      {
        kind: 'inline',
        length: inline.length,
        chunks: () => [inline.subarray(0, 100), inline.subarray(100)],
      },
      { kind: 'shared', length: 5_000, id },
      { kind: 'shared', length: 64, id, named: true },
      { kind: 'inline', length: 0, chunks: () => [] },
    ]),
  ]);
  // What decoding gives, each array copied out of whatever it is a view of.
  const want = {
    meta,
    parts: [
      { kind: 'inline', bytes: inline },
      { kind: 'shared', length: 5_000, id },
      { kind: 'shared', length: 64, id, named: true },
      { kind: 'inline', bytes: new Uint8Array(0) },
    ],
  };
  const decoded = (chunks: Uint8Array[]): unknown => {
    const { meta: m, parts } = decodeSnapshotParts(chunks);
    const copied = parts.map((p) =>
      p.kind === 'inline'
        ? { kind: p.kind, bytes: new Uint8Array(Buffer.concat(p.views)) }
        : { ...p, id: p.id.slice() },
    );
    return { meta: m, parts: copied };
  };
  const splitAt = (cuts: number[]): Uint8Array[] =>
    [0, ...cuts, whole.length]
      .slice(1)
      .map((end, i, ends) => whole.subarray(i === 0 ? 0 : ends[i - 1], end));

  test('reads the payload the same whole, cut at any byte, and in chunks of every size, empty ones among them', () => {
    expect(decoded([whole])).toEqual(want);
    const wrong: number[] = [];
    for (let cut = 0; cut <= whole.length; cut++)
      if (!Bun.deepEquals(decoded(splitAt([cut, cut])), want)) wrong.push(cut); // an empty chunk at the cut
    for (let size = 1; size <= 64; size++) {
      const cuts = Array.from(
        { length: Math.floor(whole.length / size) },
        (_, i) => (i + 1) * size,
      );
      if (!Bun.deepEquals(decoded(splitAt(cuts)), want)) wrong.push(-size);
    }
    expect(wrong).toEqual([]);
  });

  test('a payload cut short, or followed by more bytes, in any chunk, is a RangeError', () => {
    const errors = new Set<string>();
    for (const chunks of [
      [whole.subarray(0, whole.length - 1)],
      [whole.subarray(0, 10), whole.subarray(10, whole.length - 1)],
      [whole, new Uint8Array(1)],
      [whole.subarray(0, 50), whole.subarray(50), new Uint8Array(0), Uint8Array.of(9, 9)],
    ]) {
      try {
        decodeSnapshotParts(chunks);
        errors.add('decoded');
      } catch (error) {
        errors.add(`${(error as Error).constructor.name}: ${(error as Error).message}`);
      }
    }
    expect([...errors].sort()).toEqual([
      'RangeError: 1 trailing payload bytes',
      'RangeError: 2 trailing payload bytes',
      'RangeError: payload is shorter than its fields',
    ]);
  });
});
