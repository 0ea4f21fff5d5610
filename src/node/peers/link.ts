/**
 * What a node needs of its link to the managers, as the Raft transport, the leader router, the
 * agent, the certificate renewer and the revocation check use it: one request, a stream of lines
 * (the dispatcher session), a long-lived stream of bytes (Raft). `PeerClient` is the real one
 * (HTTP/2 over mutual TLS); the simulator's link delivers to the other managers' API in memory.
 */
import type { PeerResponse, PeerTls } from './peer-client.ts';

/** The long-lived stream the Raft transport writes frames to; node:http2's client stream is one. */
export interface PeerStream {
  readonly closed: boolean;
  /** False when the stream cannot take more now: `drain` follows. */
  write(chunk: Uint8Array): boolean;
  /** Ends the stream after what was written (a graceful close). */
  end(): void;
  close(code?: number): void;
  on(event: 'response', listener: (headers: { readonly ':status'?: unknown }) => void): unknown;
  on(event: 'data', listener: (chunk: Uint8Array) => void): unknown;
  on(event: 'drain' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** What a line stream (the dispatcher session) tells its owner. */
export interface LineHandlers {
  readonly onLine: (line: string) => void;
  readonly onEnd: (error: Error | null) => void;
  /**
   * Its connection takes no new stream (a renewal retired it, or the server's GOAWAY): what it
   * carries still arrives, and the owner should open its next stream now, on a new connection.
   */
  readonly onRetired?: () => void;
}

/** An open line stream, or the answer that refused it (`status` other than 200, with its body). */
export interface LineStream {
  readonly status: number;
  readonly body: string;
  close(): void;
}

export interface PeerLink {
  request(
    addr: string,
    method: string,
    path: string,
    body: Uint8Array | null,
    options: { timeoutMs: number; contentType?: string },
  ): Promise<PeerResponse>;
  openLines(addr: string, path: string, handlers: LineHandlers): Promise<LineStream>;
  /** Throws when no connection can be opened; later failures arrive as the stream's events. */
  openStream(addr: string, path: string): PeerStream;
  /**
   * Whether `stream`'s connection takes no new stream (retired by a renewal or the server's
   * GOAWAY): the next frame goes on a new stream.
   */
  retired(stream: PeerStream): boolean;
  /** Drops the connection to `addr`: the next request opens a new one. */
  reset(addr: string): void;
  /** A renewed certificate: connections opened from now on present it. */
  setTls(tls: PeerTls): void;
  closeAll(): void;
}
