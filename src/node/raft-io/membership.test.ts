import { describe, expect, test } from 'bun:test';
import type { ProgressStatus } from '../../raft/core.ts';
import type { MemberId } from '../../raft/types.ts';
import {
  bestSuccessor,
  learnerLagEntriesMax,
  nextMembershipAction,
  quorumSurvivesRemoval,
} from './membership.ts';

const id = (s: string): MemberId => s as MemberId;
const progress = (match: number, recentActive = true): ProgressStatus => ({
  match,
  next: match + 1,
  state: 'replicate',
  recentActive,
});

describe('nextMembershipAction', () => {
  test('adds a new manager as a learner, then promotes it once caught up', () => {
    const base = { self: id('a'), managers: new Set(['a', 'b']), commit: 10 };
    expect(
      nextMembershipAction({
        ...base,
        conf: { voters: [id('a')], learners: [] },
        progress: { a: progress(10) },
      }),
    ).toEqual({ kind: 'change', change: { kind: 'add-learner', id: id('b') } });
    const learning = { ...base, conf: { voters: [id('a')], learners: [id('b')] } };
    const far = { ...learning, commit: 500 };
    expect(
      nextMembershipAction({ ...far, progress: { a: progress(500), b: progress(400) } }),
    ).toBeNull();
    expect(
      nextMembershipAction({
        ...far,
        progress: { a: progress(500), b: progress(500 - learnerLagEntriesMax) },
      }),
    ).toEqual({ kind: 'change', change: { kind: 'promote', id: id('b') } });
    expect(
      nextMembershipAction({ ...learning, progress: { a: progress(10), b: progress(10) } }),
    ).toEqual({ kind: 'change', change: { kind: 'promote', id: id('b') } });
  });

  test('does not promote a learner that holds nothing or has not answered lately, however young the log', () => {
    // A log of 10 entries: within learnerLagEntriesMax of a match of 0.
    const learning = {
      self: id('a'),
      managers: new Set(['a', 'b']),
      commit: 10,
      conf: { voters: [id('a')], learners: [id('b')] },
    };
    // Added, never heard from (a node that has not started Raft): stays a learner.
    expect(
      nextMembershipAction({ ...learning, progress: { a: progress(10), b: progress(0, false) } }),
    ).toBeNull();
    expect(
      nextMembershipAction({ ...learning, progress: { a: progress(10), b: progress(0) } }),
    ).toBeNull();
    // Caught up but silent since the last check: not now.
    expect(
      nextMembershipAction({ ...learning, progress: { a: progress(10), b: progress(10, false) } }),
    ).toBeNull();
    expect(
      nextMembershipAction({ ...learning, progress: { a: progress(10), b: progress(1) } }),
    ).toEqual({ kind: 'change', change: { kind: 'promote', id: id('b') } });
  });

  test('removes a member the store no longer calls a manager, others before itself', () => {
    const conf = { voters: [id('a'), id('b'), id('c')], learners: [] };
    const all = { a: progress(5), b: progress(5), c: progress(3) };
    expect(
      nextMembershipAction({
        self: id('a'),
        managers: new Set(['b']),
        conf,
        progress: all,
        commit: 5,
      }),
    ).toEqual({ kind: 'change', change: { kind: 'remove', id: id('c') } });
  });

  test('a leader leaving hands leadership to the most caught-up voter first', () => {
    const conf = { voters: [id('a'), id('b'), id('c')], learners: [] };
    const view = {
      self: id('a'),
      managers: new Set(['b', 'c']),
      conf,
      progress: { a: progress(9), b: progress(7), c: progress(9) },
      commit: 9,
    };
    expect(nextMembershipAction(view)).toEqual({ kind: 'transfer', to: id('c') });
    expect(
      bestSuccessor({ self: id('a'), conf: { voters: [id('a')], learners: [] }, progress: {} }),
    ).toBeNull();
  });

  test('does nothing when the configuration matches the store', () => {
    const conf = { voters: [id('a'), id('b'), id('c')], learners: [] };
    expect(
      nextMembershipAction({
        self: id('a'),
        managers: new Set(['a', 'b', 'c']),
        conf,
        progress: { a: progress(1), b: progress(1), c: progress(1) },
        commit: 1,
      }),
    ).toBeNull();
  });
});

describe('quorumSurvivesRemoval', () => {
  const conf = { voters: [id('a'), id('b'), id('c')], learners: [] };
  test('allows removing one of three when the other two are reachable', () => {
    expect(
      quorumSurvivesRemoval(
        { self: id('a'), conf, progress: { b: progress(1), c: progress(1) } },
        'c',
      ),
    ).toBe(true);
  });
  test('refuses when the voters left could not form a quorum among the reachable', () => {
    expect(
      quorumSurvivesRemoval(
        { self: id('a'), conf, progress: { b: progress(1, false), c: progress(1) } },
        'c',
      ),
    ).toBe(false);
    expect(
      quorumSurvivesRemoval(
        { self: id('a'), conf: { voters: [id('a')], learners: [] }, progress: {} },
        'a',
      ),
    ).toBe(false);
  });
});
