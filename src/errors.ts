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

/** The one mapping between error codes and HTTP status: the API answers with it, clients read it back. */
export const httpStatusByCode = {
  invalid: 400,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  locked: 503,
  unavailable: 503,
  unimplemented: 501,
  corrupt: 500,
  internal: 500,
} as const satisfies Record<ErrorCode, number>;

/** An answer's status read back as a code (503 is `unavailable`: a client cannot tell locked from no leader). */
export function codeForHttpStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'invalid';
    case 403:
      return 'forbidden';
    case 404:
      return 'not_found';
    case 409:
      return 'conflict';
    case 413:
      return 'too_large';
    case 501:
      return 'unimplemented';
    case 503:
      return 'unavailable';
    default:
      return 'internal';
  }
}

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

/**
 * This node is no longer a manager the cluster takes (demoted or removed, still leaving Raft): the
 * caller should go to another manager. A 503, as Docker's "This node is not a swarm manager", but
 * final: retrying here cannot succeed.
 */
export class NotManagerError extends SecretdError {
  constructor(message: string) {
    super('unavailable', message);
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
