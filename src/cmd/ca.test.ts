/** `secretd ca`: how --expiry is read, and that a bad one stops before anything is asked or written. */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretdError } from '../errors.ts';
import { lifetimeMs } from './_duration.ts';
import { parseExpiry } from './ca.ts';
import { main } from './main.ts';

const minute = 60_000;
const hour = 60 * minute;
const day = 24 * hour;

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof SecretdError && error.code === 'invalid') return error.message;
    throw error;
  }
  throw new Error('accepted');
}

describe('lifetimeMs()', () => {
  test('reads days, hours, minutes and seconds, alone or together', () => {
    const cases: Array<[string, number]> = [
      ['90d', 90 * day],
      ['1d12h', 36 * hour],
      ['12h', 12 * hour],
      ['1h30m', 90 * minute],
      ['1.5h', 90 * minute],
      ['30m', 30 * minute],
      ['90s', 90_000],
      ['0', 0],
    ];
    expect(cases.map(([text]) => [text, lifetimeMs(text)])).toEqual(cases);
  });

  test('refuses what is not a duration, naming it', () => {
    for (const text of ['', '5', 'd', '1w', '-1d', '1d-2h', '2 h', 'h1', '1dd'])
      expect(refusal(() => lifetimeMs(text))).toBe(
        `Invalid duration ${JSON.stringify(text)}: expected e.g. 90d, 12h, 30m or 1d12h`,
      );
  });
});

describe('ca issue-client --expiry', () => {
  test('parseExpiry() takes 1 minute and more; absent is the server default', () => {
    expect(parseExpiry(undefined)).toBeUndefined();
    expect(parseExpiry('1m')).toBe(minute);
    expect(parseExpiry('30d')).toBe(30 * day);
    expect(refusal(() => parseExpiry('59s'))).toBe(
      'Invalid --expiry "59s": a client certificate must be valid at least 1 minute',
    );
    // cac hands a bare number over as a number: still not a duration.
    expect(refusal(() => parseExpiry(90))).toContain('Invalid duration "90"');
  });

  const dir = mkdtempSync(join(tmpdir(), 'secretd-ca-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a bad or too short --expiry exits 1 with the reason, before any request, writing nothing', async () => {
    for (const [expiry, message] of [
      [
        '30s',
        'Error: Invalid --expiry "30s": a client certificate must be valid at least 1 minute',
      ],
      ['soon', 'Error: Invalid duration "soon": expected e.g. 90d, 12h, 30m or 1d12h'],
    ] as const) {
      const out = join(dir, expiry);
      const lines: string[] = [];
      const errors: string[] = [];
      const code = await main(
        [
          'ca',
          'issue-client',
          '--name',
          'bot',
          '--out',
          out,
          '--expiry',
          expiry,
          // No manager here: a request would fail with another message.
          '--data-dir',
          join(dir, 'none'),
        ],
        {
          out: (text) => lines.push(text),
          err: (text) => errors.push(text),
          write: () => {},
          stdin: async () => new Uint8Array(),
          stdinIsTTY: false,
        },
      );
      expect({ code, errors, lines }).toEqual({ code: 1, errors: [message], lines: [] });
      expect(existsSync(out)).toBe(false);
    }
  });
});
