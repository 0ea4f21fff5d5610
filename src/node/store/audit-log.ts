/**
 * The audit trail as the store holds it: the record lines (audit/record.ts), numbered from 1 and
 * chained by hash, in segments of `auditSegmentRecords`. Applied like everything else: a change's
 * record is appended by the same `apply` as the change (the command's `audit` tag names who), and
 * records no change carries arrive as `audit-append` entries. So the trail is replicated, sealed
 * in the log and snapshots, and the same on every manager.
 *
 * Compact: a record is kept as its line (one string, about 250-400 bytes), the form every reader
 * and every export wants, and parsed only when a query filters. Retention drops the oldest whole
 * segments while the rest still hold `kept` records; the hash of the last dropped record becomes
 * the anchor the first kept record chains from.
 */
import {
  canonical,
  chainHash,
  ChainVerifier,
  genesisHash,
  hashOfLine,
  recordLine,
  type AuditEntry,
  type ChainAnchor,
  type VerifyOutcome,
} from '../audit/index.ts';
import { auditKeptDefault, auditKeptMax, auditKeptMin, auditSegmentRecords } from '../../limits.ts';
import { assert, invalid } from '../../errors.ts';
import { createHash, type Hash } from 'node:crypto';
import { pieceContentId, textPiece } from '../../raft/snapshot-store.ts';
import type { SnapshotPiece, SnapshotSpan } from '../../raft/types.ts';

export interface AuditLogSnapshot {
  readonly anchor: ChainAnchor;
  readonly lines: readonly string[];
}

export class AuditLog {
  readonly #segmentRecords: number;
  /** Oldest first; only the last segment grows. */
  #segments: string[][] = [[]];
  #anchor: ChainAnchor = { seq: 0, hash: genesisHash };
  #head: ChainAnchor = { seq: 0, hash: genesisHash };
  readonly #listeners = new Set<(line: string) => void>();
  /**
   * The content id and length of each full segment's piece (snapshotPieces), made once. Not its
   * bytes: the snapshot store writes a piece once, so they are made again only when a piece must
   * be written again (a key rotation) or a whole snapshot is wanted (a backup).
   */
  readonly #segmentPieces = new WeakMap<readonly string[], { id: string; length: number }>();
  /**
   * Each line of the growing segment as JSON text (`JSON.stringify(line)`), made as it is appended,
   * so that a snapshot joins them instead of escaping up to a whole segment of lines again on the
   * Raft loop (a 1.9 MB segment took 30–50 ms); kept for a full segment until its piece is made.
   */
  readonly #escaped = new WeakMap<readonly string[], string[]>();
  /**
   * The growing segment's piece id in the making: the SHA-256 and UTF-8 length of its JSON text,
   * fed each line as it is appended, so that the segment's piece id is known the moment it is full
   * and no snapshot has to encode and hash a whole segment (2 MB: 3-4 ms each) on the Raft loop.
   * Absent for segments restored from a snapshot, whose id is made at their first snapshot.
   */
  readonly #growing = new WeakMap<readonly string[], { hash: Hash; length: number }>();

  constructor(segmentRecords: number = auditSegmentRecords) {
    this.#segmentRecords = segmentRecords;
  }

  /** The record before the first kept one (seq 0 and the genesis hash until retention drops any). */
  get anchor(): ChainAnchor {
    return this.#anchor;
  }

  /** The newest record's sequence number and hash. */
  get head(): ChainAnchor {
    return this.#head;
  }

  get size(): number {
    return this.#head.seq - this.#anchor.seq;
  }

