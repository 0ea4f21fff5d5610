/**
 * The store's snapshot in pieces (Store.snapshotPieces): the same JSON text as always, cut so that
 * each secret version's value of at least snapshotVersionPieceBytesMin bytes is a shared piece of
 * its own — the value's bytes, standing for their base64 between the quotes of `"data":"…"`
 * (SnapshotPiece.base64: the snapshot store keeps the bytes and puts their base64 in the text it
 * loads). A version's value never changes, so the snapshot store writes each such piece once and
 * later snapshots refer to it: a snapshot costs its small JSON and the values added since the
 * last one, not every value again.
 *
 * A piece's bytes are read only when the snapshot store must write it. Its id, by
 * which the snapshot store knows whether it is on disk, is a `named` piece's (SnapshotPiece): the
 * SHA-256 of its secret's id and version number, which name one value for the cluster's life (an
 * id is never reused, a version never changes), not the SHA-256 of its 87 KB of base64 at 64 KiB.
 * Until the fifteenth session it was that content id, computed by the snapshot store when a value
 * was first saved and after every restart: 33 µs of the loop per new 64 KiB value, and all of a
 * store's values hashed again at its first snapshot after a restart.
 *
 * Since the bytes are made after the snapshot is taken (the snapshot store writes off the Raft
 * loop while entries are applied), a value a version drops or a removal zeroes meanwhile must
 * still be there: the store zeroes values through ValueHolds, which holds back the zeroing of a
 * value a snapshot being written refers to until the snapshot store releases its piece.
 */
import { snapshotVersionPieceBytesMin } from '../../limits.ts';
import { textPiece, type ReleasedPiece } from '../../raft/snapshot-store.ts';
import type { SnapshotPiece } from '../../raft/types.ts';
import type { SecretRecord } from './types.ts';
import { toBase64 } from './commands.ts';
import { createHash } from 'node:crypto';

/**
 * Zeroing of secret values, held back while a snapshot being written may still make a piece from
 * one (best effort under a GC: other copies may exist, as everywhere).
 */
export class ValueHolds {
  readonly #held = new Map<Uint8Array, number>();
  readonly #zeroOnRelease = new Set<Uint8Array>();
  /** Holds of every value at once (holdAll) not yet released. */
  #all = 0;

  hold(value: Uint8Array): void {
    this.#held.set(value, (this.#held.get(value) ?? 0) + 1);
  }

