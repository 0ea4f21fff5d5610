/**
 * Who may hold the TLS port, and for how long: clients that never finish must not exhaust the
 * manager's memory or descriptors (issue 11), and must never starve certified peers.
 *
 * A connection goes through three phases, each with its own budget:
 * - **handshaking** (accepted, TLS not done): closed after `tlsHandshakeTimeoutMs`. When too many
 *   are handshaking from one address, that address's *oldest* one is closed to make room; when too
 *   many are handshaking in all, the oldest one of the address holding the most. So a flood of
 *   stalled handshakes only shortens how long each is kept, and a certified peer's new connection
 *   (whose handshake takes milliseconds, or longer on a loaded machine) is not the one closed
 *   while the flood comes from fewer addresses than it has handshakes.
 * - **anonymous** (no client certificate: a node about to join): a small budget of its own, in all
 *   and per address; a new one beyond it is closed at once. Each is closed after
 *   `anonymousIdleTimeoutMs` with nothing in progress and after `anonymousConnectionLifetimeMs` in
 *   any case; over HTTP/2 it gets few streams and a small flow-control window.
 * - **certified** (a certificate signed by the cluster CA; server.ts closes any other): capped per
 *   address; closed when idle, `idleConnectionTimeoutMs` over HTTP/2 (a Raft stream or a dispatcher
 *   session is an open stream, so long-lived traffic is never cut) and `requestHeadersTimeoutMs`
 *   between HTTP/1.1 requests. Over HTTP/2 its flow-control windows are raised (each stream's to
 *   `certifiedStreamWindowBytes`, the connection's to `certifiedSessionWindowBytes`), so large
 *   values stream without waiting on WINDOW_UPDATEs.
 * All connections together are capped at `connectionsMax`; the admin socket is another server.
 *
 * Certified connections may carry a label (server.ts: the client certificate's serial), by which
 * they are closed at once, whatever they carry (`closeLabelled`: a certificate was revoked).
 *
 * Requests: a response that ends before its request body did closes the rest of the request, its
 * HTTP/2 stream (RST_STREAM) or its HTTP/1.1 connection, instead of reading the body into nothing.
 * Request bodies that routes buffer are counted per connection, and across anonymous connections.
 *
 * Bun's `node:http2` (checked by src/node/api/server.test.ts): `server.setTimeout` fires only for
 * HTTP/2 sessions and closes nothing, and an HTTP/2 session's `socket` is not the object the
 * 'connection' event gave; so the deadlines are this module's own timers, and a session is matched
 * to its connection by the peer's address and port.
 */
