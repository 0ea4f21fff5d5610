/**
 * Raft messages to other managers over HTTP/2 mutual TLS, streamed as etcd does: one long-lived
 * stream per peer carries framed batches (raft-frames.ts), and the peer answers on the same stream
 * with a byte now and then to say it is receiving. Messages queue while a stream is being opened or
 * is full (HTTP/2 flow control), in a bounded queue; whatever a broken stream loses, Raft sends
 * again on its own schedule (appends, heartbeats, votes).
 */
import { raftPeerQueueMax } from '../../limits.ts';
import { systemTimers, type Timers } from '../../io/timers.ts';
import type { MemberId, Message } from '../../raft/types.ts';
import type { PeerLink, PeerStream } from '../peers/index.ts';
import type { Transport } from './raft-node.ts';
import { frame } from './frames.ts';
import { encodeMessages } from './wire.ts';
import { peerPaths } from '../peers/index.ts';

export const raftStreamPath = peerPaths.raftStream;

interface Peer {
  readonly id: MemberId;
  queue: Message[];
  stream: PeerStream | null;
  addr: string | null;
  /** False from a write the stream could not take until its `drain`. */
  writable: boolean;
  /** A flush is queued: at the end of this turn of the event loop, or (`later`) at the next. */
  flushQueued: 'no' | 'now' | 'later';
  /** Cancels the pending retry, if one is armed. */
  retryTimer: (() => void) | null;
  /** No new stream before this time (ms on the Timers clock): a peer that is down costs one attempt per backoff. */
  retryAt: number;
  failures: number;
  /** When the peer last acknowledged a frame; -Infinity until it has. */
  lastOkAt: number;
  /** When the oldest frame not yet acknowledged was written; null when all are. */
  unackedSince: number | null;
}

export interface RaftTransportOptions {
  readonly client: PeerLink;
  /** The address of a member, from the store (or from the join answer before the store has it). */
  readonly resolve: (id: MemberId) => string | undefined;
  /** A stream whose frames go unacknowledged this long is dropped, with its connection. */
  readonly timeoutMs: number;
  /** The clock and timers (default: the system's); the simulator passes simulated time. */
  readonly timers?: Timers;
}

export class RaftTransport implements Transport {
  readonly #options: RaftTransportOptions;
  readonly #peers = new Map<MemberId, Peer>();
  readonly #timers: Timers;
  #closed = false;

  constructor(options: RaftTransportOptions) {
    this.#options = options;
    this.#timers = options.timers ?? systemTimers;
  }

  send(messages: readonly Message[], options: { readonly later?: boolean } = {}): void {
    if (this.#closed) return;
    for (const message of messages) {
      const peer = this.#peer(message.to);
      if (peer.queue.length >= raftPeerQueueMax) peer.queue.shift();
      peer.queue.push(message);
      // Everything sent in this turn of the event loop goes out as one frame; what may wait, in
      // the next turn, unless something that may not comes first and takes it along.
      if (options.later === true) {
        if (peer.flushQueued !== 'no') continue;
        peer.flushQueued = 'later';
        this.#timers.turn(() => {
          if (peer.flushQueued === 'later') this.#flush(peer);
        });
      } else if (peer.flushQueued !== 'now') {
        peer.flushQueued = 'now';
        queueMicrotask(() => this.#flush(peer));
      }
    }
  }

  /** Whether the peer acknowledged frames recently, with nothing outstanding for too long. */
  reachable(id: MemberId, withinMs: number): boolean {
    const peer = this.#peers.get(id);
    return (
      peer !== undefined && peer.failures === 0 && this.#timers.now() - peer.lastOkAt < withinMs
    );
  }

  close(): void {
    this.#closed = true;
    for (const peer of this.#peers.values()) {
      peer.retryTimer?.();
      peer.stream?.close();
    }
    this.#peers.clear();
  }

