/**
 * What this node holds by grant (`secretd secret grant NAME --node-constraint …`): secrets the
 * leader's dispatcher pushed here because this node matches one of their grants, outside of any
 * service's task. One version per secret (its grant's pinned version, or the newest), in memory
 * only: a withdrawn secret (grant gone, node no longer matching, secret removed) is zeroed before
 * anyone hears of it, and everything is zeroed when the agent stops.
 *
 * The Agent owns one instance (`agent.granted`) and fills it from its session's messages; nothing
 * else writes here. Readers (the node-local container service) call `get` and copy the data out at
 * once, never keeping the array: it is this node's only copy and is zeroed in place on withdraw.
 */

import { fromBase64 } from '../store/index.ts';
import type { SessionMessage } from './messages.ts';

/** A granted secret's value as this node holds it (the data is the agent's copy: copy it out). */
export interface GrantedSecret {
  readonly secretId: string;
  readonly name: string;
  readonly version: number;
  readonly data: Uint8Array;
}

/** What `list` tells: never values. */
export interface GrantedSecretInfo {
  readonly secretId: string;
  readonly name: string;
  readonly version: number;
}

/** A change of what this node holds: a version now held, or null when withdrawn (data already zeroed). */
export interface GrantedChange {
  readonly secretId: string;
  readonly name: string;
  readonly version: number | null;
}

export type GrantedListener = (change: GrantedChange) => void;

interface Held {
  name: string;
  version: number;
  data: Uint8Array;
}

export class GrantedSecrets {
  readonly #held = new Map<string, Held>();
  readonly #listeners = new Set<GrantedListener>();
  readonly #onListenerError: (error: unknown) => void;

  constructor(onListenerError: (error: unknown) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  /** The held secret by id, or else by name; undefined when this node holds no such grant. */
  get(nameOrId: string): GrantedSecret | undefined {
    const byId = this.#held.get(nameOrId);
    if (byId !== undefined) return { secretId: nameOrId, ...byId };
    for (const [secretId, held] of this.#held)
      if (held.name === nameOrId) return { secretId, ...held };
    return undefined;
  }

  /** What this node holds by grant, by name: never values. */
  list(): GrantedSecretInfo[] {
    return [...this.#held]
      .map(([secretId, { name, version }]) => ({ secretId, name, version }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.secretId.localeCompare(b.secretId));
  }

  /** Hears every change after it is made; returns the unsubscribe. A throwing listener does not stop the others. */
  onChange(listener: GrantedListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The agent only: this node now holds `version` of the secret, taking ownership of `data`. A
   * version it already holds changes nothing (and `data` is zeroed); another version replaces the
   * old one, which is zeroed once the listeners have heard of the new one.
   */
  hold(secretId: string, name: string, version: number, data: Uint8Array): void {
    const old = this.#held.get(secretId);
    if (old !== undefined && old.version === version) {
      old.name = name;
      if (old.data !== data) data.fill(0);
      return;
    }
    this.#held.set(secretId, { name, version, data });
    this.#emit({ secretId, name, version });
    old?.data.fill(0);
  }

  /** The agent only: the secret is withdrawn from this node; its data is zeroed, then the listeners hear of it. */
  withdraw(secretId: string): void {
    const old = this.#held.get(secretId);
    if (old === undefined) return;
    old.data.fill(0);
    this.#held.delete(secretId);
    this.#emit({ secretId, name: old.name, version: null });
  }

  /** The agent only: withdraws everything but `keep` (secret ids); with no argument, everything. */
  withdrawAllBut(keep: ReadonlySet<string> = new Set()): void {
    for (const secretId of [...this.#held.keys()]) if (!keep.has(secretId)) this.withdraw(secretId);
  }

  /**
   * The agent only: what an assignments message from the dispatcher says this node holds by grant.
   * A full set names every one (the rest are withdrawn), changes name new versions and
   * withdrawals. Returns how many values were received (versions not held before).
   */
  apply(message: Extract<SessionMessage, { type: 'assignments' }>): number {
    const grants = message.grants ?? [];
    if (message.full) this.withdrawAllBut(new Set(grants.map((g) => g.id)));
    for (const id of message.removedGrants ?? []) this.withdraw(id);
    let received = 0;
    for (const grant of grants) {
      if (this.#held.get(grant.id)?.version === grant.version) continue;
      this.hold(grant.id, grant.name, grant.version, fromBase64(grant.data));
      received++;
    }
    return received;
  }

  /** How many secrets this node holds by grant. */
  get size(): number {
    return this.#held.size;
  }

  #emit(change: GrantedChange): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch (error) {
        this.#onListenerError(error);
      }
    }
  }
}
