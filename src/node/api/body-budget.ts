/**
 * How much of a request body a route may buffer, and how long it may wait for it. On the TLS port
 * server.ts attaches a budget to each request (keyed by the request object the adapter hands to
 * hono, or by the HTTP/2 stream): the connection's allowance, shared by its open requests, and for
 * connections without a client certificate a global one as well. Elsewhere (the admin socket,
 * `app.request()` in tests) only the deadlines apply.
 */
import { SecretdError } from '../../errors.ts';
import { requestBodyIdleTimeoutMs, requestBodyTimeoutMs } from '../../limits.ts';

export interface BodyBudget {
  /** Takes `bytes` from the allowance; false (and nothing taken) when that would pass it. */
  reserve(bytes: number): boolean;
  release(bytes: number): void;
  /** A body that brings no new byte for this long is refused. */
  readonly idleTimeoutMs: number;
  /** A body must arrive whole within this, from when its route starts reading it. */
  readonly totalTimeoutMs: number;
}

export const defaultBodyBudget: BodyBudget = {
  reserve: () => true,
  release: () => {},
  idleTimeoutMs: requestBodyIdleTimeoutMs,
  totalTimeoutMs: requestBodyTimeoutMs,
};

const budgets = new WeakMap<object, BodyBudget>();

export function attachBodyBudget(request: object, budget: BodyBudget): void {
  budgets.set(request, budget);
}

export function bodyBudgetOf(request: object | undefined): BodyBudget {
  return (request && budgets.get(request)) ?? defaultBodyBudget;
}

/**
 * The bookkeeping of one body being read: bytes counted against the route's limit and reserved
 * from the budget as they arrive, and the two deadlines. `done()` gives everything back.
 */
export class BodyRead {
  readonly #budget: BodyBudget;
  readonly #limit: number;
  #total = 0;
  #reserved = 0;
  readonly #startedAt: number;
  #progressAt: number;
  readonly #onTimeout: (error: SecretdError) => void;

  constructor(budget: BodyBudget, limit: number, onTimeout: (error: SecretdError) => void) {
    this.#budget = budget;
    this.#limit = limit;
    this.#onTimeout = onTimeout;
    this.#startedAt = this.#progressAt = performance.now();
    watchBodyRead(this);
  }

  add(bytes: number): 'ok' | 'too-large' | 'busy' {
    this.#total += bytes;
    if (this.#total > this.#limit) return 'too-large';
    if (!this.#budget.reserve(bytes)) return 'busy';
    this.#reserved += bytes;
    this.#progressAt = performance.now();
    return 'ok';
  }

  done(): void {
    unwatchBodyRead(this);
    this.#budget.release(this.#reserved);
    this.#reserved = 0;
  }

  /** Called by the shared watch: ends the read if a deadline has passed. */
  check(nowMs: number): void {
    if (nowMs - this.#startedAt >= this.#budget.totalTimeoutMs) {
      this.#expire(`it did not arrive whole within ${this.#budget.totalTimeoutMs} ms`);
    } else if (nowMs - this.#progressAt >= this.#budget.idleTimeoutMs) {
      this.#expire(`no byte of it arrived for ${this.#budget.idleTimeoutMs} ms`);
    }
  }

  /** The soonest a deadline of this read can pass, for the shared watch. */
  get nextDeadlineMs(): number {
    return Math.min(
      this.#startedAt + this.#budget.totalTimeoutMs,
      this.#progressAt + this.#budget.idleTimeoutMs,
    );
  }

  #expire(why: string): void {
    this.done();
    this.#onTimeout(new SecretdError('invalid', `Cannot read the request body: ${why}`));
  }
}

/*
 * One timer watches every body being read, instead of two timers per request armed and cleared at
 * every chunk: on the hottest route (a secret create) those timers cost more CPU than the body
 * itself. The watch wakes at the soonest deadline of the reads it holds (re-checked on waking, since
 * progress only moves deadlines later), and sleeps while there is none.
 */
const watched = new Set<BodyRead>();
let watchTimer: ReturnType<typeof setTimeout> | undefined;
let watchAtMs = Infinity;

function watchBodyRead(read: BodyRead): void {
  watched.add(read);
  scheduleWatch(read.nextDeadlineMs);
}

function unwatchBodyRead(read: BodyRead): void {
  watched.delete(read);
}

function scheduleWatch(atMs: number): void {
  if (atMs >= watchAtMs) return;
  clearTimeout(watchTimer);
  watchAtMs = atMs;
  watchTimer = setTimeout(runWatch, Math.max(0, atMs - performance.now()));
  watchTimer.unref?.();
}

function runWatch(): void {
  watchTimer = undefined;
  watchAtMs = Infinity;
  const now = performance.now();
  for (const read of [...watched]) read.check(now);
  let next = Infinity;
  for (const read of watched) next = Math.min(next, read.nextDeadlineMs);
  if (next !== Infinity) scheduleWatch(next);
}

export function bodyAborted(): SecretdError {
  return new SecretdError(
    'invalid',
    'Cannot read the request body: the client closed the request before it ended',
  );
}

export function bodyBusy(): SecretdError {
  return new SecretdError(
    'unavailable',
    'Cannot read the request body: this server is buffering too many request bodies now; retry later',
  );
}
