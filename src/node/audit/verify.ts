/**
 * Checking a chain of record lines: in the store (`secretd audit verify`) and in an exported file,
 * offline (`secretd audit verify FILE`). Pure.
 *
 * An export is NDJSON:
 *   {"auditExport":1,"anchor":{"seq":A,"hash":H}}       the hash record A+1 chains from
 *   <record A+1> … <record B>                             the lines as the store keeps them
 *   {"auditExportEnd":{"seq":B,"hash":HB,"count":B-A}}    so a cut-off file is told from a whole one
 *
 * The first bad record is named by its sequence number: a line that does not parse or is not in
 * canonical form (edited), a sequence number other than the next one (removed, reordered or
 * repeated), a hash that does not chain (edited), or records missing at the end (truncated).
 */
import { SecretdError } from '../../errors.ts';
import { chainHash, parseRecordLine } from './record.ts';

export interface ChainAnchor {
  /** The sequence number before the first record (0 at the start of the trail). */
  readonly seq: number;
  readonly hash: string;
}

export type VerifyOutcome =
  | { readonly ok: true; readonly first: number; readonly last: number; readonly count: number }
  | { readonly ok: false; readonly seq: number; readonly reason: string };

/** Feeds lines one by one; the first failure sticks. */
export class ChainVerifier {
  #expected: number;
  #previous: string;
  readonly #first: number;
  #failure: VerifyOutcome | null = null;

  constructor(anchor: ChainAnchor) {
    this.#expected = anchor.seq + 1;
    this.#previous = anchor.hash;
    this.#first = anchor.seq + 1;
  }

  get failed(): boolean {
    return this.#failure !== null;
  }

  /** The sequence number the next line must carry, and the hash it must chain from. */
  get head(): ChainAnchor {
    return { seq: this.#expected - 1, hash: this.#previous };
  }

  push(line: string): boolean {
    if (this.#failure) return false;
    const seq = this.#expected;
    let parsed: ReturnType<typeof parseRecordLine>;
    try {
      parsed = parseRecordLine(line);
    } catch (error) {
      return this.#fail(seq, `record ${seq} is damaged: ${(error as Error).message}`);
    }
    const { record } = parsed;
    if (record.seq > seq)
      return this.#fail(seq, `record ${seq} is missing (the next record is ${record.seq})`);
    if (record.seq < seq)
      return this.#fail(
        seq,
        `record ${seq} is missing or out of order (found record ${record.seq} in its place)`,
      );
    if (chainHash(this.#previous, parsed.canonical) !== record.hash)
      return this.#fail(
        seq,
        `record ${seq} was changed: its hash does not chain from record ${seq - 1}`,
      );
    this.#previous = record.hash;
    this.#expected = seq + 1;
    return true;
  }

  /** The outcome so far (`end`, when given, is where the chain must stop). */
  outcome(end?: ChainAnchor & { readonly count?: number }): VerifyOutcome {
    if (this.#failure) return this.#failure;
    const last = this.#expected - 1;
    if (end !== undefined) {
      if (end.seq > last)
        return {
          ok: false,
          seq: last + 1,
          reason: `records ${last + 1} to ${end.seq} are missing (truncated)`,
        };
      if (end.seq < last || end.hash !== this.#previous)
        return {
          ok: false,
          seq: end.seq,
          reason: `the export's end line does not match record ${end.seq}`,
        };
      if (end.count !== undefined && end.count !== last - this.#first + 1)
        return {
          ok: false,
          seq: last,
          reason: `the export's end line counts ${end.count} records, the file holds ${last - this.#first + 1}`,
        };
    }
    return { ok: true, first: this.#first, last, count: last - this.#first + 1 };
  }

  #fail(seq: number, reason: string): false {
    this.#failure = { ok: false, seq, reason };
    return false;
  }
}

/** The header line of an export. */
export function exportHeader(anchor: ChainAnchor): string {
  return JSON.stringify({ auditExport: 1, anchor: { seq: anchor.seq, hash: anchor.hash } });
}

/** The last line of an export. */
export function exportEnd(head: ChainAnchor, count: number): string {
  return JSON.stringify({ auditExportEnd: { seq: head.seq, hash: head.hash, count } });
}

/** Checks an exported file's text, offline. */
export function verifyExport(text: string): VerifyOutcome {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  const anchor = readHeader(lines[0]);
  const verifier = new ChainVerifier(anchor);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('{"auditExportEnd"')) {
      const end = readEnd(line, verifier.head.seq);
      if (i !== lines.length - 1)
        return { ok: false, seq: end.seq + 1, reason: "lines follow the export's end line" };
      return verifier.outcome(end);
    }
    if (!verifier.push(line)) return verifier.outcome();
  }
  const head = verifier.outcome();
  if (!head.ok) return head;
  return {
    ok: false,
    seq: head.last + 1,
    reason: `the export ends after record ${head.last} without its end line (truncated)`,
  };
}

function readHeader(line: string | undefined): ChainAnchor {
  const notExport = new SecretdError(
    'invalid',
    'Cannot verify the file: its first line is not an audit export header (make one with `secretd audit export FILE`)',
  );
  if (line === undefined) throw notExport;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw notExport;
  }
  const anchor = (value as { auditExport?: unknown; anchor?: ChainAnchor } | null)?.anchor;
  if (
    (value as { auditExport?: unknown } | null)?.auditExport !== 1 ||
    typeof anchor?.seq !== 'number' ||
    !Number.isSafeInteger(anchor.seq) ||
    anchor.seq < 0 ||
    typeof anchor.hash !== 'string' ||
    !/^[0-9a-f]{64}$/.test(anchor.hash)
  )
    throw notExport;
  return { seq: anchor.seq, hash: anchor.hash };
}

function readEnd(line: string, last: number): ChainAnchor & { count: number } {
  try {
    const end = (
      JSON.parse(line) as { auditExportEnd: { seq: number; hash: string; count: number } }
    ).auditExportEnd;
    if (
      Number.isSafeInteger(end.seq) &&
      typeof end.hash === 'string' &&
      Number.isSafeInteger(end.count)
    )
      return end;
  } catch {
    // reported below
  }
  return { seq: last + 1, hash: '', count: -1 };
}
