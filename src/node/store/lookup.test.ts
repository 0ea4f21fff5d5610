/** Docker's reference resolution, one rule for every kind of object. */
import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { resolveByRef } from './lookup.ts';

interface Thing {
  readonly id: string;
  readonly name: string;
}

const things: Thing[] = [
  { id: 'abc111', name: 'db' },
  { id: 'abc222', name: 'web' },
  { id: 'xyz333', name: 'abc111x' },
];

/** The resolved object, or the error's code and message. */
function attempt(resolve: () => Thing): Thing | { code: string; message: string } {
  try {
    return resolve();
  } catch (error) {
    if (!(error instanceof SecretdError)) throw error;
    return { code: error.code, message: error.message };
  }
}

/** By id or exact name, as the store looks them up for secrets and services. */
function resolve(ref: string): Thing | { code: string; message: string } {
  return attempt(() =>
    resolveByRef(
      'Thing',
      ref,
      things.find((t) => t.id === ref) ?? things.find((t) => t.name === ref),
      things,
    ),
  );
}

describe('resolveByRef()', () => {
  test('resolves a full id, then an exact name, then a unique id prefix', () => {
    expect([resolve('abc222'), resolve('db'), resolve('xyz')]).toEqual([
      things[1]!,
      things[0]!,
      things[2]!,
    ]);
  });

  test('an exact name wins over an id prefix it also matches', () => {
    const named = resolveByRef('Thing', 'abc', { id: 'qqq', name: 'abc' }, things);
    expect(named).toEqual({ id: 'qqq', name: 'abc' });
  });

  test('refuses an ambiguous id prefix, a name prefix and the empty reference', () => {
    expect([resolve('abc'), resolve('we'), resolve('')]).toEqual([
      { code: 'invalid', message: 'Thing abc is ambiguous (2 matches found)' },
      { code: 'not_found', message: 'Thing we not found' },
      { code: 'not_found', message: 'Thing  not found' },
    ]);
  });

  test('several exact matches (names that need not be unique, as host names) are ambiguous, not a prefix search', () => {
    const twins = [
      { id: 'n1', name: 'host' },
      { id: 'n2', name: 'host' },
    ];
    expect(attempt(() => resolveByRef('Node', 'host', twins, twins))).toEqual({
      code: 'invalid',
      message: 'Node host is ambiguous (2 matches found)',
    });
    expect(resolveByRef('Node', 'n', [], [twins[0]!])).toEqual(twins[0]!);
  });
});
