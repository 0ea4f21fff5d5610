import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../errors.ts';
import {
  certDerFromPem,
  certPemFromDer,
  keyPkcs8FromPem,
  keyPkcs8ToPem,
  pemDecode,
  pemDecodeAll,
  pemEncode,
} from './pem.ts';

const bytes = (n: number, seed = 1): Uint8Array =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe('pem', () => {
  test('pemEncode() writes 64-character lines between BEGIN and END lines', () => {
    const pem = pemEncode('CERTIFICATE', bytes(100));
    const lines = pem.trimEnd().split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines.at(-1)).toBe('-----END CERTIFICATE-----');
    expect(lines.slice(1, -1).map((l) => l.length)).toEqual([64, 64, 8]); // 100 bytes are 136 base64 characters
    expect(pem.endsWith('\n')).toBe(true);
  });

  test('certDerFromPem() and keyPkcs8FromPem() invert their encoders, CRLF line ends included', () => {
    const der = bytes(300);
    expect(certDerFromPem(certPemFromDer(der))).toEqual(der);
    expect(keyPkcs8FromPem(keyPkcs8ToPem(der))).toEqual(der);
    expect(certDerFromPem(certPemFromDer(der).replaceAll('\n', '\r\n'))).toEqual(der);
  });

  test('pemDecodeAll() returns every block with the label, skipping others', () => {
    const a = bytes(40, 1);
    const b = bytes(50, 2);
    const text = `junk\n${certPemFromDer(a)}${keyPkcs8ToPem(bytes(10))}${certPemFromDer(b)}`;
    expect(pemDecodeAll(text, 'CERTIFICATE')).toEqual([a, b]);
    expect(pemDecodeAll(text, 'CERTIFICATE REQUEST')).toEqual([]);
  });

  test('pemDecode() refuses a missing block, two blocks, a wrong label and bad base64', () => {
    const cert = certPemFromDer(bytes(40));
    const cases: [string, Parameters<typeof pemDecode>[1]][] = [
      ['', 'CERTIFICATE'],
      [cert + cert, 'CERTIFICATE'],
      [cert, 'PRIVATE KEY'],
      [cert.replace('END CERTIFICATE', 'END PRIVATE KEY'), 'CERTIFICATE'],
      [cert.replace(/\n[A-Za-z0-9+/]/, '\n*'), 'CERTIFICATE'],
      ['-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n', 'CERTIFICATE'],
    ];
    for (const [text, label] of cases) {
      let error: unknown;
      try {
        pemDecode(text, label);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SecretdError);
      expect((error as SecretdError).code).toBe('invalid');
      expect((error as SecretdError).message).toBe(
        `Invalid PEM: expected exactly one well-formed ${label} block`,
      );
    }
  });

  test('keyPkcs8FromPem() does not read an ENCRYPTED PRIVATE KEY block as a key', () => {
    const pem = keyPkcs8ToPem(bytes(20)).replaceAll('PRIVATE KEY', 'ENCRYPTED PRIVATE KEY');
    expect(() => keyPkcs8FromPem(pem)).toThrow(SecretdError);
  });
});
