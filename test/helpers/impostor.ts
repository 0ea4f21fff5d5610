/**
 * A server posing as a manager, for the tests that clients of a manager refuse it: an HTTP/2 TLS
 * server on loopback presenting whatever certificate it is given, recording every request that
 * reaches it (so a test can show that nothing, a token or a secret least of all, was sent), and
 * answering through a handler.
 *
 * `workerCertificateNamedAsManager` builds what secretd issued to a worker before certificates
 * were limited to what the cluster verified: a real worker identity (OU secretd-worker, signed by
 * the cluster CA) that also carries every name a client dials a manager by.
 */
import 'reflect-metadata';
import { once } from 'node:events';
import {
  createSecureServer,
  type Http2SecureServer,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { keyPkcs8ToPem } from '../../src/crypto/index.ts';

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  readonly body: string;
}

export interface Impostor extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  /** Every request that reached the server, in order. */
  readonly seen: SeenRequest[];
  /** HTTP/2 sessions opened to it so far. */
  readonly sessionsOpened: () => number;
  /** Sends a GOAWAY on every open HTTP/2 session (a graceful close, as a stopping manager does). */
  goawayAll(): void;
}

export type ImpostorHandler = (
  request: SeenRequest,
) => { status: number; body: string } | Promise<{ status: number; body: string }>;

const notFound: ImpostorHandler = () => ({ status: 404, body: '{"message":"not found"}' });

/** Serves on 127.0.0.1 with `cert`/`key`; client certificates are asked for, not required. */
export async function serveImpostor(
  tls: { cert: string; key: string; ca: string },
  handler: ImpostorHandler = notFound,
): Promise<Impostor> {
  const seen: SeenRequest[] = [];
  const server: Http2SecureServer = createSecureServer({
    ...tls,
    requestCert: true,
    rejectUnauthorized: false,
    allowHTTP1: true,
  });
  const sessions = new Set<ServerHttp2Session>();
  let sessionsOpened = 0;
  server.on('session', (session: ServerHttp2Session) => {
    sessionsOpened++;
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', async () => {
      const request = {
        method: String(headers[':method']),
        path: String(headers[':path']),
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(request);
      const answer = await handler(request);
      if (stream.destroyed) return;
      stream.respond({ ':status': answer.status, 'content-type': 'application/json' });
      stream.end(answer.body);
    });
    stream.on('error', () => {});
  });
  server.on('request', (request, response) => {
    // HTTP/1.1 (curl without --http2): recorded the same way.
    if (request.httpVersionMajor !== 1) return;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', async () => {
      const seenRequest = {
        method: request.method ?? '',
        path: request.url ?? '',
        body: Buffer.concat(chunks).toString('utf8'),
      };
      seen.push(seenRequest);
      const answer = await handler(seenRequest);
      response.writeHead(answer.status, { 'content-type': 'application/json' });
      response.end(answer.body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    seen,
    sessionsOpened: () => sessionsOpened,
    goawayAll: () => {
      for (const session of sessions) session.close();
    },
    async [Symbol.asyncDispose]() {
      for (const session of sessions) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A worker certificate (OU secretd-worker) from `ca` that also names secretd-manager and loopback. */
export async function workerCertificateNamedAsManager(
  ca: { certPem: string; keyPkcs8: Uint8Array },
  clusterId: string,
  nodeId: string,
): Promise<{ cert: string; key: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: 'P-256' } as const;
  const keys = await crypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const caKey = await crypto.subtle.importKey('pkcs8', ca.keyPkcs8.slice(), algorithm, false, [
    'sign',
  ]);
  const caCert = new X509Certificate(ca.certPem);
  const now = Date.now();
  const cert = await X509CertificateGenerator.create({
    serialNumber: '01a2b3c4',
    subject: [{ O: [clusterId] }, { OU: ['secretd-worker'] }, { CN: [nodeId] }],
    issuer: caCert.subjectName,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 3_600_000),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]),
      new SubjectAlternativeNameExtension([
        { type: 'dns', value: 'secretd-worker' },
        { type: 'dns', value: nodeId },
        { type: 'dns', value: 'secretd-manager' },
        { type: 'dns', value: 'localhost' },
        { type: 'ip', value: '127.0.0.1' },
        { type: 'ip', value: '::1' },
      ]),
    ],
  });
  const keyPkcs8 = new Uint8Array(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { cert: cert.toString('pem'), key: keyPkcs8ToPem(keyPkcs8) };
}
