import { describe, expect, test } from 'bun:test';
import { errorOf } from '../../test/helpers/errors.ts';
import { backupChunkBytes } from '../limits.ts';
import {
  BackupOpener,
  BackupSealer,
  encodeBackupKey,
  parseBackupKey,
  readBackupHeader,
  type BackupFacts,
} from './backup-format.ts';
import type { Random } from './random.ts';

const random: Random = (n) => crypto.getRandomValues(new Uint8Array(n));
const facts: BackupFacts = {
  clusterId: 'c1234567890abcdefghijklmn',
  index: 4242,
  createdAt: '2026-12-06T05:00:00.000Z',
  counts: { secrets: 3, versions: 5, services: 1, nodes: 2, clientCerts: 0, auditRecords: 9 },
};

/** A whole file from `plaintext` cut in chunks of `backupChunkBytes`; also the offsets of each chunk. */
function makeFile(
  key: Uint8Array,
  plaintext: Uint8Array,
): { file: Uint8Array; chunkStarts: number[]; headerLength: number } {
  const sealer = new BackupSealer(key, facts, random);
  const parts: Uint8Array[] = [sealer.headerBytes];
  const chunkStarts: number[] = [];
  let at = sealer.headerBytes.length;
  let offset = 0;
  do {
    const piece = plaintext.subarray(offset, offset + backupChunkBytes);
    offset += piece.length;
    const framed = sealer.chunk(piece, offset >= plaintext.length);
    chunkStarts.push(at);
    at += framed.length;
    parts.push(framed);
  } while (offset < plaintext.length);
  return { file: Buffer.concat(parts), chunkStarts, headerLength: sealer.headerBytes.length };
}

/** Opens `file` fed in pieces of `step` bytes; the plaintext, or the error thrown. */
function openFile(key: Uint8Array, file: Uint8Array, step = 10_000): Uint8Array {
  const opener = new BackupOpener(key);
  const out: Uint8Array[] = [];
  for (let i = 0; i < file.length; i += step) out.push(...opener.push(file.subarray(i, i + step)));
  opener.finish();
  return Buffer.concat(out);
}

const key = random(32);
const plaintext = random(backupChunkBytes * 3 + 1234);

