/**
 * A small certificate path verifier: does a leaf chain, through the certificates presented with
 * it, to one of the roots a caller trusts, at a given time? The parts of RFC 5280 §6 that secretd's
 * certificates use: issuer names equal to subjects (DER), authority key id equal to subject key id
 * where both are present (both roots of a rotation are named `secretd-ca`: the key id tells them
 * apart), every signature, every validity window (roots included), CA:true and keyCertSign for
 * every issuer, path length limits (self-issued intermediates not counted), no unknown critical
 * extension, and a leaf that is not a CA.
 *
 * It tries every path, trusted roots before presented certificates (as OpenSSL does), so a leaf
 * issued during a root rotation is accepted by a verifier trusting either root. Not checked: the
 * leaf's names and extended key usage (TLS checks those for its purpose), policies, name
 * constraints (refused if critical), revocation (the store's business).
 *
 * Pure: the time is passed in.
 */
import type { X509Certificate } from '@peculiar/x509';
import { SecretdError } from '../errors.ts';
import { certChainIntermediatesMax } from '../limits.ts';
import { certDerFromPem, certPemFromDer, pemDecodeAll } from './pem.ts';
import {
  bytesEqual,
  checkDate,
  parseCertificate,
  selfIssued,
  signedBy,
  subjectKeyId,
  x509,
} from './_x509.ts';

export interface VerifyChainOptions {
  /** Certificates presented after the leaf, in any order (PEM; a string may hold several). Default none. */
  readonly chainPems?: readonly string[];
  /** The roots trusted (PEM; a string may hold several); a path must end at one of them. */
  readonly trustedRootPems: readonly string[];
  /** The time every certificate must be valid at. */
  readonly now: Date;
}

export type ChainVerdict =
  | {
      readonly ok: true;
      /** The path found: the leaf first, the trusted root last. */
      readonly pathPems: readonly string[];
    }
  | {
      readonly ok: false;
      /** Why the path that got furthest failed. */
      readonly reason: string;
    };

/** Extensions this verifier understands; any other marked critical refuses its certificate. */
const knownExtensions = new Set([
  '2.5.29.14', // subject key identifier
  '2.5.29.15', // key usage
  '2.5.29.17', // subject alternative name
  '2.5.29.19', // basic constraints
  '2.5.29.35', // authority key identifier
  '2.5.29.37', // extended key usage
]);

interface Candidate {
  readonly cert: X509Certificate;
  readonly der: Uint8Array;
  readonly trusted: boolean;
}

/**
 * Whether `leafPem` chains to one of `trustedRootPems` at `now`. Input that is not a certificate is
 * an error (`invalid`); a certificate that does not verify is a verdict with the reason.
 */
export async function verifyChain(
  leafPem: string,
  options: VerifyChainOptions,
): Promise<ChainVerdict> {
  const { BasicConstraintsExtension } = x509();
  const now = checkDate(options.now);
  const leaf = candidate(certDerFromPem(leafPem), false);
  const roots = dedupe(
    options.trustedRootPems.flatMap(certificates).map((d) => candidate(d, true)),
  );
  if (roots.length === 0) {
    throw new SecretdError('internal', 'Cannot verify a certificate chain: no trusted root given');
  }
  const presented = dedupe((options.chainPems ?? []).flatMap(certificates));
  if (presented.length > certChainIntermediatesMax) {
    return refused(
      `Certificate chain holds ${presented.length} certificates besides the leaf; at most ${certChainIntermediatesMax} are accepted`,
    );
  }
  // A presented copy of a trusted root adds nothing: the root itself is tried first.
  const intermediates = presented
    .filter((der) => !roots.some((root) => bytesEqual(root.der, der)))
    .map((der) => candidate(der, false));
  const leafProblem =
    validityProblem(leaf.cert, now) ??
    criticalExtensionProblem(leaf.cert) ??
    (leaf.cert.getExtension(BasicConstraintsExtension)?.ca === true
      ? `${describe(leaf.cert)} is a CA certificate, not a leaf`
      : undefined);
  if (leafProblem !== undefined) return refused(leafProblem);
  const search = new PathSearch(roots, intermediates, now);
  const path = await search.extend([leaf]);
  if (path === undefined) return refused(search.reason);
  return { ok: true, pathPems: path.map((step) => certPemFromDer(step.der)) };
}

class PathSearch {
  reason = 'No path found';
  private reasonDepth = -1;
  private readonly signatures = new Map<string, Promise<boolean>>();

  constructor(
    private readonly roots: readonly Candidate[],
    private readonly intermediates: readonly Candidate[],
    private readonly now: Date,
  ) {}

