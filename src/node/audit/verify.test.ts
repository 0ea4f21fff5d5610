import { describe, expect, test } from 'bun:test';
import { sha256 } from '@noble/hashes/sha2.js';
import { AuditLog } from '../store/index.ts';
import {
  canonical,
  chainHash,
  exportEnd,
  exportHeader,
  genesisHash,
  parseRecordLine,
  recordLine,
  verifyExport,
  type AuditEntry,
} from './index.ts';

const entry = (n: number): AuditEntry => ({
  at: `2026-12-01T00:00:${String(n % 60).padStart(2, '0')}.000Z`,
  actor: { kind: 'client', name: 'ci', serial: '4a3f09', role: 'writer' },
  source: '10.0.0.7:51000',
  action: 'secret-create',
  object: { id: `id${n}`, name: `app_${n}` },
  version: 1,
  result: 'ok',
  requestId: `r${n}`,
});

function exportOf(log: AuditLog): string {
  const lines = [...log.lines()];
  return [exportHeader(log.anchor), ...lines, exportEnd(log.head, lines.length)].join('\n') + '\n';
}

function trailOf(count: number): AuditLog {
  const log = new AuditLog();
  for (let n = 1; n <= count; n++) log.append(entry(n));
  return log;
}

describe('canonical form and hash chain', () => {
  test('canonical() writes the fields in one fixed order, leaving absent ones out', () => {
    const shuffled: AuditEntry = {
      result: 'ok',
      action: 'exec',
      source: 'admin-socket',
      actor: { uid: 0, role: 'admin', name: 'admin-socket', kind: 'admin-socket' },
      at: '2026-12-01T00:00:00.000Z',
    };
    expect(canonical(7, shuffled)).toBe(
      '{"seq":7,"at":"2026-12-01T00:00:00.000Z","actor":{"kind":"admin-socket","name":"admin-socket","role":"admin","uid":0},"source":"admin-socket","action":"exec","result":"ok"}',
    );
  });

  test('each hash is SHA-256 of the previous hash bytes then the canonical record', () => {
    const log = trailOf(2);
    const [first, second] = [...log.lines()].map((l) => parseRecordLine(l));
    // SHA-256 of 32 zero bytes followed by the record, computed independently (Bun.CryptoHasher).
    const expected = new Bun.CryptoHasher('sha256')
      .update(new Uint8Array(32))
      .update(first!.canonical)
      .digest('hex');
    expect(first!.record.hash).toBe(expected);
    expect(second!.record.hash).toBe(chainHash(first!.record.hash, second!.canonical));
    expect(log.head).toEqual({ seq: 2, hash: second!.record.hash });
  });

  test('chainHash() is SHA-256 of the previous hash bytes then the UTF-8 record, computed independently, for text of every width and length; a previous hash that is not 64 hex digits is refused', () => {
    const previous = sha256Hex(new TextEncoder().encode('previous'));
    const texts = [
      '{"seq":1}',
      '{"name":"café — 日本 — 🔑"}',
      `{"detail":"${'é'.repeat(3000)}"}`, // past the buffer's first size: grown, then reused
      '{"seq":2}',
      `{"detail":"${'x'.repeat(70_000)}🔑"}`,
    ];
    let hash = previous;
    for (const text of texts) {
      const input = new Uint8Array([
        ...Buffer.from(hash, 'hex'),
        ...new TextEncoder().encode(text),
      ]);
      const next = chainHash(hash, text);
      expect(next).toBe(sha256Hex(input));
      hash = next;
    }
    for (const bad of [
      '',
      'abc',
      previous.toUpperCase(),
      `${previous.slice(0, 63)}g`,
      `${previous}00`,
    ])
      expect(() => chainHash(bad, '{"seq":1}')).toThrow('the previous hash is not 64 hex digits');
  });

  test('parseRecordLine() refuses a line respelled with the same fields (whitespace, order)', () => {
    const line = [...trailOf(1).lines()][0]!;
    const respaced = line.replace('"seq":1,', '"seq": 1,');
    expect(() => parseRecordLine(respaced)).toThrow('not in canonical form');
    const reordered = JSON.stringify({ ...JSON.parse(line), seq: undefined, extra: undefined });
    expect(() => parseRecordLine(reordered)).toThrow();
  });
});

