/**
 * HTTP/2 mutual-TLS sessions from a node (a manager's Raft and forwarding, an agent's dispatcher
 * session) to managers, one per address, reused.
 *
 * What a client of a manager checks, here and in every other client (the joiner, the CLI): the
 * certificate chains to the cluster CA; it names the server (`secretd-manager`, which every
 * manager certificate carries whatever address it is reached at, or the host the CLI was given);
 * and, during the handshake, before a byte of any request is sent, its subject is a manager's:
 * OU `secretd-manager` and, where the client knows it, the cluster id as O. A name alone proves
 * nothing: the subject is what only the CA writes.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { checkServerIdentity as checkServerName, type PeerCertificate } from 'node:tls';
import { parseIdentity, roleOU } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import type { LineHandlers, LineStream, PeerLink, PeerStream } from './link.ts';

/** A certificate subject as node:tls gives it: each field a string, or an array when repeated. */
export interface PeerSubject {
  readonly CN?: string | readonly string[] | undefined;
  readonly OU?: string | readonly string[] | undefined;
  readonly O?: string | readonly string[] | undefined;
}

/**
 * Why a server's certificate subject is not a manager's of cluster `clusterId` (any cluster when
 * undefined), or null when it is one.
 */
export function managerSubjectProblem(
  subject: PeerSubject | undefined,
  clusterId: string | undefined,
): string | null {
  const one = (value: string | readonly string[] | undefined): string | undefined =>
    typeof value === 'string' ? value : value?.length === 1 ? value[0] : undefined;
  const ou = one(subject?.OU);
  if (ou !== roleOU('manager'))
    return `its certificate is not a manager's (role ${JSON.stringify(ou ?? subject?.OU ?? null)}, not ${roleOU('manager')})`;
  const o = one(subject?.O);
  if (clusterId !== undefined && o !== clusterId)
    return `its certificate belongs to another cluster (${JSON.stringify(o ?? subject?.O ?? null)}, not ${clusterId})`;
  if (one(subject?.CN) === undefined) return 'its certificate names no node id';
  return null;
}

/**
 * A `checkServerIdentity` for TLS connections to a manager: the usual name check, then the
 * subject. Runs inside the handshake, so a server that fails it is never sent a request.
 */
export function checkManagerIdentity(
  clusterId: string | undefined,
): (host: string, cert: PeerCertificate) => Error | undefined {
  return (host, cert) => {
    const nameError = checkServerName(host, cert);
    if (nameError) return nameError;
    const problem = managerSubjectProblem(cert.subject as PeerSubject | undefined, clusterId);
    return problem === null
      ? undefined
      : new Error(`the server is not a secretd manager: ${problem}`);
  };
}

export interface PeerTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface PeerResponse {
  readonly status: number;
  readonly body: Uint8Array;
}

/** What went wrong, from the cause when there is one (a stream cancelled because its session failed the certificate check). */
export function reasonOf(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  return (
    cause instanceof Error ? cause : error instanceof Error ? error : new Error(String(error))
  ).message;
}

export class PeerClient implements PeerLink {
  readonly #sessions = new Map<string, ClientHttp2Session>();
  /** Sessions no new stream goes on: retired by a renewal (setTls) or the server's GOAWAY. */
  readonly #retired = new WeakSet<ClientHttp2Session>();
  /** Who to tell when a session is retired: the long-lived line streams on it (`openLines`). */
  readonly #onRetired = new WeakMap<ClientHttp2Session, Set<() => void>>();
  /** The session each stream of `openStream` went on (a stream forgets it once destroyed). */
  readonly #streamSessions = new WeakMap<PeerStream, ClientHttp2Session>();
  #tls: PeerTls;
  /** Checks servers against this node's own cluster: the O of its own certificate. */
  #checkServer: (host: string, cert: PeerCertificate) => Error | undefined;
  readonly #localAddress: string | undefined;

  /**
   * `localAddress`: the address this manager advertises, when it is a specific IP; connections to
   * other managers leave from it, so that they see this manager at the address it claims.
   */
  constructor(tls: PeerTls, localAddress?: string) {
    this.#tls = tls;
    this.#checkServer = checkManagerIdentity(parseIdentity(tls.cert).clusterId);
    this.#localAddress = localAddress;
  }