  /** A path from `path` (leaf first) to a trusted root, trying every issuer depth first. */
  async extend(path: readonly Candidate[]): Promise<readonly Candidate[] | undefined> {
    const child = path[path.length - 1]!;
    const issuers = [...this.roots, ...this.intermediates].filter(
      (issuer) => !path.includes(issuer) && namesIssuer(issuer.cert, child.cert),
    );
    if (issuers.length === 0) {
      this.note(
        path.length,
        `No trusted root or presented certificate issued ${describe(child.cert)}`,
      );
    }
    for (const issuer of issuers) {
      const problem = await this.issuerProblem(issuer, child, path);
      if (problem !== undefined) {
        this.note(path.length, problem);
        continue;
      }
      if (issuer.trusted) return [...path, issuer];
      const found = await this.extend([...path, issuer]);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  private async issuerProblem(
    issuer: Candidate,
    child: Candidate,
    path: readonly Candidate[],
  ): Promise<string | undefined> {
    if (!(await this.signed(child, issuer))) {
      return `${describe(child.cert)} is not signed by ${describe(issuer.cert)}`;
    }
    const { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension } = x509();
    const constraints = issuer.cert.getExtension(BasicConstraintsExtension);
    if (constraints?.ca !== true) return `${describe(issuer.cert)} is not a CA certificate`;
    const usage = issuer.cert.getExtension(KeyUsagesExtension);
    if (usage !== null && (usage.usages & KeyUsageFlags.keyCertSign) === 0) {
      return `${describe(issuer.cert)} may not sign certificates (no keyCertSign)`;
    }
    // Intermediates below this issuer, leaf excluded; self-issued ones do not count (RFC 5280 6.1.4).
    const below = path.slice(1).filter((step) => !selfIssued(step.cert)).length;
    if (constraints.pathLength !== undefined && below > constraints.pathLength) {
      return `${describe(issuer.cert)} allows ${constraints.pathLength} intermediate certificates below it, the path has ${below}`;
    }
    return validityProblem(issuer.cert, this.now) ?? criticalExtensionProblem(issuer.cert);
  }

  private signed(child: Candidate, issuer: Candidate): Promise<boolean> {
    const key = `${this.indexOf(child)}<${this.indexOf(issuer)}`;
    let result = this.signatures.get(key);
    if (result === undefined) {
      result = signedBy(child.cert, issuer.cert);
      this.signatures.set(key, result);
    }
    return result;
  }

  private indexOf(step: Candidate): number {
    return [...this.roots, ...this.intermediates].indexOf(step);
  }

  /** Keeps the reason from the path that got furthest (the first of equals). */
  private note(depth: number, reason: string): void {
    if (depth > this.reasonDepth) {
      this.reasonDepth = depth;
      this.reason = reason;
    }
  }
}

/** Whether `issuer` may be the issuer of `child` by name and, where both carry one, key id. */
function namesIssuer(issuer: X509Certificate, child: X509Certificate): boolean {
  if (!bytesEqual(issuer.subjectName.toArrayBuffer(), child.issuerName.toArrayBuffer()))
    return false;
  const authorityKeyId = child.getExtension(x509().AuthorityKeyIdentifierExtension)?.keyId;
  const keyId = subjectKeyId(issuer);
  return authorityKeyId === undefined || keyId === undefined || authorityKeyId === keyId;
}

function validityProblem(cert: X509Certificate, now: Date): string | undefined {
  if (now.getTime() < cert.notBefore.getTime()) {
    return `${describe(cert)} is not valid before ${cert.notBefore.toISOString()}`;
  }
  if (now.getTime() > cert.notAfter.getTime()) {
    return `${describe(cert)} expired at ${cert.notAfter.toISOString()}`;
  }
  return undefined;
}

function criticalExtensionProblem(cert: X509Certificate): string | undefined {
  const unknown = cert.extensions.find((e) => e.critical && !knownExtensions.has(e.type));
  return unknown === undefined
    ? undefined
    : `${describe(cert)} has a critical extension this verifier does not know (${unknown.type})`;
}

/** Subject and serial: both roots of a rotation share a name, their serials differ. */
function describe(cert: X509Certificate): string {
  return `certificate '${cert.subject}' (serial ${cert.serialNumber.toLowerCase()})`;
}

function certificates(pem: string): Uint8Array[] {
  return pemDecodeAll(pem, 'CERTIFICATE');
}

function candidate(der: Uint8Array, trusted: boolean): Candidate {
  return { cert: parseCertificate(der), der, trusted };
}

function dedupe<T extends Uint8Array | Candidate>(items: readonly T[]): T[] {
  const bytes = (item: T) => (item instanceof Uint8Array ? item : item.der);
  return items.filter(
    (item, i) => items.findIndex((other) => bytesEqual(bytes(other), bytes(item))) === i,
  );
}

function refused(reason: string): ChainVerdict {
  return { ok: false, reason };
}
