/**
 * The leader's part in a root CA rotation (swarmkit's `ca/reconciler.go`, anchors §5.4): every
 * `caRotationReconcileMs` while this manager leads and a rotation is in progress,
 *
 *   - a node whose certificate does not come from the new root (store/root-rotation.ts
 *     `rotationProgress`) is asked to renew over its dispatcher session, at most
 *     `caRotationRenewBatchMax` nodes per pass and each again only after `caRotationRenewAgainMs`
 *     (its own renewer backs off on failures); a manager also renews by itself when it applies the
 *     rotation, so one without a session converges too;
 *   - once every node has converged, one `ca-rotation-finish` entry makes the new root the only
 *     one, with new join tokens (the store checks convergence again when it applies it); then every
 *     worker with a session is asked to renew once more, and so takes the new trust bundle without
 *     the old root (managers follow the store's root by themselves).
 *
 * A node that is down keeps the rotation open: it converges when it comes back with its still
 * valid certificate (every node trusts both roots until the finish), as in Docker; to finish
 * without it, remove it (`secretd node rm`).
 */
import { certDerFromPem, generateJoinTokens, type Random } from '../../crypto/index.ts';
import {
  caRotationReconcileMs,
  caRotationRenewAgainMs,
  caRotationRenewBatchMax,
} from '../../limits.ts';
import type { Timers } from '../../io/timers.ts';
import { rotationProgress, type Command, type Store } from '../store/index.ts';

export interface RotationDriverOptions {
  readonly store: () => Store | null;
  /** Whether this manager leads (its dispatcher serves the sessions) now. */
  readonly leading: () => boolean;
  /** Sends a node a renew-certificate message over its session; false: it has none here. */
  readonly askRenewal: (nodeId: string, reason: string) => boolean;
  readonly propose: (command: Command) => Promise<unknown>;
  readonly timers: Timers;
  readonly random: Random;
  readonly now: () => string;
  readonly log: (line: string) => void;
  /** Runs first on every pass, on every manager, leader or not (a manager's own convergence check). */
  readonly everyPass?: () => void;
}

export class RootRotationDriver {
  readonly #options: RotationDriverOptions;
  /** Node id → when (timers' ms) it was last asked to renew, and for which rotation. */
  readonly #asked = new Map<string, { rotationId: string; atMs: number }>();
  #stopTimer: (() => void) | null = null;
  #finishing = false;

  constructor(options: RotationDriverOptions) {
    this.#options = options;
  }

  start(): void {
    this.#stopTimer ??= this.#options.timers.every(caRotationReconcileMs, () => {
      this.#options.everyPass?.();
      this.pass();
    });
  }

  stop(): void {
    this.#stopTimer?.();
    this.#stopTimer = null;
  }

  /** One pass (also run at once when a rotation starts); does nothing unless leading a rotation. */
  pass(): void {
    const store = this.#options.store();
    const rotation = store?.cluster?.rootRotation;
    if (!store || !rotation || !this.#options.leading()) return;
    const { pending } = rotationProgress(rotation, store.nodes());
    if (pending.length === 0) {
      void this.#finish(store);
      return;
    }
    const nowMs = this.#options.timers.now();
    let asked = 0;
    for (const nodeId of pending) {
      if (asked >= caRotationRenewBatchMax) break;
      const last = this.#asked.get(nodeId);
      if (last?.rotationId === rotation.id && nowMs - last.atMs < caRotationRenewAgainMs) continue;
      const reason = `the root CA is rotating (rotation ${rotation.id})`;
      if (!this.#options.askRenewal(nodeId, reason)) continue;
      this.#asked.set(nodeId, { rotationId: rotation.id, atMs: nowMs });
      asked++;
    }
  }

  async #finish(store: Store): Promise<void> {
    const cluster = store.cluster;
    const rotation = cluster?.rootRotation;
    if (this.#finishing || !cluster || !rotation) return;
    this.#finishing = true;
    try {
      const digestOf = certDerFromPem(rotation.caCertPem);
      await this.#options.propose({
        op: 'ca-rotation-finish',
        at: this.#options.now(),
        rotationId: rotation.id,
        joinTokens: generateJoinTokens(digestOf, this.#options.random),
      });
      this.#options.log(
        `secretd: root CA rotation ${rotation.id} finished: every node has a certificate from the new root; the old root is no longer trusted and both join tokens changed`,
      );
      this.#asked.clear();
      // Managers follow the store's root by themselves; workers learn it from a renewal's answer.
      for (const node of store.nodes())
        if (node.role === 'worker')
          this.#options.askRenewal(
            node.id,
            'the root CA rotation finished: taking the new root as the only one trusted',
          );
    } catch (error) {
      this.#options.log(
        `secretd: finishing root CA rotation ${rotation.id} failed (tried again in ${caRotationReconcileMs / 1000} s): ${(error as Error).message}`,
      );
    } finally {
      this.#finishing = false;
    }
  }
}
