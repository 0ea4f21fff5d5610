import 'reflect-metadata';
import { describe, expect, test } from 'bun:test';
import { createPublicKey } from 'node:crypto';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequest,
  Pkcs10CertificateRequestGenerator,
  SubjectAlternativeNameExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { SecretdError } from '../errors.ts';
import { certBackdateMs, nodeCertLifetimeMs, rootCertLifetimeMs } from '../limits.ts';
import {
  type IssueCertificateOptions,
  type Role,
  type RootCA,
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  issuerInfo,
  parseIdentity,
  roleFromOU,
  verifyIssuedBy,
} from './ca.ts';
import { certDerFromPem, certPemFromDer, csrDerFromPem, keyPkcs8ToPem, pemEncode } from './pem.ts';
import { rejection } from '../../test/helpers/errors.ts';

// Whole seconds: X.509 times carry no milliseconds.
const now = new Date('2025-03-01T12:00:00Z');
const clusterId = 'k3x9c2lq0v8w1m5n7p4r6t2y0';
const nodeId = 'a1b2c3d4e5f6g7h8i9j0k1l2m';
const serial = Uint8Array.of(
  0xff,
  0x11,
  0x22,
  0x33,
  0x44,
  0x55,
  0x66,
  0x77,
  0x88,
  0x99,
  0xaa,
  0xbb,
  0xcc,
  0xdd,
  0xee,
  0x0f,
);
const ca: RootCA = await createRootCA({ now });

function issueOptions(overrides: Partial<IssueCertificateOptions> = {}): IssueCertificateOptions {
  return {
    nodeId,
    role: 'manager',
    clusterId,
    now,
    lifetimeMs: nodeCertLifetimeMs,
    serial,
    ...overrides,
  };
}

async function issue(role: Role, overrides: Partial<IssueCertificateOptions> = {}, signer = ca) {
  const { keyPkcs8, csrPem } = await createKeyAndCSR({ commonName: 'ignored-by-the-ca' });
  const certPem = await issueCertificate(signer, csrPem, issueOptions({ role, ...overrides }));
  return { certPem, keyPem: keyPkcs8ToPem(keyPkcs8), csrPem };
}

const spkiOf = (key: { publicKey: { rawData: ArrayBuffer } }) =>
  new Uint8Array(key.publicKey.rawData);

describe('createRootCA', () => {
  test('createRootCA() makes a self-signed P-256 CA named secretd-ca for 20 years', async () => {
    const cert = new X509Certificate(ca.certDer);
    expect(certDerFromPem(ca.certPem)).toEqual(ca.certDer);
    expect([cert.subject, cert.issuer]).toEqual(['CN=secretd-ca', 'CN=secretd-ca']);
    expect(cert.notBefore).toEqual(new Date(now.getTime() - certBackdateMs));
    expect(cert.notAfter).toEqual(new Date(now.getTime() + rootCertLifetimeMs));
    expect(cert.publicKey.algorithm).toEqual({ name: 'ECDSA', namedCurve: 'P-256' });
    expect(cert.signatureAlgorithm as object).toEqual({ name: 'ECDSA', hash: { name: 'SHA-256' } });
    const constraints = cert.getExtension(BasicConstraintsExtension)!;
    expect([constraints.ca, constraints.pathLength, constraints.critical]).toEqual([true, 1, true]);
    expect(cert.getExtension(KeyUsagesExtension)!.usages).toBe(
      KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign,
    );
    expect(Number.parseInt(cert.serialNumber.slice(0, 2), 16)).toBeLessThan(0x80);
    expect(await verifyIssuedBy(ca.certPem, ca.certPem)).toBe(true);
  });

  test('createRootCA() returns a PKCS#8 private key that matches the certificate', async () => {
    const key = await crypto.subtle.importKey(
      'pkcs8',
      ca.keyPkcs8.slice(),
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['sign'],
    );
    const data = new TextEncoder().encode('proof');
    const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, data);
    const publicKey = await new X509Certificate(ca.certDer).publicKey.export(crypto);
    expect(
      await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, signature, data),
    ).toBe(true);
  });
});