  /** Numbers, chains and keeps a record; then drops old segments past `kept`. Returns its line. */
  append(entry: AuditEntry, kept: number = auditKeptDefault): string {
    const seq = this.#head.seq + 1;
    const text = canonical(seq, entry);
    const hash = chainHash(this.#head.hash, text);
    const line = recordLine(text, hash);
    let last = this.#segments[this.#segments.length - 1]!;
    if (last.length === this.#segmentRecords) {
      last = [];
      this.#segments.push(last);
    }
    last.push(line);
    let escaped = this.#escaped.get(last);
    if (escaped === undefined && last.length === 1) this.#escaped.set(last, (escaped = []));
    const json = JSON.stringify(line);
    escaped?.push(json);
    this.#grow(last, json);
    this.#head = { seq, hash };
    this.#retain(kept);
    for (const listener of this.#listeners) listener(line);
    return line;
  }

  /** Feeds the segment's piece id with its newest line; once the segment is full, records the id. */
  #grow(segment: readonly string[], json: string): void {
    let growing = this.#growing.get(segment);
    if (growing === undefined) {
      if (segment.length !== 1) return; // restored part-full: its id is made as before
      growing = { hash: createHash('sha256'), length: 0 };
      this.#growing.set(segment, growing);
    }
    const text = segment.length === 1 ? json : `,${json}`;
    growing.hash.update(text, 'utf8');
    growing.length += Buffer.byteLength(text, 'utf8');
    if (segment.length < this.#segmentRecords) return;
    this.#segmentPieces.set(segment, { id: growing.hash.digest('hex'), length: growing.length });
    this.#growing.delete(segment);
  }

  #retain(kept: number): void {
    while (this.#segments.length > 1 && this.size - this.#segments[0]!.length >= kept) {
      const dropped = this.#segments.shift()!;
      this.#anchor = { seq: this.#anchor.seq + dropped.length, hash: hashOfLine(dropped.at(-1)!) };
    }
  }

  /** Lines from sequence number `fromSeq` on (from the first kept one when it is older). */
  *lines(fromSeq = 0): Generator<string> {
    // Taken now: retention may drop segments while a reader is still going (the last one only grows).
    let seq = this.#anchor.seq + 1;
    for (const segment of [...this.#segments]) {
      if (seq + segment.length <= fromSeq) {
        seq += segment.length;
        continue;
      }
      const start = Math.max(0, fromSeq - seq);
      for (let i = start; i < segment.length; i++) yield segment[i]!;
      seq += segment.length;
    }
  }

  /** Checks every kept record's chain from the anchor. */
  verify(): VerifyOutcome {
    const verifier = new ChainVerifier(this.#anchor);
    for (const line of this.lines()) if (!verifier.push(line)) break;
    return verifier.outcome(this.#head);
  }

  /** Called with each appended line (the API's follow streams; never while restoring). */
  onAppend(listener: (line: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  snapshot(): AuditLogSnapshot {
    return { anchor: this.#anchor, lines: [...this.lines()] };
  }

  /** `JSON.stringify(this.snapshot())`: the text of snapshotPieces(). */
  snapshotJson(): string {
    const parts = this.#segments.filter((s) => s.length > 0).map((s) => this.#segmentJson(s));
    return `{"anchor":${JSON.stringify(this.#anchor)},"lines":[${parts.join(',')}]}`;
  }

  /**
   * `JSON.stringify(this.snapshot())` as UTF-8, in pieces whose bytes concatenated are exactly
   * that: each full segment is a shared piece (it never changes again: only the last segment
   * grows, and retention drops whole segments), which the snapshot store writes to disk once.
   */
  snapshotPieces(): SnapshotPiece[] {
    const pieces = [textPiece(`{"anchor":${JSON.stringify(this.#anchor)},"lines":[`)];
    let first = true;
    for (const segment of this.#segments) {
      if (segment.length === 0) continue;
      if (!first) pieces.push(textPiece(','));
      first = false;
      pieces.push(
        segment.length >= this.#segmentRecords
          ? this.#sharedPiece(segment)
          : this.#growingPiece(segment),
      );
    }
    pieces.push(textPiece(']}'));
    return pieces;
  }

  /**
   * The growing segment as of now, its text joined and encoded only when the snapshot store
   * reaches it (a turn of its own, not the Raft loop's turn that takes the snapshot): its lines
   * are taken now, and its length is the one fed as they were appended.
   */
  #growingPiece(segment: readonly string[]): SnapshotPiece {
    const growing = this.#growing.get(segment);
    const escaped = this.#escaped.get(segment);
    if (growing === undefined || escaped?.length !== segment.length)
      return textPiece(this.#segmentJson(segment));
    const lines = escaped.slice();
    return { length: growing.length, bytes: () => encoder.encode(lines.join(',')) };
  }

  #sharedPiece(segment: readonly string[]): SnapshotPiece {
    const known = this.#segmentPieces.get(segment);
    if (known !== undefined)
      return {
        ...known,
        bytes: () => {
          const bytes = encoder.encode(this.#segmentJson(segment));
          this.#escaped.delete(segment); // written now: its text is wanted again only rarely
          return bytes;
        },
      };
    const bytes = encoder.encode(this.#segmentJson(segment));
    const made = { id: pieceContentId(bytes), length: bytes.length };
    this.#segmentPieces.set(segment, made);
    this.#escaped.delete(segment); // full and made: its text is wanted again only rarely
    return { ...made, bytes: () => bytes };
  }

  /** The segment's lines as the inside of a JSON array: `JSON.stringify(segment)` without its brackets. */
  #segmentJson(segment: readonly string[]): string {
    const escaped = this.#escaped.get(segment);
    if (escaped !== undefined && escaped.length === segment.length) return escaped.join(',');
    return JSON.stringify(segment).slice(1, -1);
  }

  /**
   * The log a snapshot holds; `loaded`: the snapshot's data and where its shared pieces lay, when
   * it was loaded from pieces (Snapshot.shared), whose ids the full segments then take.
   */
  static restore(
    body: AuditLogSnapshot | undefined,
    segmentRecords?: number,
    loaded?: { readonly data: Uint8Array; readonly shared: readonly SnapshotSpan[] },
  ): AuditLog {
    const log = new AuditLog(segmentRecords);
    if (body === undefined) return log;
    log.#anchor = body.anchor;
    log.#head = body.anchor;
    const size = log.#segmentRecords;
    log.#segments = [];
    for (let i = 0; i < body.lines.length; i += size)
      log.#segments.push(body.lines.slice(i, i + size));
    if (log.#segments.length === 0) log.#segments.push([]);
    const last = log.#segments.at(-1)!;
    if (last.length > 0 && last.length < size)
      log.#escaped.set(
        last,
        last.map((line) => JSON.stringify(line)),
      );
    const lastLine = body.lines.at(-1);
    if (lastLine !== undefined)
      log.#head = { seq: body.anchor.seq + body.lines.length, hash: hashOfLine(lastLine) };
    assert(
      lastLine === undefined || lastLine.startsWith(`{"seq":${log.#head.seq},`),
      'the audit trail in a snapshot is numbered without gaps',
    );
    if (loaded !== undefined) log.#takePieces(loaded.data, loaded.shared);
    return log;
  }

  /**
   * Takes the ids of the full segments' pieces from the snapshot this log was restored from,
   * instead of making them at the next snapshot: escaping, encoding and hashing every full segment
   * held the Raft loop 31-41 ms at 10,000 records (two segments; 5-7 ms with this), some 4 s
   * (extrapolated) at the default retention of a million. The full segments are the snapshot's
   * last pieces with a content id (the audit trail comes last, its growing segment inline), in
   * order; segment i takes its piece only if the piece's bytes begin with the segment's first
   * line and end with its last, as JSON text (each line is unique by its seq), so what the
   * snapshot store hashed is that segment's text. Any other is made at the next snapshot, as for
   * a snapshot that came from elsewhere.
   */
  #takePieces(data: Uint8Array, shared: readonly SnapshotSpan[]): void {
    const full = this.#segments.filter((s) => s.length === this.#segmentRecords);
    const content = shared.filter((span) => !span.named);
    if (full.length === 0 || content.length < full.length) return;
    const spans = content.slice(content.length - full.length);
    full.forEach((segment, i) => {
      const { offset, length, id } = spans[i]!;
      const first = encoder.encode(JSON.stringify(segment[0]));
      const last = encoder.encode(JSON.stringify(segment.at(-1)));
      if (length < Math.max(first.length, last.length) || offset + length > data.length) return;
      if (!bytesAt(data, offset, first) || !bytesAt(data, offset + length - last.length, last))
        return;
      this.#segmentPieces.set(segment, { id, length });
    });
  }
}

const encoder = new TextEncoder();

/** Whether `data` holds `bytes` at `at`. */
function bytesAt(data: Uint8Array, at: number, bytes: Uint8Array): boolean {
  return Buffer.from(data.buffer, data.byteOffset + at, bytes.length).equals(bytes);
}

/** The cluster's retention setting, or the default. */
export function auditKeptOf(cluster: { readonly auditKept?: number } | null): number {
  return cluster?.auditKept ?? auditKeptDefault;
}

/** `--audit-kept` and `AuditKept`: a whole number of records in [auditKeptMin, auditKeptMax]. */
export function checkAuditKept(value: unknown): number {
  if (
    typeof value !== 'number' ||
    !Number.isSafeInteger(value) ||
    value < auditKeptMin ||
    value > auditKeptMax
  )
    throw invalid(
      `Invalid audit retention ${JSON.stringify(value)}: expected a whole number of records from ${auditKeptMin} to ${auditKeptMax}`,
    );
  return value;
}
