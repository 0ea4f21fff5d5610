/**
 * The manager's side of the audit trail (Backend.audit): the recorder of records that no state
 * change carries (audit/recorder.ts), proposed through the leader router; reading the trail from
 * the store; waking follow streams when records are appended (or a snapshot replaced the store).
 */
import type { Random } from '../../crypto/index.ts';
import type { Timers } from '../../io/timers.ts';
import {
  AuditRecorder,
  type AuditBackend,
  type AuditEntry,
  type AuditSink,
  type AuditTrail,
} from '../audit/index.ts';
import { auditKeptOf, type Store } from '../store/index.ts';
import type { LeaderRouter } from './leader-router.ts';

export interface ManagerAuditOptions {
  readonly router: LeaderRouter;
  /** The store this manager holds now (null while locked). */
  readonly store: () => Store | null;
  readonly timers: Timers;
  readonly now: () => string;
  readonly random: Random;
  readonly log: (line: string) => void;
}

export class ManagerAudit implements AuditBackend {
  readonly recorder: AuditRecorder;
  readonly sink: AuditSink;
  readonly #options: ManagerAuditOptions;
  readonly #listeners = new Set<() => void>();

  constructor(options: ManagerAuditOptions) {
    this.#options = options;
    this.recorder = new AuditRecorder({
      propose: (command) => options.router.propose(command),
      timers: options.timers,
      now: options.now,
      random: options.random,
      log: options.log,
    });
    const recorder = this.recorder;
    // The admin socket is created 0600 by this process's user: whoever connects is that user or root.
    const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
    this.sink = {
      record: (entry: AuditEntry) => recorder.record(entry),
      denied: (entry: AuditEntry) => recorder.denied(entry),
      requestId: () => recorder.requestId(),
      now: () => recorder.now(),
      ...(uid === undefined ? {} : { socketUid: uid }),
    };
  }

  /** Called with each store Raft opens or a snapshot installs. */
  watch(store: Store): void {
    store.audit.onAppend(() => this.#notify());
    this.#notify();
  }

  async trail(): Promise<AuditTrail> {
    return (await this.#options.router.read()).audit;
  }

  localTrail(): AuditTrail | null {
    return this.#options.store()?.audit ?? null;
  }

  onAppended(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async kept(): Promise<number> {
    return auditKeptOf((await this.#options.router.read()).cluster);
  }

  async updateKept(kept: number): Promise<number> {
    await this.#options.router.propose({
      op: 'cluster-update',
      at: this.#options.now(),
      expectedIndex: null,
      auditKept: kept,
    });
    return this.kept();
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}
