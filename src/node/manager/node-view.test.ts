/** node-view.ts: Docker's node view from a Raft status, pure. */
import { describe, expect, test } from 'bun:test';
import type { ProgressStatus, RaftStatus } from '../../raft/core.ts';
import type { MemberId } from '../../raft/types.ts';
import type { NodeId, NodeRecord } from '../store/index.ts';
import { Store } from '../store/index.ts';
import {
  activeIds,
  activeProgress,
  localTaskCounts,
  nodeSummary,
  nodeView,
  reachability,
  type NodeViewContext,
} from './node-view.ts';

const m = (id: string): MemberId => id as MemberId;
const tls = { trustRoot: 'ca-pem', issuerSubject: 'subject', issuerPublicKey: 'key' };

function node(
  id: string,
  role: NodeRecord['role'],
  status: NodeRecord['status'] = 'unknown',
): NodeRecord {
  return {
    id: id as NodeId,
    role,
    hostname: `host-${id}`,
    addr: `10.0.0.${id.length}:4377`,
    availability: 'active',
    labels: { zone: 'z1' },
    status,
    createdAt: 't0',
    updatedAt: 't1',
    metaIndex: 7,
  };
}

function progress(match: number, recentActive: boolean): ProgressStatus {
  return { match, next: match + 1, state: 'replicate', recentActive } as ProgressStatus;
}

/** Members a, b, c vote; d is a learner; `self` answers in `role`. */
function status(
  self: string,
  role: RaftStatus['role'],
  leader: string | null,
  withProgress?: Record<string, ProgressStatus>,
): RaftStatus {
  return {
    id: m(self),
    term: 3,
    role,
    leader: leader === null ? null : m(leader),
    commit: 10,
    applied: 10,
    lastIndex: 10,
    conf: { voters: [m('a'), m('b'), m('c')], learners: [m('d')] },
    transferee: null,
    ...(withProgress ? { progress: withProgress as Record<MemberId, ProgressStatus> } : {}),
  };
}

function context(raft: RaftStatus, active: string[]): NodeViewContext {
  return { status: raft, activeIds: new Set(active), selfId: raft.id, tls };
}

describe('reachability', () => {
  test('the leader sees itself and the voters it heard from as reachable, a silent voter as unreachable, a learner as unknown', () => {
    const leaderView = context(status('a', 'leader', 'a'), ['b']);
    expect(['a', 'b', 'c', 'd', 'e'].map((id) => reachability(id, leaderView))).toEqual([
      'reachable',
      'reachable',
      'unreachable',
      'unknown',
      'unknown',
    ]);
  });

  test('a follower knows only itself: every other voter is unknown, whatever it saw', () => {
    const followerView = context(status('b', 'follower', 'a'), ['a', 'c']);
    expect(['a', 'b', 'c', 'd'].map((id) => reachability(id, followerView))).toEqual([
      'unknown',
      'reachable',
      'unknown',
      'unknown',
    ]);
  });

  test('a candidate answers as a follower does', () => {
    const candidateView = context(status('b', 'candidate', null), ['a']);
    expect(['a', 'b'].map((id) => reachability(id, candidateView))).toEqual([
      'unknown',
      'reachable',
    ]);
  });
});

describe('nodeView', () => {
  test("a manager's state follows the leader's Raft view of it, and names the leader", () => {
    const view = context(status('a', 'leader', 'a'), []);
    expect(nodeView(node('a', 'manager'), view)).toEqual({
      id: 'a',
      metaIndex: 7,
      createdAt: 't0',
      updatedAt: 't1',
      role: 'manager',
      availability: 'active',
      labels: { zone: 'z1' },
      hostname: 'host-a',
      addr: '10.0.0.1:4377',
      state: 'ready',
      manager: { leader: true, reachability: 'reachable' },
      resources: null,
      tls,
    });
    expect([
      nodeView(node('c', 'manager', 'ready'), view).state,
      nodeView(node('c', 'manager', 'ready'), view).manager,
    ]).toEqual(['down', { leader: false, reachability: 'unreachable' }]);
    expect([
      nodeView(node('d', 'manager', 'ready'), view).state,
      nodeView(node('d', 'manager'), view).manager,
    ]).toEqual(['unknown', { leader: false, reachability: 'unknown' }]);
  });

  test("a worker's state is its dispatcher session's (the store's status), with no manager status", () => {
    const view = context(status('a', 'leader', 'a'), []);
    const worker = {
      ...node('w', 'worker', 'down'),
      resources: { nanoCpus: 2e9, memoryBytes: 1024 },
    };
    expect(nodeView(worker, view)).toMatchObject({
      role: 'worker',
      state: 'down',
      manager: null,
      resources: { nanoCpus: 2e9, memoryBytes: 1024 },
    });
  });
});

describe('activeProgress', () => {
  test('a follower the core marked inactive counts as active when the transport exchanged with it recently', () => {
    const raft = status('a', 'leader', 'a', {
      a: progress(10, true),
      b: progress(9, false),
      c: progress(3, false),
    });
    const progressSeen = activeProgress(raft, (id) => id === 'b');
    expect(progressSeen).toEqual({
      a: progress(10, true),
      b: progress(9, true),
      c: progress(3, false),
    });
    expect([...activeIds(progressSeen)].sort()).toEqual(['a', 'b']);
  });

  test('a follower has no progress, so no member counts as active', () => {
    const raft = status('b', 'follower', 'a');
    expect(activeProgress(raft, () => true)).toBeUndefined();
    expect(activeIds(undefined).size).toBe(0);
  });
});

describe('nodeSummary', () => {
  const state = {
    nodeId: 'a',
    clusterId: 'cluster-1',
    advertiseAddr: '10.0.0.1:4377',
  } as Parameters<typeof nodeSummary>[0]['state'];

  test('a locked manager shows its identity, no counts and no cluster', () => {
    expect(
      nodeSummary({
        state,
        store: undefined,
        locked: true,
        hostname: 'h',
        agentSecrets: { received: 0, held: 0 },
      }),
    ).toEqual({
      nodeId: 'a',
      clusterId: 'cluster-1',
      addr: '10.0.0.1:4377',
      state: 'locked',
      isManager: true,
      hostname: 'h',
      managers: 0,
      nodes: 0,
      secrets: 0,
      secretsReceived: 0,
      secretsHeld: 0,
      remoteManagers: [],
      tasks: { live: 0, running: 0 },
      cluster: null,
    });
  });

  test('an unlocked manager counts the managers and nodes the store holds', () => {
    const store = new Store();
    store.apply(1, {
      op: 'node-add',
      at: 't',
      node: { id: 'a', role: 'manager', hostname: 'ha', addr: '10.0.0.1:4377' },
    });
    store.apply(2, {
      op: 'node-add',
      at: 't',
      node: { id: 'w', role: 'worker', hostname: 'hw', addr: '10.0.0.9:4377' },
    });
    const summary = nodeSummary({
      state,
      store,
      locked: false,
      hostname: 'h',
      agentSecrets: { received: 4, held: 2 },
    });
    expect(summary).toMatchObject({
      state: 'active',
      managers: 1,
      nodes: 2,
      secretsReceived: 4,
      secretsHeld: 2,
      remoteManagers: [{ nodeId: 'a', addr: '10.0.0.1:4377' }],
    });
    expect(localTaskCounts(store, 'a')).toEqual({ live: 0, running: 0 });
  });
});
