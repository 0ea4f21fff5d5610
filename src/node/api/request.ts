/** Reading and checking request input: every field is validated, unknown ones are refused. */
import type { Context } from 'hono';
import { invalid, SecretdError } from '../../errors.ts';
import { requestBodyBytesMax } from '../../limits.ts';
import { bodyAborted, bodyBudgetOf, bodyBusy, BodyRead } from './body-budget.ts';
import { decodeStandardBase64 } from '../store/index.ts';

export async function readJsonObject(
  c: Context,
  what: string,
  allowed: readonly string[] | FieldTree,
): Promise<Record<string, unknown>> {
  return parseJsonObject(await readBodyBytes(c, requestBodyBytesMax), what, allowed);
}

/**
 * A request body that must be one JSON object with only the `allowed` fields. Keys are matched to
 * the field names as Go's encoding/json matches them (canonicalKeys): `replicas` is `Replicas`.
 * Given a FieldTree, the objects inside are canonicalised too (their own unknown fields are for
 * the shape's reader to refuse).
 */
export function parseJsonObject(
  bytes: Uint8Array,
  what: string,
  allowed: readonly string[] | FieldTree,
): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw invalid('Invalid request: the body is not valid UTF-8');
  }
  if (text.trim() === '') throw invalid(`Invalid ${what}: the request body is empty`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid(`Invalid ${what}: the request body is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`Invalid ${what}: expected a JSON object`);
  const fields: FieldTree = Array.isArray(allowed)
    ? Object.fromEntries(allowed.map((name) => [name, null]))
    : (allowed as FieldTree);
  const record = canonicalKeys(value, fields, what) as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!Object.hasOwn(fields, key))
      throw invalid(`Invalid ${what}: unknown field ${JSON.stringify(key.slice(0, 64))}`);
  }
  return record;
}

/**
 * parseJsonObject for a body that carries one large base64 field (a secret's `Data`), with the
 * same answer for every input, and that field's bytes already decoded when the quick way below
 * could take them (`decoded`; the caller decodes `body[field]` itself otherwise, where it always
 * did, so its checks still come in their order).
 *
 * The quick way: when the field is a string of the top-level object and no escape comes before
 * it, as every client writes base64, its text is decoded straight from the body's bytes and the
 * rest of the body is parsed without it. A 64 KiB value then costs one string of its base64
 * instead of a string of the whole body, its copy in the parsed object and a UTF-8 check of both
 * (bench/README.md, thirteenth session: 27 against 64 µs alone). A body the quick way cannot take
 * or refuses goes the plain way, whose answer is the answer; so does a body under 4 KiB, where the
 * quick way's own steps cost more than they save (they break even at about 2 KiB).
 */
export function parseJsonObjectWithBase64(
  bytes: Uint8Array,
  what: string,
  allowed: readonly string[],
  field: string,
): { body: Record<string, unknown>; decoded?: Uint8Array } {
  const range = bytes.length >= quickBodyBytesMin ? topLevelStringRange(bytes, field) : null;
  if (range) {
    const [start, end] = range;
    const rest = new Uint8Array(bytes.length - (end - start));
    rest.set(bytes.subarray(0, start));
    rest.set(bytes.subarray(end), start);
    let body: Record<string, unknown> | undefined;
    try {
      body = parseJsonObject(rest, what, allowed);
    } catch {
      // the plain way below gives the answer
    }
    // The field as parsed must be the text taken out: JSON.parse keeps the last of a key given
    // twice, and the scan found the first.
    if (body?.[field] === '') {
      const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(
        'latin1',
        start,
        end,
      );
      const decoded = decodeStandardBase64(text);
      if (decoded) return { body, decoded };
    }
  }
  return { body: parseJsonObject(bytes, what, allowed) };
}

const quickBodyBytesMin = 4096;

/**
 * `check()`'s result: the checks a route makes of a body parseJsonObjectWithBase64 read. When one
 * refuses it, the value that function decoded (if it did) is zeroed before the error goes on.
 */
export function zeroedIfRefused<T>(decoded: Uint8Array | undefined, check: () => T): T {
  try {
    return check();
  } catch (error) {
    decoded?.fill(0);
    throw error;
  }
}

/**
 * Where the text of `field`'s value lies in a JSON object's bytes, `[start, end)` between its
 * quotes, when it is a string of the top-level object (its key matched as Go matches an ASCII
 * name, ignoring case) and no backslash comes before its key's end; null otherwise (a body the
 * plain parse must read). Only the bytes outside strings are looked at one by one; a string's end
 * is found with indexOf. Nothing here decides what the body means: the caller parses the rest
 * and decodes the text, and goes the plain way when either fails.
 */
export function topLevelStringRange(bytes: Uint8Array, field: string): [number, number] | null {
  const first = skipJsonSpace(bytes, 0);
  if (bytes[first] !== 0x7b) return null;
  const backslash = bytes.indexOf(0x5c);
  let depth = 0;
  for (let i = first; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte === 0x22) {
      const close = bytes.indexOf(0x22, i + 1);
      if (close === -1 || (backslash !== -1 && backslash < close)) return null;
      if (depth === 1) {
        const colon = skipJsonSpace(bytes, close + 1);
        if (bytes[colon] === 0x3a && asciiFoldEquals(bytes, i + 1, close, field)) {
          const open = skipJsonSpace(bytes, colon + 1);
          if (bytes[open] !== 0x22) return null;
          const end = bytes.indexOf(0x22, open + 1);
          return end === -1 ? null : [open + 1, end];
        }
      }
      i = close;
    } else if (byte === 0x7b || byte === 0x5b) depth++;
    else if (byte === 0x7d || byte === 0x5d) depth--;
  }
  return null;
}

function skipJsonSpace(bytes: Uint8Array, i: number): number {
  for (; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) break;
  }
  return i;
}

/** Bytes `[start, end)` equal to the ASCII `name` ignoring case (equalFold on ASCII keys). */
function asciiFoldEquals(bytes: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    const a = bytes[start + i]!;
    const b = name.charCodeAt(i);
    if (a === b) continue;
    const lower = a | 0x20;
    if (lower < 0x61 || lower > 0x7a || lower !== (b | 0x20)) return false;
  }
  return true;
}

/**
 * The field names of a JSON object, each mapped to its own FieldTree when it holds an object (or a
 * list of objects) whose keys are field names too, or to null when its value is a leaf or a map
 * whose keys are data (`Labels`), left as sent.
 */
export interface FieldTree {
  readonly [field: string]: FieldTree | null;
}

/**
 * A copy of `value` with its keys renamed to the field names they match as Go's encoding/json
 * matches them, which Docker decodes every body with: the exact name first, else the name equal to
 * the key ignoring case (Go's simple folding: ASCII, plus `K` for k and `ſ` for s). Objects and
 * lists of objects under fields with a tree are renamed the same way, recursively. Unknown keys stay
 * as sent, for the caller's unknown-field check to name. Two keys naming one field are refused (Go
 * would keep the last one silently). `what` starts that message.
 */
export function canonicalKeys(value: unknown, fields: FieldTree, what: string): unknown {
  if (Array.isArray(value)) return value.map((item) => canonicalKeys(item, fields, what));
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  for (const [key, inner] of Object.entries(value)) {
    const name = Object.hasOwn(fields, key)
      ? key
      : (Object.keys(fields).find((field) => equalFold(key, field)) ?? key);
    const other = sources.get(name);
    if (other !== undefined)
      throw invalid(
        `Invalid ${what}: fields ${JSON.stringify(other.slice(0, 64))} and ${JSON.stringify(key.slice(0, 64))} both name ${name}`,
      );
    sources.set(name, key);
    const tree = Object.hasOwn(fields, name) ? fields[name] : null;
    out[name] = tree ? canonicalKeys(inner, tree, what) : inner;
  }
  return out;
}

/**
 * Refuses (400) a key that names no field, in every object under `fields` whose own fields are
 * known, naming it by its path (`unknown field Mode.Replicated.Count`). Run on canonical keys.
 */
export function refuseUnknownFields(
  value: unknown,
  fields: FieldTree,
  what: string,
  path = '',
): void {
  if (Array.isArray(value)) {
    for (const item of value) refuseUnknownFields(item, fields, what, path);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [key, inner] of Object.entries(value)) {
    if (!Object.hasOwn(fields, key))
      throw invalid(`Invalid ${what}: unknown field ${path}${key.slice(0, 64)}`);
    const tree = fields[key];
    if (tree) refuseUnknownFields(inner, tree, what, `${path}${key}.`);
  }
}

/** Go's case-insensitive name match for an ASCII field name (encoding/json's foldName). */
function equalFold(key: string, field: string): boolean {
  if (key.length !== field.length) return false;
  for (let i = 0; i < key.length; i++) {
    const c = key[i] === '\u212a' ? 'k' : key[i] === '\u017f' ? 's' : key[i]!;
    if (c.charCodeAt(0) > 0x7f || c.toLowerCase() !== field[i]!.toLowerCase()) return false;
  }
  return true;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The raw body, refused (413) as soon as it passes `limit` bytes (or declares more), without
 * buffering more; refused too when it stalls or takes too long, or when the connection's body
 * budget (body-budget.ts) has no room (503). The server then closes what is left of the request:
 * its HTTP/2 stream, or its HTTP/1.1 connection, instead of draining the rest.
 */
export async function readBodyBytes(c: Context, limit: number): Promise<Uint8Array> {
  const length = c.req.header('content-length');
  // A declared length is checked before reading anything: most clients (curl, docker) declare it.
  if (length !== undefined) checkDeclaredLength(length, limit);
  const body = c.req.raw.body;
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  let timedOut: (error: SecretdError) => void = () => {};
  const timeout = new Promise<never>((_, reject) => (timedOut = reject));
  const read = new BodyRead(
    bodyBudgetOf((c.env as { incoming?: object } | undefined)?.incoming),
    limit,
    timedOut,
  );
  const chunks: Uint8Array[] = [];
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      const verdict = read.add(value.byteLength);
      if (verdict !== 'ok') throw verdict === 'too-large' ? tooLarge(limit) : bodyBusy();
      chunks.push(value);
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    throw error instanceof SecretdError ? error : bodyAborted();
  } finally {
    read.done();
  }
  return chunks.length === 1 ? chunks[0]! : new Uint8Array(Buffer.concat(chunks));
}

/** A declared Content-Length, refused before any of the body is read. */
export function checkDeclaredLength(length: string, limit: number): void {
  if (!/^\d{1,12}$/.test(length)) throw invalid('Invalid request: Content-Length is not a number');
  if (Number(length) > limit) throw tooLarge(limit);
}

export function tooLarge(limit: number): SecretdError {
  return new SecretdError('too_large', `Request body is over the limit of ${limit} bytes`);
}

/** Strict standard base64 (as Go's encoding/json decodes []byte); anything else is refused. */
export function decodeBase64Field(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string') throw invalid(`Invalid ${what}: expected a base64 string`);
  const bytes = decodeStandardBase64(value);
  if (bytes === null) throw invalid(`Invalid ${what}: not valid base64`);
  return bytes;
}

export function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(`Invalid ${what}: expected a string`);
  return value;
}

export function parseVersionParam(value: string | undefined, what: string): number {
  if (value === undefined || !/^\d{1,15}$/.test(value))
    throw invalid(`Invalid ${what} version: expected ?version=N with the object's Version.Index`);
  return Number(value);
}

/**
 * A boolean query flag as Docker's `httputils.BoolValue` reads it (node removal's `force`): false
 * for absent, empty, `0`, `no`, `false` and `none` in any case and around spaces; true otherwise.
 */
export function parseBoolParam(value: string | undefined): boolean {
  const text = (value ?? '').trim().toLowerCase();
  return !(text === '' || text === '0' || text === 'no' || text === 'false' || text === 'none');
}

/**
 * A boolean query flag as Docker reads the ones it parses with Go's `strconv.ParseBool` (swarm
 * update's rotations, `insertDefaults`, `status`): absent or empty is false; `1 t T TRUE true True`
 * and `0 f F FALSE false False` are themselves; anything else is refused with Docker's message.
 */
export function parseStrictBoolParam(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '') return false;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw invalid(`invalid value for ${name}: ${value.slice(0, 64)}`);
}

