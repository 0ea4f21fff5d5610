import 'reflect-metadata';
import { describe, expect, test } from 'bun:test';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { certBackdateMs, nodeCertLifetimeMs, rootCertLifetimeMs } from '../limits.ts';
import {
  type IssueCertificateOptions,
  type RootCA,
  type SigningCA,
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  issueCertificateWithChain,
  verifyIssuedBy,
} from './ca.ts';
import { crossSignRoot } from './ca-rotation.ts';
import { verifyChain } from './cert-chain.ts';
import { certDerFromPem, certPemFromDer } from './pem.ts';
import { rejection } from '../../test/helpers/errors.ts';

// Whole seconds: X.509 times carry no milliseconds.
const created = new Date('2025-03-01T12:00:00Z');
const now = new Date('2026-06-01T08:00:00Z');
const dayMs = 24 * 3600 * 1000;
const oldRoot: RootCA = await createRootCA({ now: created });
const newRoot: RootCA = await createRootCA({ now });
const crossPem = await crossSignRoot(oldRoot, newRoot.certPem, {
  now,
  lifetimeMs: rootCertLifetimeMs,
});
const rotatingCA: SigningCA = { ...newRoot, intermediatePem: crossPem };

const parse = (pem: string) => new X509Certificate(certDerFromPem(pem));
const keyIdOf = (pem: string) => parse(pem).getExtension(SubjectKeyIdentifierExtension)!.keyId;

function issueOptions(overrides: Partial<IssueCertificateOptions> = {}): IssueCertificateOptions {
  return {
    nodeId: 'a1b2c3d4e5f6g7h8i9j0k1l2m',
    role: 'worker',
    clusterId: 'k3x9c2lq0v8w1m5n7p4r6t2y0',
    now,
    lifetimeMs: nodeCertLifetimeMs,
    serial: Uint8Array.of(0x42, 0x17, 0x99, 0x01),
    ...overrides,
  };
}

async function issueWithChain(ca: SigningCA, overrides: Partial<IssueCertificateOptions> = {}) {
  const { csrPem } = await createKeyAndCSR();
  return issueCertificateWithChain(ca, csrPem, issueOptions(overrides));
}

/** A certificate made by hand, for shapes secretd never issues. */
async function handMade(options: {
  subject: string;
  issuer: string;
  publicKey: CryptoKey;
  signingKey: CryptoKey;
  ca: boolean;
  pathLength?: number;
  extra?: Extension[];
  /** Default: a day from `now`. */
  notAfter?: Date;
  serial: string;
}): Promise<string> {
  const cert = await X509CertificateGenerator.create({
    serialNumber: options.serial,
    subject: options.subject,
    issuer: options.issuer,
    notBefore: new Date(now.getTime() - dayMs),
    notAfter: options.notAfter ?? new Date(now.getTime() + dayMs),
    publicKey: options.publicKey,
    signingKey: options.signingKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new BasicConstraintsExtension(options.ca, options.pathLength, true),
      ...(options.extra ?? []),
    ],
  });
  return certPemFromDer(new Uint8Array(cert.rawData));
}

const p256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const newKeyPair = () => crypto.subtle.generateKey(p256, true, ['sign', 'verify']);

