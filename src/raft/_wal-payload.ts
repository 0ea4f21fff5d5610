/**
 * Plaintext payloads of WAL records and snapshot files (what is sealed inside them). Integers are
 * big-endian; terms and indexes are u64 on disk but must be safe integers in memory.
 */
import { assert, assertNever } from '../errors.ts';
import type {
  ConfState,
  Entry,
  EntryType,
  HardState,
  MemberId,
  Snapshot,
  SnapshotMeta,
} from './types.ts';

export type WALRecord =
  | { readonly type: 'entry'; readonly entry: Entry }
  | { readonly type: 'hard-state'; readonly hardState: HardState }
  /** `keepLog`: the entries after meta.index stay (local compaction); false drops them (installed snapshot). */
  | { readonly type: 'snapshot'; readonly meta: SnapshotMeta; readonly keepLog: boolean }
  /** Ends a batch; `records` counts the records before it in the same batch. */
  | { readonly type: 'commit'; readonly records: number }
  /**
   * Several records sealed as one (a whole group-commit batch): one AEAD call per batch instead of
   * one per record, which is most of the WAL's CPU cost for small entries. Never nested.
   */
  | { readonly type: 'group'; readonly records: readonly InnerRecord[] };

/** What a group may hold. */
export type InnerRecord = Extract<WALRecord, { type: 'entry' | 'hard-state' | 'snapshot' }>;

export type WALRecordType = WALRecord['type'];

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const entryTypeCodes: Record<EntryType, number> = { normal: 1, conf: 2 };

/** The payload of a record without entry data: made whole (a few bytes). */
function flatPayload(record: Exclude<WALRecord, { type: 'entry' | 'group' }>): Uint8Array {
  switch (record.type) {
    case 'hard-state': {
      const { term, commit, vote } = record.hardState;
      const voteBytes = textEncoder.encode(vote ?? '');
      const out = new Writer(17 + voteBytes.length);
      out
        .u64(term)
        .u64(commit)
        .u8(vote === null ? 0 : 1)
        .bytes(voteBytes);
      return out.done();
    }
    case 'snapshot': {
      const out = new Writer(metaBytes(record.meta) + 1);
      return writeMeta(out, record.meta)
        .u8(record.keepLog ? 1 : 0)
        .done();
    }
    case 'commit':
      return new Writer(4).u32(record.records).done();
    default:
      return assertNever(record);
  }
}

const innerCodes: Record<InnerRecord['type'], number> = { entry: 1, 'hard-state': 2, snapshot: 3 };

/**
 * The payload of `record` (what decodePayload reads) as parts to be sealed in order, without
 * joining them: an entry's data is the log's own buffer, referenced rather than copied (for a
 * 64 KiB value the copy into the entry payload and again into its group cost as much as sealing
 * it). `owned` are the parts made here, which the caller zeroes once sealed; the referenced entry
 * data is never zeroed (the log holds it).
 *
 *   entry:  index u64 | term u64 | type u8 | data
 *   group:  one or more of: inner type u8 | payload length u32 | payload
 */
export function payloadParts(record: WALRecord): {
  readonly parts: Uint8Array[];
  readonly owned: Uint8Array[];
  readonly length: number;
} {
  if (record.type === 'entry') {
    const { entry } = record;
    const head = new Writer(17)
      .u64(entry.index)
      .u64(entry.term)
      .u8(entryTypeCodes[entry.type])
      .done();
    return { parts: [head, entry.data], owned: [head], length: 17 + entry.data.length };
  }
  if (record.type === 'group') {
    const parts: Uint8Array[] = [];
    const owned: Uint8Array[] = [];
    let length = 0;
    for (const inner of record.records) {
      const of = payloadParts(inner);
      const head = new Writer(5).u8(innerCodes[inner.type]).u32(of.length).done();
      parts.push(head, ...of.parts);
      owned.push(head, ...of.owned);
      length += 5 + of.length;
    }
    return { parts, owned, length };
  }
  const whole = flatPayload(record);
  return { parts: [whole], owned: [whole], length: whole.length };
}
const innerTypes: readonly (InnerRecord['type'] | undefined)[] = [
  undefined,
  'entry',
  'hard-state',
  'snapshot',
];

