/**
 * The client of the failover benchmark: writes secrets one at a time, for as long as it runs, each
 * to the next manager in turn (so the leader's own path and forwarding from followers are both
 * exercised), and moves on to the next manager at once when one fails, as a client with a list of
 * managers would. Every attempt is reported to the listeners with when it was sent and answered.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { createOutcome, errorReason } from './create-outcome.ts';
import { openSecretdSession, type ClientTLSFiles, type SecretdSession } from './secretd-client.ts';

export interface WriteAttempt {
  /** The manager's name (m1, m2, …). */
  readonly manager: string;
  readonly sentMs: number;
  readonly answeredMs: number;
  readonly ok: boolean;
  /** Why it failed; empty when ok. */
  readonly reason: string;
}

export interface WriterTarget {
  readonly name: string;
  readonly url: string;
}

export interface RoundRobinWriterOptions {
  readonly files: ClientTLSFiles;
  /** A write unanswered after this is a failure; above secretd's own 15 s wait for a leader. */
  readonly requestTimeoutMs: number;
  /** Base64 of the value every write carries. */
  readonly valueBase64: string;
  /** Prefix of the secret names, unique per run. */
  readonly namePrefix: string;
  /** Pause between writes; 0 sends the next as soon as the previous is answered. */
  readonly pauseMs: number;
}

const sessionCloseWaitMs = 1_000;

/** When every manager failed in a row, wait this long before the next round of attempts. */
const allFailedPauseMs = 10;

export class RoundRobinWriter {
  readonly #targets: readonly WriterTarget[];
  readonly #options: RoundRobinWriterOptions;
  readonly #sessions = new Map<string, SecretdSession>();
  readonly #listeners = new Set<(attempt: WriteAttempt) => void>();
  #running: Promise<void> | undefined;
  #stopping = false;
  #written = 0;
  #failed = 0;

  constructor(targets: readonly WriterTarget[], options: RoundRobinWriterOptions) {
    this.#targets = targets;
    this.#options = options;
  }

  get written(): number {
    return this.#written;
  }

  get failed(): number {
    return this.#failed;
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
    // A session to a manager that died and was not written to since may never confirm its close.
    const closeAll = Promise.all([...this.#sessions.values()].map((session) => session.close()));
    await Promise.race([closeAll, delay(sessionCloseWaitMs)]);
    this.#sessions.clear();
  }

  /** Calls `listener` for every attempt from now on; returns the function that removes it. */
  onAttempt(listener: (attempt: WriteAttempt) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The first attempt for which `accept` is true; rejects after `timeoutMs`. */
  next(
    accept: (attempt: WriteAttempt) => boolean,
    options: { readonly timeoutMs: number; readonly what: string },
  ): Promise<WriteAttempt> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        remove();
        reject(new Error(`no ${options.what} within ${options.timeoutMs / 1000} s`));
      }, options.timeoutMs);
      const remove = this.onAttempt((attempt) => {
        if (!accept(attempt)) return;
        clearTimeout(timer);
        remove();
        resolve(attempt);
      });
    });
  }

  async #loop(): Promise<void> {
    let failedInARow = 0;
    for (let index = 0; !this.#stopping; index++) {
      const target = this.#targets[index % this.#targets.length];
      if (target === undefined) return;
      const attempt = await this.#write(target, `${this.#options.namePrefix}-${index}`);
      if (attempt.ok) this.#written++;
      else this.#failed++;
      for (const listener of [...this.#listeners]) listener(attempt);
      failedInARow = attempt.ok ? 0 : failedInARow + 1;
      if (failedInARow > 0 && failedInARow % this.#targets.length === 0)
        await delay(allFailedPauseMs);
      if (this.#options.pauseMs > 0) await delay(this.#options.pauseMs);
    }
  }

  async #write(target: WriterTarget, name: string): Promise<WriteAttempt> {
    const sentMs = performance.now();
    const done = (ok: boolean, reason: string): WriteAttempt => ({
      manager: target.name,
      sentMs,
      answeredMs: performance.now(),
      ok,
      reason,
    });
    let session = this.#sessions.get(target.name);
    if (session === undefined) {
      try {
        session = await openSecretdSession(target.url, this.#options.files, {
          requestTimeoutMs: this.#options.requestTimeoutMs,
        });
      } catch (error) {
        return done(false, errorReason(error));
      }
      this.#sessions.set(target.name, session);
    }
    const body = `{"Name":"${name}","Data":"${this.#options.valueBase64}","Labels":{}}`;
    try {
      const outcome = createOutcome(await session.request('POST', '/secrets/create', body));
      return outcome.ok ? done(true, '') : done(false, outcome.reason);
    } catch (error) {
      // The connection is broken (the manager died): the next write to it opens a new one.
      this.#sessions.delete(target.name);
      void session.close();
      return done(false, errorReason(error));
    }
  }
}
