/**
 * Routes served straight off the HTTP/2 stream, with no compatibility request/response objects and
 * no hono adapter, which together cost as much CPU per request as Raft, the WAL and the store:
 *
 * - `POST /secrets/create`, the busiest write (bench/create-secrets.ts at C=16: about a third less
 *   server CPU per create). The gate, the role check, the parsing and the error answers are the
 *   app's own functions (_gate.ts, routes/secrets.ts), so it answers exactly as the app does
 *   (HTTP/1.1 requests still go there).
 * - `POST /secretd/raft/stream`, the long-lived stream of Raft frames from another manager
 *   (raft-io/transport.ts), which no request/response framework models.
 *
 * Every other stream goes on to the app.
 */
import {
  constants,
  type IncomingHttpHeaders,
  type Http2SecureServer,
  type ServerHttp2Stream,
} from 'node:http2';
import { SecretdError } from '../../errors.ts';
import { raftBatchBytesMax, requestBodyBytesMax } from '../../limits.ts';
import { peerPaths } from '../peers/index.ts';
import { FrameReader } from '../raft-io/index.ts';
import { consistencyHeader } from './read-consistency.ts';
import { auditRequest } from '../audit/index.ts';
import { admit, checkRoute, errorAnswer, identifyAudited, routePath } from './_gate.ts';
import type { Backend, Identity } from './backend.ts';
import { bodyAborted, bodyBudgetOf, bodyBusy, BodyRead, type BodyBudget } from './body-budget.ts';
import { checkDeclaredLength, tooLarge } from './request.ts';
import { createSecret, createSecretKey, createSecretRoute } from './routes/secrets.ts';
import { processMetrics, requestTrace, type RequestTrace } from '../metrics/index.ts';

export interface StreamRoutesOptions {
  readonly backend: Backend;
  /** The caller on this stream's session; throws `forbidden` as the app's identify does. */
  readonly identify: (stream: ServerHttp2Stream) => Identity;
}

type StreamListener = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  ...rest: unknown[]
) => void;

/**
 * Puts these routes in front of the server's own stream handling (which builds the compatibility
 * objects and calls the app): install after the server is created with its request listener.
 */
export function installStreamRoutes(server: Http2SecureServer, options: StreamRoutesOptions): void {
  const app = server.listeners('stream') as StreamListener[];
  server.removeAllListeners('stream');
  server.on(
    'stream',
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ...rest: unknown[]) => {
      if (headers[':method'] === 'POST' && isCreateSecret(headers[':path'] ?? '')) {
        // Timed for /secretd/metrics: the stages of this create, from its arrival (metrics/index.ts).
        const trace: RequestTrace = { receivedAt: processMetrics.now() };
        requestTrace
          .run(trace, () => serveCreateSecret(options, stream, headers, trace))
          .catch((error: unknown) => {
            const result = errorAnswer(error, 'POST', createSecretRoute);
            answer(stream, result);
            processMetrics.request('secrets_write', result.status);
          });
        return;
      }
      if (headers[':method'] === 'POST' && headers[':path'] === peerPaths.raftStream) {
        try {
          serveRaftStream(options, stream, headers);
        } catch (error) {
          answer(stream, errorAnswer(error, 'POST', peerPaths.raftStream));
        }
        return;
      }
      for (const listener of app) listener.call(server, stream, headers, ...rest);
    },
  );
}

function isCreateSecret(path: string): boolean {
  const query = path.indexOf('?');
  return routePath(query === -1 ? path : path.slice(0, query)) === createSecretRoute;
}