/** Throws a RangeError when the payload does not parse as `type` (the caller reports corruption). */
export function decodePayload(type: WALRecordType, payload: Uint8Array): WALRecord {
  const r = new Reader(payload);
  let record: WALRecord;
  switch (type) {
    case 'entry': {
      const index = r.u64();
      const term = r.u64();
      const code = r.u8();
      const entryType: EntryType | undefined =
        code === 1 ? 'normal' : code === 2 ? 'conf' : undefined;
      if (entryType === undefined) throw new RangeError(`unknown entry type ${code}`);
      record = { type, entry: { index, term, type: entryType, data: r.rest() } };
      break;
    }
    case 'hard-state': {
      const term = r.u64();
      const commit = r.u64();
      const hasVote = r.u8() === 1;
      const vote = textDecoder.decode(r.rest());
      record = { type, hardState: { term, commit, vote: hasVote ? (vote as MemberId) : null } };
      break;
    }
    case 'snapshot': {
      const meta = readMeta(r);
      record = { type, meta, keepLog: r.u8() === 1 };
      break;
    }
    case 'commit':
      record = { type, records: r.u32() };
      break;
    case 'group': {
      const records: InnerRecord[] = [];
      while (!r.atEnd()) {
        const innerType = innerTypes[r.u8()];
        if (innerType === undefined) throw new RangeError('unknown record type inside a group');
        records.push(decodePayload(innerType, r.bytes(r.u32())) as InnerRecord);
      }
      record = { type, records };
      break;
    }
    default:
      return assertNever(type);
  }
  r.end();
  return record;
}

/** A snapshot file's payload: its meta, then the state machine's data. */
export function encodeSnapshotPayload(snapshot: Snapshot): Uint8Array {
  const out = new Writer(metaBytes(snapshot.meta) + snapshot.data.length);
  return writeMeta(out, snapshot.meta).bytes(snapshot.data).done();
}

export function decodeSnapshotPayload(payload: Uint8Array): Snapshot {
  const r = new Reader(payload);
  const meta = readMeta(r);
  return { meta, data: r.rest() };
}

/**
 * A part of a version 2 or 3 snapshot file: bytes held inline, or a reference to a shared piece,
 * by its content id or, `named`, by the id its maker gave it (SnapshotPiece.named).
 */
export type SnapshotPart = { readonly kind: 'inline'; readonly bytes: Uint8Array } | SharedPart;

/**
 * A part as decodeSnapshotParts reads it: an inline part as views of the chunks the payload was
 * opened in (several where it runs over from one into the next), never copied out of them.
 */
export type DecodedSnapshotPart =
  | { readonly kind: 'inline'; readonly length: number; readonly views: readonly Uint8Array[] }
  | SharedPart;

type SharedPart = {
  readonly kind: 'shared';
  readonly id: Uint8Array;
  /** Its bytes in the data. */
  readonly length: number;
  readonly named?: boolean;
  /**
   * A named piece kept as `stored` bytes that stand in the data as their base64 (`length`, which
   * is base64Length(stored)): SnapshotPiece.base64.
   */
  readonly stored?: number;
};

const partCodes = { inline: 1, shared: 2, named: 3, namedBase64: 4 } as const;

/** The length of the standard (padded) base64 of `bytes` bytes. */
export function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}
/** A shared piece's id: the SHA-256 of its bytes, or its maker's 32-byte name for them. */
export const pieceIdBytes = 32;

/**
 * A version 2 snapshot file's payload: its meta, a part count, then the parts in order, whose
 * bytes concatenated are the state machine's data:
 *   inline: u8 1 | u64 length | bytes        shared: u8 2 | u64 length | id (32 bytes)
 *   named:  u8 3 | u64 length | id (32 bytes): a shared piece named by its maker (since the
 *           fifteenth session; older builds refuse such a file as corrupt)
 *   named, stored raw: u8 4 | u64 stored length | id (32 bytes): a named piece that stands in
 *           the data as the base64 of its stored bytes, base64Length(stored length) of them
 *           (since the nineteenth session; older builds refuse such a file as corrupt)
 */
export function encodeSnapshotParts(
  meta: SnapshotMeta,
  parts: readonly SnapshotPart[],
): Uint8Array {
  let size = metaBytes(meta) + 4;
  for (const part of parts) size += 9 + (part.kind === 'inline' ? part.bytes.length : pieceIdBytes);
  const out = writeMeta(new Writer(size), meta).u32(parts.length);
  for (const part of parts) {
    if (part.kind === 'inline') out.u8(partCodes.inline).u64(part.bytes.length).bytes(part.bytes);
    else out.bytes(sharedPartHead(part));
  }
  return out.done();
}

/**
 * The same payload as encodeSnapshotParts, as a sequence of byte arrays to be written one after
 * another (their concatenation is that payload), so that no array holds the whole payload: the
 * meta and part count, then each part's head (kind, length, and a shared piece's id) followed by
 * an inline part's bytes, which are made only when the sequence reaches them. `inline` parts
 * give their length, and their bytes in one or more arrays whose lengths add up to it.
 */
