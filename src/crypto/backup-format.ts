/**
 * The backup file (`secretd backup`), pure: bytes and values in, bytes and values out.
 *
 *   file   = magic line | header line | chunk 0 | chunk 1 | … | chunk N (final)
 *   magic  = "secretd-backup <format>\n"                 readable, so a newer format is told apart
 *   header = JSON {format, clusterId, index, createdAt, counts, chunkBytes, keyCheck} "\n"
 *   chunk  = length u32 BE | seal(key, plaintext ≤ chunkBytes, aad)
 *   aad    = "secretd-backup chunk" | sha256(magic line ‖ header line) | index u64 BE | final u8
 *
 * Every chunk's additional data binds the exact header bytes (so the readable header cannot be
 * edited: the first chunk, and every other, fails), the chunk's position (a chunk moved or two
 * swapped fail) and whether it is the last (a file cut after any chunk lacks its final one, and
 * bytes after it are refused). Chunks are sealed with the store's AEAD (aead.ts: XSalsa20-Poly1305,
 * a random nonce each). The key is 32 random bytes, shown once as `SDBAK-1-…`; `keyCheck` (128 bits
 * of a SHA-256 of the key under its own label) only tells a wrong key from a damaged file, and
 * gives nothing that opens a chunk. Reading is incremental (`BackupOpener.push`), so a reader holds
 * one chunk of the file at a time.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { SecretdError } from '../errors.ts';
import { backupChunkBytes, backupHeaderBytesMax } from '../limits.ts';
import { base64Decode, base64Encode } from './_base64.ts';
import { toHex } from './ids.ts';
import {
  constantTimeEqual,
  keyBytes,
  open,
  seal,
  sealOverheadBytes,
  sealOverheadBytesMax,
} from './aead.ts';
import type { Random } from './random.ts';

export const backupFormat = 1;
export const backupKeyPrefix = 'SDBAK-1-';
const magicPrefix = 'secretd-backup ';
const chunkKeyId = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const chunkLabel = encoder.encode('secretd-backup chunk');
const keyCheckLabel = encoder.encode('secretd-backup key check\u0000');
/** A sealed chunk is never longer than this (a longer length field is damage, not a chunk). */
const sealedChunkBytesMax = backupChunkBytes + sealOverheadBytesMax;

/** What the readable header says of the store it holds (all public: no name, no value). */
export interface BackupCounts {
  readonly secrets: number;
  readonly versions: number;
  readonly services: number;
  readonly nodes: number;
  readonly clientCerts: number;
  readonly auditRecords: number;
}

export interface BackupHeader {
  readonly format: number;
  readonly clusterId: string;
  /** The Raft index the store was taken at. */
  readonly index: number;
  readonly createdAt: string;
  readonly counts: BackupCounts;
  readonly chunkBytes: number;
  readonly keyCheck: string;
}

export type BackupFacts = Pick<BackupHeader, 'clusterId' | 'index' | 'createdAt' | 'counts'>;

export function encodeBackupKey(key: Uint8Array): string {
  if (key.length !== keyBytes)
    throw new SecretdError('internal', `Backup key must be ${keyBytes} bytes, got ${key.length}`);
  return backupKeyPrefix + base64Encode(key, { padded: false });
}

/** The 32 key bytes; surrounding whitespace is ignored. Never echoes what it was given. */
export function parseBackupKey(text: string): Uint8Array {
  const trimmed = text.trim();
  const key = trimmed.startsWith(backupKeyPrefix)
    ? base64Decode(trimmed.slice(backupKeyPrefix.length), { padded: false })
    : undefined;
  if (key === undefined || key.length !== keyBytes) {
    key?.fill(0);
    throw new SecretdError(
      'invalid',
      `Invalid backup key: expected ${backupKeyPrefix} followed by 43 base64 characters`,
    );
  }
  return key;
}

/** Writes a backup: the header bytes first, then each chunk as it is sealed. */
export class BackupSealer {
  readonly header: BackupHeader;
  /** The magic and header lines, written first. */
  readonly headerBytes: Uint8Array;
  readonly #key: Uint8Array;
  readonly #headerDigest: Uint8Array;
  readonly #random: Random;
  #next = 0;
  #ended = false;

