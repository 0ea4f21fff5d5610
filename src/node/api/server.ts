/**
 * Serving the API: HTTP/2 with mutual TLS on the network (HTTP/1.1 too, for the docker CLI), and
 * plain HTTP on the root-only local admin socket. A connection presenting a certificate not signed
 * by the cluster CA is cut as soon as its handshake completes, before any request; one with no
 * certificate at all (a node about to join, as Docker's VerifyClientCertIfGiven allows) may reach
 * only the join routes. The role in the certificate's OU then decides what a caller may do, and a
 * removed node's certificate is refused from the moment its removal is applied, and a revoked
 * client certificate from the moment its revocation is applied: checked by serial on every request
 * (the identity cached per connection is not enough), and the connections presenting it are closed
 * then (the guard labels each connection with its client certificate's serial).
 */
import { getRequestListener } from '@hono/node-server';
import type { Context } from 'hono';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import { chmod, rm } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import { keyPkcs8ToPem, roleFromOU } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { createApp } from './app.ts';
import { clientIdentity } from './peer-certificate.ts';
import { installStreamRoutes } from './stream-routes.ts';
import { createWorkerApp, type WorkerBackend } from './worker-app.ts';
import type { Backend, Identity } from './backend.ts';
import { splitHostPort } from '../join/index.ts';
import { normalizeSerial } from '../store/index.ts';
import { denoSessionStreamsMax } from '../../limits.ts';
import { processMetrics, routeClassOf } from '../metrics/index.ts';
import {
  ConnectionGuard,
  defaultConnectionLimits,
  type ConnectionCounts,
  type ConnectionLimits,
} from './connection-guard.ts';

export interface ServeOptions {
  readonly backend: Backend;
  readonly version: string;
  readonly clusterId: string;
}

export async function serveAdminSocket(path: string, options: ServeOptions): Promise<Server> {
  const admin: Identity = { role: 'admin', nodeId: 'local', via: 'socket' };
  return listenOnSocket(
    path,
    countedFetch(
      createApp({ backend: options.backend, version: options.version, identify: () => admin })
        .fetch,
    ),
  );
}

export async function serveWorkerSocket(
  path: string,
  backend: WorkerBackend,
  version: string,
): Promise<Server> {
  return listenOnSocket(path, createWorkerApp(backend, version).fetch);
}

async function listenOnSocket(
  path: string,
  fetch: (request: Request) => Response | Promise<Response>,
): Promise<Server> {
  await rm(path, { force: true });
  const server = createHttpServer(getRequestListener(fetch));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // The socket must never be reachable by anyone but root, not even for an instant.
    const oldMask = process.umask(0o177);
    server.listen(path, () => {
      process.umask(oldMask);
      resolve();
    });
  });
  await chmod(path, 0o600);
  return server;
}

export interface TlsServeOptions extends ServeOptions {
  readonly listenAddr: string;
  readonly caPem: string;
  readonly certPem: string;
  readonly tlsKey: Uint8Array;
  /** Deadlines and caps for the port's connections (default: src/limits.ts; tests pass shorter ones). */
  readonly limits?: Partial<ConnectionLimits>;
}

const guards = new WeakMap<Http2SecureServer, ConnectionGuard>();

/** What a server returned by `serveTls` holds now, by phase (for tests and diagnostics). */
export function connectionCounts(server: Http2SecureServer): ConnectionCounts | null {
  return guards.get(server)?.counts() ?? null;
}

export async function serveTls(options: TlsServeOptions): Promise<Http2SecureServer> {
  // Keyed by the HTTP/2 session (or HTTP/1 socket): one certificate check per connection, and no
  // socket object is touched per request (reaching it is not free under Bun's http2).
  const identities = new WeakMap<object, Identity>();
  const identify = (connection: object, socket: () => TLSSocket): Identity => {
    let identity = identities.get(connection);
    if (!identity) {
      identity = identityOf(socket(), options.clusterId);
      identities.set(connection, identity);
    }
    if (identity.serial !== undefined) {
      const refusal = options.backend.clientCertificateRefusal(identity.serial);
      if (refusal !== null) throw new SecretdError('forbidden', refusal);
      // Its role and scope: the store's record now (peer-certificate.ts).
      return clientIdentity(identity, options.backend.clientCertificate(identity.serial));
    }
    if (identity.role === 'manager' || identity.role === 'worker') {
      if (options.backend.isRemovedNode(identity.nodeId))
        throw new SecretdError(
          'forbidden',
          `Permission denied: node ${identity.nodeId} was removed from the cluster`,
        );
      // A manager certificate is worth what the store and Raft say now, not its 90 days: a demoted
      // or unknown node is a worker to the API, and speaks Raft only as Backend.speaksRaft allows.
      if (
        identity.role === 'manager' &&
        options.backend.currentRole(identity.nodeId) !== 'manager'
      ) {
        return {
          ...identity,
          role: 'worker',
          speaksRaft: options.backend.speaksRaft(identity.nodeId),
        };
      }
    }
    return identity;
  };
  const app = createApp({
    backend: options.backend,
    version: options.version,
    identify: (c: Context) => {
      const incoming = (c.env as { incoming: PeerIncoming }).incoming;
      const session = incoming.stream?.session;
      return identify(session ?? incoming.socket, () => session?.socket ?? incoming.socket);
    },
  });
  const server = createSecureServer(
    {
      key: keyPkcs8ToPem(options.tlsKey),
      cert: options.certPem,
      ca: options.caPem,
      requestCert: true,
      rejectUnauthorized: false,
      allowHTTP1: true,
      minVersion: 'TLSv1.2',
      settings: { maxConcurrentStreams: 1000 },
    },
    getRequestListener(countedFetch(app.fetch)),
  );
  // A renewed certificate, or new roots to trust (a root CA rotation), serve every connection from
  // then on; open ones keep theirs (the nodes at their other end move theirs when they renew:
  // PeerClient.setTls).
  let caPem = options.caPem;
  options.backend.onNodeCertificate?.((pair) =>
    server.setSecureContext({
      key: keyPkcs8ToPem(pair.tlsKey),
      cert: pair.certPem,
      ca: (caPem = pair.caPem ?? caPem),
      minVersion: 'TLSv1.2',
    }),
  );
  // Deadlines, connection caps and body budgets (connection-guard.ts) come before anything else.
  const guard = new ConnectionGuard(
    { ...defaultConnectionLimits, ...options.limits },
    (socket) => socket.authorized && hasPeerCertificate(socket),
    clientSerialOf,
  );
  guard.install(server);
  guards.set(server, guard);
  if ('Deno' in globalThis) closeSessionsEarly(server, denoSessionStreamsMax);
  // A revocation applied here closes the connections presenting a revoked certificate.
  const stopRevocations = options.backend.onRevocations(() => {
    for (const serial of guard.labels())
      if (options.backend.clientCertificateRefusal(serial) !== null) guard.closeLabelled(serial);
  });
  server.once('close', stopRevocations);
  installStreamRoutes(server, {
    backend: options.backend,
    identify: (stream) => {
      const session = stream.session;
      if (!session) throw new SecretdError('unavailable', 'The connection closed');
      return identify(session, () => session.socket as TLSSocket);
    },
  });
  guard.guardStreams(server);
  server.on('secureConnection', (socket: TLSSocket) => {
    if (!socket.authorized && hasPeerCertificate(socket)) socket.destroy();
  });
  const { host, port } = splitHostPort(options.listenAddr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host || '0.0.0.0', () => resolve());
  });
  return server;
}

