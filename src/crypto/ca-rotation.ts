/**
 * Root CA rotation's certificate, as swarmkit makes it (`CrossSignCACertificate`): the new root's
 * subject and public key, signed by the old root's key. Handed out with every certificate the new
 * key issues during the rotation, it lets a peer that still trusts only the old root accept them
 * (leaf → cross-signed → old root) while a peer that trusts the new root goes straight there
 * (leaf → new root).
 *
 * Both roots are named CN `secretd-ca`, as both of Docker's are `swarm-ca`: what tells them apart
 * is the key. So every certificate names its signer's key (authority key identifier = the signer's
 * subject key identifier), and the cross-signed certificate carries the new root's subject key
 * identifier: a verifier looking for the issuer of a leaf from the new key finds the new root or
 * the cross-signed certificate by name and key id, never the old root; OpenSSL, BoringSSL and
 * `verifyChain` all go by these.
 */
import type { X509Certificate } from '@peculiar/x509';
import { sha256 } from '@noble/hashes/sha2.js';
import { SecretdError } from '../errors.ts';
import { certBackdateMs } from '../limits.ts';
import type { SigningCA } from './ca.ts';
import { positiveSerial, toHex } from './_cert-fields.ts';
import { certDerFromPem, certPemFromDer } from './pem.ts';
import {
  bytesEqual,
  checkDate,
  importSigningKey,
  isP256,
  parseCertificate,
  selfIssued,
  signedBy,
  signingAlgorithm,
  subjectKeyId,
  webCrypto,
  x509,
} from './_x509.ts';

export interface CrossSignRootOptions {
  readonly now: Date;
  /** Validity from `now`; capped at the old root's expiry and the new root's. */
  readonly lifetimeMs: number;
}

/**
 * The new root (`newRootCertPem`, self-signed, e.g. from `createRootCA`) cross-signed by `oldCA`:
 * an intermediate CA (CA:true, path length 0, keyCertSign) for the new root's subject and key,
 * issued by the old root, valid inside the old root's validity. Returns it as PEM.
 */
export async function crossSignRoot(
  oldCA: SigningCA,
  newRootCertPem: string,
  options: CrossSignRootOptions,
): Promise<string> {
  const {
    AuthorityKeyIdentifierExtension,
    BasicConstraintsExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectKeyIdentifierExtension,
    X509CertificateGenerator,
  } = x509();
  const now = checkDate(options.now);
  if (!Number.isFinite(options.lifetimeMs) || options.lifetimeMs <= 0) {
    throw new SecretdError(
      'internal',
      `Cross-signed certificate lifetime must be positive, got ${options.lifetimeMs} ms`,
    );
  }
  const oldCert = parseCertificate(certDerFromPem(oldCA.certPem));
  const newCert = parseCertificate(certDerFromPem(newRootCertPem));
  await checkNewRoot(newCert, oldCert);
  for (const [which, cert] of [
    ['old', oldCert],
    ['new', newCert],
  ] as const) {
    if (cert.notAfter.getTime() <= now.getTime()) {
      throw new SecretdError(
        'conflict',
        `Cannot cross-sign the new root: the ${which} root certificate expired at ${cert.notAfter.toISOString()}`,
      );
    }
  }
  const notBefore = new Date(
    Math.max(
      now.getTime() - certBackdateMs,
      oldCert.notBefore.getTime(),
      newCert.notBefore.getTime(),
    ),
  );
  const notAfter = new Date(
    Math.min(
      now.getTime() + options.lifetimeMs,
      oldCert.notAfter.getTime(),
      newCert.notAfter.getTime(),
    ),
  );
  const signingKey = await importSigningKey(oldCA.keyPkcs8);
  const newKeyId = subjectKeyId(newCert);
  const oldKeyId = subjectKeyId(oldCert);
  const cert = await X509CertificateGenerator.create(
    {
      // Derived, so cross-signing needs no random source; distinct from the new root's own serial
      // (same issuer name, so issuer and serial still name one certificate) and from another
      // cross-signing of the same pair at another time.
      serialNumber: toHex(
        positiveSerial(
          sha256(
            new Uint8Array([
              ...new TextEncoder().encode(`secretd cross-signed root ${notBefore.toISOString()}`),
              ...new Uint8Array(oldCert.rawData),
              ...new Uint8Array(newCert.rawData),
            ]),
          ).subarray(0, 16),
        ),
      ),
      subject: newCert.subjectName,
      issuer: oldCert.subjectName,
      notBefore,
      notAfter,
      publicKey: newCert.publicKey,
      signingKey,
      signingAlgorithm,
      extensions: [
        // It signs only leaves: a later rotation cross-signs with the root then in use, never with this.
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        // The new root's key id, so a leaf's authority key id finds this as readily as the new root.
        newKeyId === undefined
          ? await SubjectKeyIdentifierExtension.create(newCert.publicKey, false, webCrypto)
          : new SubjectKeyIdentifierExtension(newKeyId),
        oldKeyId === undefined
          ? await AuthorityKeyIdentifierExtension.create(oldCert.publicKey, false, webCrypto)
          : new AuthorityKeyIdentifierExtension(oldKeyId),
      ],
    },
    webCrypto,
  );
  // Checked twice: an old key that does not match its certificate would hand out an intermediate
  // that no peer accepts, far from the cause.
  if (!(await signedBy(cert, oldCert))) {
    throw new SecretdError('internal', 'CA private key does not match the CA certificate');
  }
  return certPemFromDer(new Uint8Array(cert.rawData));
}

async function checkNewRoot(newCert: X509Certificate, oldCert: X509Certificate): Promise<void> {
  const refuse = (reason: string) =>
    new SecretdError('invalid', `Cannot cross-sign the new root: ${reason}`);
  if (!isP256(newCert)) throw refuse('its key is not ECDSA P-256');
  const constraints = newCert.getExtension(x509().BasicConstraintsExtension);
  if (constraints?.ca !== true) throw refuse('it is not a CA certificate');
  if (!selfIssued(newCert) || !(await signedBy(newCert, newCert)))
    throw refuse('it is not self-signed');
  // As swarmkit: "Cannot update to a cert with an identical key".
  if (bytesEqual(newCert.publicKey.rawData, oldCert.publicKey.rawData)) {
    throw refuse('it has the same key as the old root');
  }
}
