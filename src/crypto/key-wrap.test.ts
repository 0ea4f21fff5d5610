import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../errors.ts';
import { seal } from './aead.ts';
import { rewrapKey, unwrapKey, wrapKey, wrappedKekId, zero } from './key-wrap.ts';
import type { Random } from './random.ts';

const random: Random = (n) => crypto.getRandomValues(new Uint8Array(n));

function caught(run: () => unknown): SecretdError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(SecretdError);
    return error as SecretdError;
  }
  throw new Error('expected a SecretdError');
}

describe('wrapKey/unwrapKey', () => {
  const kek = random(32);
  const dek = random(32);

  test('unwrapKey() returns the wrapped key in a buffer of its own', () => {
    const wrapped = wrapKey(kek, dek, { label: 'dek', random });
    const key = unwrapKey(kek, wrapped, { label: 'dek' });
    expect(key).toEqual(dek);
    expect(key.byteOffset).toBe(0);
    expect(key.buffer.byteLength).toBe(32);
  });

  test('wrapKey() wraps keys of any length, such as a PKCS#8 TLS key', () => {
    const tlsKey = random(138);
    expect(
      unwrapKey(kek, wrapKey(kek, tlsKey, { label: 'tls-key', random }), { label: 'tls-key' }),
    ).toEqual(tlsKey);
  });

  test('unwrapKey() reports a wrong KEK as an invalid unlock key without key material', () => {
    const wrapped = wrapKey(kek, dek, { label: 'dek', random });
    const error = caught(() => unwrapKey(random(32), wrapped, { label: 'dek' }));
    expect({ code: error.code, message: error.message }).toEqual({
      code: 'invalid',
      message: "Invalid unlock key: it does not open this node's keys",
    });
    expect((error.cause as SecretdError).code).toBe('corrupt');
  });

  test('unwrapKey() refuses a wrapped DEK presented as a TLS key, and the reverse', () => {
    const wrappedDek = wrapKey(kek, dek, { label: 'dek', random });
    const wrappedTls = wrapKey(kek, random(138), { label: 'tls-key', random });
    expect(caught(() => unwrapKey(kek, wrappedDek, { label: 'tls-key' })).code).toBe('invalid');
    expect(caught(() => unwrapKey(kek, wrappedTls, { label: 'dek' })).code).toBe('invalid');
  });

  test('unwrapKey() refuses an envelope sealed with the same KEK but not as a wrapped key', () => {
    const sealed = seal(kek, dek, { aad: new TextEncoder().encode('dek'), keyId: 0, random });
    expect(caught(() => unwrapKey(kek, sealed, { label: 'dek' })).code).toBe('invalid');
  });

  test('unwrapKey() reports truncation and an unknown version as corrupt, not as a wrong key', () => {
    const wrapped = wrapKey(kek, dek, { label: 'dek', random });
    expect(wrapped[0]).toBe(2); // the version key-wrap.ts checks before opening
    expect(caught(() => unwrapKey(kek, wrapped.subarray(0, 40), { label: 'dek' })).code).toBe(
      'corrupt',
    );
    const edited = wrapped.slice();
    edited[0] = 3;
    expect(caught(() => unwrapKey(kek, edited, { label: 'dek' })).message).toBe(
      'Wrapped key has unknown envelope version 3',
    );
  });

  test('unwrapKey() refuses a tampered wrapped key', () => {
    const wrapped = wrapKey(kek, dek, { label: 'dek', random });
    const tampered = wrapped.slice();
    tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
    expect(caught(() => unwrapKey(kek, tampered, { label: 'dek' })).code).toBe('invalid');
  });

  test('wrapKey() and unwrapKey() refuse a KEK that is not 32 bytes', () => {
    expect(caught(() => wrapKey(random(16), dek, { label: 'dek', random })).message).toBe(
      'Invalid unlock key: it must be 32 bytes, got 16',
    );
  });

  test('wrapKey() refuses a malformed label and an empty key', () => {
    expect(caught(() => wrapKey(kek, dek, { label: 'Has Space', random })).code).toBe('internal');
    expect(caught(() => wrapKey(kek, new Uint8Array(0), { label: 'dek', random })).code).toBe(
      'internal',
    );
  });

  test('wrapKey() records the KEK version, authenticated', () => {
    const wrapped = wrapKey(kek, dek, { label: 'dek', random, kekId: 7 });
    expect(wrappedKekId(wrapped)).toBe(7);
    expect(wrappedKekId(wrapKey(kek, dek, { label: 'dek', random }))).toBe(0);
    const edited = wrapped.slice();
    edited[4] = 8;
    expect(caught(() => unwrapKey(kek, edited, { label: 'dek' })).code).toBe('invalid');
  });
});

describe('rewrapKey', () => {
  test('rewrapKey() moves a key to a new KEK, which alone opens the result', () => {
    const oldKek = random(32);
    const newKek = random(32);
    const dek = random(32);
    const wrapped = wrapKey(oldKek, dek, { label: 'dek', random, kekId: 1 });
    const rewrapped = rewrapKey(oldKek, newKek, wrapped, { label: 'dek', random, kekId: 2 });
    expect(unwrapKey(newKek, rewrapped, { label: 'dek' })).toEqual(dek);
    expect(wrappedKekId(rewrapped)).toBe(2);
    expect(caught(() => unwrapKey(oldKek, rewrapped, { label: 'dek' })).code).toBe('invalid');
  });

  test('rewrapKey() with the wrong old KEK is an invalid unlock key', () => {
    const wrapped = wrapKey(random(32), random(32), { label: 'dek', random });
    expect(
      caught(() => rewrapKey(random(32), random(32), wrapped, { label: 'dek', random })).code,
    ).toBe('invalid');
  });
});

describe('zero', () => {
  test('zero() fills every buffer it is given with zeros', () => {
    const a = Uint8Array.of(1, 2, 3);
    const b = new Uint8Array(8).fill(0xff);
    zero(a, b.subarray(2, 5));
    expect(Array.from(a)).toEqual([0, 0, 0]);
    expect(Array.from(b)).toEqual([0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0xff]);
  });
});