import {
  constants,
  type Http2SecureServer,
  type Http2ServerRequest,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import * as limits from '../../limits.ts';
import { attachBodyBudget, type BodyBudget } from './body-budget.ts';

export interface ConnectionLimits {
  readonly tlsHandshakeTimeoutMs: number;
  readonly requestHeadersTimeoutMs: number;
  readonly requestBodyIdleTimeoutMs: number;
  readonly requestBodyTimeoutMs: number;
  readonly idleConnectionTimeoutMs: number;
  readonly anonymousIdleTimeoutMs: number;
  readonly anonymousConnectionLifetimeMs: number;
  readonly connectionsMax: number;
  readonly certifiedConnectionsPerAddressMax: number;
  readonly handshakingConnectionsMax: number;
  readonly handshakingConnectionsPerAddressMax: number;
  readonly anonymousConnectionsMax: number;
  readonly anonymousConnectionsPerAddressMax: number;
  readonly anonymousStreamsMax: number;
  readonly anonymousStreamWindowBytes: number;
  readonly certifiedStreamWindowBytes: number;
  readonly certifiedSessionWindowBytes: number;
  readonly connectionBodyBytesMax: number;
  readonly anonymousBodyBytesMax: number;
}

/** The production values, from src/limits.ts (tests pass shorter deadlines and smaller caps). */
export const defaultConnectionLimits: ConnectionLimits = {
  tlsHandshakeTimeoutMs: limits.tlsHandshakeTimeoutMs,
  requestHeadersTimeoutMs: limits.requestHeadersTimeoutMs,
  requestBodyIdleTimeoutMs: limits.requestBodyIdleTimeoutMs,
  requestBodyTimeoutMs: limits.requestBodyTimeoutMs,
  idleConnectionTimeoutMs: limits.idleConnectionTimeoutMs,
  anonymousIdleTimeoutMs: limits.anonymousIdleTimeoutMs,
  anonymousConnectionLifetimeMs: limits.anonymousConnectionLifetimeMs,
  connectionsMax: limits.connectionsMax,
  certifiedConnectionsPerAddressMax: limits.certifiedConnectionsPerAddressMax,
  handshakingConnectionsMax: limits.handshakingConnectionsMax,
  handshakingConnectionsPerAddressMax: limits.handshakingConnectionsPerAddressMax,
  anonymousConnectionsMax: limits.anonymousConnectionsMax,
  anonymousConnectionsPerAddressMax: limits.anonymousConnectionsPerAddressMax,
  anonymousStreamsMax: limits.anonymousStreamsMax,
  anonymousStreamWindowBytes: limits.anonymousStreamWindowBytes,
  certifiedStreamWindowBytes: limits.certifiedStreamWindowBytes,
  certifiedSessionWindowBytes: limits.certifiedSessionWindowBytes,
  connectionBodyBytesMax: limits.connectionBodyBytesMax,
  anonymousBodyBytesMax: limits.anonymousBodyBytesMax,
};

type Phase = 'handshaking' | 'anonymous' | 'certified';

export interface ConnectionCounts {
  readonly handshaking: number;
  readonly anonymous: number;
  readonly certified: number;
  /** Request-body bytes buffered now by routes on anonymous connections. */
  readonly anonymousBodyBytes: number;
}

class Connection {
  phase: Phase = 'handshaking';
  http2 = false;
  session: ServerHttp2Session | null = null;
  /** Streams (HTTP/2) or requests (HTTP/1.1) in progress. */
  open = 0;
  bodyBytes = 0;
  closed = false;
  idleTimer: ReturnType<typeof setTimeout> | undefined;
  lifetimeTimer: ReturnType<typeof setTimeout> | undefined;
  budget: BodyBudget | null = null;
  label: string | null = null;
  constructor(
    readonly socket: Socket,
    readonly key: string,
    readonly address: string,
  ) {}
}

export class ConnectionGuard {
  readonly #limits: ConnectionLimits;
  readonly #certified: (socket: TLSSocket) => boolean;
  /** Every connection held, by the peer's address and port. */
  readonly #byKey = new Map<string, Connection>();
  readonly #bySession = new WeakMap<object, Connection>();
  /** Oldest first. */
  readonly #handshaking = new Set<Connection>();
  readonly #perAddress = new Map<string, Record<Phase, number>>();
  #anonymous = 0;
  #anonymousBodyBytes = 0;
  readonly #labelOf: ((socket: TLSSocket) => string | null) | undefined;
  readonly #byLabel = new Map<string, Set<Connection>>();

  /**
   * `certified`: whether a connection that finished its handshake presented a valid cluster
   * certificate; `labelOf`: the label of a certified connection, if any (none: no labels).
   */
  constructor(
    limitsIn: ConnectionLimits,
    certified: (socket: TLSSocket) => boolean,
    labelOf?: (socket: TLSSocket) => string | null,
  ) {
    this.#limits = limitsIn;
    this.#certified = certified;
    this.#labelOf = labelOf;
  }

  /** The labels of the connections held now. */
  labels(): string[] {
    return [...this.#byLabel.keys()];
  }

  /** Closes every connection labelled `label` at once (streams in progress included); returns how many. */
  closeLabelled(label: string): number {
    const connections = [...(this.#byLabel.get(label) ?? [])];
    for (const connection of connections) {
      this.#forget(connection);
      connection.session?.destroy();
      connection.socket.destroy();
    }
    return connections.length;
  }

  counts(): ConnectionCounts {
    let certified = 0;
    for (const connection of this.#byKey.values())
      if (connection.phase === 'certified') certified++;
    return {
      handshaking: this.#handshaking.size,
      anonymous: this.#anonymous,
      certified,
      anonymousBodyBytes: this.#anonymousBodyBytes,
    };
  }

  /** Install before the server's other listeners: requests get their budget before any route runs. */
  install(server: Http2SecureServer): void {
    server.on('connection', (socket: Socket) => this.#accepted(socket));
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      const connection = this.#byKey.get(keyOf(socket));
      if (connection) this.#secured(connection, socket, socket.alpnProtocol === 'h2');
    });
    server.prependListener('session', (session: ServerHttp2Session) => this.#session(session));
    server.prependListener(
      'request',
      (request: Http2ServerRequest | IncomingMessage, response: unknown) =>
        this.#request(request, response as ServerResponse),
    );
  }

  /**
   * Wraps the server's 'stream' listeners (install after every other 'stream' listener, e.g. the
   * stream routes): an anonymous session's streams beyond its budget are refused before any route
   * sees them, every stream is counted, and a stream answered before its body ended is closed.
   */
  guardStreams(server: Http2SecureServer): void {
    const others = server.listeners('stream') as ((
      stream: ServerHttp2Stream,
      ...rest: unknown[]
    ) => void)[];
    server.removeAllListeners('stream');
    server.on('stream', (stream: ServerHttp2Stream, ...rest: unknown[]) => {
      const connection = stream.session ? this.#bySession.get(stream.session) : undefined;
      if (connection) {
        if (
          connection.phase === 'anonymous' &&
          connection.open >= this.#limits.anonymousStreamsMax
        ) {
          stream.close(constants.NGHTTP2_REFUSED_STREAM);
          return;
        }
        this.#busy(connection);
        stream.once('close', () => this.#done(connection));
        attachBodyBudget(stream, this.#budget(connection));
      }
      stream.once('finish', () => {
        // Answered while the client is still sending: RST_STREAM(NO_ERROR) asks it to stop (RFC
        // 9113 §8.1), and nothing more of the body is read.
        if (!stream.readableEnded && !stream.closed && !stream.destroyed)
          stream.close(constants.NGHTTP2_NO_ERROR);
      });
      for (const listener of others) listener.call(server, stream, ...rest);
    });
  }

  #accepted(socket: Socket): void {
    const address = socket.remoteAddress ?? '';
    if (this.#byKey.size >= this.#limits.connectionsMax) {
      socket.destroy();
      return;
    }
    const connection = new Connection(socket, keyOf(socket), address);
    this.#byKey.set(connection.key, connection);
    this.#handshaking.add(connection);
    this.#count(address, 'handshaking', 1);
    socket.once('close', () => this.#forget(connection));
    this.#arm(connection, this.#limits.tlsHandshakeTimeoutMs);
    // Room for the newcomer: the oldest stalled handshake of the address holding the most goes
    // first, so a flood from a few addresses never takes a handshake from anyone else.
    if (this.#handshaking.size > this.#limits.handshakingConnectionsMax)
      this.#closeOldestHandshakeFrom(this.#busiestHandshakingAddress());
    if (this.#countOf(address).handshaking > this.#limits.handshakingConnectionsPerAddressMax)
      this.#closeOldestHandshakeFrom(address);
  }

  /** The address with the most connections handshaking (the first seen of those tied). */
  #busiestHandshakingAddress(): string {
    let busiest = '';
    let most = 0;
    for (const [address, counts] of this.#perAddress)
      if (counts.handshaking > most) {
        busiest = address;
        most = counts.handshaking;
      }
    return busiest;
  }

  #closeOldestHandshakeFrom(address: string): void {
    for (const connection of this.#handshaking)
      if (connection.address === address) {
        this.#close(connection);
        return;
      }
  }

  /** The handshake is done: the connection is anonymous or certified from now on (first of 'session' and 'secureConnection'). */
  #secured(connection: Connection, socket: TLSSocket, http2: boolean): void {
    if (connection.phase !== 'handshaking' || connection.closed) return;
    this.#handshaking.delete(connection);
    this.#count(connection.address, 'handshaking', -1);
    connection.http2 = http2;
    const phase: Phase = this.#certified(socket) ? 'certified' : 'anonymous';
    connection.phase = phase;
    this.#count(connection.address, phase, 1);
    if (phase === 'anonymous') {
      this.#anonymous++;
      if (
        this.#anonymous > this.#limits.anonymousConnectionsMax ||
        this.#countOf(connection.address).anonymous > this.#limits.anonymousConnectionsPerAddressMax
      ) {
        this.#close(connection);
        return;
      }
      connection.lifetimeTimer = setTimeout(
        () => this.#close(connection),
        this.#limits.anonymousConnectionLifetimeMs,
      );
      connection.lifetimeTimer.unref?.();
    } else if (
      this.#countOf(connection.address).certified > this.#limits.certifiedConnectionsPerAddressMax
    ) {
      this.#close(connection);
      return;
    } else {
      const label = this.#labelOf?.(socket) ?? null;
      if (label !== null) {
        connection.label = label;
        let labelled = this.#byLabel.get(label);
        if (!labelled) this.#byLabel.set(label, (labelled = new Set()));
        labelled.add(connection);
      }
    }
    if (connection.open === 0) this.#arm(connection, this.#idleTimeoutMs(connection));
    else clearTimeout(connection.idleTimer);
  }

  #session(session: ServerHttp2Session): void {
    const socket = session.socket as TLSSocket;
    const connection = this.#byKey.get(keyOf(socket));
    if (!connection) return;
    connection.session = session;
    this.#bySession.set(session, connection);
    this.#secured(connection, socket, true);
    if (connection.closed) return;
    if (connection.phase === 'anonymous') {
      session.settings({
        maxConcurrentStreams: this.#limits.anonymousStreamsMax,
        initialWindowSize: this.#limits.anonymousStreamWindowBytes,
      });
    } else if (connection.phase === 'certified') {
      // HTTP/2's default windows (64 KiB for each stream and for the whole connection) make large
      // bodies wait on WINDOW_UPDATEs, all of them whenever the event loop is busy.
      session.settings({ initialWindowSize: this.#limits.certifiedStreamWindowBytes });
      session.setLocalWindowSize?.(this.#limits.certifiedSessionWindowBytes);
    }
  }

  #request(request: Http2ServerRequest | IncomingMessage, response: ServerResponse): void {
    if (request.httpVersionMajor === 2) {
      // HTTP/2 (the compatibility layer): the stream is counted by guardStreams.
      const session = (request as Http2ServerRequest).stream?.session;
      const connection = session ? this.#bySession.get(session) : undefined;
      if (connection) attachBodyBudget(request, this.#budget(connection));
      return;
    }
    const socket = (request as IncomingMessage).socket;
    const connection = this.#byKey.get(keyOf(socket));
    if (!connection) return;
    attachBodyBudget(request, this.#budget(connection));
    this.#busy(connection);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      this.#done(connection);
      if (!(request as IncomingMessage).complete && !socket.destroyed) {
        // Answered before the body ended: the connection goes, the rest of the body is never read.
        socket.end();
        socket.once('finish', () => socket.destroy());
        setTimeout(() => socket.destroy(), 1000).unref?.();
      }
    };
    response.once('finish', finish);
    response.once('close', finish);
  }

  #budget(connection: Connection): BodyBudget {
    return (connection.budget ??= {
      reserve: (bytes) => {
        if (connection.closed) return false;
        if (connection.bodyBytes + bytes > this.#limits.connectionBodyBytesMax) return false;
        const anonymous = connection.phase !== 'certified';
        if (anonymous && this.#anonymousBodyBytes + bytes > this.#limits.anonymousBodyBytesMax)
          return false;
        connection.bodyBytes += bytes;
        if (anonymous) this.#anonymousBodyBytes += bytes;
        return true;
      },
      release: (bytes) => {
        // A closed connection gave its bytes back when it was forgotten.
        if (connection.closed) return;
        connection.bodyBytes -= bytes;
        if (connection.phase !== 'certified') this.#anonymousBodyBytes -= bytes;
      },
      idleTimeoutMs: this.#limits.requestBodyIdleTimeoutMs,
      totalTimeoutMs: this.#limits.requestBodyTimeoutMs,
    });
  }

  #busy(connection: Connection): void {
    connection.open++;
    clearTimeout(connection.idleTimer);
  }

  #done(connection: Connection): void {
    connection.open--;
    if (connection.open === 0 && connection.phase !== 'handshaking' && !connection.closed)
      this.#arm(connection, this.#idleTimeoutMs(connection));
  }

  #idleTimeoutMs(connection: Connection): number {
    if (connection.phase === 'anonymous') return this.#limits.anonymousIdleTimeoutMs;
    return connection.http2
      ? this.#limits.idleConnectionTimeoutMs
      : this.#limits.requestHeadersTimeoutMs;
  }

  #arm(connection: Connection, ms: number): void {
    clearTimeout(connection.idleTimer);
    connection.idleTimer = setTimeout(() => this.#close(connection), ms);
    connection.idleTimer.unref?.();
  }

  #close(connection: Connection): void {
    if (connection.closed) return;
    // Counted out now: a socket being destroyed no longer holds a place in any budget.
    this.#forget(connection);
    const session = connection.session;
    if (
      session &&
      !session.destroyed &&
      connection.phase === 'certified' &&
      connection.open === 0
    ) {
      // An idle certified session: GOAWAY first, so the peer opens its next stream elsewhere.
      session.close();
      setTimeout(() => connection.socket.destroy(), 1000).unref?.();
      return;
    }
    session?.destroy();
    connection.socket.destroy();
  }

  #forget(connection: Connection): void {
    if (connection.closed) return;
    connection.closed = true;
    clearTimeout(connection.idleTimer);
    clearTimeout(connection.lifetimeTimer);
    if (this.#byKey.get(connection.key) === connection) this.#byKey.delete(connection.key);
    this.#handshaking.delete(connection);
    this.#count(connection.address, connection.phase, -1);
    if (connection.label !== null) {
      const labelled = this.#byLabel.get(connection.label);
      labelled?.delete(connection);
      if (labelled?.size === 0) this.#byLabel.delete(connection.label);
    }
    if (connection.phase === 'anonymous') {
      this.#anonymous--;
      this.#anonymousBodyBytes -= connection.bodyBytes;
    }
    connection.bodyBytes = 0;
  }

  #countOf(address: string): Record<Phase, number> {
    let counts = this.#perAddress.get(address);
    if (!counts)
      this.#perAddress.set(address, (counts = { handshaking: 0, anonymous: 0, certified: 0 }));
    return counts;
  }

  #count(address: string, phase: Phase, delta: number): void {
    const counts = this.#countOf(address);
    counts[phase] += delta;
    if (counts.handshaking === 0 && counts.anonymous === 0 && counts.certified === 0)
      this.#perAddress.delete(address);
  }
}

function keyOf(socket: Socket): string {
  return `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
}
