/**
 * The cluster CA and node identities: ECDSA P-256 with SHA-256 through WebCrypto, certificates
 * built with @peculiar/x509.
 *
 * Identity lives in the subject, as in Docker: CN = node id, OU = role, O = cluster id. The CA
 * takes only the public key from a request; the subject, SANs, usages and lifetime come from the
 * caller, so a joiner cannot ask for a role or a name.
 *
 * Names (SANs) are what clients that check only a name (curl, the docker CLI) go by, so only
 * manager certificates carry names a server is reached by (`secretd-manager`, loopback, its
 * verified addresses). A worker's certificate names only `secretd-worker` and its node id; an
 * admin's only `secretd-admin` (its name, chosen by a person, stays in the CN).
 *
 * Pure except for one unavoidable leak: WebCrypto generates keys and ECDSA nonces from the system
 * source, which cannot be injected. Time is always passed in; certificate checks here are
 * signature-only because a validity check would have to read the clock (`verifyChain` in
 * cert-chain.ts takes the time and checks dates too).
 *
 * While the root CA rotates (swarmkit's protocol), the CA signs with the new root's key and hands
 * out the new root cross-signed by the old one (ca-rotation.ts) with every certificate, so a leaf
 * chains to either root: `issueCertificateWithChain`.
 */
import type {
  Extension,
  JsonGeneralName,
  Pkcs10CertificateRequest,
  X509Certificate,
} from '@peculiar/x509';
import { sha256 } from '@noble/hashes/sha2.js';
import { SecretdError } from '../errors.ts';
import { certBackdateMs, rootCertLifetimeMs } from '../limits.ts';
import {
  checkDnsName,
  checkIpAddress,
  checkSubjectValue,
  positiveSerial,
  toHex,
} from './_cert-fields.ts';
import { certDerFromPem, certPemFromDer, csrDerFromPem, pemDecodeAll, pemEncode } from './pem.ts';
import {
  arrayBacked,
  bytesEqual,
  checkDate,
  generateKeyPair,
  importSigningKey,
  keyAlgorithm,
  parseCertificate,
  signingAlgorithm,
  subjectKeyId,
  webCrypto,
  x509,
} from './_x509.ts';

export type Role = 'manager' | 'worker' | 'admin';

const roleOUs: Readonly<Record<Role, string>> = {
  manager: 'secretd-manager',
  worker: 'secretd-worker',
  admin: 'secretd-admin',
};

export const caCommonName = 'secretd-ca';

export function roleOU(role: Role): string {
  return roleOUs[role];
}

/** The role an OU names, or undefined for anything that is not exactly one of ours. */
export function roleFromOU(ou: string): Role | undefined {
  for (const role of Object.keys(roleOUs) as Role[]) if (roleOUs[role] === ou) return role;
  return undefined;
}

export interface RootCA {
  readonly certPem: string;
  readonly certDer: Uint8Array;
  /** The CA private key; the caller stores it sealed and zeroes this copy. */
  readonly keyPkcs8: Uint8Array;
}

export interface CreateRootCAOptions {
  readonly now: Date;
}

export async function createRootCA(options: CreateRootCAOptions): Promise<RootCA> {
  const now = checkDate(options.now);
  const keys = await generateKeyPair();
  const spki = new Uint8Array(await webCrypto.subtle.exportKey('spki', keys.publicKey));
  const {
    BasicConstraintsExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectKeyIdentifierExtension,
    X509CertificateGenerator,
  } = x509();
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      // Derived from the fresh key, so creating a CA needs no second random source.
      serialNumber: toHex(positiveSerial(sha256(spki).subarray(0, 16))),
      name: [{ CN: [caCommonName] }],
      notBefore: new Date(now.getTime() - certBackdateMs),
      notAfter: new Date(now.getTime() + rootCertLifetimeMs),
      keys,
      signingAlgorithm,
      extensions: [
        // pathLength 1 leaves room for one cross-signed root while the CA is rotated, as Docker does.
        new BasicConstraintsExtension(true, 1, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        await SubjectKeyIdentifierExtension.create(keys.publicKey, false, webCrypto),
      ],
    },
    webCrypto,
  );
  const certDer = new Uint8Array(cert.rawData);
  const keyPkcs8 = new Uint8Array(await webCrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certPem: certPemFromDer(certDer), certDer, keyPkcs8 };
}

export interface CreateKeyAndCSROptions {
  /** Advisory only: the CA ignores the requested subject. Default: an empty subject. */
  readonly commonName?: string;
}

export interface KeyAndCSR {
  readonly keyPkcs8: Uint8Array;
  readonly csrPem: string;
}

