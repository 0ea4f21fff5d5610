import { describe, expect, test } from 'bun:test';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { SecretdError } from '../errors.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  envelopeKeyId,
  open,
  seal,
  sealOverheadBytes,
  sealOverheadBytesMax,
  xaes256gcmDecrypt,
  xaes256gcmEncrypt,
} from './aead.ts';
import type { Random } from './random.ts';

const hex = (text: string): Uint8Array<ArrayBuffer> =>
  Uint8Array.from(text.replace(/\s+/g, '').match(/../g) ?? [], (b) => parseInt(b, 16));
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const random: Random = (n) => crypto.getRandomValues(new Uint8Array(n));

/**
 * The NaCl secretbox vector. Provenance: the worked example in D. J. Bernstein, "Cryptography in
 * NaCl" (2009, https://cr.yp.to/highspeed/naclcrypto-20090310.pdf), where `firstkey` is the
 * Alice-Bob shared key; shipped as NaCl's tests/secretbox.c and kept in libsodium as
 * test/default/secretbox.c with its expected output in test/default/secretbox.exp. NaCl's API pads
 * the message with 32 zero bytes and its output with 16; the values below are without padding:
 * the expected output is the 16-byte Poly1305 tag followed by the 131-byte ciphertext.
 */
const nacl = {
  firstkey: hex('1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389'),
  nonce: hex('69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37'),
  message: hex(`
    be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffc
    e5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f41db66cce314adb31
    0e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde
    048977eb48f59ffd4924ca1c60902e52f0a089bc76897040e082f93776384864
    5e0705`),
  tagAndCiphertext: hex(`
    f3ffc7703f9400e52a7dfb4b3d3305d9
    8e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186a
    c0dfc17c98dce87b4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738
    b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da
    99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74
    e355a5`),
};

describe('xsalsa20poly1305 (noble)', () => {
  test('matches the NaCl secretbox vector', () => {
    expect([
      nacl.firstkey.length,
      nacl.nonce.length,
      nacl.message.length,
      nacl.tagAndCiphertext.length,
    ]).toEqual([32, 24, 131, 147]);
    expect(xsalsa20poly1305(nacl.firstkey, nacl.nonce).encrypt(nacl.message)).toEqual(
      nacl.tagAndCiphertext,
    );
  });

  test('opens the NaCl secretbox vector back to its message', () => {
    expect(xsalsa20poly1305(nacl.firstkey, nacl.nonce).decrypt(nacl.tagAndCiphertext)).toEqual(
      nacl.message,
    );
  });
});

/**
 * The two vectors of the XAES-256-GCM specification (C2SP, https://c2sp.org/XAES-256-GCM), which
 * its Go reference (filippo.io/xaes256gcm) and RustCrypto's xaes-256-gcm crate test against.
 */
const xaesVectors = [
  {
    key: new Uint8Array(32).fill(0x01),
    aad: '',
    sealed: hex('ce546ef63c9cc60765923609 b33a9a1974e96e52daf2fcf7075e2271'),
  },
  {
    key: new Uint8Array(32).fill(0x03),
    aad: 'c2sp.org/XAES-256-GCM',
    sealed: hex('986ec1832593df5443a17943 7fd083bf3fdb41abd740a21f71eb769d'),
  },
];

describe('XAES-256-GCM (node:crypto AES-256-GCM under a derived key)', () => {
  const nonce = utf8('ABCDEFGHIJKLMNOPQRSTUVWX');
  test('matches the C2SP vectors', () => {
    for (const v of xaesVectors) {
      expect(xaes256gcmEncrypt(v.key, nonce, utf8('XAES-256-GCM'), utf8(v.aad))).toEqual(v.sealed);
    }
  });

  test('opens the C2SP vectors, and refuses them under other AAD or a flipped bit', () => {
    for (const v of xaesVectors) {
      expect(xaes256gcmDecrypt(v.key, nonce, v.sealed, { aad: utf8(v.aad) })).toEqual(
        utf8('XAES-256-GCM'),
      );
      expectCorrupt(() => xaes256gcmDecrypt(v.key, nonce, v.sealed, { aad: utf8(v.aad + '!') }));
      const flipped = v.sealed.slice();
      flipped[3] = flipped[3]! ^ 1;
      expectCorrupt(() => xaes256gcmDecrypt(v.key, nonce, flipped, { aad: utf8(v.aad) }));
    }
  });

  test('a different first half of the nonce derives a different key', () => {
    const v = xaesVectors[0]!;
    const other = nonce.slice();
    other[0] = other[0]! ^ 1;
    expect(xaes256gcmEncrypt(v.key, other, utf8('XAES-256-GCM'), new Uint8Array(0))).not.toEqual(
      v.sealed,
    );
  });
});

/** A version 1 envelope, built here from its documented layout with noble's secretbox. */
function legacyEnvelope(k: Uint8Array, data: Uint8Array, a: Uint8Array, keyId: number): Uint8Array {
  const nonce = random(24);
  const bound = new Uint8Array(4 + a.length);
  new DataView(bound.buffer).setUint32(0, keyId);
  bound.set(a, 4);
  const inner = new Uint8Array(32 + data.length);
  inner.set(sha256(bound), 0);
  inner.set(data, 32);
  const boxed = xsalsa20poly1305(k, nonce).encrypt(inner);
  const out = new Uint8Array(29 + boxed.length);
  out[0] = 1;
  new DataView(out.buffer).setUint32(1, keyId);
  out.set(nonce, 5);
  out.set(boxed, 29);
  return out;
}