describe('issueCertificate', () => {
  test('issueCertificate() signs a manager certificate with the identity from the options', async () => {
    const { certPem, csrPem } = await issue('manager', {
      dnsNames: ['db1.example'],
      ipAddresses: ['10.0.0.7', '::1'],
    });
    const cert = new X509Certificate(certDerFromPem(certPem));
    const csr = new Pkcs10CertificateRequest(csrDerFromPem(csrPem));
    expect(cert.subject).toBe(`O=${clusterId}, OU=secretd-manager, CN=${nodeId}`);
    expect(cert.issuer).toBe('CN=secretd-ca');
    expect(spkiOf(cert)).toEqual(spkiOf(csr));
    expect(cert.serialNumber).toBe('7f112233445566778899aabbccddee0f');
    expect(cert.notBefore).toEqual(new Date(now.getTime() - certBackdateMs));
    expect(cert.notAfter).toEqual(new Date(now.getTime() + nodeCertLifetimeMs));
    expect(cert.signatureAlgorithm as object).toEqual({ name: 'ECDSA', hash: { name: 'SHA-256' } });
    expect(cert.getExtension(BasicConstraintsExtension)!.ca).toBe(false);
    expect(cert.getExtension(KeyUsagesExtension)!.usages).toBe(
      KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment,
    );
    expect(cert.getExtension(ExtendedKeyUsageExtension)!.usages).toEqual([
      ExtendedKeyUsage.serverAuth,
      ExtendedKeyUsage.clientAuth,
    ]);
    expect(cert.getExtension(SubjectAlternativeNameExtension)!.names.toJSON()).toEqual([
      { type: 'dns', value: 'secretd-manager' },
      { type: 'dns', value: nodeId },
      { type: 'dns', value: 'db1.example' },
      { type: 'ip', value: '10.0.0.7' },
      { type: 'ip', value: '::1' },
    ]);
    expect(await verifyIssuedBy(certPem, ca.certPem)).toBe(true);
    expect(parseIdentity(certPem)).toEqual({
      nodeId,
      role: 'manager',
      clusterId,
      notBefore: new Date(now.getTime() - certBackdateMs),
      notAfter: new Date(now.getTime() + nodeCertLifetimeMs),
      serialHex: '7f112233445566778899aabbccddee0f',
    });
  });

  test('parseIdentity() reads a PEM read before from what it kept, each call its own object, and still tells PEMs apart', async () => {
    const pems: string[] = [];
    for (let i = 0; i < 10; i++)
      pems.push((await issue('worker', { nodeId: `kept-${i}` })).certPem);
    const first = parseIdentity(pems[0]!);
    const again = parseIdentity(pems[0]!);
    expect(again).toEqual(first);
    expect(again).not.toBe(first);
    // A caller that changes what it got changes nothing for the next one.
    again.notAfter.setTime(0);
    (again as { nodeId: string }).nodeId = 'changed';
    expect(parseIdentity(pems[0]!)).toEqual(first);
    // More PEMs than it keeps (8), twice over: each is still read as itself.
    for (const round of [0, 1])
      for (let i = 0; i < pems.length; i++)
        expect(parseIdentity(pems[i]!), `round ${round}, PEM ${i}`).toMatchObject({
          nodeId: `kept-${i}`,
          role: 'worker',
        });
    // A PEM that is no certificate fails every time, and is not kept as anything.
    for (const _ of [0, 1])
      expect(() => parseIdentity('no certificate here')).toThrow('no CERTIFICATE block');
  });

  test('parseIdentity() reads worker and admin certificates, from PEM or DER', async () => {
    for (const role of ['worker', 'admin'] as const) {
      const { certPem } = await issue(role, { nodeId: `${role}-1` });
      const fromPem = parseIdentity(certPem);
      expect(fromPem).toMatchObject({ nodeId: `${role}-1`, role, clusterId });
      expect(parseIdentity(certDerFromPem(certPem))).toEqual(fromPem);
      const sans = new X509Certificate(certDerFromPem(certPem)).getExtension(
        SubjectAlternativeNameExtension,
      )!;
      // A worker is named by its role and the id the cluster gave it; an admin's name, chosen by a
      // person, stays out of the SANs (it could be a host name a client reaches a manager by).
      expect(sans.names.toJSON()).toEqual(
        role === 'worker'
          ? [
              { type: 'dns', value: 'secretd-worker' },
              { type: 'dns', value: 'worker-1' },
            ]
          : [{ type: 'dns', value: 'secretd-admin' }],
      );
    }
  });

  test('issueCertificate() refuses host names and addresses for worker and admin certificates', async () => {
    const { csrPem } = await createKeyAndCSR();
    for (const role of ['worker', 'admin'] as const) {
      for (const names of [
        { dnsNames: ['secretd-manager'] },
        { dnsNames: ['localhost'] },
        { ipAddresses: ['127.0.0.1'] },
      ]) {
        const error = await rejection(
          issueCertificate(ca, csrPem, issueOptions({ role, ...names })),
        );
        expect([error.code, error.message]).toEqual([
          'internal',
          `Cannot issue certificate: only manager certificates carry host names or addresses, not a ${role}'s`,
        ]);
      }
    }
  });

  test('issueCertificate() caps the lifetime at the CA expiry', async () => {
    const { certPem } = await issue('worker', { lifetimeMs: rootCertLifetimeMs * 2 });
    expect(parseIdentity(certPem).notAfter).toEqual(new X509Certificate(ca.certDer).notAfter);
  });

  test('issueCertificate() refuses to sign once the CA has expired', async () => {
    const { csrPem } = await createKeyAndCSR();
    const expiry = new X509Certificate(ca.certDer).notAfter;
    const error = await rejection(issueCertificate(ca, csrPem, issueOptions({ now: expiry })));
    expect({ code: error.code, message: error.message }).toEqual({
      code: 'conflict',
      message: `Cannot issue certificate: the CA certificate expired at ${expiry.toISOString()}`,
    });
  });

  test('issueCertificate() refuses a request whose signature was altered', async () => {
    const { csrPem } = await createKeyAndCSR({ commonName: 'node' });
    const der = csrDerFromPem(csrPem);
    der[der.length - 2] = der[der.length - 2]! ^ 0x01; // inside the ECDSA signature's last INTEGER
    const error = await rejection(
      issueCertificate(ca, pemEncode('CERTIFICATE REQUEST', der), issueOptions()),
    );
    expect({ code: error.code, message: error.message }).toEqual({
      code: 'invalid',
      message: 'Certificate request signature is invalid',
    });
  });

  test('issueCertificate() refuses a request whose signed content was altered', async () => {
    const { csrPem } = await createKeyAndCSR({ commonName: 'nodeA' });
    const der = csrDerFromPem(csrPem);
    const at = Buffer.from(der).indexOf('nodeA');
    der[at + 4] = 'B'.charCodeAt(0);
    const error = await rejection(
      issueCertificate(ca, pemEncode('CERTIFICATE REQUEST', der), issueOptions()),
    );
    expect(error.message).toBe('Certificate request signature is invalid');
  });

  test('issueCertificate() refuses requests for keys other than ECDSA P-256', async () => {
    const kinds = [
      [{ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }, 'ECDSA P-384'],
      [{ name: 'Ed25519' }, { name: 'Ed25519' }, 'Ed25519'],
      [
        {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 2048,
          publicExponent: Uint8Array.of(1, 0, 1),
          hash: 'SHA-256',
        },
        { name: 'RSASSA-PKCS1-v1_5' },
        'RSASSA-PKCS1-v1_5',
      ],
    ] as const;
    for (const [keyAlgorithm, signingAlgorithm, found] of kinds) {
      const keys = (await crypto.subtle.generateKey(keyAlgorithm, true, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      const csr = await Pkcs10CertificateRequestGenerator.create({
        name: 'CN=x',
        keys,
        signingAlgorithm,
      });
      const csrPem = pemEncode('CERTIFICATE REQUEST', new Uint8Array(csr.rawData));
      const error = await rejection(issueCertificate(ca, csrPem, issueOptions()));
      expect({ code: error.code, message: error.message }).toEqual({
        code: 'invalid',
        message: `Certificate request key must be ECDSA P-256, got ${found}`,
      });
    }
  });

  test('issueCertificate() refuses input that is not a request', async () => {
    const error = await rejection(
      issueCertificate(
        ca,
        pemEncode('CERTIFICATE REQUEST', Uint8Array.of(1, 2, 3)),
        issueOptions(),
      ),
    );
    expect(error.message).toBe('Certificate request is not a valid PKCS#10 request');
    expect((await rejection(issueCertificate(ca, ca.certPem, issueOptions()))).code).toBe(
      'invalid',
    );
  });

  test('issueCertificate() refuses names that do not fit a subject or a SAN', async () => {
    const { csrPem } = await createKeyAndCSR();
    const cases: [Partial<IssueCertificateOptions>, string][] = [
      [
        { nodeId: 'a,OU=secretd-admin' },
        "Cannot issue certificate: node id 'a,OU=secretd-admin' must match",
      ],
      [{ clusterId: '' }, "Cannot issue certificate: cluster id '' must match"],
      [{ role: 'root' as Role }, "Cannot issue certificate: unknown role 'root'"],
      [{ dnsNames: ['bad name'] }, "Cannot issue certificate: 'bad name' is not a DNS name"],
      [
        { ipAddresses: ['10.0.0.256'] },
        "Cannot issue certificate: '10.0.0.256' is not an IP address",
      ],
    ];
    for (const [overrides, message] of cases) {
      const error = await rejection(issueCertificate(ca, csrPem, issueOptions(overrides)));
      expect(error.code).toBe('invalid');
      expect(error.message).toStartWith(message);
    }
  });

  test('issueCertificate() refuses a serial that is empty, zero or longer than 20 bytes', async () => {
    const { csrPem } = await createKeyAndCSR();
    for (const bad of [new Uint8Array(0), Uint8Array.of(0x80, 0), new Uint8Array(21).fill(1)]) {
      const error = await rejection(issueCertificate(ca, csrPem, issueOptions({ serial: bad })));
      expect(error.code).toBe('internal');
    }
  });

  test('issueCertificate() refuses a CA key that does not match the CA certificate', async () => {
    const other = await createRootCA({ now });
    const { csrPem } = await createKeyAndCSR();
    const error = await rejection(
      issueCertificate({ certPem: ca.certPem, keyPkcs8: other.keyPkcs8 }, csrPem, issueOptions()),
    );
    expect(error.message).toBe('CA private key does not match the CA certificate');
  });
});

describe('verifyIssuedBy and parseIdentity', () => {
  test('verifyIssuedBy() is false for a certificate from another CA of the same name', async () => {
    const other = await createRootCA({ now });
    const { certPem } = await issue('manager', {}, other);
    expect(await verifyIssuedBy(certPem, ca.certPem)).toBe(false);
    expect(await verifyIssuedBy(certPem, other.certPem)).toBe(true);
    expect(await verifyIssuedBy(other.certPem, ca.certPem)).toBe(false);
  });

  test('verifyIssuedBy() is false when the issuer name differs', async () => {
    const { certPem } = await issue('worker');
    expect(await verifyIssuedBy(ca.certPem, certPem)).toBe(false);
  });

  test('parseIdentity() refuses a certificate whose OU is not a secretd role', async () => {
    for (const [subject, message] of [
      ['O=c, OU=swarm-manager, CN=n', "Certificate role 'swarm-manager' is not a secretd role"],
      ['O=c, CN=n', 'Certificate must name exactly one role (OU), found 0'],
      [
        'O=c, OU=secretd-admin, OU=secretd-manager, CN=n',
        'Certificate must name exactly one role (OU), found 2',
      ],
    ] as const) {
      const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
        'sign',
        'verify',
      ])) as CryptoKeyPair;
      const cert = await X509CertificateGenerator.createSelfSigned({
        name: subject,
        keys,
        serialNumber: '01',
        notBefore: now,
        notAfter: new Date(now.getTime() + 1000),
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      });
      let error: unknown;
      try {
        parseIdentity(certPemFromDer(new Uint8Array(cert.rawData)));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(SecretdError);
      expect({
        code: (error as SecretdError).code,
        message: (error as SecretdError).message,
      }).toEqual({
        code: 'forbidden',
        message,
      });
    }
  });

  test('roleFromOU() knows exactly the three secretd roles', () => {
    expect(
      ['secretd-manager', 'secretd-worker', 'secretd-admin', 'secretd-ca', 'SECRETD-ADMIN'].map(
        roleFromOU,
      ),
    ).toEqual(['manager', 'worker', 'admin', undefined, undefined]);
  });
});

