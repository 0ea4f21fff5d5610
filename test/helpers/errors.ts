/** The SecretdError a promise rejects with; fails the test if it resolves or rejects with anything else. */
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