export async function createKeyAndCSR(options: CreateKeyAndCSROptions = {}): Promise<KeyAndCSR> {
  const keys = await generateKeyPair();
  const csr = await x509().Pkcs10CertificateRequestGenerator.create(
    {
      ...(options.commonName === undefined ? {} : { name: [{ CN: [options.commonName] }] }),
      keys,
      signingAlgorithm,
    },
    webCrypto,
  );
  const keyPkcs8 = new Uint8Array(await webCrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keyPkcs8, csrPem: pemEncode('CERTIFICATE REQUEST', new Uint8Array(csr.rawData)) };
}

export interface SigningCA {
  readonly certPem: string;
  readonly keyPkcs8: Uint8Array;
  /**
   * While the root CA rotates: this CA's certificate cross-signed by the root it replaces
   * (`crossSignRoot`), handed out with every certificate it issues so that peers still trusting
   * only the old root accept them. Only `issueCertificateWithChain` takes a CA with one, so the
   * chain is never dropped. Default none.
   */
  readonly intermediatePem?: string;
}

/** A certificate and what a peer needs between it and a root it trusts. */
export interface IssuedCertificate {
  readonly certPem: string;
  /**
   * The CA's intermediate (PEM) to present after `certPem`, or '' when the CA has none. In TLS
   * options: `cert: certPem + chainPem`.
   */
  readonly chainPem: string;
}

export interface IssueCertificateOptions {
  readonly nodeId: string;
  readonly role: Role;
  readonly clusterId: string;
  readonly now: Date;
  /** Validity from `now`; capped at the CA's own expiry. */
  readonly lifetimeMs: number;
  /** Random bytes (at most 20); the top bit is cleared so the serial is positive. */
  readonly serial: Uint8Array;
  /** Extra DNS SANs beyond `secretd-manager` and the node id; manager certificates only. Default none. */
  readonly dnsNames?: readonly string[];
  /** IP SANs, IPv4 or IPv6 text; manager certificates only. Default none. */
  readonly ipAddresses?: readonly string[];
}

/** Signs a certificate for the CSR's public key; returns it as PEM. The CA must have no intermediate. */
export async function issueCertificate(
  ca: SigningCA,
  csrPem: string,
  options: IssueCertificateOptions,
): Promise<string> {
  if (ca.intermediatePem !== undefined) {
    throw new SecretdError(
      'internal',
      'Cannot issue certificate: a CA with an intermediate (a root rotation) issues through issueCertificateWithChain, which returns the chain too',
    );
  }
  return (await issueCertificateWithChain(ca, csrPem, options)).certPem;
}

/**
 * Signs a certificate for the CSR's public key, with the CA's intermediate as its chain. During a
 * root rotation (`ca.intermediatePem` set) the certificate chains to the new root directly and to
 * the old one through the intermediate; its lifetime is capped at the intermediate's expiry too,
 * so it is valid through either path for its whole life.
 */
export async function issueCertificateWithChain(
  ca: SigningCA,
  csrPem: string,
  options: IssueCertificateOptions,
): Promise<IssuedCertificate> {
  const names = subjectAltNames(options);
  const serial = positiveSerial(options.serial);
  const now = checkDate(options.now);
  if (!Number.isFinite(options.lifetimeMs) || options.lifetimeMs <= 0) {
    throw new SecretdError(
      'internal',
      `Certificate lifetime must be positive, got ${options.lifetimeMs} ms`,
    );
  }
  const publicKey = await publicKeyFromCSR(csrPem);
  const caCert = parseCertificate(certDerFromPem(ca.certPem));
  const caKey = await importSigningKey(ca.keyPkcs8);
  if (caCert.notAfter.getTime() <= now.getTime()) {
    throw new SecretdError(
      'conflict',
      `Cannot issue certificate: the CA certificate expired at ${caCert.notAfter.toISOString()}`,
    );
  }
  const intermediate =
    ca.intermediatePem === undefined ? undefined : checkIntermediate(caCert, ca.intermediatePem);
  if (intermediate !== undefined && intermediate.notAfter.getTime() <= now.getTime()) {
    throw new SecretdError(
      'conflict',
      `Cannot issue certificate: the CA's cross-signed certificate expired at ${intermediate.notAfter.toISOString()}`,
    );
  }
  const notAfterMs = Math.min(
    now.getTime() + options.lifetimeMs,
    caCert.notAfter.getTime(),
    intermediate?.notAfter.getTime() ?? Infinity,
  );
  const cert = await x509().X509CertificateGenerator.create(
    {
      serialNumber: toHex(serial),
      subject: [
        { O: [options.clusterId] },
        { OU: [roleOU(options.role)] },
        { CN: [options.nodeId] },
      ],
      issuer: caCert.subjectName,
      notBefore: new Date(now.getTime() - certBackdateMs),
      notAfter: new Date(notAfterMs),
      publicKey,
      signingKey: caKey,
      signingAlgorithm,
      extensions: await leafExtensions(publicKey, caCert, names),
    },
    webCrypto,
  );
  const certPem = certPemFromDer(new Uint8Array(cert.rawData));
  // Checked twice: a CA key that does not match its certificate would otherwise hand out
  // certificates that every peer refuses, far from the cause.
  if (!(await verifyIssuedBy(certPem, ca.certPem))) {
    throw new SecretdError('internal', 'CA private key does not match the CA certificate');
  }
  return {
    certPem,
    chainPem:
      intermediate === undefined ? '' : certPemFromDer(new Uint8Array(intermediate.rawData)),
  };
}

