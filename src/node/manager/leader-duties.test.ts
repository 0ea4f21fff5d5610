/** leader-duties.ts: the pure decisions, and the duties applied to a fake Raft member on a hand-driven clock. */
import { describe, expect, test } from 'bun:test';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import type { ProgressStatus, RaftStatus } from '../../raft/core.ts';
import type { ConfChange, ConfState, MemberId, Role } from '../../raft/types.ts';
import type { NodeId, NodeRecord } from '../store/index.ts';
import {
  changesWorkloads,
  dutiesActive,
  isMember,
  LeaderDuties,
  leavingReason,
  leavingWaitMs,
  membershipStep,
  stepDownSuccessor,
  stepDownWaitMs,
  type DutiesRaft,
} from './leader-duties.ts';

const m = (id: string): MemberId => id as MemberId;

function node(id: string, role: NodeRecord['role']): NodeRecord {
  return {
    id: id as NodeId,
    role,
    hostname: id,
    addr: `${id}:4377`,
    availability: 'active',
    labels: {},
    status: 'ready',
    createdAt: 't',
    updatedAt: 't',
    metaIndex: 1,
  };
}

function progress(match: number): ProgressStatus {
  return { match, next: match + 1, state: 'replicate', recentActive: true } as ProgressStatus;
}

function status(role: Role, conf: ConfState, matches?: Record<string, number>): RaftStatus {
  return {
    id: m('a'),
    term: 2,
    role,
    leader: role === 'leader' ? m('a') : null,
    commit: 100,
    applied: 100,
    lastIndex: 100,
    conf,
    transferee: null,
    ...(matches
      ? {
          progress: Object.fromEntries(
            Object.entries(matches).map(([id, match]) => [id, progress(match)]),
          ) as Record<MemberId, ProgressStatus>,
        }
      : {}),
  };
}

const abc: ConfState = { voters: [m('a'), m('b'), m('c')], learners: [] };

describe('the decisions', () => {
  test('writes that change assignments or plans wake the dispatcher and orchestrator; cluster settings and secret metadata do not', () => {
    expect(
      (['service-create', 'secret-version-add', 'task-status', 'node-update'] as const).map(
        changesWorkloads,
      ),
    ).toEqual([true, true, true, true]);
    expect(
      (['cluster-update', 'secret-create', 'secret-update', 'secret-remove'] as const).map(
        changesWorkloads,
      ),
    ).toEqual([false, false, false, false]);
  });

  test('the dispatcher and orchestrator run on a leader that is not leaving, and nowhere else', () => {
    expect([
      dutiesActive('leader', false),
      dutiesActive('leader', true),
      dutiesActive('follower', false),
      dutiesActive('candidate', false),
    ]).toEqual([true, false, false, false]);
  });

  test("this node's demotion or removal is a reason to leave; another node's, or a promotion, is not", () => {
    expect(leavingReason({ kind: 'node', node: node('a', 'worker') }, 'a')).toBe(
      'this node was demoted to a worker',
    );
    expect(leavingReason({ kind: 'node-removed', id: 'a' as NodeId }, 'a')).toBe(
      'this node was removed from the cluster',
    );
    expect(leavingReason({ kind: 'node', node: node('a', 'manager') }, 'a')).toBeNull();
    expect(leavingReason({ kind: 'node', node: node('b', 'worker') }, 'a')).toBeNull();
    expect(leavingReason({ kind: 'node-removed', id: 'b' as NodeId }, 'a')).toBeNull();
  });

  test('a learner is a member of the configuration; a node outside it is not', () => {
    const conf: ConfState = { voters: [m('a')], learners: [m('b')] };
    expect([isMember(conf, 'a'), isMember(conf, 'b'), isMember(conf, 'c')]).toEqual([
      true,
      true,
      false,
    ]);
  });

  test('the leader adds a new manager as a learner, removes a demoted one, and does nothing on a follower', () => {
    const withD = [
      node('a', 'manager'),
      node('b', 'manager'),
      node('c', 'manager'),
      node('d', 'manager'),
    ];
    expect(membershipStep(status('leader', abc, { a: 100, b: 100, c: 100 }), withD)).toEqual({
      kind: 'change',
      change: { kind: 'add-learner', id: m('d') },
    });
    const cDemoted = [node('a', 'manager'), node('b', 'manager'), node('c', 'worker')];
    expect(membershipStep(status('leader', abc, { a: 100, b: 100, c: 100 }), cDemoted)).toEqual({
      kind: 'change',
      change: { kind: 'remove', id: m('c') },
    });
    expect(membershipStep(status('follower', abc), withD)).toBeNull();
    expect(membershipStep(status('leader', abc, { a: 100, b: 100, c: 100 }), [])).toBeNull();
  });

  test('a stopping leader hands over to the most caught-up voter; a follower hands over nothing', () => {
    expect(stepDownSuccessor(status('leader', abc, { a: 100, b: 90, c: 99 }))).toBe(m('c'));
    expect(stepDownSuccessor(status('follower', abc))).toBeNull();
  });
});

