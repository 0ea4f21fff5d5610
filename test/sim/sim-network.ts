/**
 * The network between members: each Raft message is encoded with the production wire format
 * (src/node/raft-io/wire.ts), so members share no objects, and delivered after a seeded delay.
 *
 * Faults: a message may be dropped, duplicated, or held back long enough to arrive after later
 * ones (reordering); a link may be cut in one direction or both. A cut link drops what is sent
 * on it and what was in flight on it when delivery is due. Partition shapes (majority/minority,
 * isolated node, bridge, one-way, flapping) are built from cut links by the nemesis.
 */
import type { Message } from '../../src/raft/types.ts';
import { decodeMessages, encodeMessages } from '../../src/node/raft-io/index.ts';
import type { Prng } from './prng.ts';
import type { Scheduler } from './scheduler.ts';

export interface NetworkFaults {
  /** One-way delay, in ms. */
  delayMs: readonly [number, number];
  /** Chance that a message is held back by up to `reorderMs` more, so later ones overtake it. */
  reorderRate: number;
  reorderMs: number;
  dropRate: number;
  duplicateRate: number;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  cut: number;
}

export class SimNetwork {
  readonly #scheduler: Scheduler;
  readonly #prng: Prng;
  readonly #size: number;
  readonly #indexOf: ReadonlyMap<string, number>;
  readonly #deliver: (to: number, message: Message) => void;
  /** #cut[from * size + to]: the link from → to drops everything. */
  readonly #cut: boolean[];
  faults: NetworkFaults;
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, cut: 0 };

  constructor(
    scheduler: Scheduler,
    prng: Prng,
    ids: readonly string[],
    faults: NetworkFaults,
    deliver: (to: number, message: Message) => void,
  ) {
    this.#scheduler = scheduler;
    this.#prng = prng;
    this.#size = ids.length;
    this.#indexOf = new Map(ids.map((id, i) => [id, i]));
    this.#cut = new Array<boolean>(ids.length * ids.length).fill(false);
    this.faults = faults;
    this.#deliver = deliver;
  }

  send(from: number, messages: readonly Message[]): void {
    for (const message of messages) {
      const to = this.#indexOf.get(message.to);
      if (to === undefined) throw new Error(`Message to unknown member ${message.to}`);
      this.stats.sent++;
      if (this.isCut(from, to)) {
        this.stats.cut++;
        continue;
      }
      if (this.#prng.chance(this.faults.dropRate)) {
        this.stats.dropped++;
        continue;
      }
      const wire = encodeMessages([message]);
      const copies = this.#prng.chance(this.faults.duplicateRate) ? 2 : 1;
      if (copies > 1) this.stats.duplicated++;
      for (let copy = 0; copy < copies; copy++) this.#schedule(from, to, wire);
    }
  }

  isCut(from: number, to: number): boolean {
    return this.#cut[from * this.#size + to] === true;
  }

  setCut(from: number, to: number, cut: boolean): void {
    if (from !== to) this.#cut[from * this.#size + to] = cut;
  }

  /** Cuts every link between a member of `a` and a member of `b`, both ways. */
  separate(a: readonly number[], b: readonly number[]): void {
    for (const x of a) {
      for (const y of b) {
        this.setCut(x, y, true);
        this.setCut(y, x, true);
      }
    }
  }

  heal(): void {
    this.#cut.fill(false);
  }

  /** Human-readable cut links, for the trace. */
  describe(): string {
    const links: string[] = [];
    for (let from = 0; from < this.#size; from++) {
      for (let to = 0; to < this.#size; to++)
        if (this.isCut(from, to)) links.push(`${from}->${to}`);
    }
    return links.length === 0 ? 'none' : links.join(' ');
  }

  #schedule(from: number, to: number, wire: Uint8Array): void {
    const [lo, hi] = this.faults.delayMs;
    let delay = this.#prng.between(lo, hi);
    if (this.#prng.chance(this.faults.reorderRate))
      delay += this.#prng.float() * this.faults.reorderMs;
    this.#scheduler.after(delay, to, () => {
      if (this.isCut(from, to)) {
        this.stats.cut++;
        return;
      }
      const [message] = decodeMessages(wire);
      this.stats.delivered++;
      this.#deliver(to, message!);
    });
  }
}