  /**
   * A renewed certificate: sessions opened from now on present it. Open sessions are retired
   * gracefully: no new stream goes on them, and what they carry (a request in flight) finishes on
   * the old certificate, which is still valid, so a renewal fails nothing. The long-lived streams
   * move: the agent's dispatcher session is told (`openLines`' `onRetired`) and opens its next one
   * at once, and the Raft transport sends its next frame on a new stream (`retired`), so no
   * connection goes on under a certificate past its renewal. New trusted roots (a root CA
   * rotation) are another matter: nothing goes on under the trust it was checked with, and every
   * open session is cut (their owners reconnect).
   */
  setTls(tls: PeerTls): void {
    const trustChanged = tls.ca !== this.#tls.ca;
    this.#tls = tls;
    this.#checkServer = checkManagerIdentity(parseIdentity(tls.cert).clusterId);
    for (const [addr, session] of [...this.#sessions]) {
      this.#retire(addr, session);
      if (trustChanged) session.destroy();
      else if (!session.closed && !session.destroyed) session.close();
    }
  }

  /**
   * Whether `stream` goes on a retired session (a renewal, or the server's GOAWAY): its owner
   * should send what comes next on a new stream.
   */
  retired(stream: PeerStream): boolean {
    const session = this.#streamSessions.get(stream);
    return session !== undefined && this.#retired.has(session);
  }

  #session(addr: string): ClientHttp2Session {
    const existing = this.#sessions.get(addr);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const session = connect(`https://${addr}`, {
      ...this.#tls,
      servername: roleOU('manager'),
      checkServerIdentity: this.#checkServer,
      ...(this.#localAddress ? { localAddress: this.#localAddress } : {}),
    });
    session.on('error', () => this.#drop(addr, session));
    session.on('close', () => this.#drop(addr, session));
    // A GOAWAY (the server's, or the one our own close() sends: setTls) only retires the session:
    // no new stream goes on it, and what it carries finishes. Destroying it here had cut every
    // open stream at each certificate renewal, an exec sent on the agent's session among them.
    session.on('goaway', () => this.#retire(addr, session));
    this.#sessions.set(addr, session);
    return session;
  }

  #retire(addr: string, session: ClientHttp2Session): void {
    if (this.#sessions.get(addr) === session) this.#sessions.delete(addr);
    if (this.#retired.has(session)) return;
    this.#retired.add(session);
    const listeners = this.#onRetired.get(session);
    this.#onRetired.delete(session);
    // After the caller's step (setTls finishes retiring every session first).
    if (listeners) for (const listener of listeners) queueMicrotask(listener);
  }

  /** The session to `addr`, or null after rejecting with why it cannot be opened. */
  #sessionOr(addr: string, reject: (error: SecretdError) => void): ClientHttp2Session | null {
    try {
      return this.#session(addr);
    } catch (error) {
      reject(
        new SecretdError('unavailable', `Cannot reach manager at ${addr}: ${reasonOf(error)}`),
      );
      return null;
    }
  }

  #drop(addr: string, session: ClientHttp2Session): void {
    if (this.#sessions.get(addr) === session) this.#sessions.delete(addr);
    if (!session.destroyed) session.destroy();
  }

  /**
   * One request. A request the server refused without processing it (REFUSED_STREAM, or sent on a
   * session it was closing with GOAWAY) is sent once more on a new session: nothing of it was done.
   */
  async request(
    addr: string,
    method: string,
    path: string,
    body: Uint8Array | null,
    options: { timeoutMs: number; contentType?: string },
  ): Promise<PeerResponse> {
    try {
      return await this.#requestOnce(addr, method, path, body, options);
    } catch (error) {
      if (!(error instanceof RefusedRequest)) throw error;
      return this.#requestOnce(addr, method, path, body, options).catch((again: unknown) => {
        throw again instanceof RefusedRequest ? again.error : again;
      });
    }
  }