async function serveCreateSecret(
  options: StreamRoutesOptions,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  trace: RequestTrace,
): Promise<void> {
  // Audited as the app's admission does (audit/audited.ts): the record goes in the create's entry.
  const request = identifyAudited(
    options.backend,
    { method: 'POST', path: createSecretRoute, source: () => streamPeerAddress(stream) },
    () => options.identify(stream),
  );
  const identity = request.identity;
  await auditRequest(options.backend.audit?.sink, request, async () => {
    admit(options.backend, identity, createSecretRoute, headerValue(headers[consistencyHeader]));
    checkRoute(identity, createSecretKey);
    const body = await readBody(stream, headers, requestBodyBytesMax, bodyBudgetOf(stream));
    const metrics = processMetrics;
    metrics.create.body_read.observe((metrics.now() - trace.receivedAt) / 1000);
    answer(stream, { status: 201, body: await createSecret(options.backend, body, identity) });
    metrics.create.replied.observe((metrics.now() - trace.receivedAt) / 1000);
    metrics.request('secrets_write', 201);
  });
}

/** The peer's `address:port`, read once per HTTP/2 session. */
const sessionAddresses = new WeakMap<object, string>();
function streamPeerAddress(stream: ServerHttp2Stream): string {
  const session = stream.session;
  if (!session) return 'unknown';
  let address = sessionAddresses.get(session);
  if (address === undefined) {
    const socket = session.socket;
    address = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
    sessionAddresses.set(session, address);
  }
  return address;
}

/**
 * Frames from another manager, each handed to Raft as it completes; a byte goes back after each
 * burst so the sender knows the stream is alive. The caller is checked per frame too, so a manager
 * removed mid-stream is cut off at once. Anything wrong closes the stream; the sender opens another.
 */
function serveRaftStream(
  options: StreamRoutesOptions,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
): void {
  const identity = options.identify(stream);
  admit(options.backend, identity, peerPaths.raftStream, headerValue(headers[consistencyHeader]));
  checkRoute(identity, `POST ${peerPaths.raftStream}`);
  if (!identity.speaksRaft)
    throw new SecretdError('forbidden', 'Permission denied: only managers speak Raft');
  stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
  const reader = new FrameReader(raftBatchBytesMax);
  let ackQueued = false;
  stream.on('data', (chunk: Buffer) => {
    try {
      for (const frame of reader.push(chunk))
        options.backend.raftReceive(options.identify(stream), frame);
    } catch {
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (ackQueued) return;
    ackQueued = true;
    setImmediate(() => {
      ackQueued = false;
      if (!stream.destroyed && stream.writable) stream.write(ack);
    });
  });
  stream.on('end', () => stream.end());
  stream.on('error', () => {});
}

const ack = new Uint8Array([1]);

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The body, refused as soon as it passes `limit` bytes (or declares more), stalls, takes too long,
 * or finds no room in the connection's budget, without buffering more: the answer goes out and
 * the server closes the stream (server.ts), so the rest of the body is never read.
 */
function readBody(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  limit: number,
  budget: BodyBudget,
): Promise<Uint8Array> {
  const declared = headerValue(headers['content-length']);
  if (declared !== undefined) checkDeclaredLength(declared, limit);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      stream.off('data', onData);
      stream.pause();
      read.done();
      reject(error);
    };
    const read = new BodyRead(budget, limit, fail);
    const onData = (chunk: Buffer): void => {
      const verdict = read.add(chunk.length);
      if (verdict === 'ok') chunks.push(chunk);
      else fail(verdict === 'too-large' ? tooLarge(limit) : bodyBusy());
    };
    stream.on('data', onData);
    stream.once('end', () => {
      if (settled) return;
      settled = true;
      read.done();
      const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      resolve(new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength));
    });
    // Every stream closes, most after their body was read: the error is built only when it is one.
    const aborted = (): void => {
      if (!settled) fail(bodyAborted());
    };
    stream.once('error', aborted);
    stream.once('close', aborted);
  });
}

function answer(stream: ServerHttp2Stream, result: { status: number; body: unknown }): void {
  if (stream.headersSent || stream.destroyed) return;
  stream.respond({ ':status': result.status, 'content-type': 'application/json' });
  stream.end(JSON.stringify(result.body));
}
