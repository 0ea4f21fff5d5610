/**
 * Clients that never finish, for the exhaustion tests (issue 11): stalled TLS handshakes, idle
 * anonymous TLS connections, HTTP/2 streams whose large body never ends, slow HTTP/1.1 headers.
 * Loopback only; every socket is tracked by an `AttackPool` and destroyed when it is disposed.
 */
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { readdirSync, readFileSync } from 'node:fs';

export interface Target {
  readonly host: string;
  readonly port: number;
  /** The cluster CA, so the attacker's TLS is otherwise well-formed. */
  readonly ca: string;
}

/** Something that ends in a 'close' event, and whether it has. */
export interface Tracked {
  readonly closed: Promise<void>;
  isClosed(): boolean;
}

export interface TrackedSocket<T> extends Tracked {
  readonly socket: T;
  /** Connected (TLS: handshake done); rejects if it closed first. */
  readonly ready: Promise<void>;
}

function track(emitter: { once(event: 'close', listener: () => void): unknown }): Tracked {
  let done = false;
  const closed = new Promise<void>((resolve) =>
    emitter.once('close', () => {
      done = true;
      resolve();
    }),
  );
  return { closed, isClosed: () => done };
}

function readyOn(
  emitter: { once(event: string, listener: () => void): unknown },
  event: string,
): Promise<void> {
  const ready = new Promise<void>((resolve, reject) => {
    emitter.once(event, () => resolve());
    emitter.once('close', () => reject(new Error(`closed before '${event}'`)));
  });
  ready.catch(() => {});
  return ready;
}

/** Every socket, session and stream an attack opens, all destroyed on dispose. */
export class AttackPool implements AsyncDisposable {
  readonly #destroyers: (() => void)[] = [];

  add<T extends { destroy(): unknown }>(thing: T): T {
    this.#destroyers.push(() => thing.destroy());
    return thing;
  }

  /** A TCP connection that never starts its TLS handshake. */
  stalledHandshake(target: Target, localAddress?: string): TrackedSocket<Socket> {
    const socket = this.add(
      netConnect({
        host: target.host,
        port: target.port,
        ...(localAddress ? { localAddress } : {}),
      }),
    );
    socket.on('error', () => {});
    return { socket, ...track(socket), ready: readyOn(socket, 'connect') };
  }

  /** A TLS connection (without a client certificate unless given one) that, once connected, sends nothing. */
  tls(
    target: Target,
    options: { alpn?: 'h2' | 'http/1.1'; localAddress?: string; cert?: string; key?: string } = {},
  ): TrackedSocket<TLSSocket> {
    const socket = this.add(
      tlsConnect({
        host: target.host,
        port: target.port,
        ca: target.ca,
        servername: 'secretd-manager',
        ALPNProtocols: [options.alpn ?? 'h2'],
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
        ...(options.cert && options.key ? { cert: options.cert, key: options.key } : {}),
      }),
    );
    socket.on('error', () => {});
    // Read (into nothing): a Bun TLS socket that negotiated h2 and is not read never sees the server's FIN.
    socket.on('data', () => {});
    return { socket, ...track(socket), ready: readyOn(socket, 'secureConnect') };
  }

  /** An HTTP/2 session (with `credentials` or without a certificate). */
  session(
    target: Target,
    credentials: { cert?: string; key?: string } = {},
    localAddress?: string,
  ): TrackedSocket<ClientHttp2Session> {
    const session = this.add(
      h2connect(`https://${target.host}:${target.port}`, {
        ca: target.ca,
        servername: 'secretd-manager',
        ...credentials,
        ...(localAddress ? { localAddress } : {}),
      }),
    );
    session.on('error', () => {});
    return { socket: session, ...track(session), ready: readyOn(session, 'connect') };
  }

  /**
   * A POST whose body starts and never ends: `bytes` are written (as far as flow control lets
   * them go) and the stream is left open. Resolves with the answer's status, if one comes.
   */
  stalledBody(
    session: ClientHttp2Session,
    path: string,
    bytes: number,
    headers: Record<string, string> = {},
  ): Tracked & { readonly stream: ClientHttp2Stream; readonly status: Promise<number> } {
    const stream = this.add(
      session.request(
        { ':method': 'POST', ':path': path, 'content-type': 'application/json', ...headers },
        { endStream: false },
      ),
    );
    stream.on('error', () => {});
    stream.on('data', () => {});
    const status = new Promise<number>((resolve) => {
      stream.once('response', (h) => resolve(Number(h[':status'])));
      stream.once('close', () => resolve(0));
    });
    if (bytes > 0) stream.write(Buffer.alloc(bytes, 0x7b));
    return { stream, ...track(stream), status };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const destroy of this.#destroyers.splice(0)) {
      try {
        destroy();
      } catch {
        // Already gone.
      }
    }
  }
}

/** A process's resident memory and open descriptors, from /proc. */
export function footprint(pid: number): { rssBytes: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN);
  return { rssBytes: kib * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** Waits for `tracked` to close; fails naming `what` after `timeoutMs`. */
export async function closesWithin(
  tracked: Tracked,
  timeoutMs: number,
  what: string,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      tracked.closed,
      new Promise<never>(
        (_, reject) =>
          (timer = setTimeout(
            () => reject(new Error(`${what} was still open after ${timeoutMs} ms`)),
            timeoutMs,
          )),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