/** `fetch` with every answer counted by route class and status for /secretd/metrics. */
function countedFetch<E>(
  fetch: (request: Request, env?: E) => Response | Promise<Response>,
): (request: Request, env?: E) => Promise<Response> {
  return async (request, env) => {
    const response = await fetch(request, env);
    processMetrics.request(routeClassOf(request.method, pathOfUrl(request.url)), response.status);
    return response;
  };
}

/** The path of an absolute URL (`http://host/path?query` → `/path?query`), without parsing it. */
function pathOfUrl(url: string): string {
  const scheme = url.indexOf('://');
  const slash = scheme === -1 ? -1 : url.indexOf('/', scheme + 3);
  return slash === -1 ? url : url.slice(slash);
}

interface PeerIncoming {
  readonly socket: TLSSocket;
  readonly stream?: { readonly session?: { readonly socket: TLSSocket } };
}

function hasPeerCertificate(socket: TLSSocket): boolean {
  const cert = socket.getPeerCertificate();
  return cert !== null && typeof cert === 'object' && Object.keys(cert).length > 0;
}

function identityOf(socket: TLSSocket, clusterId: string): Identity {
  if (!hasPeerCertificate(socket)) return { role: 'anonymous', nodeId: '', via: 'tls' };
  if (!socket.authorized)
    throw new SecretdError(
      'forbidden',
      'Permission denied: the client certificate is not signed by this cluster',
    );
  const cert = socket.getPeerCertificate();
  const subject = cert?.subject as unknown as
    Record<string, string | string[] | undefined> | undefined;
  const first = (value: string | string[] | undefined): string | undefined =>
    Array.isArray(value) ? value[0] : value;
  const role = roleFromOU(first(subject?.OU) ?? '');
  const cn = first(subject?.CN);
  if (!role || !cn)
    throw new SecretdError(
      'forbidden',
      'Permission denied: the client certificate carries no secretd role',
    );
  if (first(subject?.O) !== clusterId)
    throw new SecretdError(
      'forbidden',
      'Permission denied: the client certificate belongs to another cluster',
    );
  return {
    role,
    nodeId: cn,
    via: 'tls',
    speaksRaft: role === 'manager',
    ...(role === 'admin' && typeof cert.serialNumber === 'string'
      ? { serial: normalizeSerial(cert.serialNumber), name: cn }
      : {}),
  };
}

/** A client (admin) certificate's serial, the label of its connections; null for any other. */
function clientSerialOf(socket: TLSSocket): string | null {
  const cert = socket.getPeerCertificate();
  const ou = (cert?.subject as unknown as Record<string, string | string[] | undefined> | undefined)
    ?.OU;
  if (roleFromOU(Array.isArray(ou) ? (ou[0] ?? '') : (ou ?? '')) !== 'admin') return null;
  return typeof cert.serialNumber === 'string' ? normalizeSerial(cert.serialNumber) : null;
}

/**
 * Under Deno only: its nghttp2 binding aborts the process when a client closes an HTTP/2 session
 * after more than about 100 streams (denoland/deno#36788), but never when the server closes first.
 * So the server closes each session gracefully (GOAWAY: streams under way finish, a stream sent
 * after it is refused) once it has carried `streamsMax` streams; clients open a new session and
 * retry a refused request there (peers/peer-client.ts, cmd/client.ts).
 */
function closeSessionsEarly(server: Http2SecureServer, streamsMax: number): void {
  server.on('session', (session) => {
    let streams = 0;
    session.on('stream', (stream) => {
      streams++;
      if (streams === streamsMax) stream.once('close', () => session.closed || session.close());
    });
  });
}