/**
 * Docker's `filters` query: JSON of name → list of values, or (as newer clients send it)
 * name → { value: true }.
 */
export function parseFilters(
  raw: string | undefined,
  allowed: readonly string[],
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (raw === undefined || raw === '') return out;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw invalid('Invalid filters: not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid('Invalid filters: expected a JSON object');
  for (const [key, spec] of Object.entries(value)) {
    if (!allowed.includes(key)) throw invalid(`Invalid filter '${key.slice(0, 64)}'`);
    const values = Array.isArray(spec)
      ? spec
      : typeof spec === 'object' && spec !== null
        ? Object.keys(spec)
        : null;
    if (!values || values.some((v) => typeof v !== 'string'))
      throw invalid(`Invalid filter '${key}': expected a list of strings`);
    out.set(key, values as string[]);
  }
  return out;
}

/** An exec request's body: the one check for the admin route and the leader's internal route. */
export function readExecRequest(body: Record<string, unknown>): { task: string; cmd: string[] } {
  if (typeof body.Task !== 'string' || body.Task === '')
    throw invalid('Invalid exec request: Task must be provided');
  if (
    !Array.isArray(body.Cmd) ||
    body.Cmd.length === 0 ||
    body.Cmd.some((a) => typeof a !== 'string')
  )
    throw invalid('Invalid exec request: Cmd must be a non-empty list of strings');
  return { task: body.Task, cmd: body.Cmd as string[] };
}
