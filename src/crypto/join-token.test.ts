import { describe, expect, test } from 'bun:test';
import { sha256 } from '@noble/hashes/sha2.js';
import { SecretdError } from '../errors.ts';
import type { Random } from './random.ts';
import {
  caDigest,
  caMatchesToken,
  generateJoinToken,
  generateJoinTokens,
  joinTokenMatches,
  parseJoinToken,
} from './join-token.ts';

const random: Random = (n) => crypto.getRandomValues(new Uint8Array(n));
const caDer = new TextEncoder().encode('stand-in for a CA certificate DER');
const otherCaDer = new TextEncoder().encode('another CA');
const tokenPattern = /^SDTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/;

function parseError(text: string): SecretdError {
  try {
    parseJoinToken(text);
  } catch (error) {
    expect(error).toBeInstanceOf(SecretdError);
    return error as SecretdError;
  }
  throw new Error('expected parseJoinToken to throw');
}

describe('join tokens', () => {
  test('caDigest() is the SHA-256 of the DER bytes', () => {
    expect(caDigest(caDer)).toEqual(sha256(caDer));
    expect(caDigest(new Uint8Array(0))).toEqual(
      Uint8Array.from(
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'.match(/../g)!,
        (b) => parseInt(b, 16),
      ),
    );
  });

  test('generateJoinToken() renders digest and secret as fixed-width base 36', () => {
    const secret = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 35);
    const token = generateJoinToken(caDer, () => secret.slice());
    expect(token).toMatch(tokenPattern);
    const digest = BigInt(`0x${Buffer.from(caDigest(caDer)).toString('hex')}`);
    expect(token).toBe(`SDTKN-1-${digest.toString(36).padStart(50, '0')}-${'0'.repeat(24)}z`);
  });

  test('generateJoinToken() fits the largest digest and secret in 50 and 25 characters', () => {
    const token = generateJoinToken(caDer, () => new Uint8Array(16).fill(0xff));
    expect(token).toMatch(tokenPattern);
    expect((2n ** 256n - 1n).toString(36).length).toBe(50);
    expect((2n ** 128n - 1n).toString(36).length).toBe(25);
  });

  test('generateJoinTokens() draws the worker token, then the manager token, for one CA', () => {
    let draw = 0;
    const counting: Random = (n) => new Uint8Array(n).fill(++draw);
    expect(generateJoinTokens(caDer, counting)).toEqual({
      worker: generateJoinToken(caDer, (n) => new Uint8Array(n).fill(1)),
      manager: generateJoinToken(caDer, (n) => new Uint8Array(n).fill(2)),
    });
  });

  test('parseJoinToken() returns the digest, secret and trimmed token', () => {
    const token = generateJoinToken(caDer, random);
    const parsed = parseJoinToken(`\n ${token} \n`);
    expect(parsed).toEqual({ digest: caDigest(caDer), secret: token.slice(-25), raw: token });
  });

  test('generateJoinToken() draws a new secret each time, with the same digest', () => {
    const a = parseJoinToken(generateJoinToken(caDer, random));
    const b = parseJoinToken(generateJoinToken(caDer, random));
    expect(a.digest).toEqual(b.digest);
    expect(a.secret).not.toBe(b.secret);
  });

  test('parseJoinToken() refuses malformed tokens without echoing them', () => {
    const token = generateJoinToken(caDer, random);
    const [digest, secret] = token.slice(8).split('-') as [string, string];
    const cases = [
      '',
      'SDTKN-1-',
      `SWMTKN-1-${digest}-${secret}`,
      `SDTKN-2-${digest}-${secret}`,
      `SDTKN-1-${digest}${secret}`,
      `SDTKN-1-${digest}-${secret}-x`,
      `SDTKN-1-${digest.slice(1)}-${secret}`,
      `SDTKN-1-${digest}0-${secret}`,
      `SDTKN-1-${digest}-${secret.slice(1)}`,
      `SDTKN-1-${digest.toUpperCase()}-${secret}`,
      `SDTKN-1-${digest}-${secret.slice(0, 24)}_`,
      `SDTKN-1-${'z'.repeat(50)}-${secret}`, // more than 256 bits
      `SDTKN-1-${digest}-${'z'.repeat(25)}`, // more than 128 bits
    ];
    for (const text of cases) {
      const error = parseError(text);
      expect(error.code).toBe('invalid');
      expect(error.message).toStartWith('Invalid join token: ');
      expect(error.message).not.toContain(secret);
      expect(error.message).not.toContain(digest.slice(0, 10));
    }
  });

  test('joinTokenMatches() is true only for the identical whole token', () => {
    const token = generateJoinToken(caDer, random);
    expect(joinTokenMatches(token, token)).toBe(true);
    expect(joinTokenMatches(token, `${token}`.slice(0))).toBe(true);
    for (const i of [0, 8, 30, token.length - 1]) {
      const other = token.slice(0, i) + (token[i] === '0' ? '1' : '0') + token.slice(i + 1);
      expect(joinTokenMatches(other, token)).toBe(false);
    }
    expect(joinTokenMatches(token.slice(0, -1), token)).toBe(false);
    expect(joinTokenMatches(`${token}0`, token)).toBe(false);
    expect(joinTokenMatches('', token)).toBe(false);
    expect(joinTokenMatches('', '')).toBe(true);
  });

  test('caMatchesToken() accepts the CA a token was made for and no other', () => {
    const token = generateJoinToken(caDer, random);
    expect(caMatchesToken(caDer, token)).toBe(true);
    expect(caMatchesToken(caDer, parseJoinToken(token))).toBe(true);
    expect(caMatchesToken(otherCaDer, token)).toBe(false);
    const withExtra = new Uint8Array(caDer.length + 1);
    withExtra.set(caDer);
    expect(caMatchesToken(withExtra, token)).toBe(false);
  });
});
