/**
 * The CLI's way to a node's API, like the docker CLI's: the local admin socket in the data dir by
 * default, or a remote manager over HTTP/2 mutual TLS (`--host https://mgr:4377` with
 * `--tlscacert/--tlscert/--tlskey`, or SECRETD_HOST and a SECRETD_CERT_PATH directory).
 *
 * Over TLS the server must chain to the given CA, carry the host's name, and be a manager: OU
 * `secretd-manager` and, when the client certificate is a secretd one, the same cluster id (O) as
 * the client's own. A worker's certificate from the same CA is refused during the handshake,
 * before the request (and any secret in it) is sent.
 */
import { request as httpRequest } from 'node:http';
import { connect, type ClientHttp2Session } from 'node:http2';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseIdentity } from '../crypto/index.ts';
import { codeForHttpStatus, SecretdError, type ErrorCode } from '../errors.ts';
import { dataDirPaths } from '../node/index.ts';
import { checkManagerIdentity, reasonOf, wasRefused } from '../node/index.ts';

export interface ConnectionOptions {
  readonly dataDir: string;
  readonly host?: string | undefined;
  readonly tlscacert?: string | undefined;
  readonly tlscert?: string | undefined;
  readonly tlskey?: string | undefined;
}

export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
}

export interface ApiClient {
  /** `onData`, when given, gets the response body as it arrives (a follow stream); `body` is then null. */
  request(
    method: string,
    path: string,
    body?: unknown,
    onData?: (chunk: Buffer) => void,
  ): Promise<ApiResponse>;
  close(): void;
}

/** Calls the API and turns a non-2xx answer into a SecretdError carrying the server's message. */
export async function call(
  client: ApiClient,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const response = await client.request(method, path, body);
  if (response.status >= 200 && response.status < 300) return response.body;
  const message =
    typeof response.body === 'object' && response.body !== null && 'message' in response.body
      ? String((response.body as { message: unknown }).message)
      : `HTTP ${response.status}`;
  throw new SecretdError(codeForHttpStatus(response.status), message);
}

export function openClient(options: ConnectionOptions): ApiClient {
  const host = options.host ?? process.env.SECRETD_HOST;
  if (!host) return socketClient(dataDirPaths(options.dataDir).adminSocket);
  const certPath = process.env.SECRETD_CERT_PATH;
  const file = (given: string | undefined, name: string): string => {
    const path = given ?? (certPath ? join(certPath, name) : undefined);
    if (!path)
      throw new SecretdError(
        'invalid',
        `Connecting to ${host} needs --tlscacert, --tlscert and --tlskey (or SECRETD_CERT_PATH holding ca.pem, cert.pem, key.pem)`,
      );
    try {
      return readFileSync(path, 'utf8');
    } catch {
      throw new SecretdError('invalid', `Cannot read ${path}`);
    }
  };
  return tlsClient(host, {
    ca: file(options.tlscacert, 'ca.pem'),
    cert: file(options.tlscert, 'cert.pem'),
    key: file(options.tlskey, 'key.pem'),
  });
}

function encodeBody(body: unknown): Buffer | null {
  return body === undefined ? null : Buffer.from(JSON.stringify(body));
}

function decodeBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function socketClient(socketPath: string): ApiClient {
  return {
    request(method, path, body, onData) {
      const payload = encodeBody(body);
      return new Promise((resolve, reject) => {
        const req = httpRequest(
          {
            socketPath,
            method,
            path,
            headers: payload
              ? { 'content-type': 'application/json', 'content-length': payload.length }
              : {},
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (chunk: Buffer) =>
              onData && (res.statusCode ?? 0) < 300 ? onData(chunk) : chunks.push(chunk),
            );
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                body: decodeBody(Buffer.concat(chunks).toString('utf8')),
              }),
            );
            res.on('error', reject);
          },
        );
        req.on('error', (error: NodeJS.ErrnoException) => {
          const reason =
            error.code === 'ENOENT' || error.code === 'ECONNREFUSED'
              ? 'is secretd running there?'
              : error.code === 'EACCES'
                ? 'permission denied (the admin socket is root only)'
                : error.message;
          reject(
            new SecretdError(
              'unavailable',
              `Cannot connect to the secretd admin socket at ${socketPath}: ${reason}`,
            ),
          );
        });
        req.end(payload ?? undefined);
      });
    },
    close() {},
  };
}

/** The cluster the client certificate belongs to (its O), or undefined for a certificate that is not secretd's. */
function clusterOf(certPem: string): string | undefined {
  try {
    return parseIdentity(certPem).clusterId;
  } catch {
    return undefined;
  }
}

function tlsClient(host: string, tls: { ca: string; cert: string; key: string }): ApiClient {
  let session: ClientHttp2Session | null = null;
  /** Why the session failed (a refused server certificate, a reset), for the requests it ends. */
  let sessionError: Error | null = null;
  const checkServerIdentity = checkManagerIdentity(clusterOf(tls.cert));
  const open = (): ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    sessionError = null;
    const opened = connect(host, { ...tls, checkServerIdentity });
    opened.on('error', (error) => (sessionError = error));
    // A GOAWAY (the manager is stopping, or closes an idle connection): what is in flight finishes,
    // and the next request opens a new session.
    opened.on('goaway', () => {
      if (session === opened) session = null;
    });
    session = opened;
    return opened;
  };
  const once = (
    method: string,
    path: string,
    payload: Buffer | null,
    onData?: (chunk: Buffer) => void,
  ): Promise<ApiResponse> =>
    new Promise((resolve, reject) => {
      let stream: ReturnType<ClientHttp2Session['request']>;
      try {
        stream = open().request({
          ':method': method,
          ':path': path,
          ...(payload
            ? { 'content-type': 'application/json', 'content-length': payload.length }
            : {}),
        });
      } catch (error) {
        // A session that got a GOAWAY refuses new streams at once: nothing was sent.
        reject(wasRefused({}, error) ? new Refused() : error);
        return;
      }
      const chunks: Buffer[] = [];
      let status = 0;
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.on('data', (chunk: Buffer) =>
        onData && status < 300 ? onData(chunk) : chunks.push(chunk),
      );
      const unreachable = (error: Error | null): SecretdError =>
        new SecretdError(
          'unavailable',
          `Cannot reach secretd at ${host}: ${sessionError || error ? reasonOf(sessionError ?? error) : 'the connection closed'}`,
        );
      stream.on('end', () =>
        resolve({ status, body: decodeBody(Buffer.concat(chunks).toString('utf8')) }),
      );
      stream.on('error', (error) =>
        reject(status === 0 && wasRefused(stream, error) ? new Refused() : unreachable(error)),
      );
      // A session refused during the handshake may close the stream without an error of its own.
      stream.on('close', () => {
        if (status === 0) reject(wasRefused(stream, null) ? new Refused() : unreachable(null));
      });
      stream.end(payload ?? undefined);
    });
  return {
    // A request the server refused unprocessed (it was closing the session) goes once more on a new one.
    async request(method, path, body, onData) {
      const payload = encodeBody(body);
      try {
        return await once(method, path, payload, onData);
      } catch (error) {
        if (!(error instanceof Refused)) throw error;
        return once(method, path, payload, onData).catch((again: unknown) => {
          throw again instanceof Refused
            ? new SecretdError('unavailable', `secretd at ${host} refused the request twice`)
            : again;
        });
      }
    },
    close() {
      session?.close();
    },
  };
}

/** The server refused a request without processing it: safe to send again on a new session. */
class Refused extends Error {}
