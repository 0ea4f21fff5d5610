import { describe, expect, test } from 'bun:test';
import { mid } from '../../test/raft-harness.ts';
import {
  applyConfChange,
  confChangeProblem,
  decodeConfChange,
  encodeConfChange,
} from './conf-change.ts';
import type { ConfChange } from './types.ts';

const conf = { voters: [mid('a'), mid('b')], learners: [mid('c')] };

describe('conf-change', () => {
  test('decodeConfChange() reads back what encodeConfChange() wrote, for every kind', () => {
    const changes: ConfChange[] = [
      { kind: 'add-learner', id: mid('n0p4k2r9x1c7m3b8v6t5q0w2e') },
      { kind: 'promote', id: mid('b') },
      { kind: 'remove', id: mid('é') },
    ];
    for (const change of changes)
      expect(decodeConfChange(encodeConfChange(change))).toEqual(change);
    expect(encodeConfChange({ kind: 'promote', id: mid('b') })).toEqual(
      new Uint8Array([1, 2, 1, 98]),
    );
  });

  test('decodeConfChange() rejects bad version, kind, length and UTF-8 as corrupt', () => {
    for (const bytes of [[], [2, 1, 1, 97], [1, 9, 1, 97], [1, 1, 2, 97], [1, 1, 1, 0xff]]) {
      expect(() => decodeConfChange(new Uint8Array(bytes))).toThrow(
        expect.objectContaining({ code: 'corrupt' }),
      );
    }
  });

  test('encodeConfChange() refuses an empty member id', () => {
    expect(() => encodeConfChange({ kind: 'remove', id: mid('') })).toThrow(
      expect.objectContaining({ code: 'invalid' }),
    );
  });

  test('confChangeProblem() refuses changes that do not fit the configuration', () => {
    expect(confChangeProblem(conf, { kind: 'add-learner', id: mid('a') })).toBe(
      'Cannot add learner a: it is already a voter',
    );
    expect(confChangeProblem(conf, { kind: 'add-learner', id: mid('c') })).toBe(
      'Cannot add learner c: it is already a learner',
    );
    expect(confChangeProblem(conf, { kind: 'promote', id: mid('a') })).toBe(
      'Cannot promote a: it is not a learner',
    );
    expect(confChangeProblem(conf, { kind: 'remove', id: mid('z') })).toBe(
      'Cannot remove z: it is not a member',
    );
    expect(
      confChangeProblem({ voters: [mid('a')], learners: [] }, { kind: 'remove', id: mid('a') }),
    ).toBe('Cannot remove a: it is the last voter');
    expect(confChangeProblem(conf, { kind: 'remove', id: mid('c') })).toBeNull();
  });

  test('applyConfChange() adds, promotes and removes one member', () => {
    const added = applyConfChange(conf, { kind: 'add-learner', id: mid('d') });
    expect(added).toEqual({ voters: [mid('a'), mid('b')], learners: [mid('c'), mid('d')] });
    const promoted = applyConfChange(added, { kind: 'promote', id: mid('c') });
    expect(promoted).toEqual({ voters: [mid('a'), mid('b'), mid('c')], learners: [mid('d')] });
    expect(applyConfChange(promoted, { kind: 'remove', id: mid('a') })).toEqual({
      voters: [mid('b'), mid('c')],
      learners: [mid('d')],
    });
  });
});
