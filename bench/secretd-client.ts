/**
 * secretd's API over HTTP/2 with mutual TLS: ONE session, and each concurrent request is a stream
 * on it, which is how a real client (the CLI, an agent) talks to a manager.
 */
import { connect, constants, type ClientHttp2Session } from 'node:http2';
import { readFile } from 'node:fs/promises';
import { createOutcome, errorReason, type HttpAnswer } from './create-outcome.ts';
import type { CreateTarget } from './load.ts';

/** PEM file paths, as the CLI takes them (--cacert, --cert, --key). */
export interface ClientTLSFiles {
  readonly cacert: string;
  readonly cert: string;
  readonly key: string;
}

export interface SecretdClientOptions {
  readonly requestTimeoutMs: number;
  /** Name to check the server certificate against when it has no SAN for the URL's IP. */
  readonly servername?: string;
}

export interface SecretdSession {
  request(method: 'GET' | 'POST' | 'DELETE', path: string, body?: string): Promise<HttpAnswer>;
  close(): Promise<void>;
}

/** Opens the session and waits for the TLS handshake, so a bad certificate fails here, clearly. */
export async function openSecretdSession(
  url: string,
  files: ClientTLSFiles,
  options: SecretdClientOptions,
): Promise<SecretdSession> {
  const [ca, cert, key] = await Promise.all([
    readFile(files.cacert),
    readFile(files.cert),
    readFile(files.key),
  ]);
  let session: ClientHttp2Session;
  try {
    session = connect(url, {
      ca,
      cert,
      key,
      ...(options.servername === undefined ? {} : { servername: options.servername }),
    });
  } catch (error) {
    // Unreadable PEM throws here, synchronously, with only OpenSSL's wording.
    throw new Error(
      `Cannot connect to secretd at ${url} with ${files.cert}: ${errorReason(error)}`,
      { cause: error },
    );
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      session.destroy();
      reject(
        new Error(
          `Cannot connect to secretd at ${url}: no TLS handshake after ${options.requestTimeoutMs} ms`,
        ),
      );
    }, options.requestTimeoutMs);
    session.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    session.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new Error(`Cannot connect to secretd at ${url}: ${errorReason(error)}`, { cause: error }),
      );
    });
  });
  // A late session error must not crash the benchmark: the failing streams report it per request.
  session.on('error', () => undefined);
  return {
    request: (method, path, body) =>
      streamRequest(session, { method, path, body, timeoutMs: options.requestTimeoutMs }),
    close: () => closeSession(session),
  };
}

/**
 * Closes `session` once its streams are done, settling also when it is (or becomes) destroyed: a
 * session whose server died is destroyed, and Bun's close() of one never calls back, so a
 * benchmark whose server was killed hung in its cleanup, spinning a CPU, instead of reporting.
 */
export function closeSession(session: ClientHttp2Session): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    session.once('close', () => resolve());
    session.close(() => resolve());
  });
}

interface StreamRequestOptions {
  readonly method: string;
  readonly path: string;
  readonly body: string | undefined;
  readonly timeoutMs: number;
}

function streamRequest(
  session: ClientHttp2Session,
  options: StreamRequestOptions,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {
      ':method': options.method,
      ':path': options.path,
    };
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(options.body);
    }
    let status = 0;
    let settled = false;
    const chunks: Buffer[] = [];
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const stream = session.request(headers, { endStream: options.body === undefined });
    const timer = setTimeout(() => {
      settle(() => reject(new Error(`timed out after ${options.timeoutMs} ms`)));
      stream.close(constants.NGHTTP2_CANCEL);
    }, options.timeoutMs);
    stream.on('response', (responseHeaders) => {
      status = Number(responseHeaders[':status']);
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () =>
      settle(() => resolve({ status, body: Buffer.concat(chunks).toString('utf8') })),
    );
    stream.on('error', (error) => settle(() => reject(error)));
    // A stream reset without an error (e.g. REFUSED_STREAM after GOAWAY) ends with neither event.
    stream.on('close', () =>
      settle(() => reject(new Error(`stream closed with code ${stream.rstCode}`))),
    );
    if (options.body !== undefined) stream.end(options.body);
  });
}

/** secretd serves the Docker paths without a version prefix (the prefix is optional there). */
export function secretdTarget(session: SecretdSession): CreateTarget {
  return {
    label: 'secretd',
    create: (body) =>
      session.request('POST', '/secrets/create', body).then(createOutcome, (error: unknown) => ({
        ok: false as const,
        reason: errorReason(error),
      })),
    remove: (id) =>
      session.request('DELETE', `/secrets/${encodeURIComponent(id)}`).then(
        (answer) => answer.status === 204 || answer.status === 200,
        () => false,
      ),
    close: () => session.close(),
  };
}
