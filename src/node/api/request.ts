/** Reading and checking request input: every field is validated, unknown ones are refused. */
import type { Context } from 'hono';
import { invalid, SecretdError } from '../../errors.ts';
import { requestBodyBytesMax } from '../../limits.ts';

export async function readJsonObject(c: Context, what: string, allowed: readonly string[]): Promise<Record<string, unknown>> {
  return parseJsonObject(await readBodyBytes(c, requestBodyBytesMax), what, allowed);
}

/** A request body that must be one JSON object with only the `allowed` fields. */
export function parseJsonObject(bytes: Uint8Array, what: string, allowed: readonly string[]): Record<string, unknown> {
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
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`Invalid ${what}: expected a JSON object`);
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!allowed.includes(key)) throw invalid(`Invalid ${what}: unknown field ${JSON.stringify(key.slice(0, 64))}`);
  }
  return record;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The raw body, refused (413) as soon as it passes `limit` bytes, without buffering more. */
export async function readBodyBytes(c: Context, limit: number): Promise<Uint8Array> {
  const length = c.req.header('content-length');
  if (length !== undefined) {
    // A declared length is checked before reading, and the adapter then reads the body straight
    // off the socket (no web stream): most clients (curl, docker) declare it.
    checkDeclaredLength(length, limit);
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length > limit) throw tooLarge(limit);
    return bytes;
  }
  const body = c.req.raw.body;
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
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

const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict standard base64 (as Go's encoding/json decodes []byte); anything else is refused. */
export function decodeBase64Field(value: unknown, what: string): Uint8Array {
  if (typeof value !== 'string') throw invalid(`Invalid ${what}: expected a base64 string`);
  if (!base64Pattern.test(value)) throw invalid(`Invalid ${what}: not valid base64`);
  return new Uint8Array(Buffer.from(value, 'base64'));
}

export function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(`Invalid ${what}: expected a string`);
  return value;
}

export function parseVersionParam(value: string | undefined, what: string): number {
  if (value === undefined || !/^\d{1,15}$/.test(value)) throw invalid(`Invalid ${what} version: expected ?version=N with the object's Version.Index`);
  return Number(value);
}

export function parseBoolParam(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '' || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true') return true;
  throw invalid(`Invalid query parameter ${name}: expected true or false`);
}

/**
 * Docker's `filters` query: JSON of name → list of values, or (as newer clients send it)
 * name → { value: true }.
 */
export function parseFilters(raw: string | undefined, allowed: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (raw === undefined || raw === '') return out;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw invalid('Invalid filters: not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('Invalid filters: expected a JSON object');
  for (const [key, spec] of Object.entries(value)) {
    if (!allowed.includes(key)) throw invalid(`Invalid filter '${key.slice(0, 64)}'`);
    const values = Array.isArray(spec) ? spec : typeof spec === 'object' && spec !== null ? Object.keys(spec) : null;
    if (!values || values.some((v) => typeof v !== 'string')) throw invalid(`Invalid filter '${key}': expected a list of strings`);
    out.set(key, values as string[]);
  }
  return out;
}
