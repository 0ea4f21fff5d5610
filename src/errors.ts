/**
 * Expected failures carry a stable `code`; the API maps codes to HTTP status and the CLI to exit
 * codes in one place each. Messages never contain secret material.
 */
export type ErrorCode =
  | 'invalid' // 400: bad input
  | 'forbidden' // 403: wrong role or certificate
  | 'not_found' // 404
  | 'conflict' // 409: name in use, stale version, wrong state
  | 'too_large' // 413: body or data over a limit
  | 'locked' // 503: autolocked manager waiting for its unlock key
  | 'unavailable' // 503: no leader, shutting down
  | 'unimplemented' // 501
  | 'corrupt' // on-disk data failed authentication or framing
  | 'internal';

export class SecretdError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'SecretdError';
  }
}

/** This manager cannot serve the call, the leader can: `leaderAddr` tells the caller where to go. */
export class NotLeaderError extends SecretdError {
  readonly leaderAddr: string | null;
  constructor(message: string, leaderAddr: string | null) {
    super('unavailable', message);
    this.leaderAddr = leaderAddr;
  }
}

export const invalid = (message: string): SecretdError => new SecretdError('invalid', message);
export const notFound = (message: string): SecretdError => new SecretdError('not_found', message);
export const conflict = (message: string): SecretdError => new SecretdError('conflict', message);

/** A broken invariant: the process must stop rather than keep serving a corrupt state. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(`Invariant violated: ${message}`);
    this.name = 'AssertionError';
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertNever(value: never): never {
  throw new AssertionError(`unexpected value ${JSON.stringify(value)}`);
}
