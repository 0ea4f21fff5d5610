/**
 * An audit record, its canonical form and the hash chain. Pure: no clock, no I/O.
 *
 *   canonical(record) = JSON of the record's fields in the fixed order below, no whitespace, absent
 *                       fields left out, `hash` left out
 *   hash(n)           = hex(SHA-256(bytes(hash(n-1)) ‖ utf8(canonical(record n))))
 *   hash(0)           = 64 zeros (the genesis); after retention drops the oldest records, the hash
 *                       of the last dropped one is the anchor the first kept record chains from
 *   line(record n)    = canonical(record n) with `"hash":"<hex>"` as its last field
 *
 * A line is what the store keeps, what `GET /secretd/audit` sends and what an export holds, so a
 * record is checked by rebuilding its canonical form from the parsed line and comparing bytes.
 *
 * Never in a record: a secret's value, a token, a key, a certificate's private part. The fields are
 * names, ids, versions and outcomes only; `detail` is built by secretd from field names and counts.
 */
import { createHash } from 'node:crypto';
import { invalid } from '../../errors.ts';
import { auditFieldBytesMax } from '../../limits.ts';

export type AuditActorKind = 'client' | 'node' | 'admin-socket' | 'anonymous';

export interface AuditActor {
  readonly kind: AuditActorKind;
  /** Certificate CN (a person's or script's name, or a node id); `admin-socket` for the socket. */
  readonly name: string;
  /** A client certificate's serial (lower-case hex). */
  readonly serial?: string;
  readonly role: string;
  /** The admin socket's owner uid (the socket is 0600: only that user, or root, can connect). */
  readonly uid?: number;
}

/** What a record says, before the store numbers and chains it. */
export interface AuditEntry {
  /** When the request was made (the proposer's clock, ISO 8601), never when it was applied. */
  readonly at: string;
  readonly actor: AuditActor;
  /** The peer's address (`ip:port`), `admin-socket`, or `dispatcher` for deliveries. */
  readonly source: string;
  readonly action: string;
  readonly object?: { readonly id?: string; readonly name?: string };
  readonly version?: number;
  /** Deliveries and releases: the node, and the tasks that hold the version there. */
  readonly node?: string;
  readonly task?: string;
  /** Summary records: how many denials they stand for. */
  readonly count?: number;
  readonly detail?: string;
  /** `ok`, `denied`, or an error code. */
  readonly result: string;
  readonly requestId?: string;
}

export interface AuditRecord extends AuditEntry {
  readonly seq: number;
  readonly hash: string;
}

export const genesisHash = '0'.repeat(64);

const hashPattern = /^[0-9a-f]{64}$/;

/**
 * The canonical JSON of a record's fields (no hash), in the one fixed order. Written piece by piece
 * (strings through JSON.stringify, so escaping is JSON's own): the store computes it for every
 * record it applies, and this is several times cheaper than building and stringifying an object.
 */
export function canonical(seq: number, entry: AuditEntry): string {
  const actor = entry.actor;
  let text = `{"seq":${seq},"at":${q(entry.at)},"actor":{"kind":${q(actor.kind)},"name":${q(actor.name)}`;
  if (actor.serial !== undefined) text += `,"serial":${q(actor.serial)}`;
  text += `,"role":${q(actor.role)}`;
  if (actor.uid !== undefined) text += `,"uid":${actor.uid}`;
  text += `},"source":${q(entry.source)},"action":${q(entry.action)}`;
  const object = entry.object;
  if (object !== undefined) {
    const id = object.id === undefined ? '' : `"id":${q(object.id)}`;
    const name = object.name === undefined ? '' : `"name":${q(object.name)}`;
    text += `,"object":{${id}${id !== '' && name !== '' ? ',' : ''}${name}}`;
  }
  if (entry.version !== undefined) text += `,"version":${entry.version}`;
  if (entry.node !== undefined) text += `,"node":${q(entry.node)}`;
  if (entry.task !== undefined) text += `,"task":${q(entry.task)}`;
  if (entry.count !== undefined) text += `,"count":${entry.count}`;
  if (entry.detail !== undefined) text += `,"detail":${q(entry.detail)}`;
  text += `,"result":${q(entry.result)}`;
  if (entry.requestId !== undefined) text += `,"requestId":${q(entry.requestId)}`;
  return `${text}}`;
}

const q = (value: string): string => JSON.stringify(value);

/**
 * hash(n) from hash(n-1) and record n's canonical form. Every manager hashes every record it
 * applies, so this is on the write path: Bun's native one-shot SHA-256 where it runs under Bun,
 * node:crypto's elsewhere (Deno, Node); the same digest either way (verify.test.ts checks it
 * against a third implementation).
 */
export function chainHash(previousHash: string, canonicalRecord: string): string {
  // The input is made in one buffer kept for the next record (a record holds no secret): the
  // previous hash's 32 bytes, then the record's UTF-8, at most 3 bytes per UTF-16 unit.
  if (!hashPattern.test(previousHash)) throw invalid('the previous hash is not 64 hex digits');
  const most = 32 + 3 * canonicalRecord.length;
  if (chainInput.length < most) chainInput = Buffer.alloc(Math.max(most, 2 * chainInput.length));
  chainInput.write(previousHash, 0, 'hex');
  const { written } = encoder.encodeInto(canonicalRecord, chainInput.subarray(32));
  return sha256Hex(chainInput.subarray(0, 32 + written));
}

