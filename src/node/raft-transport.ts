/**
 * Raft messages to other managers over HTTP/2 mutual TLS. One queue per peer; while a batch is in
 * flight, new messages wait and go together in the next one. Queues are bounded and a batch that
 * fails is dropped: Raft re-sends what matters (appends, heartbeats, votes) on its own schedule.
 */
import { raftPeerQueueMax } from '../limits.ts';
import type { MemberId, Message } from '../raft/types.ts';
import type { PeerClient } from './peer-client.ts';
import type { Transport } from './raft-node.ts';
import { encodeMessages } from './raft-wire.ts';

export const raftMessagesPath = '/secretd/raft/messages';

interface Peer {
  queue: Message[];
  sending: boolean;
  lastOkAt: number;
  failures: number;
}

export interface RaftTransportOptions {
  readonly client: PeerClient;
  /** The address of a member, from the store (or from the join answer before the store has it). */
  readonly resolve: (id: MemberId) => string | undefined;
  readonly timeoutMs: number;
}

export class RaftTransport implements Transport {
  readonly #options: RaftTransportOptions;
  readonly #peers = new Map<MemberId, Peer>();
  #closed = false;

  constructor(options: RaftTransportOptions) {
    this.#options = options;
  }

  send(messages: readonly Message[]): void {
    if (this.#closed) return;
    for (const message of messages) {
      const peer = this.#peer(message.to);
      if (peer.queue.length >= raftPeerQueueMax) peer.queue.shift();
      peer.queue.push(message);
    }
    for (const [id, peer] of this.#peers) if (!peer.sending && peer.queue.length > 0) void this.#pump(id, peer);
  }

  /** Whether the last exchange with this member succeeded recently. */
  reachable(id: MemberId, withinMs: number): boolean {
    const peer = this.#peers.get(id);
    return peer !== undefined && peer.failures === 0 && Date.now() - peer.lastOkAt < withinMs;
  }

  close(): void {
    this.#closed = true;
    this.#peers.clear();
  }

  #peer(id: MemberId): Peer {
    let peer = this.#peers.get(id);
    if (!peer) {
      peer = { queue: [], sending: false, lastOkAt: 0, failures: 0 };
      this.#peers.set(id, peer);
    }
    return peer;
  }

  async #pump(id: MemberId, peer: Peer): Promise<void> {
    peer.sending = true;
    try {
      while (peer.queue.length > 0 && !this.#closed) {
        const batch = peer.queue.splice(0);
        const addr = this.#options.resolve(id);
        if (!addr) {
          peer.failures++;
          continue;
        }
        try {
          const response = await this.#options.client.request(addr, 'POST', raftMessagesPath, encodeMessages(batch), { timeoutMs: this.#options.timeoutMs });
          if (response.status >= 200 && response.status < 300) {
            peer.failures = 0;
            peer.lastOkAt = Date.now();
          } else peer.failures++;
        } catch {
          peer.failures++;
          // A peer that is down should not cost a connection attempt per message.
          await new Promise((resolve) => setTimeout(resolve, Math.min(50 * peer.failures, 500)));
        }
      }
    } finally {
      peer.sending = false;
    }
  }
}