  #requestOnce(
    addr: string,
    method: string,
    path: string,
    body: Uint8Array | null,
    options: { timeoutMs: number; contentType?: string },
  ): Promise<PeerResponse> {
    return new Promise((resolve, reject) => {
      const session = this.#sessionOr(addr, reject);
      if (session === null) return;
      let stream: ReturnType<ClientHttp2Session['request']>;
      try {
        stream = session.request({
          ':method': method,
          ':path': path,
          ...(body
            ? {
                'content-type': options.contentType ?? 'application/octet-stream',
                'content-length': body.length,
              }
            : {}),
        });
      } catch (error) {
        // A session that got a GOAWAY refuses new streams at once: nothing was sent.
        const failure = new SecretdError(
          'unavailable',
          `Cannot reach manager at ${addr}: ${reasonOf(error)}`,
        );
        reject(wasRefused({}, error) ? new RefusedRequest(failure) : failure);
        return;
      }
      const chunks: Buffer[] = [];
      let status = 0;
      const timer = setTimeout(() => {
        stream.close(constants.NGHTTP2_CANCEL);
        reject(
          new SecretdError(
            'unavailable',
            `Manager at ${addr} did not answer within ${options.timeoutMs} ms`,
          ),
        );
      }, options.timeoutMs);
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      const refused = (error: SecretdError, cause: unknown = null): Error =>
        status === 0 && wasRefused(stream, cause) ? new RefusedRequest(error) : error;
      stream.on('end', () => {
        clearTimeout(timer);
        if (status === 0)
          reject(
            refused(
              new SecretdError(
                'unavailable',
                `Manager at ${addr} closed the stream without answering`,
              ),
            ),
          );
        else resolve({ status, body: new Uint8Array(Buffer.concat(chunks)) });
      });
      stream.on('error', (error) => {
        clearTimeout(timer);
        reject(
          refused(
            new SecretdError('unavailable', `Cannot reach manager at ${addr}: ${reasonOf(error)}`),
            error,
          ),
        );
      });
      stream.end(body ?? undefined);
    });
  }

  /**
   * A long-lived GET whose response body arrives as lines (the dispatcher session). Resolves with
   * the HTTP status once headers arrive; `onLine` gets each line, `onEnd` the end, whichever way,
   * and `onRetired` (once, while the stream is open) that its session takes no new stream.
   */
  openLines(addr: string, path: string, handlers: LineHandlers): Promise<LineStream> {
    return new Promise((resolve, reject) => {
      const session = this.#sessionOr(addr, reject);
      if (session === null) return;
      const stream = session.request({ ':method': 'GET', ':path': path });
      let buffered = '';
      let status = 0;
      let ended = false;
      const onRetired = handlers.onRetired;
      let listeners: Set<() => void> | undefined;
      if (onRetired) {
        listeners = this.#onRetired.get(session);
        if (!listeners) this.#onRetired.set(session, (listeners = new Set()));
        listeners.add(onRetired);
      }
      const end = (error: Error | null): void => {
        if (ended) return;
        ended = true;
        if (onRetired) listeners!.delete(onRetired);
        handlers.onEnd(error);
      };
      stream.setEncoding('utf8');
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
        if (status === 200)
          resolve({ status, body: '', close: () => stream.close(constants.NGHTTP2_CANCEL) });
      });
      stream.on('data', (chunk: string) => {
        buffered += chunk;
        if (status !== 200) return;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (line) handlers.onLine(line);
        }
      });
      stream.on('end', () => {
        if (status !== 200) resolve({ status, body: buffered, close: () => {} });
        end(null);
      });
      stream.on('close', () => end(null));
      stream.on('error', (error) => {
        if (status === 0)
          reject(
            new SecretdError('unavailable', `Cannot reach manager at ${addr}: ${reasonOf(error)}`),
          );
        end(error);
      });
    });
  }

  /**
   * A long-lived POST whose body this manager writes as it goes (the Raft stream). Throws when no
   * session can be opened; later failures arrive as the stream's `error` and `close` events.
   */
  openStream(addr: string, path: string): ClientHttp2Stream {
    let session: ClientHttp2Session;
    try {
      session = this.#session(addr);
    } catch (error) {
      throw new SecretdError('unavailable', `Cannot reach manager at ${addr}: ${reasonOf(error)}`);
    }
    const stream = session.request(
      { ':method': 'POST', ':path': path, 'content-type': 'application/octet-stream' },
      { endStream: false },
    );
    this.#streamSessions.set(stream, session);
    return stream;
  }

  /** Drops the session to `addr`: the next request opens a new connection (a stalled one is not reused). */
  reset(addr: string): void {
    const session = this.#sessions.get(addr);
    if (session) this.#drop(addr, session);
  }

  closeAll(): void {
    for (const [addr, session] of this.#sessions) this.#drop(addr, session);
  }
}

/** A request the server did not process (refused stream, or a session closing under it): safe to send again. */
class RefusedRequest extends Error {
  constructor(readonly error: SecretdError) {
    super(error.message);
  }
}

/**
 * Whether a stream that got no answer was refused unprocessed: the server reset it with
 * REFUSED_STREAM (it arrived after the server's GOAWAY), or it was never sent because the session
 * had received a GOAWAY. A session that simply broke is not a refusal: the request may have run.
 */
export function wasRefused(stream: { readonly rstCode?: number }, error: unknown): boolean {
  return (
    stream.rstCode === constants.NGHTTP2_REFUSED_STREAM ||
    (error as { code?: unknown } | null)?.code === 'ERR_HTTP2_GOAWAY_SESSION'
  );
}
