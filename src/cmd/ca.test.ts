/** `secretd ca`: how --expiry is read, and that a bad one stops before anything is asked or written. */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretdError } from '../errors.ts';
import { lifetimeMs } from './_duration.ts';
import { parseExpiry, parseRoleAndScope, scopeArgs } from './ca.ts';
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

describe('ca issue-client --role --scope, ca update', () => {
  test('parseRoleAndScope(): admin by default; --scope once or repeated', () => {
    expect(parseRoleAndScope(undefined, undefined, 'x')).toEqual({ role: 'admin', scope: [] });
    expect(parseRoleAndScope('writer', 'app_*', 'x')).toEqual({ role: 'writer', scope: ['app_*'] });
    expect(parseRoleAndScope('writer', ['app_*', 'ci-?'], 'x')).toEqual({
      role: 'writer',
      scope: ['app_*', 'ci-?'],
    });
  });

  test('scopeArgs() reads every --scope as typed, empty ones too (cac would read them as numbers)', () => {
    expect(scopeArgs(['ca', 'update', 'x', '--role', 'writer'])).toBeUndefined();
    expect(
      scopeArgs(['--scope', '', '--scope=007', '--scope', 'app_*', '--', '--scope', 'z']),
    ).toEqual(['', '007', 'app_*']);
  });

  const dir = mkdtempSync(join(tmpdir(), 'secretd-ca-roles-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a bad role or scope exits 1 with the reason, before any request, writing nothing', async () => {
    const io = (lines: string[], errors: string[]) => ({
      out: (text: string) => lines.push(text),
      err: (text: string) => errors.push(text),
      write: () => {},
      stdin: async () => new Uint8Array(),
      stdinIsTTY: false,
    });
    const out = join(dir, 'certs');
    // No manager here: a request would fail with another message.
    const none = ['--data-dir', join(dir, 'none')];
    const cases: Array<[string[], string]> = [
      [
        ['ca', 'issue-client', '--name', 'bot', '--out', out, '--role', 'root'],
        'Error: Cannot issue client certificate bot: unknown role "root" (expected one of admin, operator, writer, reader, auditor)',
      ],
      [
        ['ca', 'issue-client', '--name', 'bot', '--out', out, '--role', 'reader', '--scope', 'a*'],
        'Error: Cannot issue client certificate bot: role reader takes no scope (only writer does)',
      ],
      [
        ['ca', 'issue-client', '--name', 'bot', '--out', out, '--scope', 'a*'],
        'Error: Cannot issue client certificate bot: role admin takes no scope (only writer does)',
      ],
      [
        ['ca', 'issue-client', '--name', 'bot', '--out', out, '--role', 'writer', '--scope', ''],
        'Error: Cannot issue client certificate bot: a scope glob must not be empty',
      ],
      [['ca', 'update', 'bot'], 'Error: Missing --role: the role to give the certificate'],
      [
        ['ca', 'update', 'bot', '--role', 'writer', '--scope', 'a/b'],
        'Error: Cannot update client certificate bot: invalid scope glob "a/b": up to 64 characters [a-zA-Z0-9_.-] and the wildcards * and ?, starting with a letter, a digit or a wildcard',
      ],
    ];
    for (const [args, message] of cases) {
      const lines: string[] = [];
      const errors: string[] = [];
      const code = await main([...args, ...none], io(lines, errors));
      expect({ args, code, errors, lines }).toEqual({
        args,
        code: 1,
        errors: [message],
        lines: [],
      });
    }
    expect(existsSync(out)).toBe(false);
  });
});