const key = random(32);
const aad = utf8('wal/segment-7/index-42');
const secretText = 'attack at dawn';
const plaintext = utf8(secretText);

/** Asserts a `corrupt` SecretdError whose message carries none of the plaintext. */
function expectCorrupt(run: () => unknown): SecretdError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(SecretdError);
  const error = caught as SecretdError;
  expect(error.code).toBe('corrupt');
  expect(error.message).not.toContain(secretText);
  expect(error.message).not.toContain('attack');
  expect(error.message).toMatch(/^[A-Z]/);
  return error;
}

describe('seal/open', () => {
  test('open() returns what seal() sealed, for empty, short and long plaintexts', () => {
    for (const data of [new Uint8Array(0), plaintext, random(70_000)]) {
      const envelope = seal(key, data, { aad, keyId: 3, random });
      expect(envelope.length).toBe(data.length + sealOverheadBytes);
      expect(open(key, envelope, { aad })).toEqual(data);
    }
  });

  test('open() still reads version 1 (XSalsa20-Poly1305) envelopes, bound the same way', () => {
    for (const data of [new Uint8Array(0), plaintext, random(70_000)]) {
      const envelope = legacyEnvelope(key, data, aad, 3);
      expect(envelope.length).toBe(data.length + sealOverheadBytesMax);
      expect(open(key, envelope, { aad })).toEqual(data);
    }
    const envelope = legacyEnvelope(key, plaintext, aad, 3);
    const error = expectCorrupt(() => open(key, envelope, { aad: utf8('wal/segment-7/index-43') }));
    expect(error.message).toBe('Sealed record does not belong here (its bound context differs)');
    expectCorrupt(() => open(random(32), envelope, { aad }));
    for (let length = 0; length < envelope.length; length++) {
      expectCorrupt(() => open(key, envelope.subarray(0, length), { aad }));
    }
  });

  test('seal() writes version 2 and the key id big-endian in the header', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 0x01020304, random });
    expect(Array.from(envelope.subarray(0, 5))).toEqual([2, 1, 2, 3, 4]);
    expect(envelopeKeyId(envelope)).toBe(0x01020304);
  });

  test('seal() draws a fresh nonce, so equal plaintexts seal differently', () => {
    const a = seal(key, plaintext, { aad, keyId: 1, random });
    const b = seal(key, plaintext, { aad, keyId: 1, random });
    expect(a).not.toEqual(b);
  });

  test('open() accepts an envelope that is a view into a larger buffer', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 9, random });
    const backing = new Uint8Array(envelope.length + 10);
    backing.set(envelope, 7);
    expect(open(key, backing.subarray(7, 7 + envelope.length), { aad })).toEqual(plaintext);
  });

  test('open() rejects a wrong key as corrupt', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 1, random });
    expectCorrupt(() => open(random(32), envelope, { aad }));
  });

  test('open() rejects a flipped bit in every byte position of an envelope', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 1, random });
    for (let i = 0; i < envelope.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const tampered = envelope.slice();
        tampered[i] = tampered[i]! ^ bit;
        expectCorrupt(() => open(key, tampered, { aad }));
      }
    }
  });

  test('open() rejects a record opened under different additional data', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 1, random });
    const error = expectCorrupt(() => open(key, envelope, { aad: utf8('wal/segment-7/index-43') }));
    expect(error.message).toBe(
      'Sealed record failed authentication (wrong key, tampered data or moved record)',
    );
    expectCorrupt(() => open(key, envelope, { aad: new Uint8Array(0) }));
  });

  test('open() rejects an envelope whose key id was edited in the header', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 1, random });
    const edited = envelope.slice();
    new DataView(edited.buffer).setUint32(1, 2);
    expectCorrupt(() => open(key, edited, { aad }));
  });

  test('open() rejects every truncation of an envelope', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 1, random });
    for (let length = 0; length < envelope.length; length++) {
      expectCorrupt(() => open(key, envelope.subarray(0, length), { aad }));
    }
  });

  test('open() rejects an envelope with extra bytes appended', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 1, random });
    const longer = new Uint8Array(envelope.length + 1);
    longer.set(envelope);
    expectCorrupt(() => open(key, longer, { aad }));
  });

  test('open() rejects an unknown envelope version', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 1, random });
    for (const version of [0, 3, 255]) {
      const edited = envelope.slice();
      edited[0] = version;
      const error = expectCorrupt(() => open(key, edited, { aad }));
      expect(error.message).toBe(`Sealed record has unknown version ${version}`);
    }
  });

  test('seal() refuses a key id that does not fit the u32 header', () => {
    for (const keyId of [-1, 2 ** 32, 1.5, Number.NaN]) {
      expect(() => seal(key, plaintext, { aad, keyId, random })).toThrow(SecretdError);
    }
    const envelope = seal(key, plaintext, { aad, keyId: 2 ** 32 - 1, random });
    expect(envelopeKeyId(envelope)).toBe(2 ** 32 - 1);
    expect(open(key, envelope, { aad })).toEqual(plaintext);
  });

  test('seal() and open() refuse a key that is not 32 bytes', () => {
    const envelope = seal(key, plaintext, { aad, keyId: 1, random });
    expect(() => seal(random(16), plaintext, { aad, keyId: 1, random })).toThrow(
      'Key must be 32 bytes, got 16',
    );
    expect(() => open(random(31), envelope, { aad })).toThrow('Key must be 32 bytes, got 31');
  });
});