describe('crossSignRoot', () => {
  test("crossSignRoot() makes an intermediate CA for the new root's name and key, issued and signed by the old root", async () => {
    const cross = parse(crossPem);
    const fresh = parse(newRoot.certPem);
    const old = parse(oldRoot.certPem);
    expect([cross.subject, cross.issuer]).toEqual(['CN=secretd-ca', 'CN=secretd-ca']);
    expect(new Uint8Array(cross.subjectName.toArrayBuffer())).toEqual(
      new Uint8Array(fresh.subjectName.toArrayBuffer()),
    );
    expect(new Uint8Array(cross.publicKey.rawData)).toEqual(
      new Uint8Array(fresh.publicKey.rawData),
    );
    expect(keyIdOf(crossPem)).toBe(keyIdOf(newRoot.certPem));
    expect(cross.getExtension(AuthorityKeyIdentifierExtension)!.keyId).toBe(
      keyIdOf(oldRoot.certPem),
    );
    expect(keyIdOf(newRoot.certPem)).not.toBe(keyIdOf(oldRoot.certPem));
    const constraints = cross.getExtension(BasicConstraintsExtension)!;
    expect([constraints.ca, constraints.pathLength, constraints.critical]).toEqual([true, 0, true]);
    const usage = cross.getExtension(KeyUsagesExtension)!;
    expect([usage.usages, usage.critical]).toEqual([
      KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign,
      true,
    ]);
    expect([cross.notBefore, cross.notAfter]).toEqual([
      new Date(now.getTime() - certBackdateMs),
      old.notAfter,
    ]);
    expect(cross.serialNumber).not.toBe(fresh.serialNumber);
    expect(cross.serialNumber).not.toBe(old.serialNumber);
    expect(Number.parseInt(cross.serialNumber.slice(0, 2), 16)).toBeLessThan(0x80);
    expect(await verifyIssuedBy(crossPem, oldRoot.certPem)).toBe(true);
    expect(await verifyIssuedBy(crossPem, newRoot.certPem)).toBe(false);
  });

  test('crossSignRoot() keeps the validity inside both roots and within the lifetime asked for', async () => {
    const short = parse(await crossSignRoot(oldRoot, newRoot.certPem, { now, lifetimeMs: dayMs }));
    expect([short.notBefore, short.notAfter]).toEqual([
      new Date(now.getTime() - certBackdateMs),
      new Date(now.getTime() + dayMs),
    ]);
    // A new root that ends before the old one: the cross-signed certificate ends with it.
    const olderNew = await createRootCA({ now: new Date(created.getTime() - 1000 * dayMs) });
    const capped = parse(
      await crossSignRoot(oldRoot, olderNew.certPem, { now, lifetimeMs: rootCertLifetimeMs }),
    );
    expect(capped.notAfter).toEqual(parse(olderNew.certPem).notAfter);
    // An old root younger than the backdating: the cross-signed certificate starts with it.
    const young = await createRootCA({ now });
    const inside = parse(
      await crossSignRoot(young, newRoot.certPem, {
        now: new Date(now.getTime() - 60_000),
        lifetimeMs: dayMs,
      }),
    );
    expect(inside.notBefore).toEqual(parse(young.certPem).notBefore);
  });

  test('crossSignRoot() gives another serial to the same pair cross-signed at another time', async () => {
    const later = await crossSignRoot(oldRoot, newRoot.certPem, {
      now: new Date(now.getTime() + 1000),
      lifetimeMs: rootCertLifetimeMs,
    });
    expect(parse(later).serialNumber).not.toBe(parse(crossPem).serialNumber);
  });

  test('crossSignRoot() refuses a new root with the old key, a leaf, or a certificate that is not self-signed', async () => {
    const leaf = await issueWithChain(newRoot);
    const cases: Array<[string, string]> = [
      [oldRoot.certPem, 'Cannot cross-sign the new root: it has the same key as the old root'],
      [leaf.certPem, 'Cannot cross-sign the new root: it is not a CA certificate'],
      [crossPem, 'Cannot cross-sign the new root: it is not self-signed'],
    ];
    for (const [pem, message] of cases) {
      const error = await rejection(crossSignRoot(oldRoot, pem, { now, lifetimeMs: dayMs }));
      expect([error.code, error.message]).toEqual(['invalid', message]);
    }
  });

  test('crossSignRoot() refuses once the old root has expired, a non-positive lifetime, and an old key that does not match', async () => {
    const afterOld = new Date(parse(oldRoot.certPem).notAfter.getTime() + 1000);
    const expired = await rejection(
      crossSignRoot(oldRoot, newRoot.certPem, { now: afterOld, lifetimeMs: dayMs }),
    );
    expect([expired.code, expired.message]).toEqual([
      'conflict',
      `Cannot cross-sign the new root: the old root certificate expired at ${parse(oldRoot.certPem).notAfter.toISOString()}`,
    ]);
    const lifetime = await rejection(
      crossSignRoot(oldRoot, newRoot.certPem, { now, lifetimeMs: 0 }),
    );
    expect(lifetime.message).toBe('Cross-signed certificate lifetime must be positive, got 0 ms');
    const third = await createRootCA({ now });
    const mismatch = await rejection(
      crossSignRoot({ certPem: oldRoot.certPem, keyPkcs8: third.keyPkcs8 }, newRoot.certPem, {
        now,
        lifetimeMs: dayMs,
      }),
    );
    expect(mismatch.message).toBe('CA private key does not match the CA certificate');
  });
});

