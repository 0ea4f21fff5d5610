/**
 * The records no state change carries: denied requests, requests refused before they proposed
 * anything (bad input, exec, unlock attempts), and the leader dispatcher's deliveries and releases
 * of secret versions. They are queued and proposed together as one `audit-append` entry every
 * `auditFlushMs` (or at once when `auditBatchRecordsMax` are queued).
 *
 * While this manager cannot propose (locked, no leader) the records wait here, at most
 * `auditPendingMax` (the oldest go first, and one record says how many went), and are proposed once
 * it can: a failed unlock on a locked manager is recorded when the manager is unlocked, as Vault
 * keeps nothing from a sealed node but secretd can (the attempt's time is its own).
 *
 * Denials are counted per identity in windows of `auditDenialWindowMs`: the first
 * `auditDenialsPerWindow` are recorded one by one, the rest in one summary record at the window's
 * end ("1204 more denials from CN x in 10 s"), so a flood of refused requests cannot fill the trail.
 */
import { toHex, type Random } from '../../crypto/index.ts';
import type { Timers } from '../../io/timers.ts';
import {
  auditBatchRecordsMax,
  auditDenialActorsMax,
  auditDenialWindowMs,
  auditDenialsPerWindow,
  auditFlushMs,
  auditPendingMax,
} from '../../limits.ts';
import { auditContext } from './context.ts';
import type { AuditActor, AuditEntry } from './record.ts';

/** The command an audit batch is proposed as (commands.ts `audit-append`). */
export interface AuditAppendCommand {
  readonly op: 'audit-append';
  readonly at: string;
  readonly records: readonly AuditEntry[];
}

export interface AuditRecorderOptions {
  readonly propose: (command: AuditAppendCommand) => Promise<unknown>;
  readonly timers: Timers;
  /** The wall clock, ISO 8601. */
  readonly now: () => string;
  readonly random: Random;
  readonly log: (line: string) => void;
}

interface DenialWindow {
  readonly actor: AuditActor;
  readonly source: string;
  readonly startedAt: number;
  recorded: number;
  more: number;
}

export class AuditRecorder {
  readonly #options: AuditRecorderOptions;
  #queue: AuditEntry[] = [];
  #dropped = 0;
  #flushing = false;
  #cancelFlush: (() => void) | null = null;
  readonly #denials = new Map<string, DenialWindow>();
  #cancelWindow: (() => void) | null = null;
  #stopped = false;

  constructor(options: AuditRecorderOptions) {
    this.#options = options;
  }

  /** A request id for a record whose request proposed nothing. */
  requestId(): string {
    return toHex(this.#options.random(8));
  }

  now(): string {
    return this.#options.now();
  }

  /** Queues a record (proposed within auditFlushMs). */
  record(entry: AuditEntry): void {
    if (this.#stopped) return;
    this.#queue.push(entry);
    if (this.#queue.length > auditPendingMax) {
      this.#queue.shift();
      this.#dropped++;
    }
    if (this.#queue.length >= auditBatchRecordsMax) this.#flushSoon(0);
    else this.#flushSoon(auditFlushMs);
  }

  /** A denied request: recorded, or counted into its identity's summary for this window. */
  denied(entry: AuditEntry): void {
    const key = actorKey(entry.actor);
    let window = this.#denials.get(key);
    if (window === undefined) {
      const crowded = this.#denials.size >= auditDenialActorsMax;
      const shared = crowded ? this.#denials.get('*') : undefined;
      window = shared ?? {
        actor: crowded ? { kind: 'anonymous', name: '*', role: 'any' } : entry.actor,
        source: crowded ? 'many' : entry.source,
        startedAt: this.#options.timers.now(),
        recorded: 0,
        more: 0,
      };
      this.#denials.set(crowded ? '*' : key, window);
      this.#armWindow();
    }
    if (window.recorded < auditDenialsPerWindow && window.actor.name !== '*') {
      window.recorded++;
      this.record(entry);
    } else window.more++;
  }

  /** Proposes what is queued now (tests, and a manager that stops). */
  async flush(): Promise<void> {
    this.#cancelFlush?.();
    this.#cancelFlush = null;
    await this.#flush();
  }

  /** Queued records (for tests and status). */
  get pending(): number {
    return this.#queue.length;
  }

  stop(): void {
    this.#stopped = true;
    this.#cancelFlush?.();
    this.#cancelWindow?.();
  }

  #flushSoon(ms: number): void {
    if (this.#flushing) return;
    if (ms === 0) this.#cancelFlush?.();
    else if (this.#cancelFlush) return;
    // Timers armed here must not carry the request that queued the record into the proposal.
    this.#cancelFlush = auditContext.exit(() =>
      this.#options.timers.after(ms, () => {
        this.#cancelFlush = null;
        void this.#flush();
      }),
    );
  }

  async #flush(): Promise<void> {
    if (this.#flushing || this.#queue.length === 0) return;
    this.#flushing = true;
    const batch = this.#queue.splice(0, auditBatchRecordsMax);
    const dropped = this.#dropped;
    const records =
      dropped === 0
        ? batch
        : [
            {
              at: this.#options.now(),
              actor: { kind: 'node', name: 'audit', role: 'manager' } as const,
              source: 'audit',
              action: 'audit-dropped',
              count: dropped,
              detail: `${dropped} records dropped: this manager could not propose them before ${auditPendingMax} were waiting`,
              result: 'ok',
            },
            ...batch,
          ];
    this.#dropped = 0;
    let ok = false;
    try {
      await auditContext.exit(() =>
        this.#options.propose({ op: 'audit-append', at: this.#options.now(), records }),
      );
      ok = true;
    } catch {
      // Locked or no leader: put them back and try again later.
      this.#queue = [...batch, ...this.#queue];
      this.#dropped += dropped;
      while (this.#queue.length > auditPendingMax) {
        this.#queue.shift();
        this.#dropped++;
      }
    } finally {
      this.#flushing = false;
    }
    if (this.#stopped) return;
    if (this.#queue.length > 0) this.#flushSoon(ok ? 0 : auditFlushMs * 4);
  }

  #armWindow(): void {
    if (this.#cancelWindow) return;
    this.#cancelWindow = auditContext.exit(() =>
      this.#options.timers.after(auditDenialWindowMs, () => {
        this.#cancelWindow = null;
        this.#closeWindows();
      }),
    );
  }

  #closeWindows(): void {
    const now = this.#options.timers.now();
    for (const [key, window] of this.#denials) {
      if (now - window.startedAt < auditDenialWindowMs) continue;
      this.#denials.delete(key);
      if (window.more === 0) continue;
      const seconds = Math.round((now - window.startedAt) / 1000);
      const who = window.actor.name === '*' ? 'other identities' : describe(window.actor);
      this.record({
        at: this.#options.now(),
        actor: window.actor,
        source: window.source,
        action: 'denied-summary',
        count: window.more,
        detail: `${window.more} more denials from ${who} in ${seconds} s`,
        result: 'denied',
      });
    }
    if (this.#denials.size > 0) this.#armWindow();
  }
}

function actorKey(actor: AuditActor): string {
  return `${actor.kind}\u0000${actor.name}\u0000${actor.serial ?? ''}`;
}

function describe(actor: AuditActor): string {
  switch (actor.kind) {
    case 'client':
      return `CN ${actor.name}`;
    case 'node':
      return `node ${actor.name}`;
    case 'admin-socket':
      return 'the admin socket';
    case 'anonymous':
      return 'callers without a certificate';
  }
}