/**
 * The CA's intermediate, refused unless it names the CA's subject and carries the CA's key and key
 * id (a leaf's authority key id must find it as it finds the CA certificate).
 */
function checkIntermediate(caCert: X509Certificate, intermediatePem: string): X509Certificate {
  const intermediate = parseCertificate(certDerFromPem(intermediatePem));
  const sameName = bytesEqual(
    intermediate.subjectName.toArrayBuffer(),
    caCert.subjectName.toArrayBuffer(),
  );
  const sameKey =
    bytesEqual(intermediate.publicKey.rawData, caCert.publicKey.rawData) &&
    subjectKeyId(intermediate) === subjectKeyId(caCert);
  if (!sameName || !sameKey) {
    throw new SecretdError(
      'internal',
      "Cannot issue certificate: the CA's intermediate certificate is not for the CA's name and key",
    );
  }
  return intermediate;
}

export interface Identity {
  readonly nodeId: string;
  readonly role: Role;
  readonly clusterId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialHex: string;
}

/**
 * Reads who a certificate names; it does not check who signed it (see `verifyIssuedBy`). A PEM
 * read before is not parsed again: a node reads its own certificate's identity at several steps
 * of its start (its role, its expiry, its renewal's schedule, its peer client), each a parse of a
 * few milliseconds while the code is cold. The last few PEMs' identities are kept (a certificate
 * is public); each call gets its own object.
 */
export function parseIdentity(cert: string | Uint8Array): Identity {
  if (typeof cert !== 'string') return identityOf(cert);
  let known = parsedIdentities.get(cert);
  if (known === undefined) {
    // A certificate issued during a root rotation comes with its chain: the leaf is the first block.
    const der = pemDecodeAll(cert, 'CERTIFICATE')[0];
    if (der === undefined) throw new SecretdError('invalid', 'Invalid PEM: no CERTIFICATE block');
    known = identityOf(der);
    if (parsedIdentities.size >= parsedIdentitiesKept)
      parsedIdentities.delete(parsedIdentities.keys().next().value!);
    parsedIdentities.set(cert, known);
  }
  return {
    ...known,
    notBefore: new Date(known.notBefore.getTime()),
    notAfter: new Date(known.notAfter.getTime()),
  };
}

/** parseIdentity's PEMs, oldest first: a node's own certificate, its renewed one, a few clients'. */
const parsedIdentities = new Map<string, Identity>();
const parsedIdentitiesKept = 8;

function identityOf(der: Uint8Array): Identity {
  const parsed = parseCertificate(der);
  const subject = parsed.subjectName;
  const nodeId = singleField(subject.getField('CN'), 'node id (CN)');
  const ou = singleField(subject.getField('OU'), 'role (OU)');
  const clusterId = singleField(subject.getField('O'), 'cluster id (O)');
  const role = roleFromOU(ou);
  if (role === undefined)
    throw new SecretdError('forbidden', `Certificate role '${ou}' is not a secretd role`);
  return {
    nodeId,
    role,
    clusterId,
    notBefore: parsed.notBefore,
    notAfter: parsed.notAfter,
    serialHex: parsed.serialNumber.toLowerCase(),
  };
}

/** What Docker's node TLS info gives of the CA: its raw subject and public key (DER). */
export interface IssuerInfo {
  readonly subjectDer: Uint8Array;
  readonly publicKeyDer: Uint8Array;
}

export function issuerInfo(caCertPem: string): IssuerInfo {
  const cert = parseCertificate(certDerFromPem(caCertPem));
  return {
    subjectDer: new Uint8Array(cert.subjectName.toArrayBuffer()),
    publicKeyDer: new Uint8Array(cert.publicKey.rawData),
  };
}