describe('issueCertificateWithChain during a root rotation', () => {
  test('a leaf from the new key verifies to the old root through the intermediate and to the new root directly', async () => {
    const leaf = await issueWithChain(rotatingCA);
    expect(leaf.chainPem).toBe(crossPem);
    expect(parse(leaf.certPem).getExtension(AuthorityKeyIdentifierExtension)!.keyId).toBe(
      keyIdOf(newRoot.certPem),
    );
    const chain = { chainPems: [leaf.chainPem], now };
    expect(
      await verifyChain(leaf.certPem, { ...chain, trustedRootPems: [oldRoot.certPem] }),
    ).toEqual({
      ok: true,
      pathPems: [leaf.certPem, crossPem, oldRoot.certPem],
    });
    expect(
      await verifyChain(leaf.certPem, { ...chain, trustedRootPems: [newRoot.certPem] }),
    ).toEqual({
      ok: true,
      pathPems: [leaf.certPem, newRoot.certPem],
    });
    // Trusting both (a pool during the rotation), the direct path is taken.
    expect(
      await verifyChain(leaf.certPem, {
        ...chain,
        trustedRootPems: [oldRoot.certPem + newRoot.certPem],
      }),
    ).toEqual({ ok: true, pathPems: [leaf.certPem, newRoot.certPem] });
    // After the rotation, with no intermediate presented, the new root alone suffices.
    expect(await verifyChain(leaf.certPem, { now, trustedRootPems: [newRoot.certPem] })).toEqual({
      ok: true,
      pathPems: [leaf.certPem, newRoot.certPem],
    });
  });

  test('a leaf from the new key does not verify to the old root without the intermediate', async () => {
    const leaf = await issueWithChain(rotatingCA);
    const serial = parse(leaf.certPem).serialNumber.toLowerCase();
    expect(await verifyChain(leaf.certPem, { now, trustedRootPems: [oldRoot.certPem] })).toEqual({
      ok: false,
      reason: `No trusted root or presented certificate issued certificate 'O=k3x9c2lq0v8w1m5n7p4r6t2y0, OU=secretd-worker, CN=a1b2c3d4e5f6g7h8i9j0k1l2m' (serial ${serial})`,
    });
  });

  test('a leaf from the old key verifies to the old root only', async () => {
    const leaf = await issueWithChain(oldRoot);
    expect(leaf.chainPem).toBe('');
    expect(await verifyChain(leaf.certPem, { now, trustedRootPems: [oldRoot.certPem] })).toEqual({
      ok: true,
      pathPems: [leaf.certPem, oldRoot.certPem],
    });
    const toNew = await verifyChain(leaf.certPem, {
      chainPems: [crossPem],
      now,
      trustedRootPems: [newRoot.certPem],
    });
    expect(toNew.ok).toBe(false);
    expect(toNew.ok === false && toNew.reason).toStartWith(
      'No trusted root or presented certificate issued certificate',
    );
  });

  test("a leaf's lifetime is capped at the intermediate's expiry", async () => {
    const shortCross = await crossSignRoot(oldRoot, newRoot.certPem, { now, lifetimeMs: dayMs });
    const leaf = await issueWithChain({ ...newRoot, intermediatePem: shortCross });
    expect(parse(leaf.certPem).notAfter).toEqual(parse(shortCross).notAfter);
  });

  test('issueCertificateWithChain() refuses an expired intermediate or one for another key', async () => {
    const shortCross = await crossSignRoot(oldRoot, newRoot.certPem, { now, lifetimeMs: dayMs });
    const later = new Date(now.getTime() + 2 * dayMs);
    const expired = await rejection(
      issueWithChain({ ...newRoot, intermediatePem: shortCross }, { now: later }),
    );
    expect([expired.code, expired.message]).toEqual([
      'conflict',
      `Cannot issue certificate: the CA's cross-signed certificate expired at ${parse(shortCross).notAfter.toISOString()}`,
    ]);
    const foreign = await rejection(issueWithChain({ ...oldRoot, intermediatePem: crossPem }));
    expect([foreign.code, foreign.message]).toEqual([
      'internal',
      "Cannot issue certificate: the CA's intermediate certificate is not for the CA's name and key",
    ]);
  });

  test('issueCertificate() refuses a CA with an intermediate, so the chain is never dropped', async () => {
    const { csrPem } = await createKeyAndCSR();
    const error = await rejection(issueCertificate(rotatingCA, csrPem, issueOptions()));
    expect(error.message).toBe(
      'Cannot issue certificate: a CA with an intermediate (a root rotation) issues through issueCertificateWithChain, which returns the chain too',
    );
  });
});