describe('certificates in real TLS', () => {
  type Outcome = { kind: 'response'; status: number; body: string } | { kind: 'refused' };

  /** One GET over a fresh HTTP/2 session; `refused` when the stream closes without a response. */
  async function request(
    port: number,
    client: { ca: string; key: string; cert: string },
  ): Promise<Outcome> {
    const session = http2.connect(`https://127.0.0.1:${port}`, client);
    try {
      return await new Promise<Outcome>((resolve) => {
        const refused = () => resolve({ kind: 'refused' });
        session.on('error', refused);
        session.on('close', refused);
        const stream = session.request({ ':path': '/' });
        let status = 0;
        let body = '';
        stream.setEncoding('utf8');
        stream.on('response', (headers) => (status = Number(headers[':status'])));
        stream.on('data', (chunk: string) => (body += chunk));
        stream.on('end', () =>
          status === 0 ? refused() : resolve({ kind: 'response', status, body }),
        );
        stream.on('close', refused);
        stream.on('error', refused);
        stream.end();
      });
    } finally {
      session.destroy();
    }
  }

  test('an HTTP/2 mTLS server accepts a client certificate from its CA and refuses one from another', async () => {
    // TLS checks validity against the real clock, so these certificates start now.
    const wallClock = { now: new Date() };
    const liveCA = await createRootCA(wallClock);
    const server = await issue('manager', { ...wallClock, ipAddresses: ['127.0.0.1'] }, liveCA);
    const admin = await issue('admin', { ...wallClock, nodeId: 'alice' }, liveCA);
    const stranger = await issue(
      'admin',
      { ...wallClock, nodeId: 'mallory' },
      await createRootCA(wallClock),
    );
    const tlsServer = http2.createSecureServer({
      key: server.keyPem,
      cert: server.certPem,
      ca: liveCA.certPem,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const peers: string[] = [];
    tlsServer.on('stream', (stream: http2.ServerHttp2Stream) => {
      const peer = (stream.session?.socket as TLSSocket).getPeerCertificate();
      peers.push(`${peer.subject.OU} ${peer.subject.CN}`);
      stream.respond({ ':status': 200 });
      stream.end(peers.at(-1));
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = tlsServer.address() as AddressInfo;
      expect(
        await request(port, { ca: liveCA.certPem, key: admin.keyPem, cert: admin.certPem }),
      ).toEqual({
        kind: 'response',
        status: 200,
        body: 'secretd-admin alice',
      });
      // Under TLS 1.3 the client finishes its half of the handshake before the server judges its
      // certificate, so the refusal shows as a server-side TLS error and a stream with no response.
      const serverRefusal = once(tlsServer, 'tlsClientError');
      expect(
        await request(port, { ca: liveCA.certPem, key: stranger.keyPem, cert: stranger.certPem }),
      ).toEqual({
        kind: 'refused',
      });
      const [error] = (await serverRefusal) as [Error];
      expect(error.message).toMatch(/certificate/); // Bun: 'unable to verify the first certificate'
      expect(peers).toEqual(['secretd-admin alice']);
    } finally {
      await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    }
  });
});

describe('issuerInfo', () => {
  test("gives the CA certificate's raw subject and public key, as Docker's node TLS info does", () => {
    const info = issuerInfo(ca.certPem);
    const spki = new Uint8Array(
      createPublicKey(ca.certPem).export({ type: 'spki', format: 'der' }),
    );
    expect(Array.from(info.publicKeyDer)).toEqual(Array.from(spki));
    // SEQUENCE { SET { SEQUENCE { OID commonName, PrintableString "secretd-ca" } } }
    expect(Buffer.from(info.subjectDer).toString('hex')).toBe(
      '3015311330110603550403130a' + Buffer.from('secretd-ca').toString('hex'),
    );
  });

  test('refuses what is not a certificate', () => {
    expect(() =>
      issuerInfo('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
    ).toThrow();
  });
});