  constructor(key: Uint8Array, facts: BackupFacts, random: Random) {
    if (key.length !== keyBytes)
      throw new SecretdError('internal', `Backup key must be ${keyBytes} bytes, got ${key.length}`);
    this.#key = key;
    this.#random = random;
    this.header = {
      format: backupFormat,
      clusterId: facts.clusterId,
      index: facts.index,
      createdAt: facts.createdAt,
      counts: facts.counts,
      chunkBytes: backupChunkBytes,
      keyCheck: keyCheckOf(key),
    };
    this.headerBytes = encoder.encode(
      `${magicPrefix}${backupFormat}\n${JSON.stringify(this.header)}\n`,
    );
    if (this.headerBytes.length > backupHeaderBytesMax)
      throw new SecretdError('internal', 'Backup header is longer than its limit');
    this.#headerDigest = sha256(this.headerBytes);
  }

  /** One chunk, framed; `final` marks the last one (it may be empty). */
  chunk(plaintext: Uint8Array, final: boolean): Uint8Array {
    if (this.#ended) throw new SecretdError('internal', 'Backup already has its final chunk');
    if (plaintext.length > backupChunkBytes)
      throw new SecretdError('internal', `Backup chunk of ${plaintext.length} bytes is too long`);
    const sealed = seal(this.#key, plaintext, {
      aad: chunkAad(this.#headerDigest, this.#next, final),
      keyId: chunkKeyId,
      random: this.#random,
    });
    this.#next++;
    this.#ended = final;
    const out = new Uint8Array(4 + sealed.length);
    new DataView(out.buffer).setUint32(0, sealed.length);
    out.set(sealed, 4);
    return out;
  }
}

/**
 * The header of a backup from its first bytes, without the key: the header and its length, or
 * null when `bytes` ends before the header does. Throws when the bytes are no backup of a format
 * this code reads.
 */
export function readBackupHeader(
  bytes: Uint8Array,
): { header: BackupHeader; headerBytes: Uint8Array } | null {
  const first = bytes.indexOf(0x0a);
  if (first === -1) {
    if (bytes.length >= backupHeaderBytesMax) throw notBackup();
    if (!startsLikeMagic(bytes)) throw notBackup();
    return null;
  }
  const magic = decoder.decode(bytes.subarray(0, first));
  if (!magic.startsWith(magicPrefix) || !/^\d{1,6}$/.test(magic.slice(magicPrefix.length)))
    throw notBackup();
  const format = Number(magic.slice(magicPrefix.length));
  if (format !== backupFormat)
    throw new SecretdError(
      'invalid',
      format > backupFormat
        ? `Cannot read this backup: it is format ${format}, newer than this secretd reads (${backupFormat}); use a newer secretd`
        : `Cannot read this backup: format ${format} is unknown`,
    );
  const second = bytes.indexOf(0x0a, first + 1);
  if (second === -1) {
    if (bytes.length >= backupHeaderBytesMax) throw badHeader('it has no end');
    return null;
  }
  if (second + 1 > backupHeaderBytesMax) throw badHeader('it is too long');
  let header: BackupHeader;
  try {
    header = JSON.parse(decoder.decode(bytes.subarray(first + 1, second))) as BackupHeader;
  } catch {
    throw badHeader('it is not JSON');
  }
  checkHeader(header, format);
  return { header, headerBytes: bytes.slice(0, second + 1) };
}

/**
 * Reads a backup incrementally: `push` the file's bytes as they come and take each chunk's
 * plaintext as soon as it is authenticated; `finish` at the end of the file. Every problem is a
 * SecretdError naming it (wrong key, header changed, chunk N changed or moved, truncated, …).
 */
export class BackupOpener {
  readonly #key: Uint8Array;
  #header: BackupHeader | null = null;
  #headerDigest: Uint8Array | null = null;
  #pending: Uint8Array = new Uint8Array(0);
  #next = 0;
  #ended = false;
  #consumed = 0;

  constructor(key: Uint8Array) {
    if (key.length !== keyBytes)
      throw new SecretdError('invalid', `Backup key must be ${keyBytes} bytes, got ${key.length}`);
    this.#key = key;
  }

  /** Null until the header has been read. */
  get header(): BackupHeader | null {
    return this.#header;
  }