describe('backup format', () => {
  test('a file opens to its plaintext whatever the size of the pieces it is read in', () => {
    const { file } = makeFile(key, plaintext);
    for (const step of [1 << 20, 65_536, 7_777, 3]) {
      if (step === 3) {
        // byte-sized pieces on a smaller file, to keep the test quick
        const small = random(5000);
        expect(openFile(key, makeFile(key, small).file, 3)).toEqual(small);
      } else expect(openFile(key, file, step)).toEqual(plaintext);
    }
  });

  test('an empty plaintext is one final chunk and opens to nothing', () => {
    const { file, chunkStarts } = makeFile(key, new Uint8Array(0));
    expect(chunkStarts.length).toBe(1);
    expect(openFile(key, file)).toEqual(new Uint8Array(0));
  });

  test('the header is readable without the key, and holds no byte of the plaintext', () => {
    const { file, headerLength } = makeFile(key, plaintext);
    const read = readBackupHeader(file.subarray(0, 2000));
    expect(read?.headerBytes.length).toBe(headerLength);
    expect(read?.header).toEqual({
      format: 1,
      ...facts,
      chunkBytes: backupChunkBytes,
      keyCheck: read!.header.keyCheck,
    });
    expect(new TextDecoder().decode(file.subarray(0, headerLength))).toStartWith(
      'secretd-backup 1\n{',
    );
  });

  test('readBackupHeader() asks for more bytes while the header is incomplete', () => {
    const { file } = makeFile(key, plaintext);
    expect(readBackupHeader(file.subarray(0, 5))).toBeNull();
    expect(readBackupHeader(file.subarray(0, 30))).toBeNull();
  });

  test('a wrong key is refused as a wrong key, before any chunk is read', () => {
    const { file } = makeFile(key, plaintext);
    const error = errorOf(() => openFile(random(32), file));
    expect([error.code, error.message]).toEqual([
      'invalid',
      'Cannot open this backup: the key does not match it (a wrong backup key, or the header was changed)',
    ]);
  });

  test('one byte flipped in the header (its counts) is refused at chunk 0', () => {
    const { file } = makeFile(key, plaintext);
    const edited = file.slice();
    const at = Buffer.from(edited).indexOf('"secrets":3');
    edited[at + '"secrets":'.length] = '4'.charCodeAt(0);
    expect(readBackupHeader(edited)?.header.counts.secrets).toBe(4);
    expect(errorOf(() => openFile(key, edited)).message).toBe(
      'Cannot restore from this backup: its header or chunk 0 was changed (chunk 0 fails authentication)',
    );
  });

  test('one byte flipped in a middle chunk is refused naming that chunk', () => {
    const { file, chunkStarts } = makeFile(key, plaintext);
    const edited = file.slice();
    edited[chunkStarts[2]! + 100]! ^= 0x01;
    expect(errorOf(() => openFile(key, edited)).message).toBe(
      `Cannot restore from this backup: chunk 2 (at byte ${chunkStarts[2]}) was changed or moved: it fails authentication at this position`,
    );
  });

  test('one byte flipped at the end of the file is refused naming the last chunk', () => {
    const { file, chunkStarts } = makeFile(key, plaintext);
    const edited = file.slice();
    edited[edited.length - 1]! ^= 0x80;
    expect(errorOf(() => openFile(key, edited)).message).toBe(
      `Cannot restore from this backup: chunk 3 (at byte ${chunkStarts[3]}) was changed or moved: it fails authentication at this position`,
    );
  });

  test('a file truncated at a chunk boundary is refused: its final chunk is missing', () => {
    const { file, chunkStarts } = makeFile(key, plaintext);
    expect(errorOf(() => openFile(key, file.subarray(0, chunkStarts[3]))).message).toBe(
      'Cannot restore from this backup: it is truncated after chunk 2: its final chunk is missing',
    );
  });

  test('a file truncated inside a chunk is refused', () => {
    const { file, chunkStarts } = makeFile(key, plaintext);
    expect(errorOf(() => openFile(key, file.subarray(0, chunkStarts[1]! + 50))).message).toBe(
      'Cannot restore from this backup: it is truncated inside chunk 1',
    );
  });

  test('a file cut inside its header is refused', () => {
    const { file } = makeFile(key, plaintext);
    expect(errorOf(() => openFile(key, file.subarray(0, 40))).message).toBe(
      'Cannot restore from this backup: it ends inside its header',
    );
  });

  test('two chunks swapped are refused at the first one out of place', () => {
    const { file, chunkStarts } = makeFile(key, plaintext);
    const [c1, c2, c3] = [chunkStarts[1]!, chunkStarts[2]!, chunkStarts[3]!];
    const swapped = Buffer.concat([
      file.subarray(0, c1),
      file.subarray(c2, c3),
      file.subarray(c1, c2),
      file.subarray(c3),
    ]);
    expect(errorOf(() => openFile(key, swapped)).message).toBe(
      `Cannot restore from this backup: chunk 1 (at byte ${c1}) was changed or moved: it fails authentication at this position`,
    );
  });

  test('the final chunk dropped and an earlier one repeated in its place is refused', () => {
    const { file, chunkStarts } = makeFile(key, plaintext);
    const replayed = Buffer.concat([
      file.subarray(0, chunkStarts[3]),
      file.subarray(chunkStarts[2], chunkStarts[3]),
    ]);
    expect(errorOf(() => openFile(key, replayed)).message).toBe(
      `Cannot restore from this backup: chunk 3 (at byte ${chunkStarts[3]}) was changed or moved: it fails authentication at this position`,
    );
  });

  test('bytes after the final chunk are refused', () => {
    const { file } = makeFile(key, plaintext);
    expect(errorOf(() => openFile(key, Buffer.concat([file, Buffer.from('x')]))).message).toBe(
      'Cannot restore from this backup: it has 1 more bytes after its final chunk',
    );
  });

  test('a chunk with an impossible length field is refused', () => {
    const { file, chunkStarts } = makeFile(key, plaintext);
    const edited = file.slice();
    edited[chunkStarts[1]!] = 0xff;
    expect(errorOf(() => openFile(key, edited)).message).toStartWith(
      `Cannot restore from this backup: chunk 1 (at byte ${chunkStarts[1]}) has an impossible length`,
    );
  });

  test('a newer format is refused by its number, and other files as not a backup', () => {
    const { file, headerLength } = makeFile(key, plaintext);
    const newer = Buffer.concat([
      Buffer.from('secretd-backup 2\n'),
      file.subarray('secretd-backup 1\n'.length),
    ]);
    expect(errorOf(() => readBackupHeader(newer)).message).toBe(
      'Cannot read this backup: it is format 2, newer than this secretd reads (1); use a newer secretd',
    );
    expect(errorOf(() => openFile(key, newer)).message).toStartWith(
      'Cannot read this backup: it is format 2',
    );
    expect(errorOf(() => readBackupHeader(Buffer.from('{"hello": 1}\n'))).message).toBe(
      'Cannot read this file: it is not a secretd backup',
    );
    expect(errorOf(() => readBackupHeader(new Uint8Array(5000))).message).toBe(
      'Cannot read this file: it is not a secretd backup',
    );
    expect(headerLength).toBeLessThan(4096);
  });

  test('the file holds none of its plaintext in the clear', () => {
    const marker = new TextEncoder().encode('p4ssw0rd-marker-'.repeat(8));
    const text = Buffer.concat([random(70_000), marker, random(10)]);
    const { file } = makeFile(key, text);
    expect(Buffer.from(file).indexOf(Buffer.from(marker.subarray(0, 16)))).toBe(-1);
  });

  test('backup keys encode as SDBAK-1- and parse back; malformed ones are refused without echo', () => {
    const text = encodeBackupKey(key);
    expect(text).toMatch(/^SDBAK-1-[A-Za-z0-9+/]{43}$/);
    expect(parseBackupKey(`  ${text}\n`)).toEqual(key);
    const bad = errorOf(() => parseBackupKey(`${text.slice(0, -1)}`));
    expect(bad.message).toBe(
      'Invalid backup key: expected SDBAK-1- followed by 43 base64 characters',
    );
    expect(errorOf(() => parseBackupKey('SDKEY-1-' + text.slice(8))).code).toBe('invalid');
  });

  test('a sealer refuses a chunk after the final one', () => {
    const sealer = new BackupSealer(key, facts, random);
    sealer.chunk(new Uint8Array(1), true);
    expect(errorOf(() => sealer.chunk(new Uint8Array(1), false)).code).toBe('internal');
  });
});
