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
  #idle: ReturnType<typeof setTimeout> | undefined;
  readonly #overall: ReturnType<typeof setTimeout>;
  readonly #onTimeout: (error: SecretdError) => void;

  constructor(budget: BodyBudget, limit: number, onTimeout: (error: SecretdError) => void) {
    this.#budget = budget;
    this.#limit = limit;
    this.#onTimeout = onTimeout;
    this.#overall = setTimeout(
      () => this.#expire(`it did not arrive whole within ${budget.totalTimeoutMs} ms`),
      budget.totalTimeoutMs,
    );
    this.#armIdle();
  }

  /** Counts a chunk: 'too-large' past the route's limit, 'busy' when the budget has no room. */
  add(bytes: number): 'ok' | 'too-large' | 'busy' {
    this.#total += bytes;
    if (this.#total > this.#limit) return 'too-large';
    if (!this.#budget.reserve(bytes)) return 'busy';
    this.#reserved += bytes;
    this.#armIdle();
    return 'ok';
  }

  done(): void {
    clearTimeout(this.#idle);
    clearTimeout(this.#overall);
    this.#budget.release(this.#reserved);
    this.#reserved = 0;
  }

  #armIdle(): void {
    clearTimeout(this.#idle);
    this.#idle = setTimeout(
      () => this.#expire(`no byte of it arrived for ${this.#budget.idleTimeoutMs} ms`),
      this.#budget.idleTimeoutMs,
    );
  }

  #expire(why: string): void {
    this.done();
    this.#onTimeout(new SecretdError('invalid', `Cannot read the request body: ${why}`));
  }
}

/** The client went away (or reset the stream) before its body ended. */
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