describe('verifyExport()', () => {
  test('passes a whole export and counts its records', () => {
    expect(verifyExport(exportOf(trailOf(5)))).toEqual({ ok: true, first: 1, last: 5, count: 5 });
  });

  test('names the record whose one byte changed', () => {
    const text = exportOf(trailOf(5));
    const edited = text.replace('"name":"app_3"', '"name":"app_8"');
    expect(edited).not.toBe(text);
    expect(verifyExport(edited)).toMatchObject({ ok: false, seq: 3 });
  });

  test('names a record whose hash was recomputed for its own edit (the next record no longer chains)', () => {
    const log = trailOf(4);
    const lines = [...log.lines()];
    const third = parseRecordLine(lines[2]!);
    const forged = { ...third.record, result: 'denied' };
    const forgedCanonical = canonical(3, forged);
    const previous = parseRecordLine(lines[1]!).record.hash;
    lines[2] = recordLine(forgedCanonical, chainHash(previous, forgedCanonical));
    const text = [exportHeader(log.anchor), ...lines, exportEnd(log.head, 4)].join('\n');
    expect(verifyExport(text)).toMatchObject({ ok: false, seq: 4 });
  });

  test('names the first missing record when one line is removed', () => {
    const lines = exportOf(trailOf(5)).split('\n');
    lines.splice(3, 1); // header is line 0: this removes record 3
    expect(verifyExport(lines.join('\n'))).toMatchObject({
      ok: false,
      seq: 3,
      reason: 'record 3 is missing (the next record is 4)',
    });
  });

  test('names the first record out of place when two are swapped', () => {
    const lines = exportOf(trailOf(5)).split('\n');
    [lines[2], lines[3]] = [lines[3]!, lines[2]!];
    expect(verifyExport(lines.join('\n'))).toMatchObject({ ok: false, seq: 2 });
  });

  test('names the first missing record of a truncated export (end line gone with the last records)', () => {
    const lines = exportOf(trailOf(5)).split('\n').slice(0, 4); // header and records 1-3
    expect(verifyExport(lines.join('\n'))).toMatchObject({ ok: false, seq: 4 });
  });

  test('names the missing records when the last records are cut but the end line is kept', () => {
    const lines = exportOf(trailOf(5)).trimEnd().split('\n');
    lines.splice(4, 2); // records 4 and 5
    expect(verifyExport(lines.join('\n'))).toMatchObject({ ok: false, seq: 4 });
  });

  test('refuses a file that is no export, before reading any record', () => {
    expect(() => verifyExport([...trailOf(2).lines()].join('\n'))).toThrow('not an audit export');
  });

  test('an empty trail exports and verifies as no records', () => {
    const log = new AuditLog();
    expect(log.head).toEqual({ seq: 0, hash: genesisHash });
    expect(verifyExport(exportOf(log))).toEqual({ ok: true, first: 1, last: 0, count: 0 });
  });
});

describe('retention', () => {
  test('drops whole segments, keeps at least `kept`, and the rest verifies from the anchor', () => {
    const log = new AuditLog(4);
    for (let n = 1; n <= 23; n++) log.append(entry(n), 10);
    // 23 records in segments of 4: dropping 12 leaves 11 (>= 10); dropping 16 would leave 7.
    expect(log.size).toBe(11);
    expect(log.anchor.seq).toBe(12);
    expect(parseRecordLine([...log.lines()][0]!).record.seq).toBe(13);
    const dropped = trailOf(12).head;
    expect(log.anchor).toEqual(dropped);
    expect(log.verify()).toEqual({ ok: true, first: 13, last: 23, count: 11 });
    expect(verifyExport(exportOf(log))).toEqual({ ok: true, first: 13, last: 23, count: 11 });
  });

  test('an export whose anchor was edited fails at the first kept record', () => {
    const log = new AuditLog(4);
    for (let n = 1; n <= 12; n++) log.append(entry(n), 4);
    const text = exportOf(log).replace(log.anchor.hash, '1'.repeat(64));
    expect(verifyExport(text)).toMatchObject({ ok: false, seq: log.anchor.seq + 1 });
  });

  test('a trail restored from a snapshot goes on with the same numbering, segments and chain', () => {
    const original = new AuditLog(4);
    for (let n = 1; n <= 9; n++) original.append(entry(n), 4);
    const restored = AuditLog.restore(
      JSON.parse(JSON.stringify(original.snapshot())) as ReturnType<AuditLog['snapshot']>,
      4,
    );
    for (let n = 10; n <= 17; n++) {
      expect(restored.append(entry(n), 4)).toBe(original.append(entry(n), 4));
    }
    expect(restored.anchor).toEqual(original.anchor);
    expect([...restored.lines()]).toEqual([...original.lines()]);
    expect(restored.verify()).toMatchObject({ ok: true, last: 17 });
  });

  test('lines(from) starts at that sequence number, across segments', () => {
    const log = new AuditLog(4);
    for (let n = 1; n <= 10; n++) log.append(entry(n));
    expect([...log.lines(6)].map((l) => parseRecordLine(l).record.seq)).toEqual([6, 7, 8, 9, 10]);
  });
});

describe('AuditLog.snapshotJson()', () => {
  test('is the JSON of snapshot(), whole segments kept as made, through appends and retention', () => {
    const log = new AuditLog(4);
    expect(log.snapshotJson()).toBe(JSON.stringify(log.snapshot()));
    for (let n = 1; n <= 30; n++) {
      log.append(entry(n), 10);
      // Made at every step: a cached segment must not go stale as the last one grows or old ones go.
      expect(log.snapshotJson()).toBe(JSON.stringify(log.snapshot()));
    }
    const restored = AuditLog.restore(
      JSON.parse(log.snapshotJson()) as ReturnType<AuditLog['snapshot']>,
      4,
    );
    expect(restored.verify()).toEqual(log.verify());
  });
});

/** SHA-256 from @noble/hashes: an implementation of its own, not the one chainHash uses. */
function sha256Hex(bytes: Uint8Array): string {
  return Buffer.from(sha256(bytes)).toString('hex');
}