class FakeRaft implements DutiesRaft {
  readonly core: { role: Role; conf: ConfState; status(): RaftStatus };
  readonly changes: ConfChange[] = [];
  readonly transfers: MemberId[] = [];
  nodes: NodeRecord[] = [node('a', 'manager'), node('b', 'manager'), node('c', 'manager')];
  readonly store = { nodes: (): Iterable<NodeRecord> => this.nodes };
  readonly #listeners = new Set<() => void>();

  constructor(role: Role) {
    const core = {
      role,
      conf: abc,
      status: (): RaftStatus =>
        status(core.role, core.conf, core.role === 'leader' ? { a: 100, b: 80, c: 95 } : undefined),
    };
    this.core = core;
  }

  async transferLeadership(to: MemberId): Promise<void> {
    this.transfers.push(to);
  }

  async proposeConfChange(change: ConfChange): Promise<void> {
    this.changes.push(change);
  }

  onAdvanced(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** A Ready was advanced after `change` moved the core. */
  advance(change: (core: FakeRaft['core']) => void): void {
    change(this.core);
    for (const listener of [...this.#listeners]) listener();
  }
}

function setUp(role: Role) {
  const raft = new FakeRaft(role);
  const timers = new ManualTimers();
  const active: Array<['dispatcher' | 'workloads', boolean]> = [];
  const wakes = { storeChanged: 0, kicks: 0 };
  const left: string[] = [];
  const duties = new LeaderDuties({
    selfId: 'a',
    raft,
    dispatcher: {
      setActive: (on) => void active.push(['dispatcher', on]),
      storeChanged: () => void wakes.storeChanged++,
    },
    workloads: {
      setActive: (on) => void active.push(['workloads', on]),
      kick: () => void wakes.kicks++,
    },
    timers,
    roundMs: 40,
    onLeft: (reason) => void left.push(reason),
  });
  return { raft, timers, active, wakes, left, duties };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('LeaderDuties', () => {
  test('each round turns the duties on while leading and takes one membership step', async () => {
    const { raft, timers, active, duties } = setUp('leader');
    raft.nodes = [...raft.nodes, node('d', 'manager')];
    duties.start();
    timers.advance(40);
    await settle();
    expect(active).toEqual([
      ['dispatcher', true],
      ['workloads', true],
    ]);
    expect(raft.changes).toEqual([{ kind: 'add-learner', id: m('d') }]);
  });

  test('on a follower, each round turns the duties off and changes no membership', async () => {
    const { raft, timers, active, duties } = setUp('follower');
    raft.nodes = [...raft.nodes, node('d', 'manager')];
    duties.start();
    timers.advance(80);
    await settle();
    expect(active).toEqual([
      ['dispatcher', false],
      ['workloads', false],
      ['dispatcher', false],
      ['workloads', false],
    ]);
    expect(raft.changes).toEqual([]);
  });

  test('a burst of applied writes wakes the dispatcher for each and the orchestrator once', async () => {
    const { wakes, duties } = setUp('leader');
    duties.applied('task-status');
    duties.applied('service-update');
    duties.applied('cluster-update');
    await settle();
    expect(wakes).toEqual({ storeChanged: 2, kicks: 1 });
  });

  test('a demoted manager leaves once Raft no longer counts it, and stops leading meanwhile', async () => {
    const { raft, timers, active, left, duties } = setUp('leader');
    duties.storeEvent({ kind: 'node', node: node('a', 'worker') });
    expect(duties.leaving).toBe(true);
    await duties.round();
    expect(active.slice(-2)).toEqual([
      ['dispatcher', false],
      ['workloads', false],
    ]);
    raft.advance((core) => (core.conf = { voters: [m('a'), m('b'), m('c')], learners: [] }));
    timers.advance(0);
    expect(left).toEqual([]);
    raft.advance((core) => (core.conf = { voters: [m('b'), m('c')], learners: [] }));
    timers.advance(0);
    expect(left).toEqual(['this node was demoted to a worker']);
    timers.advance(leavingWaitMs);
    expect(left).toEqual(['this node was demoted to a worker']);
  });

  test('a removed manager that never sees its removal leaves after the bounded wait', () => {
    const { timers, left, duties } = setUp('follower');
    duties.storeEvent({ kind: 'node-removed', id: 'a' as NodeId });
    duties.storeEvent({ kind: 'node-removed', id: 'a' as NodeId });
    timers.advance(leavingWaitMs - 1);
    expect(left).toEqual([]);
    timers.advance(1);
    expect(left).toEqual(['this node was removed from the cluster']);
  });

  test('stopping the duties cancels a leaving wait and turns everything off', async () => {
    const { raft, timers, active, left, duties } = setUp('leader');
    duties.start();
    duties.storeEvent({ kind: 'node', node: node('a', 'worker') });
    duties.stop();
    raft.advance((core) => (core.conf = { voters: [m('b'), m('c')], learners: [] }));
    timers.advance(leavingWaitMs + 100);
    await settle();
    expect(left).toEqual([]);
    expect(active).toEqual([
      ['dispatcher', false],
      ['workloads', false],
    ]);
  });

  test('stepping down hands leadership to the most caught-up voter and waits until this member no longer leads', async () => {
    const { raft, duties } = setUp('leader');
    let done = false;
    const stepping = duties.stepDown().then(() => (done = true));
    await settle();
    expect([raft.transfers, done]).toEqual([[m('c')], false]);
    raft.advance((core) => (core.role = 'follower'));
    await stepping;
    expect(done).toBe(true);
  });

  test('stepping down gives up waiting after its bound when leadership does not move', async () => {
    const { timers, duties } = setUp('leader');
    let done = false;
    const stepping = duties.stepDown().then(() => (done = true));
    await settle();
    timers.advance(stepDownWaitMs - 1);
    await settle();
    expect(done).toBe(false);
    timers.advance(1);
    await stepping;
    expect(done).toBe(true);
  });
});

describe('LeaderDuties: pruning expired certificate records', () => {
  function withPrune(role: Role) {
    const raft = new FakeRaft(role);
    const timers = new ManualTimers();
    const runs: string[] = [];
    const duties = new LeaderDuties({
      selfId: 'a',
      raft,
      dispatcher: { setActive: () => {}, storeChanged: () => {} },
      workloads: { setActive: () => {}, kick: () => {} },
      timers,
      roundMs: 40,
      onLeft: () => {},
      prune: { everyMs: 1000, run: async () => void runs.push(raft.core.role) },
    });
    return { raft, timers, duties, runs };
  }

  test('the leader prunes once every period, a follower never, and stop() ends it', () => {
    const { raft, timers, duties, runs } = withPrune('leader');
    duties.start();
    timers.advance(999);
    expect(runs).toEqual([]);
    timers.advance(1);
    expect(runs).toEqual(['leader']);
    raft.advance((core) => (core.role = 'follower'));
    timers.advance(1000);
    expect(runs).toEqual(['leader']);
    raft.advance((core) => (core.role = 'leader'));
    timers.advance(1000);
    expect(runs).toEqual(['leader', 'leader']);
    duties.stop();
    timers.advance(5000);
    expect(runs).toEqual(['leader', 'leader']);
  });

  test('a failed prune is left for the next period', async () => {
    const timers = new ManualTimers();
    let calls = 0;
    const failing = new LeaderDuties({
      selfId: 'a',
      raft: new FakeRaft('leader'),
      dispatcher: { setActive: () => {}, storeChanged: () => {} },
      workloads: { setActive: () => {}, kick: () => {} },
      timers,
      roundMs: 40,
      onLeft: () => {},
      prune: {
        everyMs: 1000,
        run: async () => {
          calls++;
          throw new Error('not the leader any more');
        },
      },
    });
    failing.start();
    timers.advance(2000);
    await settle();
    expect(calls).toBe(2);
    failing.stop();
  });
});
