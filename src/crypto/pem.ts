/**
 * PEM (RFC 7468) for the DER this package produces: certificates, CSRs and PKCS#8 keys. Decoding is
 * strict about labels so a key can never be read where a certificate was expected, and errors
 * never quote the input, which may be a private key.
 */
import { SecretdError } from '../errors.ts';
import { base64Decode, base64Encode } from './_base64.ts';

export type PemLabel = 'CERTIFICATE' | 'CERTIFICATE REQUEST' | 'PRIVATE KEY';

const lineChars = 64;
const blockPattern = /-----BEGIN ([A-Z0-9 ]+)-----([^-]*)-----END ([A-Z0-9 ]+)-----/g;

export function pemEncode(label: PemLabel, der: Uint8Array): string {
  const body = base64Encode(der, { padded: true });
  const lines: string[] = [];
  for (let i = 0; i < body.length; i += lineChars) lines.push(body.slice(i, i + lineChars));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Every block with `label`, in order; blocks with other labels are skipped. */
export function pemDecodeAll(text: string, label: PemLabel): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const match of text.matchAll(blockPattern)) {
    const [, begin, body, end] = match;
    if (begin !== label) continue;
    if (end !== label) throw invalidPem(label);
    const der = base64Decode((body ?? '').replace(/\s+/g, ''), { padded: true });
    if (der === undefined || der.length === 0) throw invalidPem(label);
    out.push(der);
  }
  return out;
}

/** The single block with `label`; more than one is refused so a bundle is never half-read. */
export function pemDecode(text: string, label: PemLabel): Uint8Array {
  const blocks = pemDecodeAll(text, label);
  const [first] = blocks;
  if (first === undefined || blocks.length !== 1) throw invalidPem(label);
  return first;
}

export const certPemFromDer = (der: Uint8Array): string => pemEncode('CERTIFICATE', der);
export const certDerFromPem = (pem: string): Uint8Array => pemDecode(pem, 'CERTIFICATE');
export const csrDerFromPem = (pem: string): Uint8Array => pemDecode(pem, 'CERTIFICATE REQUEST');
export const keyPkcs8ToPem = (pkcs8: Uint8Array): string => pemEncode('PRIVATE KEY', pkcs8);
export const keyPkcs8FromPem = (pem: string): Uint8Array => pemDecode(pem, 'PRIVATE KEY');

function invalidPem(label: PemLabel): SecretdError {
  return new SecretdError(
    'invalid',
    `Invalid PEM: expected exactly one well-formed ${label} block`,
  );
}
