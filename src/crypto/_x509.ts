/**
 * What the CA (ca.ts), cross-signing (ca-rotation.ts) and chain verification (cert-chain.ts) share:
 * the one algorithm, certificate parsing, key import and the Deno-safe byte views @peculiar/x509
 * wants. Private to src/crypto.
 */
import type * as X509 from '@peculiar/x509';
import type { X509Certificate } from '@peculiar/x509';
import { SecretdError } from '../errors.ts';

/**
 * @peculiar/x509, loaded once by `loadX509` and not before: evaluating it and the ASN.1 schemas it
 * registers takes 10-14 ms, about a third of a CLI command that needs no certificate (`secretd
 * secret create` through the admin socket). A node loads it before it starts (daemon.ts), the CLI
 * when a command needs it (src/main.ts, the TLS client). Only this file imports it for its value
 * (scripts/check-imports.ts).
 */
let library: typeof X509 | null = null;

export async function loadX509(): Promise<void> {
  if (library !== null) return;
  // The library resolves its algorithms through tsyringe, which throws at load time unless the
  // Reflect metadata polyfill is already installed.
  await import('reflect-metadata');
  library = await import('@peculiar/x509');
}

/** The library, once `loadX509` has loaded it; a call before that is a bug, said as one. */
export function x509(): typeof X509 {
  if (library === null)
    throw new SecretdError('internal', 'X.509 used before loadX509() loaded its library');
  return library;
}

export const keyAlgorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const signingAlgorithm = { name: 'ECDSA', hash: 'SHA-256' } as const;
export const webCrypto: Crypto = globalThis.crypto;

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  // Extractable so the private key can be stored (wrapped) as PKCS#8.
  return webCrypto.subtle.generateKey(keyAlgorithm, true, ['sign', 'verify']);
}

export async function importSigningKey(keyPkcs8: Uint8Array): Promise<CryptoKey> {
  // WebCrypto wants an ArrayBuffer-backed view; the copy is ours to zero.
  const copy = keyPkcs8.slice();
  try {
    return await webCrypto.subtle.importKey('pkcs8', copy, keyAlgorithm, false, ['sign']);
  } catch (cause) {
    throw new SecretdError('invalid', 'CA private key is not a PKCS#8 ECDSA P-256 key', { cause });
  } finally {
    copy.fill(0);
  }
}

export function parseCertificate(der: Uint8Array): X509Certificate {
  const { X509Certificate } = x509();
  try {
    return new X509Certificate(arrayBacked(der));
  } catch (cause) {
    throw new SecretdError('invalid', 'Invalid certificate: not a DER X.509 certificate', {
      cause,
    });
  }
}

/** Whether the certificate's key is ECDSA P-256, the only kind secretd issues for or signs with. */
export function isP256(cert: X509Certificate): boolean {
  const algorithm = cert.publicKey.algorithm as { name?: string; namedCurve?: string };
  return algorithm.name === keyAlgorithm.name && algorithm.namedCurve === keyAlgorithm.namedCurve;
}

/** The certificate's subject key identifier (hex), or undefined when it carries none. */
export function subjectKeyId(cert: X509Certificate): string | undefined {
  return cert.getExtension(x509().SubjectKeyIdentifierExtension)?.keyId;
}

/** Whether the certificate names itself as its issuer (DER-equal names); says nothing of who signed it. */
export function selfIssued(cert: X509Certificate): boolean {
  return bytesEqual(cert.subjectName.toArrayBuffer(), cert.issuerName.toArrayBuffer());
}

/** Whether `issuer` signed `cert`: the signature only, no names, no dates. */
export async function signedBy(cert: X509Certificate, issuer: X509Certificate): Promise<boolean> {
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true }, webCrypto);
  } catch {
    return false;
  }
}

/**
 * The bytes as a view of an ArrayBuffer, which is what @peculiar/x509's BufferSource means under
 * Deno's libs (a SharedArrayBuffer-backed view is not one): the same view when it already is, else a
 * copy.
 */
export function arrayBacked(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return isArrayBacked(bytes) ? bytes : bytes.slice();
}

function isArrayBacked(bytes: Uint8Array): bytes is Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer;
}

export function checkDate(date: Date): Date {
  if (Number.isNaN(date.getTime()))
    throw new SecretdError('internal', 'Certificate time is not a valid date');
  return date;
}

export function bytesEqual(a: ArrayBuffer | Uint8Array, b: ArrayBuffer | Uint8Array): boolean {
  const x = a instanceof Uint8Array ? a : new Uint8Array(a);
  const y = b instanceof Uint8Array ? b : new Uint8Array(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