export function* snapshotPartsStream(
  meta: SnapshotMeta,
  parts: readonly SnapshotStreamPart[],
): Generator<Uint8Array> {
  yield writeMeta(new Writer(metaBytes(meta) + 4), meta)
    .u32(parts.length)
    .done();
  for (const part of parts) {
    if (part.kind === 'shared') {
      yield sharedPartHead(part);
      continue;
    }
    yield new Writer(9).u8(partCodes.inline).u64(part.length).done();
    let written = 0;
    for (const bytes of part.chunks()) {
      written += bytes.length;
      yield bytes;
    }
    assert(
      written === part.length,
      `an inline snapshot part said ${part.length} bytes but made ${written}`,
    );
  }
}

/** A shared part as the payload holds it: its code, length and id. */
function sharedPartHead(part: SharedPart): Uint8Array {
  assert(part.id.length === pieceIdBytes, `a snapshot piece id is ${pieceIdBytes} bytes`);
  const out = new Writer(9 + pieceIdBytes);
  if (part.stored !== undefined) {
    assert(part.named === true, 'a piece stored raw is a named one');
    assert(part.length === base64Length(part.stored), 'a raw piece stands as its base64');
    out.u8(partCodes.namedBase64).u64(part.stored);
  } else out.u8(part.named === true ? partCodes.named : partCodes.shared).u64(part.length);
  return out.bytes(part.id).done();
}

/** A part for snapshotPartsStream: an inline part's bytes are made when the stream reaches them. */
export type SnapshotStreamPart =
  { readonly kind: 'inline'; readonly length: number; chunks(): Iterable<Uint8Array> } | SharedPart;

/**
 * Throws a RangeError when the payload does not parse (the caller reports corruption). The payload
 * as the chunks it was opened in (SnapshotStore): its inline parts are views of them, so that it
 * is never joined into a second copy (at 10,000 secrets, 4.9 MB: 13 ms of a restart).
 */
export function decodeSnapshotParts(payload: readonly Uint8Array[]): {
  meta: SnapshotMeta;
  parts: DecodedSnapshotPart[];
} {
  const r = new ChunksReader(payload);
  const meta = readMeta(r);
  const count = r.u32();
  const parts: DecodedSnapshotPart[] = [];
  for (let i = 0; i < count; i++) {
    const code = r.u8();
    const length = r.u64();
    if (code === partCodes.inline) parts.push({ kind: 'inline', length, views: r.views(length) });
    else if (code === partCodes.shared)
      parts.push({ kind: 'shared', length, id: r.bytes(pieceIdBytes) });
    else if (code === partCodes.named)
      parts.push({ kind: 'shared', length, id: r.bytes(pieceIdBytes), named: true });
    else if (code === partCodes.namedBase64)
      parts.push({
        kind: 'shared',
        length: base64Length(length),
        id: r.bytes(pieceIdBytes),
        named: true,
        stored: length,
      });
    else throw new RangeError(`unknown snapshot part kind ${code}`);
  }
  r.end();
  return { meta, parts };
}

function metaBytes(meta: SnapshotMeta): number {
  const ids = [...meta.conf.voters, ...meta.conf.learners];
  return 20 + ids.reduce((sum, id) => sum + 2 + textEncoder.encode(id).length, 0);
}

function writeMeta(out: Writer, meta: SnapshotMeta): Writer {
  const { voters, learners } = meta.conf;
  out.u64(meta.index).u64(meta.term).u16(voters.length).u16(learners.length);
  for (const id of [...voters, ...learners]) {
    const bytes = textEncoder.encode(id);
    out.u16(bytes.length).bytes(bytes);
  }
  return out;
}

function readMeta(r: FieldReader): SnapshotMeta {
  const index = r.u64();
  const term = r.u64();
  const voterCount = r.u16();
  const learnerCount = r.u16();
  const ids = (count: number): MemberId[] =>
    Array.from({ length: count }, () => textDecoder.decode(r.bytes(r.u16())) as MemberId);
  const conf: ConfState = { voters: ids(voterCount), learners: ids(learnerCount) };
  return { index, term, conf };
}

/**
 * Big-endian fields into a fresh buffer, byte by byte: a DataView over a new Uint8Array makes the
 * engine give that array an ArrayBuffer of its own, which cost more than the fields (a Writer per
 * WAL entry header: 1.6% of the server's CPU at one-node creates).
 */