  /** The plaintexts of the chunks this completes, in order. */
  push(bytes: Uint8Array): Uint8Array[] {
    this.#pending = concat(this.#pending, bytes);
    const out: Uint8Array[] = [];
    if (this.#header === null && !this.#readHeader()) return out;
    for (;;) {
      if (this.#pending.length === 0) return out;
      if (this.#ended)
        throw corrupt(`it has ${this.#pending.length} more bytes after its final chunk`);
      if (this.#pending.length < 4) return out;
      const length = new DataView(
        this.#pending.buffer,
        this.#pending.byteOffset,
        this.#pending.byteLength,
      ).getUint32(0);
      if (length < sealOverheadBytes || length > sealedChunkBytesMax)
        throw corrupt(
          `chunk ${this.#next} (at byte ${this.#consumed}) has an impossible length, ${length}`,
        );
      if (this.#pending.length < 4 + length) return out;
      out.push(this.#openChunk(this.#pending.subarray(4, 4 + length)));
      this.#consumed += 4 + length;
      this.#pending = this.#pending.slice(4 + length);
    }
  }

  /** The end of the file: throws unless the final chunk was read and nothing is left over. */
  finish(): void {
    if (this.#header === null) throw corrupt('it ends inside its header');
    if (!this.#ended)
      throw corrupt(
        this.#pending.length > 0
          ? `it is truncated inside chunk ${this.#next}`
          : `it is truncated after chunk ${this.#next - 1}: its final chunk is missing`,
      );
  }

  #readHeader(): boolean {
    const read = readBackupHeader(this.#pending);
    if (read === null) return false;
    if (
      !constantTimeEqual(
        encoder.encode(read.header.keyCheck),
        encoder.encode(keyCheckOf(this.#key)),
      )
    )
      throw new SecretdError(
        'invalid',
        'Cannot open this backup: the key does not match it (a wrong backup key, or the header was changed)',
      );
    this.#header = read.header;
    this.#headerDigest = sha256(read.headerBytes);
    this.#consumed = read.headerBytes.length;
    this.#pending = this.#pending.slice(read.headerBytes.length);
    return true;
  }

  #openChunk(sealed: Uint8Array): Uint8Array {
    const index = this.#next;
    const digest = this.#headerDigest!;
    let plaintext: Uint8Array;
    try {
      plaintext = open(this.#key, sealed, { aad: chunkAad(digest, index, false) });
    } catch {
      try {
        plaintext = open(this.#key, sealed, { aad: chunkAad(digest, index, true) });
      } catch {
        throw corrupt(
          index === 0
            ? 'its header or chunk 0 was changed (chunk 0 fails authentication)'
            : `chunk ${index} (at byte ${this.#consumed}) was changed or moved: it fails authentication at this position`,
        );
      }
      this.#ended = true;
    }
    this.#next++;
    return plaintext;
  }
}

function chunkAad(headerDigest: Uint8Array, index: number, final: boolean): Uint8Array {
  const out = new Uint8Array(chunkLabel.length + headerDigest.length + 9);
  out.set(chunkLabel, 0);
  out.set(headerDigest, chunkLabel.length);
  const view = new DataView(out.buffer);
  const at = chunkLabel.length + headerDigest.length;
  view.setUint32(at, Math.floor(index / 2 ** 32));
  view.setUint32(at + 4, index >>> 0);
  out[at + 8] = final ? 1 : 0;
  return out;
}

function keyCheckOf(key: Uint8Array): string {
  const input = concat(keyCheckLabel, key);
  const digest = sha256(input);
  input.fill(0);
  return toHex(digest.subarray(0, 16));
}

function checkHeader(header: BackupHeader, format: number): void {
  const isCount = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
  const counts = header?.counts as unknown as Record<string, unknown> | undefined;
  if (
    typeof header !== 'object' ||
    header === null ||
    header.format !== format ||
    typeof header.clusterId !== 'string' ||
    !isCount(header.index) ||
    typeof header.createdAt !== 'string' ||
    header.chunkBytes !== backupChunkBytes ||
    typeof header.keyCheck !== 'string' ||
    typeof counts !== 'object' ||
    counts === null ||
    !['secrets', 'versions', 'services', 'nodes', 'clientCerts', 'auditRecords'].every((k) =>
      isCount(counts[k]),
    )
  )
    throw badHeader('a field is missing or malformed');
}

function startsLikeMagic(bytes: Uint8Array): boolean {
  const text = decoder.decode(bytes.subarray(0, magicPrefix.length));
  return magicPrefix.startsWith(text);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function notBackup(): SecretdError {
  return new SecretdError('invalid', 'Cannot read this file: it is not a secretd backup');
}

function badHeader(why: string): SecretdError {
  return new SecretdError('corrupt', `Cannot read this backup's header: ${why}`);
}

function corrupt(why: string): SecretdError {
  return new SecretdError('corrupt', `Cannot restore from this backup: ${why}`);
}