const encoder = new TextEncoder();
/** chainHash's input buffer, grown as records need. */
let chainInput = Buffer.alloc(1024);

type Sha256Hex = (bytes: Uint8Array) => string;

const bunSha256 = (
  globalThis as { Bun?: { SHA256?: { hash(input: Uint8Array, encoding: 'hex'): string } } }
).Bun?.SHA256;
const sha256Hex: Sha256Hex = bunSha256
  ? (bytes) => bunSha256.hash(bytes, 'hex')
  : (bytes) => createHash('sha256').update(bytes).digest('hex');

/** A record's line: its canonical form with the hash as the last field. */
export function recordLine(canonicalRecord: string, hash: string): string {
  return `${canonicalRecord.slice(0, -1)},"hash":"${hash}"}`;
}

/** The hash at the end of a line made by recordLine (no parsing). */
export function hashOfLine(line: string): string {
  return line.slice(-66, -2);
}

/** The sequence number at the start of a line made by recordLine (no parsing). */
export function seqOfLine(line: string): number {
  return Number(line.slice(7, line.indexOf(',')));
}

/**
 * A line read back: parsed, checked field by field, and its canonical form rebuilt byte for byte.
 * Throws `invalid` naming what is wrong (never quoting more than the field's name).
 */
export function parseRecordLine(line: string): { record: AuditRecord; canonical: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw invalid('the line is not JSON');
  }
  const fields = object(value, 'record');
  const seq = fields.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1)
    throw invalid('seq must be a whole number from 1');
  const hash = fields.hash;
  if (typeof hash !== 'string' || !hashPattern.test(hash))
    throw invalid('hash must be 64 lower-case hex digits');
  const entry = checkAuditEntry(fields, 'record');
  const text = canonical(seq, entry);
  if (recordLine(text, hash) !== line)
    throw invalid('the line is not in canonical form (fields added, reordered or respelled)');
  return { record: { ...entry, seq, hash }, canonical: text };
}

const actorKinds: readonly AuditActorKind[] = ['client', 'node', 'admin-socket', 'anonymous'];
const entryFields = new Set([
  'seq',
  'hash',
  'at',
  'actor',
  'source',
  'action',
  'object',
  'version',
  'node',
  'task',
  'count',
  'detail',
  'result',
  'requestId',
]);

/** An entry's schema (commands carry entries; records read back are entries plus seq and hash). */
export function checkAuditEntry(value: unknown, path: string): AuditEntry {
  const fields = object(value, path);
  for (const key of Object.keys(fields))
    if (!entryFields.has(key)) throw invalid(`${path} has unknown field ${key.slice(0, 40)}`);
  const actor = object(fields.actor, `${path}.actor`);
  for (const key of Object.keys(actor))
    if (!['kind', 'name', 'serial', 'role', 'uid'].includes(key))
      throw invalid(`${path}.actor has unknown field ${key.slice(0, 40)}`);
  if (!actorKinds.includes(actor.kind as AuditActorKind))
    throw invalid(`${path}.actor.kind must be one of ${actorKinds.join(', ')}`);
  text(actor.name, `${path}.actor.name`);
  text(actor.role, `${path}.actor.role`);
  optional(actor.serial, `${path}.actor.serial`, text);
  optional(actor.uid, `${path}.actor.uid`, whole);
  text(fields.at, `${path}.at`);
  text(fields.source, `${path}.source`);
  text(fields.action, `${path}.action`);
  text(fields.result, `${path}.result`);
  optional(fields.object, `${path}.object`, (v, p) => {
    const o = object(v, p);
    for (const key of Object.keys(o))
      if (key !== 'id' && key !== 'name')
        throw invalid(`${p} has unknown field ${key.slice(0, 40)}`);
    optional(o.id, `${p}.id`, text);
    optional(o.name, `${p}.name`, text);
  });
  optional(fields.version, `${path}.version`, whole);
  optional(fields.node, `${path}.node`, text);
  optional(fields.task, `${path}.task`, text);
  optional(fields.count, `${path}.count`, whole);
  optional(fields.detail, `${path}.detail`, text);
  optional(fields.requestId, `${path}.requestId`, text);
  return fields as unknown as AuditEntry;
}

/** A field cut to auditFieldBytesMax characters (names and addresses are short; this bounds a record). */
export function clip(value: string): string {
  return value.length > auditFieldBytesMax ? value.slice(0, auditFieldBytesMax) : value;
}

function object(value: unknown, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`${path} must be an object`);
  return value as Record<string, unknown>;
}

function text(value: unknown, path: string): void {
  if (typeof value !== 'string') throw invalid(`${path} must be a string`);
  if (value.length > auditFieldBytesMax)
    throw invalid(`${path} must be at most ${auditFieldBytesMax} characters`);
}

function whole(value: unknown, path: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw invalid(`${path} must be a whole number, 0 or more`);
}

function optional(value: unknown, path: string, read: (v: unknown, p: string) => void): void {
  if (value !== undefined) read(value, path);
}
