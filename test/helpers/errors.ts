/** The SecretdError a call throws or a promise rejects with, for tests. */
import { expect } from 'bun:test';
import { SecretdError } from '../../src/errors.ts';

export async function rejection(promise: Promise<unknown>): Promise<SecretdError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(SecretdError);
    return error as SecretdError;
  }
  throw new Error('expected a rejection with a SecretdError');
}

/** The SecretdError `fn` throws; any other error is thrown on, and returning is a failure. */
export function errorOf(fn: () => unknown): SecretdError {
  try {
    fn();
  } catch (error) {
    if (error instanceof SecretdError) return error;
    throw error;
  }
  throw new Error('expected a SecretdError');
}
