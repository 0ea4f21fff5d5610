/**
 * The unlock back-off: a locked manager tries unlock keys one at a time, and after each wrong key
 * in a row the next try waits twice as long (unlockBackoffInitialMs, doubling up to
 * unlockBackoffMaxMs); a right key resets it. An attempt that arrives during the back-off waits its
 * turn (an operator who mistyped once gets a slightly later answer, not an error); at most
 * unlockAttemptsWaitingMax may wait at once, the rest are refused with 503 at once. So guessing
 * runs at one key per unlockBackoffMaxMs, however many connections ask.
 *
 * Every wrong key is zeroed here, as soon as it fails (a right key is kept by the manager, which
 * needs it to re-wrap its keys file; on other failures the caller decides, since it may already
 * hold the key). Zeroing is best effort: the GC may have copied the buffer before, and the key's
 * text form is a string, which cannot be cleared at all.
 */
import { SecretdError } from '../../errors.ts';
import {
  unlockAttemptsWaitingMax,
  unlockBackoffInitialMs,
  unlockBackoffMaxMs,
} from '../../limits.ts';
import { sleep, type Timers } from '../../io/timers.ts';

export interface UnlockBackoffState {
  /** Wrong keys in a row. */
  readonly failures: number;
  /** Milliseconds the next attempt waits from now (0: it is tried at once). */
  readonly waitMs: number;
  /** Attempts waiting or being tried now. */
  readonly pending: number;
}

export class UnlockBackoff {
  readonly #timers: Timers;
  #failures = 0;
  #notBefore = 0;
  #pending = 0;
  #turn: Promise<void> = Promise.resolve();

  constructor(timers: Timers) {
    this.#timers = timers;
  }

  get state(): UnlockBackoffState {
    return {
      failures: this.#failures,
      waitMs: Math.max(0, this.#notBefore - this.#timers.now()),
      pending: this.#pending,
    };
  }

  /**
   * Tries `key` with `open` once its turn comes. `open` throws a SecretdError with code `invalid`
   * for a wrong key: that counts as a failure and the key's bytes are zeroed. Any other error is
   * passed on without counting, and the key is left to `open` (which owns it on success too).
   */
  async attempt(key: Uint8Array, open: (key: Uint8Array) => Promise<void>): Promise<void> {
    if (this.#pending >= unlockAttemptsWaitingMax) {
      key.fill(0);
      throw new SecretdError(
        'unavailable',
        `Cannot unlock now: ${this.#pending} unlock attempts are already waiting after wrong keys; try again in ${Math.ceil(this.state.waitMs / 1000) || 1} s`,
      );
    }
    this.#pending++;
    const run = this.#turn.then(() => this.#try(key, open));
    this.#turn = run.then(
      () => {},
      () => {},
    );
    try {
      await run;
    } finally {
      this.#pending--;
    }
  }

  async #try(key: Uint8Array, open: (key: Uint8Array) => Promise<void>): Promise<void> {
    const waitMs = this.#notBefore - this.#timers.now();
    if (waitMs > 0) await sleep(this.#timers, waitMs);
    try {
      await open(key);
    } catch (error) {
      if (error instanceof SecretdError && error.code === 'invalid') {
        key.fill(0);
        this.#failures++;
        this.#notBefore =
          this.#timers.now() +
          Math.min(
            unlockBackoffInitialMs * 2 ** Math.min(this.#failures - 1, 30),
            unlockBackoffMaxMs,
          );
      }
      throw error;
    }
    this.#failures = 0;
    this.#notBefore = 0;
  }
}