describe('verifyChain refusals', () => {
  test('a tampered intermediate fails: signature altered, or a look-alike signed by another key', async () => {
    const leaf = await issueWithChain(rotatingCA);
    const der = certDerFromPem(crossPem);
    der[der.length - 1] = der[der.length - 1]! ^ 0x01; // inside the signature's s
    const tampered = certPemFromDer(der);
    const cross = parse(crossPem);
    expect(
      await verifyChain(leaf.certPem, {
        chainPems: [tampered],
        now,
        trustedRootPems: [oldRoot.certPem],
      }),
    ).toEqual({
      ok: false,
      reason: `certificate 'CN=secretd-ca' (serial ${cross.serialNumber.toLowerCase()}) is not signed by certificate 'CN=secretd-ca' (serial ${parse(oldRoot.certPem).serialNumber.toLowerCase()})`,
    });
    // Another root of the same name cross-signs the new root: its key id names no trusted root.
    const impostor = await createRootCA({ now });
    const lookAlike = await crossSignRoot(impostor, newRoot.certPem, { now, lifetimeMs: dayMs });
    const verdict = await verifyChain(leaf.certPem, {
      chainPems: [lookAlike],
      now,
      trustedRootPems: [oldRoot.certPem],
    });
    expect(verdict).toEqual({
      ok: false,
      reason: `No trusted root or presented certificate issued certificate 'CN=secretd-ca' (serial ${parse(lookAlike).serialNumber.toLowerCase()})`,
    });
  });

  test('an expired intermediate fails, while the new root still accepts the leaf', async () => {
    const shortCross = await crossSignRoot(oldRoot, newRoot.certPem, { now, lifetimeMs: dayMs });
    const leaf = await issueWithChain(newRoot); // 90 days, not capped by the short intermediate
    const later = new Date(now.getTime() + 2 * dayMs);
    const options = { chainPems: [shortCross], now: later };
    expect(
      await verifyChain(leaf.certPem, { ...options, trustedRootPems: [oldRoot.certPem] }),
    ).toEqual({
      ok: false,
      reason: `certificate 'CN=secretd-ca' (serial ${parse(shortCross).serialNumber.toLowerCase()}) expired at ${parse(shortCross).notAfter.toISOString()}`,
    });
    expect(
      await verifyChain(leaf.certPem, { ...options, trustedRootPems: [newRoot.certPem] }),
    ).toEqual({ ok: true, pathPems: [leaf.certPem, newRoot.certPem] });
  });

  test('a leaf outside its validity, or a CA given as the leaf, fails', async () => {
    const leaf = await issueWithChain(oldRoot);
    const cert = parse(leaf.certPem);
    const serial = cert.serialNumber.toLowerCase();
    const trust = { trustedRootPems: [oldRoot.certPem] };
    const name = `certificate '${cert.subject}' (serial ${serial})`;
    expect(
      await verifyChain(leaf.certPem, { ...trust, now: new Date(cert.notBefore.getTime() - 1000) }),
    ).toEqual({ ok: false, reason: `${name} is not valid before ${cert.notBefore.toISOString()}` });
    expect(
      await verifyChain(leaf.certPem, { ...trust, now: new Date(cert.notAfter.getTime() + 1000) }),
    ).toEqual({ ok: false, reason: `${name} expired at ${cert.notAfter.toISOString()}` });
    expect(await verifyChain(leaf.certPem, { ...trust, now: cert.notAfter })).toEqual({
      ok: true,
      pathPems: [leaf.certPem, oldRoot.certPem],
    });
    const root = parse(oldRoot.certPem);
    expect(await verifyChain(oldRoot.certPem, { ...trust, now })).toEqual({
      ok: false,
      reason: `certificate 'CN=secretd-ca' (serial ${root.serialNumber.toLowerCase()}) is a CA certificate, not a leaf`,
    });
  });

  test('an expired trusted root fails, even under a leaf that is still valid', async () => {
    const shortRoot = await handMadeRoot('CN=short-root', '0a01');
    const leafKeys = await newKeyPair();
    const leaf = await handMade({
      subject: 'CN=leaf',
      issuer: 'CN=short-root',
      publicKey: leafKeys.publicKey,
      signingKey: shortRoot.keys.privateKey,
      ca: false,
      notAfter: new Date(now.getTime() + 10 * dayMs),
      serial: '0a02',
    });
    const afterRoot = new Date(now.getTime() + dayMs + 1000);
    expect(await verifyChain(leaf, { now: afterRoot, trustedRootPems: [shortRoot.pem] })).toEqual({
      ok: false,
      reason: `certificate 'CN=short-root' (serial 0a01) expired at ${new Date(now.getTime() + dayMs).toISOString()}`,
    });
    expect(await verifyChain(leaf, { now, trustedRootPems: [shortRoot.pem] })).toEqual({
      ok: true,
      pathPems: [leaf, shortRoot.pem],
    });
  });

  test('an issuer that is not a CA, or lacks keyCertSign, fails', async () => {
    const root = await handMadeRoot('CN=root', '0b01');
    const middleKeys = await newKeyPair();
    const leafKeys = await newKeyPair();
    for (const [ca, usage, reason] of [
      [false, undefined, 'is not a CA certificate'],
      [true, KeyUsageFlags.digitalSignature, 'may not sign certificates (no keyCertSign)'],
    ] as const) {
      const middle = await handMade({
        subject: 'CN=middle',
        issuer: 'CN=root',
        publicKey: middleKeys.publicKey,
        signingKey: root.keys.privateKey,
        ca,
        extra: usage === undefined ? [] : [new KeyUsagesExtension(usage, true)],
        serial: '0b02',
      });
      const leaf = await handMade({
        subject: 'CN=leaf',
        issuer: 'CN=middle',
        publicKey: leafKeys.publicKey,
        signingKey: middleKeys.privateKey,
        ca: false,
        serial: '0b03',
      });
      expect(
        await verifyChain(leaf, { chainPems: [middle], now, trustedRootPems: [root.pem] }),
      ).toEqual({ ok: false, reason: `certificate 'CN=middle' (serial 0b02) ${reason}` });
    }
  });

  test('a path longer than an issuer allows fails; self-issued intermediates do not count', async () => {
    const root = await handMadeRoot('CN=root', '0c01', 0);
    const aKeys = await newKeyPair();
    const bKeys = await newKeyPair();
    const leafKeys = await newKeyPair();
    const a = await handMade({
      subject: 'CN=a',
      issuer: 'CN=root',
      publicKey: aKeys.publicKey,
      signingKey: root.keys.privateKey,
      ca: true,
      serial: '0c02',
    });
    const leaf = await handMade({
      subject: 'CN=leaf',
      issuer: 'CN=a',
      publicKey: leafKeys.publicKey,
      signingKey: aKeys.privateKey,
      ca: false,
      serial: '0c03',
    });
    expect(await verifyChain(leaf, { chainPems: [a], now, trustedRootPems: [root.pem] })).toEqual({
      ok: false,
      reason: `certificate 'CN=root' (serial 0c01) allows 0 intermediate certificates below it, the path has 1`,
    });
    // Under a root named like its intermediate (self-issued, as a cross-signed root is), it passes.
    const sameName = await handMadeRoot('CN=a', '0c04', 0);
    const selfIssued = await handMade({
      subject: 'CN=a',
      issuer: 'CN=a',
      publicKey: bKeys.publicKey,
      signingKey: sameName.keys.privateKey,
      ca: true,
      serial: '0c05',
    });
    const leafB = await handMade({
      subject: 'CN=leaf',
      issuer: 'CN=a',
      publicKey: leafKeys.publicKey,
      signingKey: bKeys.privateKey,
      ca: false,
      serial: '0c06',
    });
    expect(
      await verifyChain(leafB, { chainPems: [selfIssued], now, trustedRootPems: [sameName.pem] }),
    ).toEqual({ ok: true, pathPems: [leafB, selfIssued, sameName.pem] });
  });

  test('an unknown critical extension fails', async () => {
    const root = await handMadeRoot('CN=root', '0d01');
    const leafKeys = await newKeyPair();
    const leaf = await handMade({
      subject: 'CN=leaf',
      issuer: 'CN=root',
      publicKey: leafKeys.publicKey,
      signingKey: root.keys.privateKey,
      ca: false,
      extra: [new Extension('1.3.6.1.4.1.99999.1', true, Uint8Array.of(0x05, 0x00))],
      serial: '0d02',
    });
    expect(await verifyChain(leaf, { now, trustedRootPems: [root.pem] })).toEqual({
      ok: false,
      reason: `certificate 'CN=leaf' (serial 0d02) has a critical extension this verifier does not know (1.3.6.1.4.1.99999.1)`,
    });
  });

  test('more presented certificates than certChainIntermediatesMax fail; no trusted root is an error', async () => {
    const leaf = await issueWithChain(rotatingCA);
    const extras = await Promise.all([1, 2, 3, 4].map(() => createRootCA({ now })));
    const verdict = await verifyChain(leaf.certPem, {
      chainPems: [crossPem, ...extras.map((r) => r.certPem)],
      now,
      trustedRootPems: [oldRoot.certPem],
    });
    expect(verdict).toEqual({
      ok: false,
      reason: 'Certificate chain holds 5 certificates besides the leaf; at most 4 are accepted',
    });
    const error = await rejection(verifyChain(leaf.certPem, { now, trustedRootPems: [] }));
    expect([error.code, error.message]).toEqual([
      'internal',
      'Cannot verify a certificate chain: no trusted root given',
    ]);
  });

  test('input that is not a certificate is an error', async () => {
    const error = await rejection(
      verifyChain('not a certificate', { now, trustedRootPems: [oldRoot.certPem] }),
    );
    expect(error.code).toBe('invalid');
  });
});

async function handMadeRoot(
  name: string,
  serial: string,
  pathLength?: number,
): Promise<{ pem: string; keys: CryptoKeyPair }> {
  const keys = await newKeyPair();
  const pem = await handMade({
    subject: name,
    issuer: name,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    ca: true,
    ...(pathLength === undefined ? {} : { pathLength }),
    serial,
  });
  return { pem, keys };
}