/** Whether `caCertPem` signed `certPem`: issuer name and signature only, no validity dates. */
export async function verifyIssuedBy(certPem: string, caCertPem: string): Promise<boolean> {
  const cert = parseCertificate(certDerFromPem(certPem));
  const caCert = parseCertificate(certDerFromPem(caCertPem));
  if (!bytesEqual(cert.issuerName.toArrayBuffer(), caCert.subjectName.toArrayBuffer()))
    return false;
  try {
    return await cert.verify({ publicKey: caCert.publicKey, signatureOnly: true }, webCrypto);
  } catch {
    return false;
  }
}

/** Verifies the request's self-signature, then returns its key re-encoded, refusing all but P-256. */
async function publicKeyFromCSR(csrPem: string): Promise<CryptoKey> {
  const { Pkcs10CertificateRequest: Request } = x509();
  let csr: Pkcs10CertificateRequest;
  try {
    csr = new Request(arrayBacked(csrDerFromPem(csrPem)));
  } catch (cause) {
    if (cause instanceof SecretdError) throw cause;
    throw new SecretdError('invalid', 'Certificate request is not a valid PKCS#10 request', {
      cause,
    });
  }
  const signed = await csr.verify(webCrypto).catch(() => false);
  if (!signed) throw new SecretdError('invalid', 'Certificate request signature is invalid');
  const algorithm = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (algorithm.name !== keyAlgorithm.name || algorithm.namedCurve !== keyAlgorithm.namedCurve) {
    const found = [algorithm.name, algorithm.namedCurve].filter(Boolean).join(' ');
    throw new SecretdError(
      'invalid',
      `Certificate request key must be ECDSA P-256, got ${found || 'unknown'}`,
    );
  }
  try {
    // Importing checks the point is on the curve.
    return await webCrypto.subtle.importKey('spki', csr.publicKey.rawData, keyAlgorithm, true, [
      'verify',
    ]);
  } catch (cause) {
    throw new SecretdError('invalid', 'Certificate request key is not a valid P-256 public key', {
      cause,
    });
  }
}

async function leafExtensions(
  publicKey: CryptoKey,
  caCert: X509Certificate,
  names: JsonGeneralName[],
): Promise<Extension[]> {
  const {
    AuthorityKeyIdentifierExtension,
    BasicConstraintsExtension,
    ExtendedKeyUsage,
    ExtendedKeyUsageExtension,
    KeyUsageFlags,
    KeyUsagesExtension,
    SubjectAlternativeNameExtension,
    SubjectKeyIdentifierExtension,
  } = x509();
  const caKeyId = caCert.getExtension(SubjectKeyIdentifierExtension)?.keyId;
  return [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, true),
    new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]),
    new SubjectAlternativeNameExtension(names),
    await SubjectKeyIdentifierExtension.create(publicKey, false, webCrypto),
    caKeyId === undefined
      ? await AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, webCrypto)
      : new AuthorityKeyIdentifierExtension(caKeyId),
  ];
}

function subjectAltNames(options: IssueCertificateOptions): JsonGeneralName[] {
  checkSubjectValue(options.nodeId, 'node id');
  checkSubjectValue(options.clusterId, 'cluster id');
  if (!Object.hasOwn(roleOUs, options.role)) {
    throw new SecretdError('invalid', `Cannot issue certificate: unknown role '${options.role}'`);
  }
  const extraDns = options.dnsNames ?? [];
  const ips = [...new Set(options.ipAddresses ?? [])];
  if (options.role !== 'manager' && (extraDns.length > 0 || ips.length > 0)) {
    throw new SecretdError(
      'internal',
      `Cannot issue certificate: only manager certificates carry host names or addresses, not a ${options.role}'s`,
    );
  }
  // An admin's name is chosen by a person: it names the holder (CN), never a server (SAN).
  const dns = [
    ...new Set([
      roleOU(options.role),
      ...(options.role === 'admin' ? [] : [options.nodeId]),
      ...extraDns,
    ]),
  ];
  dns.forEach(checkDnsName);
  ips.forEach(checkIpAddress);
  return [
    ...dns.map((value): JsonGeneralName => ({ type: 'dns', value })),
    ...ips.map((value): JsonGeneralName => ({ type: 'ip', value })),
  ];
}

function singleField(values: string[], what: string): string {
  const [value] = values;
  if (value === undefined || values.length !== 1) {
    throw new SecretdError(
      'forbidden',
      `Certificate must name exactly one ${what}, found ${values.length}`,
    );
  }
  return value;
}