  release(value: Uint8Array): void {
    const count = (this.#held.get(value) ?? 0) - 1;
    if (count > 0) {
      this.#held.set(value, count);
      return;
    }
    this.#held.delete(value);
    if (this.#all === 0 && this.#zeroOnRelease.delete(value)) value.fill(0);
  }

  /**
   * Holds back the zeroing of every value, those of the store now and any later, until the
   * returned function is called: what a snapshot written in slices needs, in one step instead of
   * a hold per value (20,000 values: 3-7 ms each way on the Raft loop). A value zeroed meanwhile
   * is zeroed at that call, or once the last hold of it alone is released.
   */
  holdAll(): () => void {
    this.#all++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#all > 0) return;
      for (const value of this.#zeroOnRelease) {
        if (this.#held.has(value)) continue;
        this.#zeroOnRelease.delete(value);
        value.fill(0);
      }
    };
  }

  /** Zeroes `value` now, or once the last snapshot holding it is released. */
  zero(value: Uint8Array): void {
    if (this.#all > 0 || this.#held.has(value)) this.#zeroOnRelease.add(value);
    else value.fill(0);
  }

  /** Values held by snapshots not yet released (for tests and metrics). */
  get heldCount(): number {
    return this.#held.size;
  }
}

/** Builds a piece list, joining adjacent text into one inline piece. */
export class PieceWriter {
  readonly #pieces: SnapshotPiece[] = [];
  #text: string[] = [];

  text(text: string): this {
    this.#text.push(text);
    return this;
  }

  piece(...pieces: readonly SnapshotPiece[]): this {
    this.#flush();
    this.#pieces.push(...pieces);
    return this;
  }

  /**
   * Makes the text written so far a piece now, so that its joining and encoding happen here, a
   * slice at a time, rather than for the whole store at once in `done` (10 ms at 20,000 secrets).
   */
  cut(): this {
    this.#flush();
    return this;
  }

  done(): SnapshotPiece[] {
    this.#flush();
    return this.#pieces;
  }

  #flush(): void {
    if (this.#text.length === 0) return;
    this.#pieces.push(textPiece(this.#text.join('')));
    this.#text = [];
  }
}

/**
 * Writes `[...secrets]` as `JSON.stringify` would with each version's data in base64 (the text
 * Store.restore reads), without the brackets; large values as held pieces. A record whose values
 * are all small is one native JSON.stringify, about four times faster than writing field by
 * field. A record with a large value has its text around its values made once (recordTemplate)
 * and reused by every later snapshot, so that only its values are written again: its JSON
 * written field by field at every snapshot was 4% of the server's time at 6,000 secrets of
 * 64 KiB. (Templates for all-small records too were slower: joining the text around each value
 * cost more than the one stringify.)
 */
export function writeSecrets(
  out: PieceWriter,
  secrets: Iterable<SecretRecord>,
  holds: ValueHolds,
): void {
  let first = true;
  for (const secret of secrets) {
    const comma = first ? '' : ',';
    first = false;
    if (secret.versions.every((version) => version.data.length < snapshotVersionPieceBytesMin)) {
      out.text(comma);
      // The same text, key order kept: a spread keeps `data` where it was.
      out.text(
        JSON.stringify({
          ...secret,
          versions: secret.versions.map((version) => ({
            ...version,
            data: toBase64(version.data),
          })),
        }),
      );
      continue;
    }
    const template = recordTemplate(secret);
    const cached = template.pieces;
    if (cached !== null) {
      out.piece(comma === '' ? cached.first : cached.firstAfterComma);
      for (let i = 0; i < template.values.length; i++)
        out.piece(valuePiece(template.values[i]!, template.ids[i]!, holds), cached.after[i]!);
      continue;
    }
    const { texts, values, ids } = template;
    let text = comma + texts[0]!;
    for (let i = 0; i < values.length; i++) {
      const value = values[i]!;
      if (value.length < snapshotVersionPieceBytesMin) {
        text += toBase64(value) + texts[i + 1]!;
        continue;
      }
      out.text(text);
      out.piece(valuePiece(value, ids[i]!, holds));
      text = texts[i + 1]!;
    }
    out.text(text);
  }
}

/**
 * A record's JSON with its versions' values left out: the text before, between and after them
 * (quotes included), and the values in order. Never a value's text: a secret is not kept as a
 * string, which could not be zeroed.
 */
interface RecordTemplate {
  readonly texts: readonly string[];
  readonly values: readonly Uint8Array[];
  /** Each value's piece id (valuePieceId), in the same order. */
  readonly ids: readonly string[];
  /**
   * When every value of the record is a piece of its own: the texts as encoded pieces, made once,
   * so that a snapshot adds the record's pieces without joining or encoding its text again (2-3
   * µs a record at every snapshot: at 64 KiB values, one each 16 MiB of log, the largest part of
   * a snapshot's cost on the loop; bench/README.md, thirteenth session). Null for a record with a
   * small value, whose base64 is in its text: that text is made at each snapshot and never kept.
   */
  readonly pieces: {
    readonly first: SnapshotPiece;
    /** The same with the comma that separates it from the record before. */
    readonly firstAfterComma: SnapshotPiece;
    /** The text after each value. */
    readonly after: readonly SnapshotPiece[];
  } | null;
}

/**
 * Templates of records with a large value, by record: a change makes a new record and never edits
 * one (Store), so each holds for the record's life.
 */
const templates = new WeakMap<SecretRecord, RecordTemplate>();

export function recordTemplate(secret: SecretRecord): RecordTemplate {
  let template = templates.get(secret);
  if (template === undefined) {
    template = makeTemplate(secret);
    templates.set(secret, template);
  }
  return template;
}

function makeTemplate(secret: SecretRecord): RecordTemplate {
  const texts: string[] = [];
  const values: Uint8Array[] = [];
  const ids: string[] = [];
  let text = '';
  const out: TextSink = { text: (more) => void (text += more) };
  /** A value's place: the text so far ends with its opening quote, the next starts with its closing one. */
  const slot = (value: Uint8Array, id: string): void => {
    texts.push(`${text}"`);
    values.push(value);
    ids.push(id);
    text = '"';
  };
  const versions = (): void => {
    out.text('[');
    secret.versions.forEach((version, i) => {
      if (i > 0) out.text(',');
      writeObject(out, version, (field) =>
        field === 'data'
          ? () => slot(version.data, valuePieceId(secret.id, version.version))
          : null,
      );
    });
    out.text(']');
  };
  writeObject(out, secret, (key) => (key === 'versions' ? versions : null));
  texts.push(text);
  const pieces = values.every((value) => value.length >= snapshotVersionPieceBytesMin)
    ? {
        first: textPiece(texts[0]!),
        firstAfterComma: textPiece(`,${texts[0]!}`),
        after: texts.slice(1).map(textPiece),
      }
    : null;
  return { texts, values, ids, pieces };
}

/**
 * The id of a secret version's value piece: the SHA-256 of its secret's id and version number.
 * Those name one value for the cluster's life (a secret's id is never given again, a version's
 * value never changes), on every manager alike. No content id can be the same: a content id is
 * the hash of a piece's bytes, base64 or JSON text, never this label's NUL-separated text. The
 * label changed when a piece became the value's bytes instead of their base64 (nineteenth
 * session), so that a piece an older build wrote (the base64, under the old label's id) is never
 * read as bytes: a data dir of that build writes each value once more at its first snapshot.
 */
export function valuePieceId(secretId: string, version: number): string {
  return createHash('sha256')
    .update(`secretd snapshot value bytes\0${secretId}\0${version}`)
    .digest('hex');
}

interface TextSink {
  text(text: string): void;
}

/**
 * `JSON.stringify(object)` in the same key order, but with the fields `special` names written by
 * it (a field whose value JSON leaves out, such as undefined, is left out as JSON does).
 */
function writeObject(
  out: TextSink,
  object: object,
  special: (key: string) => (() => void) | null,
): void {
  out.text('{');
  let first = true;
  for (const [key, value] of Object.entries(object)) {
    const write = special(key);
    const json = write === null ? (JSON.stringify(value) as string | undefined) : '';
    if (json === undefined) continue;
    out.text(`${first ? '' : ','}${JSON.stringify(key)}:${json}`);
    first = false;
    write?.();
  }
  out.text('}');
}

/**
 * A value as a named piece (valuePieceId) kept as its bytes, standing in the text as their base64
 * (SnapshotPiece.base64), held (its zeroing held back) until the snapshot store releases it. Its
 * bytes are the value itself, not a copy: the snapshot store seals them straight from it and
 * neither keeps nor changes them. Until the nineteenth session a piece was the value's base64,
 * made into a buffer the store lent at each save: the text (a third more bytes to seal and
 * write) and its encoding were about a tenth of a 64 KiB create's server CPU (bench/README.md).
 */
function valuePiece(value: Uint8Array, id: string, holds: ValueHolds): ReleasedPiece {
  holds.hold(value);
  let released = false;
  return {
    length: value.length,
    id,
    named: true,
    base64: true,
    bytes: () => value,
    release: () => {
      if (released) return;
      released = true;
      holds.release(value);
    },
  };
}