  #peer(id: MemberId): Peer {
    let peer = this.#peers.get(id);
    if (!peer) {
      peer = {
        id,
        queue: [],
        stream: null,
        addr: null,
        writable: true,
        flushQueued: 'no',
        retryTimer: null,
        retryAt: -Infinity,
        failures: 0,
        lastOkAt: -Infinity,
        unackedSince: null,
      };
      this.#peers.set(id, peer);
    }
    return peer;
  }

  #flush(peer: Peer): void {
    peer.flushQueued = 'no';
    if (this.#closed || peer.queue.length === 0) return;
    const now = this.#timers.now();
    if (
      peer.stream &&
      peer.unackedSince !== null &&
      now - peer.unackedSince > this.#options.timeoutMs
    )
      this.#fail(peer, true);
    if (peer.stream && this.#options.client.retired(peer.stream)) this.#moveOff(peer);
    if (!peer.stream && !this.#open(peer, now)) return;
    if (!peer.writable) return; // `drain` flushes
    const ok = peer.stream!.write(frame(encodeMessages(withoutStaleAppends(peer.queue.splice(0)))));
    peer.unackedSince ??= now;
    if (!ok) peer.writable = false;
  }

  /** Opens the stream to `peer` unless it is backing off; false when there is none to write to. */
  #open(peer: Peer, now: number): boolean {
    if (now < peer.retryAt) {
      peer.retryTimer ??= this.#timers.after(peer.retryAt - now, () => {
        peer.retryTimer = null;
        this.#flush(peer);
      });
      return false;
    }
    const addr = this.#options.resolve(peer.id);
    if (!addr) {
      this.#backOff(peer, now);
      return false;
    }
    let stream: PeerStream;
    try {
      stream = this.#options.client.openStream(addr, raftStreamPath);
    } catch {
      this.#backOff(peer, now);
      return false;
    }
    peer.stream = stream;
    peer.addr = addr;
    peer.writable = true;
    peer.unackedSince = null;
    stream.on('response', (headers) => {
      if (Number(headers[':status']) !== 200 && peer.stream === stream) this.#fail(peer, false);
    });
    stream.on('data', () => {
      if (peer.stream !== stream) return;
      peer.failures = 0;
      peer.lastOkAt = this.#timers.now();
      peer.unackedSince = null;
    });
    stream.on('drain', () => {
      if (peer.stream !== stream) return;
      peer.writable = true;
      this.#flush(peer);
    });
    stream.on('error', () => {});
    stream.on('close', () => {
      if (peer.stream === stream) this.#fail(peer, false);
    });
    return true;
  }

  /**
   * The stream's connection was retired (this node renewed its certificate, or the peer sent a
   * GOAWAY): it ends after what was written, which still arrives, and the next frame opens a new
   * stream on a new connection, at once and without a back-off.
   */
  #moveOff(peer: Peer): void {
    const stream = peer.stream!;
    peer.stream = null;
    peer.unackedSince = null;
    if (!stream.closed) stream.end();
  }

  /** The stream is gone: back off, and drop the connection too when it stalled (a partition, a stopped peer). */
  #fail(peer: Peer, stalled: boolean): void {
    const stream = peer.stream;
    peer.stream = null;
    peer.unackedSince = null;
    if (stream && !stream.closed) stream.close();
    if (stalled && peer.addr) this.#options.client.reset(peer.addr);
    this.#backOff(peer, this.#timers.now());
  }

  #backOff(peer: Peer, now: number): void {
    peer.failures++;
    peer.retryAt = now + Math.min(50 * peer.failures, 500);
    if (peer.queue.length > 0 && !peer.retryTimer) {
      peer.retryTimer = this.#timers.after(peer.retryAt - now, () => {
        peer.retryTimer = null;
        this.#flush(peer);
      });
    }
  }
}

/**
 * The batch without each append that carries no entries and is followed by another append in the
 * same term: that one carries a commit index at least as new (a leader's commit only grows in its
 * term), and it is answered too, so the empty one adds nothing but a message each way.
 */
export function withoutStaleAppends(batch: Message[]): Message[] {
  let lastAppendTerm = -1;
  let stale: Set<number> | null = null;
  for (let i = batch.length - 1; i >= 0; i--) {
    const message = batch[i]!;
    if (message.type !== 'append') continue;
    if (message.entries.length === 0 && message.term === lastAppendTerm)
      (stale ??= new Set()).add(i);
    lastAppendTerm = Math.max(lastAppendTerm, message.term);
  }
  return stale === null ? batch : batch.filter((_, i) => !stale.has(i));
}