class Writer {
  private readonly out: Uint8Array;
  private at = 0;
  constructor(size: number) {
    this.out = new Uint8Array(size);
  }
  u8(n: number): this {
    this.out[this.at++] = n;
    return this;
  }
  u16(n: number): this {
    assert(
      Number.isInteger(n) && n >= 0 && n <= 0xffff,
      `WAL payload field ${n} does not fit in u16`,
    );
    this.out[this.at++] = n >>> 8;
    this.out[this.at++] = n;
    return this;
  }
  u32(n: number): this {
    const out = this.out;
    out[this.at++] = n >>> 24;
    out[this.at++] = n >>> 16;
    out[this.at++] = n >>> 8;
    out[this.at++] = n;
    return this;
  }
  u64(n: number): this {
    assert(
      Number.isSafeInteger(n) && n >= 0,
      `WAL payload field ${n} is not a non-negative safe integer`,
    );
    return this.u32(Math.floor(n / 2 ** 32)).u32(n >>> 0);
  }
  bytes(b: Uint8Array): this {
    this.out.set(b, this.at);
    this.at += b.length;
    return this;
  }
  done(): Uint8Array {
    assert(
      this.at === this.out.length,
      `WAL payload sized ${this.out.length} but ${this.at} bytes written`,
    );
    return this.out;
  }
}

interface FieldReader {
  u8(): number;
  u16(): number;
  u32(): number;
  u64(): number;
  bytes(n: number): Uint8Array;
  end(): void;
}

/** Big-endian unsigned fields, each at most 8 bytes. */
function readUnsigned(bytes: Uint8Array): number {
  let value = 0;
  for (const byte of bytes) value = value * 256 + byte;
  return value;
}

/** A Reader over a payload held in consecutive chunks: a field that spans two is copied. */
class ChunksReader implements FieldReader {
  #chunk = 0;
  #at = 0;
  constructor(private readonly chunks: readonly Uint8Array[]) {
    this.#skipEnded();
  }
  #skipEnded(): void {
    while (this.#chunk < this.chunks.length && this.#at === this.chunks[this.#chunk]!.length) {
      this.#chunk++;
      this.#at = 0;
    }
  }
  u8(): number {
    return this.bytes(1)[0]!;
  }
  u16(): number {
    return readUnsigned(this.bytes(2));
  }
  u32(): number {
    return readUnsigned(this.bytes(4));
  }
  u64(): number {
    const bytes = this.bytes(8);
    if (readUnsigned(bytes.subarray(0, 4)) > 0x1fffff)
      throw new RangeError('u64 field exceeds the safe integer range');
    return readUnsigned(bytes);
  }
  bytes(n: number): Uint8Array {
    const chunk = this.chunks[this.#chunk];
    if (chunk !== undefined && this.#at + n <= chunk.length) {
      const out = chunk.subarray(this.#at, this.#at + n);
      this.#at += n;
      this.#skipEnded();
      return out;
    }
    const out = new Uint8Array(n);
    let at = 0;
    for (const view of this.views(n)) {
      out.set(view, at);
      at += view.length;
    }
    return out;
  }
  /** The next `n` bytes as views of the chunks they lie in, in order. */
  views(n: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let done = 0; done < n;) {
      const from = this.chunks[this.#chunk];
      if (from === undefined) throw new RangeError('payload is shorter than its fields');
      const take = Math.min(n - done, from.length - this.#at);
      out.push(from.subarray(this.#at, this.#at + take));
      done += take;
      this.#at += take;
      this.#skipEnded();
    }
    return out;
  }
  end(): void {
    if (this.#chunk < this.chunks.length) {
      const left = this.chunks
        .slice(this.#chunk)
        .reduce((sum, chunk) => sum + chunk.length, -this.#at);
      throw new RangeError(`${left} trailing payload bytes`);
    }
  }
}

class Reader implements FieldReader {
  private readonly view: DataView;
  private at = 0;
  constructor(private readonly input: Uint8Array) {
    this.view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  }
  private take(n: number): number {
    if (this.at + n > this.input.length) throw new RangeError('payload is shorter than its fields');
    const start = this.at;
    this.at += n;
    return start;
  }
  u8(): number {
    return this.view.getUint8(this.take(1));
  }
  u16(): number {
    return this.view.getUint16(this.take(2));
  }
  u32(): number {
    return this.view.getUint32(this.take(4));
  }
  u64(): number {
    const at = this.take(8);
    const hi = this.view.getUint32(at);
    if (hi > 0x1fffff) throw new RangeError('u64 field exceeds the safe integer range');
    return hi * 2 ** 32 + this.view.getUint32(at + 4);
  }
  bytes(n: number): Uint8Array {
    const at = this.take(n);
    return this.input.subarray(at, at + n);
  }
  rest(): Uint8Array {
    return this.bytes(this.input.length - this.at);
  }
  atEnd(): boolean {
    return this.at === this.input.length;
  }
  end(): void {
    if (this.at !== this.input.length)
      throw new RangeError(`${this.input.length - this.at} trailing payload bytes`);
  }
}
