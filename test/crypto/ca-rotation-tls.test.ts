/**
 * Root CA rotation's certificates in real TLS (the runtime's own verifier, over loopback HTTP/2 with
 * mutual TLS as secretd speaks it): a certificate issued by the new root's key and presented with
 * the new root cross-signed by the old one is accepted by a peer trusting only the old root, by one
 * trusting only the new root, and by one trusting both; without the cross-signed certificate, a
 * peer trusting only the old root refuses it.
 */
import 'reflect-metadata';
import { afterAll, describe, expect, test } from 'bun:test';
import { once } from 'node:events';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  type IssueCertificateOptions,
  type SigningCA,
  createKeyAndCSR,
  createRootCA,
  crossSignRoot,
  issueCertificateWithChain,
  keyPkcs8ToPem,
} from '../../src/crypto/index.ts';
import { nodeCertLifetimeMs, rootCertLifetimeMs } from '../../src/limits.ts';

// TLS checks validity against the real clock, so these certificates start now.
const now = new Date();
const oldRoot = await createRootCA({ now });
const newRoot = await createRootCA({ now });
const rotating: SigningCA = {
  ...newRoot,
  intermediatePem: await crossSignRoot(oldRoot, newRoot.certPem, {
    now,
    lifetimeMs: rootCertLifetimeMs,
  }),
};

interface Holder {
  readonly key: string;
  /** The certificate and its chain, as TLS options take them. */
  readonly cert: string;
}

async function holder(
  ca: SigningCA,
  overrides: Partial<IssueCertificateOptions>,
  withChain = true,
): Promise<Holder> {
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const issued = await issueCertificateWithChain(ca, csrPem, {
    nodeId: 'a1b2c3d4e5f6g7h8i9j0k1l2m',
    role: 'manager',
    clusterId: 'k3x9c2lq0v8w1m5n7p4r6t2y0',
    now,
    lifetimeMs: nodeCertLifetimeMs,
    serial: crypto.getRandomValues(new Uint8Array(16)),
    ...overrides,
  });
  return {
    key: keyPkcs8ToPem(keyPkcs8),
    cert: issued.certPem + (withChain ? issued.chainPem : ''),
  };
}

const manager = { role: 'manager', ipAddresses: ['127.0.0.1'] } as const;
const serverNew = await holder(rotating, manager);
const serverNewBare = await holder(rotating, manager, false);
const serverOld = await holder(oldRoot, manager);
const aliceNew = await holder(rotating, { role: 'admin', nodeId: 'alice' });
const aliceNewBare = await holder(rotating, { role: 'admin', nodeId: 'alice' }, false);
const bobOld = await holder(oldRoot, { role: 'admin', nodeId: 'bob' });

type Outcome =
  { kind: 'response'; status: number; body: string } | { kind: 'refused'; clientError: string };

/** One GET over a fresh HTTP/2 session; `refused` when it ends without a response. */
async function request(port: number, client: Holder & { ca: string[] }): Promise<Outcome> {
  const session = http2.connect(`https://127.0.0.1:${port}`, client);
  try {
    return await new Promise<Outcome>((resolve) => {
      let clientError = '';
      const refused = () => resolve({ kind: 'refused', clientError });
      session.on('error', (error: Error) => {
        clientError = error.message;
        refused();
      });
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

const servers: http2.Http2SecureServer[] = [];

/** An mTLS HTTP/2 server on loopback answering with the OU and CN of the client's certificate. */
async function serve(identity: Holder, trusted: string[]): Promise<http2.Http2SecureServer> {
  const server = http2.createSecureServer({
    ...identity,
    ca: trusted,
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.on('stream', (stream: http2.ServerHttp2Stream) => {
    const peer = (stream.session?.socket as TLSSocket).getPeerCertificate();
    stream.respond({ ':status': 200 });
    stream.end(`${peer.subject.OU} ${peer.subject.CN}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return server;
}

const portOf = (server: http2.Http2SecureServer) => (server.address() as AddressInfo).port;

afterAll(async () => {
  await Promise.all(
    servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
  );
});

describe('a server certificate from the new key during a root rotation', () => {
  test('is accepted by a client trusting only the old root, and by one trusting only the new root', async () => {
    const port = portOf(await serve(serverNew, [oldRoot.certPem, newRoot.certPem]));
    const ok: Outcome = { kind: 'response', status: 200, body: 'secretd-admin bob' };
    expect(await request(port, { ...bobOld, ca: [oldRoot.certPem] })).toEqual(ok);
    expect(await request(port, { ...bobOld, ca: [newRoot.certPem] })).toEqual(ok);
    expect(await request(port, { ...bobOld, ca: [oldRoot.certPem, newRoot.certPem] })).toEqual(ok);
  });

  test('is refused by a client trusting only the old root when presented without the cross-signed certificate', async () => {
    const port = portOf(await serve(serverNewBare, [oldRoot.certPem]));
    const outcome = await request(port, { ...bobOld, ca: [oldRoot.certPem] });
    expect(outcome.kind).toBe('refused');
    // Bun: 'unable to get local issuer certificate'.
    expect(outcome.kind === 'refused' && outcome.clientError).toMatch(/certificate/);
  });

  test('from the old key is refused by a client trusting only the new root', async () => {
    const port = portOf(await serve(serverOld, [oldRoot.certPem]));
    const outcome = await request(port, { ...bobOld, ca: [newRoot.certPem] });
    expect(outcome.kind === 'refused' && outcome.clientError).toMatch(/certificate/);
  });
});

describe('a client certificate from the new key during a root rotation', () => {
  test('is accepted by servers trusting the old root, the new root, or both', async () => {
    for (const trusted of [
      [oldRoot.certPem],
      [newRoot.certPem],
      [oldRoot.certPem, newRoot.certPem],
    ]) {
      const port = portOf(await serve(serverOld, trusted));
      expect(await request(port, { ...aliceNew, ca: [oldRoot.certPem] })).toEqual({
        kind: 'response',
        status: 200,
        body: 'secretd-admin alice',
      });
    }
  });

  // Under TLS 1.3 the client finishes its half of the handshake before the server judges its
  // certificate, so a refusal shows as a server-side TLS error and a stream with no response.
  async function refusedByServer(server: http2.Http2SecureServer, client: Holder): Promise<string> {
    const serverRefusal = once(server, 'tlsClientError');
    const outcome = await request(portOf(server), { ...client, ca: [oldRoot.certPem] });
    expect(outcome.kind).toBe('refused');
    const [error] = (await serverRefusal) as [Error];
    return error.message;
  }

  test('is refused by a server trusting only the old root when presented without the cross-signed certificate', async () => {
    const server = await serve(serverOld, [oldRoot.certPem]);
    // Bun: 'unable to verify the first certificate'.
    expect(await refusedByServer(server, aliceNewBare)).toMatch(/certificate/);
  });

  test('from the old key is refused by a server trusting only the new root', async () => {
    const server = await serve(serverOld, [newRoot.certPem]);
    expect(await refusedByServer(server, bobOld)).toMatch(/certificate/);
  });
});
