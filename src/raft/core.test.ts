import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../errors.ts';
import { RaftNetwork, bytes, mid, seededRandom, text } from '../../test/raft-harness.ts';
import { RaftCore } from './core.ts';
import type { Message, Ready, ReadyMessage } from './types.ts';

const a = mid('a');
const b = mid('b');
const c = mid('c');

function solo(): RaftCore {
  return new RaftCore({
    id: a,
    electionTicks: 10,
    heartbeatTicks: 1,
    random: seededRandom(7),
    initial: { hardState: null, snapshot: null, entries: [], conf: { voters: [a], learners: [] } },
  });
}

/** Run one Ready through the loop without persisting anything (the core only needs advance()). */
function cycle(core: RaftCore): Ready {
  const ready = core.ready();
  core.advance(ready);
  return ready;
}

function threeMembers(
  options: Partial<ConstructorParameters<typeof RaftNetwork>[0]> = {},
): RaftNetwork {
  return new RaftNetwork({ voters: ['a', 'b', 'c'], ...options });
}

function elect(net: RaftNetwork, id: string): void {
  net.core(id).campaign();
  net.stabilize();
  expect(net.leader()).toBe(mid(id));
}

const appendsTo = (
  messages: readonly ReadyMessage[],
  to: string,
): Extract<Message, { type: 'append' }>[] =>
  messages.filter(
    (m): m is Extract<Message, { type: 'append' }> => m.type === 'append' && m.to === to,
  );

describe('single member', () => {
  test('campaign() makes it leader at once; its no-op commits on the advance after it is persisted', () => {
    const core = solo();
    core.campaign();
    expect(core.status().role).toBe('leader');
    const first = cycle(core);
    expect(first.hardState).toEqual({ term: 1, vote: a, commit: 0 });
    expect(first.entries).toEqual([{ term: 1, index: 1, type: 'normal', data: new Uint8Array(0) }]);
    expect(first.committedEntries).toEqual([]);
    expect(first.messages).toEqual([]);
    expect(core.status().commit).toBe(1);
    const second = cycle(core);
    expect(second.hardState).toEqual({ term: 1, vote: a, commit: 1 });
    expect(second.committedEntries.map((e) => e.index)).toEqual([1]);
    expect(core.hasReady()).toBe(false);
  });

  test('a proposal is committed only after advance() reports it persisted', () => {
    const core = solo();
    core.campaign();
    cycle(core);
    cycle(core);
    expect(core.propose(bytes('x'))).toBe(2);
    expect(core.status().commit).toBe(1);
    const persisted = cycle(core);
    expect(persisted.entries.map((e) => text(e.data))).toEqual(['x']);
    expect(persisted.committedEntries).toEqual([]);
    const applied = cycle(core);
    expect(applied.committedEntries.map((e) => text(e.data))).toEqual(['x']);
    expect(core.status()).toMatchObject({ commit: 2, applied: 2, lastIndex: 2 });
  });

  test('ready() is frozen and calls between ready() and advance() are refused', () => {
    const core = solo();
    core.campaign();
    const ready = core.ready();
    expect(Object.isFrozen(ready)).toBe(true);
    expect(Object.isFrozen(ready.entries)).toBe(true);
    expect(() => core.propose(bytes('y'))).toThrow('called between ready() and advance()');
    core.advance(ready);
    expect(() => core.advance(ready)).toThrow();
  });

  test('propose() on a follower throws unavailable; empty data is refused', () => {
    const core = solo();
    let error: unknown = null;
    try {
      core.propose(bytes('x'));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SecretdError);
    expect(error).toMatchObject({
      code: 'unavailable',
      message: expect.stringMatching(/^Not the leader/),
    });
    core.campaign();
    expect(() => core.propose(new Uint8Array(0))).toThrow('empty entry');
  });

  test('a restarted member recovers term, vote, log and commit', () => {
    const core = solo();
    core.campaign();
    const r1 = cycle(core);
    core.propose(bytes('x'));
    const r2 = cycle(core);
    const r3 = cycle(core);
    const restarted = new RaftCore({
      id: a,
      electionTicks: 10,
      heartbeatTicks: 1,
      random: seededRandom(1),
      initial: {
        hardState: r3.hardState,
        snapshot: null,
        entries: [...r1.entries, ...r2.entries],
        conf: { voters: [a], learners: [] },
      },
    });
    expect(restarted.status()).toMatchObject({
      term: 1,
      role: 'follower',
      commit: 2,
      applied: 0,
      lastIndex: 2,
    });
    expect(cycle(restarted).committedEntries.map((e) => e.index)).toEqual([1, 2]);
    restarted.campaign();
    expect(restarted.status()).toMatchObject({ term: 2, role: 'leader' });
  });
});

/** What a Ready asks the node to write, and whether it must wait for the disk. */
const writeOf = (ready: Ready) => ({
  hardState: ready.hardState,
  entries: ready.entries.map((e) => e.index),
  mustSync: ready.mustSync,
});

describe("ready().mustSync (etcd's MustSync)", () => {
  test('is true for new entries and a new term and vote, false when only the commit index moves', () => {
    const core = solo();
    core.campaign();
    expect(writeOf(cycle(core))).toEqual({
      hardState: { term: 1, vote: a, commit: 0 },
      entries: [1],
      mustSync: true,
    });
    expect(writeOf(cycle(core))).toEqual({
      hardState: { term: 1, vote: a, commit: 1 },
      entries: [],
      mustSync: false,
    });
    core.propose(bytes('x'));
    expect(writeOf(cycle(core))).toEqual({ hardState: null, entries: [2], mustSync: true });
    expect(writeOf(cycle(core))).toEqual({
      hardState: { term: 1, vote: a, commit: 2 },
      entries: [],
      mustSync: false,
    });
  });

  test('is true for a vote given, with no entry to write', () => {
    const net = threeMembers({ preVote: false });
    net.core('a').campaign();
    net.processReady('a');
    for (const message of net.take((m) => m.to === b)) net.deliver(message);
    const ready = net.core('b').ready();
    expect(writeOf(ready)).toEqual({
      hardState: { term: 1, vote: a, commit: 0 },
      entries: [],
      mustSync: true,
    });
    net.core('b').advance(ready);
  });

  test('is true for a new term without a vote (a vote refused to a candidate whose log is behind)', () => {
    const net = threeMembers({ preVote: false, checkQuorum: false });
    elect(net, 'a');
    net.isolate('c');
    net.core('a').propose(bytes('x'));
    net.stabilize();
    net.tellCommit('a');
    net.heal();
    net.core('c').campaign();
    net.processReady('c');
    for (const message of net.take((m) => m.to === b && m.type === 'vote')) net.deliver(message);
    const ready = net.core('b').ready();
    expect(writeOf(ready)).toEqual({
      hardState: { term: 2, vote: null, commit: 2 },
      entries: [],
      mustSync: true,
    });
    net.core('b').advance(ready);
  });

  test('is false on a follower told only a new commit index, and on a leader sending only heartbeats', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.core('a').propose(bytes('x'));
    net.processReady('a');
    for (const message of net.take((m) => m.to === b)) net.deliver(message);
    const appended = net.core('b').ready();
    expect(writeOf(appended)).toEqual({ hardState: null, entries: [2], mustSync: true });
    net.core('b').advance(appended);
    for (const message of appended.messages) net.deliver(message);
    net.processReady('a'); // commits x
    expect(net.inFlight.filter((m) => m.to === b)).toEqual([]); // b learns it at the next tick
    net.tick('a');
    net.processReady('a'); // heartbeats carrying the commit index
    for (const message of net.take((m) => m.to === b)) net.deliver(message);
    const committed = net.core('b').ready();
    expect(writeOf(committed)).toEqual({
      hardState: { term: 1, vote: a, commit: 2 },
      entries: [],
      mustSync: false,
    });
    net.core('b').advance(committed);
    net.stabilize();
    net.tick('a');
    const heartbeats = net.core('a').ready();
    expect({
      ...writeOf(heartbeats),
      sends: [...new Set(heartbeats.messages.map((m) => m.type))],
    }).toEqual({ hardState: null, entries: [], mustSync: false, sends: ['heartbeat'] });
    net.core('a').advance(heartbeats);
  });
});

describe('elections', () => {
  test('three members elect exactly one leader, and the others follow it', () => {
    const net = threeMembers();
    net.tickUntil(() => net.leader() !== null);
    const leader = net.leader();
    const statuses = ['a', 'b', 'c'].map((id) => net.core(id).status());
    expect(statuses.filter((s) => s.role === 'leader')).toHaveLength(1);
    expect(statuses.map((s) => s.leader)).toEqual([leader, leader, leader]);
    expect(new Set(statuses.map((s) => s.term)).size).toBe(1);
  });

  test('the term and vote are in the hardState of the same Ready as the vote response', () => {
    const net = threeMembers({ preVote: false });
    net.core('a').campaign();
    net.processReady('a');
    for (const message of net.take((m) => m.to === b)) net.deliver(message);
    const ready = net.core('b').ready();
    expect(ready.hardState).toEqual({ term: 1, vote: a, commit: 0 });
    expect(ready.messages).toEqual([
      { type: 'vote-response', from: b, to: a, term: 1, reject: false },
    ]);
    net.core('b').advance(ready);
  });

  test('a member refuses its vote to a candidate whose log is behind its own', () => {
    const net = threeMembers({ preVote: false, checkQuorum: false });
    elect(net, 'a');
    net.isolate('c');
    net.core('a').propose(bytes('x'));
    net.stabilize();
    net.heal();
    net.core('c').campaign();
    net.processReady('c');
    const [toB] = net.take((m) => m.to === b && m.type === 'vote');
    net.deliver(toB!);
    expect(net.core('b').ready().messages).toContainEqual({
      type: 'vote-response',
      from: b,
      to: c,
      term: 2,
      reject: true,
    });
  });

  test('after the leader crashes a new one is elected and no committed entry is lost', () => {
    const net = threeMembers({ seed: 3 });
    elect(net, 'a');
    for (const value of ['x1', 'x2', 'x3']) net.core('a').propose(bytes(value));
    net.stabilize();
    net.crash('a');
    net.tickUntil(() => net.leader() !== null);
    const second = net.leader()!;
    expect(second).not.toBe(a);
    net.core(second).propose(bytes('y1'));
    net.stabilize();
    net.restart('a');
    net.tickUntil(() => net.member('a').appliedTexts().length === 4);
    for (const id of ['a', 'b', 'c'])
      expect(net.member(id).appliedTexts()).toEqual(['x1', 'x2', 'x3', 'y1']);
  });
});

describe('replication', () => {
  test('a proposal replicates and commits on every member', () => {
    const net = threeMembers();
    elect(net, 'a');
    expect(net.core('a').propose(bytes('hello'))).toBe(2);
    net.stabilize();
    expect(net.core('b').status()).toMatchObject({ commit: 1, lastIndex: 2 });
    net.tellCommit('a');
    for (const id of ['a', 'b', 'c']) {
      expect(net.member(id).appliedTexts()).toEqual(['hello']);
      expect(net.core(id).status()).toMatchObject({ commit: 2, applied: 2, lastIndex: 2 });
    }
  });

  test('a commit goes to followers with the next append or the next tick, not in appends of its own', () => {
    const net = threeMembers();
    elect(net, 'a');
    expect(net.core('b').status().commit).toBe(1); // the leader's no-op is told at once
    const traffic = (): string[] => {
      const seen: string[] = [];
      for (let round = 0; round < 100; round++) {
        net.processAllReady();
        if (net.inFlight.length === 0) return seen.sort();
        for (const m of net.take(() => true)) {
          seen.push(`${m.type} ${m.from}>${m.to}`);
          net.deliver(m);
        }
      }
      throw new Error('the network did not settle');
    };
    const oneWrite = ['append a>b', 'append a>c', 'append-response b>a', 'append-response c>a'];
    net.core('a').propose(bytes('x'));
    expect(traffic()).toEqual(oneWrite);
    expect(net.core('a').status()).toMatchObject({ commit: 2, applied: 2 });
    expect(net.core('b').status()).toMatchObject({ commit: 1, lastIndex: 2 });
    net.core('a').propose(bytes('y'));
    expect(traffic()).toEqual(oneWrite);
    expect(net.member('b').appliedTexts()).toEqual(['x']); // told by y's append
    net.tick('a');
    expect(traffic()).toEqual([
      'heartbeat a>b',
      'heartbeat a>c',
      'heartbeat-response b>a',
      'heartbeat-response c>a',
    ]);
    for (const id of ['b', 'c']) expect(net.member(id).appliedTexts()).toEqual(['x', 'y']);
  });

  test("a membership change's commit is told at once: a removed member learns it with no tick", () => {
    const net = threeMembers();
    elect(net, 'a');
    net.core('a').proposeConfChange({ kind: 'remove', id: c });
    net.stabilize();
    for (const id of ['a', 'b', 'c'])
      expect(net.core(id).status().conf).toEqual({ voters: [a, b], learners: [] });
  });

  test('proposals made before one ready() go out to each follower in one append', () => {
    const net = threeMembers();
    elect(net, 'a');
    for (let i = 0; i < 10; i++) net.core('a').propose(bytes(`p${i}`));
    const ready = net.core('a').ready();
    expect(appendsTo(ready.messages, 'b').map((m) => m.entries.length)).toEqual([10]);
    net.core('a').advance(ready);
  });

  test('appends in flight to a follower never exceed maxInflightMessages', () => {
    const net = threeMembers({ maxInflightMessages: 2, maxEntriesPerMessage: 1 });
    elect(net, 'a');
    net.core('a').propose(bytes('warm-up'));
    net.stabilize(); // b and c are now in the replicate state
    for (let i = 0; i < 10; i++) net.core('a').propose(bytes(`p${i}`));
    net.processReady('a');
    expect(appendsTo(net.inFlight, 'b')).toHaveLength(2);
    net.stabilize();
    net.tellCommit('a');
    expect(net.member('b').appliedTexts()).toHaveLength(11);
  });

  test('a follower truncates entries that conflict with the new leader and never applies them', () => {
    const net = threeMembers({ seed: 5 });
    elect(net, 'a');
    net.isolate('a');
    net.core('a').propose(bytes('lost-1'));
    net.core('a').propose(bytes('lost-2'));
    net.stabilize();
    expect(net.core('a').status().lastIndex).toBe(3);
    net.tickUntil(() => net.leader() !== null && net.leader() !== a);
    const leader = net.leader()!;
    net.core(leader).propose(bytes('kept'));
    net.stabilize();
    net.heal();
    net.tickUntil(() => net.member('a').appliedTexts().length === 1);
    expect(net.member('a').appliedTexts()).toEqual(['kept']);
    const terms = net.member('a').disk.entries.map((e) => e.term);
    expect(net.member('a').disk.entries.map((e) => e.index)).toEqual([1, 2, 3]);
    expect(terms).toEqual(net.member(leader).disk.entries.map((e) => e.term));
    expect(net.member('a').disk.entries.map((e) => text(e.data))).not.toContain('lost-1');
  });

  test('a follower commits only entries the append vouches for, not a stale suffix it holds', () => {
    const entry = (index: number, term: number) => ({
      index,
      term,
      type: 'normal' as const,
      data: bytes(`e${index}`),
    });
    const follower = new RaftCore({
      id: b,
      electionTicks: 10,
      heartbeatTicks: 1,
      random: seededRandom(1),
      initial: {
        hardState: { term: 1, vote: null, commit: 1 },
        snapshot: null,
        entries: [entry(1, 1), entry(2, 1), entry(3, 1)],
        conf: { voters: [a, b, c], learners: [] },
      },
    });
    // The leader of term 2 has committed up to 4; its entry 3 (term 2) differs from ours.
    follower.step({
      type: 'append',
      from: a,
      to: b,
      term: 2,
      prevIndex: 1,
      prevTerm: 1,
      entries: [entry(2, 1)],
      commit: 4,
    });
    expect(follower.status().commit).toBe(2);
    const ready = cycle(follower);
    expect(ready.messages).toEqual([
      { type: 'append-response', from: b, to: a, term: 2, reject: false, index: 2, commit: 2 },
    ]);
    expect(ready.committedEntries.map((e) => e.index)).toEqual([1, 2]);
  });

  test('a follower with a long divergent tail is repaired in a few round trips', () => {
    const net = threeMembers({ seed: 6 });
    elect(net, 'a');
    net.isolate('a');
    for (let i = 0; i < 100; i++) net.core('a').propose(bytes(`stale-${i}`));
    net.stabilize();
    net.tickUntil(() => net.leader() !== null && net.leader() !== a);
    const leader = net.leader()!;
    for (let i = 0; i < 100; i++) net.core(leader).propose(bytes(`new-${i}`));
    net.stabilize();
    // A restart makes the next leader start probing a at the end of its own log, far from a match.
    net.crash(leader);
    net.restart(leader);
    net.member('a').readies = [];
    net.heal();
    net.tickUntil(() => net.member('a').appliedTexts().length === 100);
    const rejections = net
      .member('a')
      .readies.flatMap((r) => r.messages)
      .filter((m) => m.type === 'append-response' && m.reject);
    expect(rejections.length).toBeLessThanOrEqual(2);
  });

  test('figure 8: an entry of an earlier term is not committed by counting replicas', () => {
    const voters = ['a', 'b', 'c', 'd', 'e'];
    const net = new RaftNetwork({
      voters,
      preVote: false,
      checkQuorum: false,
      maxEntriesPerMessage: 1,
    });
    /** Campaign until `id` leads, delivering what `filter` makes of each message (null: drop it). */
    const win = (id: string, filter: (m: Message) => Message | null = (m) => m): number => {
      for (let attempt = 0; net.core(id).status().role !== 'leader'; attempt++) {
        expect(attempt).toBeLessThan(5);
        net.core(id).campaign();
        for (let round = 0; round < 20; round++) {
          net.processAllReady();
          for (const m of net.take(() => true)) {
            const filtered = filter(m);
            if (filtered !== null) net.deliver(filtered);
          }
        }
      }
      return net.core(id).status().term;
    };
    elect(net, 'a'); // no-op at 1, committed everywhere
    net.core('a').propose(bytes('old'));
    net.processReady('a');
    for (const m of net.take(() => true)) if (m.to === b) net.deliver(m); // only b gets 'old' at 2
    net.stabilize();
    const oldTerm = net.core('a').status().term;
    net.crash('a');
    // e wins with c and d and appends its no-op at 2, which no one else receives.
    net.isolate('b');
    const eTerm = win('e', (m) => (m.type === 'append' ? null : m));
    net.crash('e');
    net.heal();
    net.inFlight = [];
    // a comes back and wins with b and c; it gets 'old' to c, but not its own no-op at 3.
    net.restart('a');
    net.isolate('d');
    // (An append cut short is what a leader with a smaller batch limit would have sent.)
    const withoutIndex3 = (m: Message): Message =>
      m.type === 'append' ? { ...m, entries: m.entries.filter((entry) => entry.index < 3) } : m;
    const aTerm = win('a', withoutIndex3);
    expect(aTerm).toBeGreaterThan(eTerm);
    expect(net.core('a').status().progress?.[c]?.match).toBe(2);
    expect(net.member('c').disk.entries.map((entry) => entry.term)).toEqual([oldTerm, oldTerm]);
    // 'old' is on a, b and c, a majority, but it is of an earlier term: not committed.
    expect(net.core('a').status().commit).toBe(1);
    // Indeed e can still win (its last term beats theirs) and overwrite it.
    net.crash('a');
    net.heal();
    net.inFlight = [];
    net.restart('e');
    win('e');
    net.stabilize();
    net.restart('a');
    net.tickUntil(() => net.member('a').applied.length === net.member('e').applied.length);
    for (const id of voters) expect(net.member(id).appliedTexts()).toEqual([]);
    expect(net.committed.get(2)).toBe(`${eTerm}|normal|`);
  });
});

describe('pre-vote and check-quorum', () => {
  test('an isolated follower does not raise its term, and rejoining does not depose the leader', () => {
    const net = threeMembers({ seed: 11 });
    elect(net, 'a');
    net.isolate('c');
    for (let i = 0; i < 100; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.core('c').status()).toMatchObject({ term: 1, role: 'pre-candidate' });
    net.heal();
    for (let i = 0; i < 30; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.core('a').status()).toMatchObject({ term: 1, role: 'leader' });
    expect(net.core('c').status()).toMatchObject({ term: 1, role: 'follower', leader: a });
  });

  test('without pre-vote the same rejoin raises the term and deposes the leader', () => {
    const net = threeMembers({ seed: 11, preVote: false, checkQuorum: false });
    elect(net, 'a');
    net.isolate('c');
    for (let i = 0; i < 100; i++) net.tick('c');
    net.heal();
    net.stabilize();
    expect(net.core('a').status().term).toBeGreaterThan(1);
  });

  test('followers in a leader lease ignore a vote request of a higher term', () => {
    const net = threeMembers({ preVote: false });
    elect(net, 'a');
    net.deliver({ type: 'vote', from: c, to: b, term: 5, lastIndex: 9, lastTerm: 4 });
    expect(net.core('b').status()).toMatchObject({ term: 1, leader: a });
    expect(net.core('b').hasReady()).toBe(false);
  });

  test('an isolated leader steps down after an election timeout, and the others elect a new one', () => {
    const net = threeMembers({ seed: 2 });
    elect(net, 'a');
    net.isolate('a');
    // Activity before the cut counts for the interval under way: down within two intervals.
    for (let i = 0; i < 10; i++) net.tick('a');
    expect(net.core('a').status().role).toBe('leader');
    for (let i = 0; i < 10; i++) net.tick('a');
    expect(net.core('a').status()).toMatchObject({ role: 'follower', leader: null, term: 1 });
    net.tickUntil(() => net.leader() !== null);
    expect([b, c]).toContain(net.leader()!);
  });

  test('a leader with a live quorum does not step down', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.isolate('c');
    for (let i = 0; i < 50; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.core('a').status()).toMatchObject({ role: 'leader', term: 1 });
  });

  test('a stale leader learns the newer term from the answer to its heartbeat', () => {
    const net = threeMembers({ seed: 4, checkQuorum: false });
    elect(net, 'a');
    net.isolate('a');
    net.tickUntil(() => net.leader() !== null && net.leader() !== a);
    expect(net.core('a').status().role).toBe('leader');
    net.heal();
    net.tickAll();
    net.stabilize();
    expect(net.core('a').status().role).toBe('follower');
    expect(net.core('a').status().term).toBe(net.core(net.leader()!).status().term);
  });
});

describe('membership', () => {
  test('a learner is added, catches up without voting, and is promoted', () => {
    const net = new RaftNetwork({ voters: ['a', 'b', 'c'], spares: ['d'] });
    elect(net, 'a');
    net.core('a').propose(bytes('before'));
    net.stabilize();
    expect(() => net.core('a').proposeConfChange({ kind: 'promote', id: mid('d') })).toThrow(
      'not a learner',
    );
    net.core('a').proposeConfChange({ kind: 'add-learner', id: mid('d') });
    expect(() => net.core('a').proposeConfChange({ kind: 'add-learner', id: mid('e') })).toThrow(
      'not applied yet',
    );
    net.stabilize();
    net.tickAll();
    net.stabilize();
    expect(net.core('d').status().conf).toEqual({ voters: [a, b, c], learners: [mid('d')] });
    expect(net.member('d').appliedTexts()).toEqual(['before']);
    // The learner does not count: with b and c cut off, a and d cannot commit.
    net.isolate('b');
    net.isolate('c');
    net.cut('b', 'c');
    net.heal();
    net.partition([['a', 'd'], ['b'], ['c']]);
    net.core('a').propose(bytes('needs-a-voter'));
    net.stabilize();
    expect(net.core('d').status().lastIndex).toBe(net.core('a').status().lastIndex);
    expect(net.member('a').appliedTexts()).toEqual(['before']);
    net.heal();
    net.tickAll();
    net.stabilize();
    expect(net.member('a').appliedTexts()).toEqual(['before', 'needs-a-voter']);
    net.core('a').proposeConfChange({ kind: 'promote', id: mid('d') });
    net.stabilize();
    net.tickAll();
    net.stabilize();
    for (const id of ['a', 'b', 'c', 'd']) {
      expect(net.core(id).status().conf).toEqual({ voters: [a, b, c, mid('d')], learners: [] });
    }
    // Now d counts: with b and c down, a and d are only 2 of 4 voters.
    net.partition([
      ['a', 'd'],
      ['b', 'c'],
    ]);
    net.core('a').propose(bytes('two-of-four'));
    net.stabilize();
    expect(net.member('a').appliedTexts()).toHaveLength(2);
  });

  test('a removed follower stops counting and receiving; the rest keep committing', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.core('a').proposeConfChange({ kind: 'remove', id: c });
    net.stabilize();
    net.tickAll();
    net.stabilize();
    expect(net.core('a').status().conf).toEqual({ voters: [a, b], learners: [] });
    expect(Object.keys(net.core('a').status().progress ?? {})).toEqual([a, b]);
    net.crash('c');
    net.core('a').propose(bytes('after-removal'));
    net.stabilize();
    net.tellCommit('a');
    expect(net.member('b').appliedTexts()).toEqual(['after-removal']);
  });

  test('a leader that removes itself hands over once the others know, then never campaigns', () => {
    const net = threeMembers({ seed: 9 });
    elect(net, 'a');
    net.core('a').proposeConfChange({ kind: 'remove', id: a });
    // From the moment the change is in its log, a leader being removed takes no new entries.
    expect(() => net.core('a').propose(bytes('x'))).toThrow('is being removed');
    // Hold back the answers that would tell a that b and c know the change (index 2) is committed.
    const tellsA = (m: Message): boolean =>
      m.to === a &&
      (m.type === 'append-response' || m.type === 'heartbeat-response') &&
      (m.commit ?? 0) >= 2;
    const held: Message[] = [];
    for (let round = 0; round < 20; round++) {
      net.processAllReady();
      held.push(...net.take(tellsA));
      for (const m of net.take(() => true)) net.deliver(m);
    }
    // Applied, but b and c have not yet said they know it is committed: a leads on, without proposals.
    expect(net.core('a').status()).toMatchObject({
      role: 'leader',
      conf: { voters: [b, c], learners: [] },
    });
    expect(() => net.core('a').propose(bytes('x'))).toThrow('Not the leader');
    expect(held.length).toBeGreaterThan(0);
    for (const m of held) net.deliver(m);
    net.stabilize();
    expect(net.core('a').status().role).toBe('follower');
    net.tickUntil(() => net.leader() !== null);
    expect([b, c]).toContain(net.leader()!);
    for (let i = 0; i < 100; i++) net.tick('a');
    expect(net.core('a').status().role).toBe('follower');
  });

  test('two voters: the remaining one takes over even if the removed leader leaves at once', () => {
    const net = new RaftNetwork({ voters: ['a', 'c'] });
    elect(net, 'c');
    net.core('c').proposeConfChange({ kind: 'remove', id: c });
    net.processReady('c');
    for (const m of net.take(() => true)) net.deliver(m);
    net.processReady('a');
    for (const m of net.take(() => true)) net.deliver(m); // c learns a has the change: committed
    net.processReady('c'); // c applies its removal; the commit it sends a is lost
    net.inFlight = [];
    expect(net.core('c').status()).toMatchObject({
      role: 'leader',
      conf: { voters: [a], learners: [] },
    });
    expect(net.core('a').status().commit).toBe(1);
    // a's configuration still needs c's vote; c steps down only once a reports the commit.
    net.tickUntil(() => net.core('c').status().role === 'follower');
    expect(net.core('a').status().commit).toBe(2);
    net.crash('c');
    net.tickUntil(() => net.leader() === a);
    expect(net.core('a').status().conf).toEqual({ voters: [a], learners: [] });
    net.core('a').propose(bytes('alone'));
    net.stabilize();
    expect(net.member('a').appliedTexts()).toEqual(['alone']);
  });

  test('a membership change is refused before the new leader has applied its no-op', () => {
    const net = threeMembers();
    net.core('a').campaign();
    while (net.core('a').status().role !== 'leader') {
      net.processAllReady();
      for (const m of net.take(() => true)) net.deliver(m);
    }
    expect(() => net.core('a').proposeConfChange({ kind: 'remove', id: c })).toThrow(SecretdError);
  });
});

describe('only members speak Raft', () => {
  const z = mid('z');

  test('a leader and a follower drop higher-term messages from an id outside the configuration', () => {
    // No leader lease, so a member would follow any newer term: only membership stops z.
    const net = threeMembers({ checkQuorum: false, preVote: false });
    elect(net, 'a');
    net.core('a').propose(bytes('x'));
    net.stabilize();
    const before = { a: net.core('a').status(), b: net.core('b').status() };
    net.deliver({ type: 'heartbeat', from: z, to: a, term: 50, commit: 0 });
    net.deliver({ type: 'append-response', from: z, to: a, term: 50, reject: false, index: 9 });
    net.deliver({ type: 'vote', from: z, to: b, term: 50, lastIndex: 99, lastTerm: 49 });
    net.deliver({
      type: 'append',
      from: z,
      to: b,
      term: 50,
      prevIndex: 2,
      prevTerm: 1,
      entries: [{ term: 50, index: 3, type: 'normal', data: bytes('forged') }],
      commit: 3,
    });
    net.deliver({ type: 'timeout-now', from: z, to: b, term: 1 });
    expect(net.core('a').status()).toEqual(before.a);
    expect(net.core('b').status()).toEqual(before.b);
    expect(net.core('a').hasReady()).toBe(false);
    expect(net.core('b').hasReady()).toBe(false);
    net.core('a').propose(bytes('y'));
    net.stabilize();
    net.tellCommit('a');
    expect(net.member('b').appliedTexts()).toEqual(['x', 'y']);
  });

  test('a removed member cannot depose the leader with a higher term once its removal is applied', () => {
    const net = threeMembers({ checkQuorum: false, preVote: false });
    elect(net, 'a');
    net.core('a').proposeConfChange({ kind: 'remove', id: c });
    net.stabilize();
    net.tickAll();
    net.stabilize();
    for (const id of ['a', 'b'])
      expect(net.core(id).status().conf).toEqual({ voters: [a, b], learners: [] });
    net.deliver({ type: 'heartbeat', from: c, to: a, term: 7, commit: 0 });
    net.deliver({ type: 'heartbeat', from: c, to: b, term: 7, commit: 0 });
    net.deliver({ type: 'vote', from: c, to: b, term: 8, lastIndex: 50, lastTerm: 7 });
    net.stabilize();
    expect(net.core('a').status()).toMatchObject({ role: 'leader', term: 1 });
    expect(net.core('b').status()).toMatchObject({ role: 'follower', term: 1, leader: a });
    net.core('a').propose(bytes('after'));
    net.stabilize();
    net.tellCommit('a');
    expect(net.member('b').appliedTexts()).toEqual(['after']);
  });

  test('a joiner whose founding configuration lacks the leader still hears it until it is added', () => {
    const net = new RaftNetwork({ voters: ['a', 'b', 'c'], spares: ['d', 'e'] });
    elect(net, 'a');
    const change = (
      leader: string,
      kind: 'add-learner' | 'promote' | 'remove',
      id: string,
    ): void => {
      net.core(leader).proposeConfChange({ kind, id: mid(id) });
      net.tickUntil(() => {
        const { conf, lastIndex } = net.core(leader).status();
        return [...conf.voters, ...conf.learners].every(
          (id) => net.member(id).core?.status().applied === lastIndex,
        );
      });
    };
    change('a', 'add-learner', 'd');
    change('a', 'promote', 'd');
    net.core('a').transferLeadership(mid('d'));
    net.tickUntil(() => net.leader() === mid('d'));
    change('d', 'remove', 'a');
    net.crash('a');
    // e starts from the founders {a, b, c}: d, the leader, is not among them.
    change('d', 'add-learner', 'e');
    net.core('d').propose(bytes('for-e'));
    net.tickUntil(() => net.member('e').appliedTexts().includes('for-e'));
    expect(net.core('e').status()).toMatchObject({
      leader: mid('d'),
      conf: { voters: [b, c, mid('d')], learners: [mid('e')] },
    });
  });

  test('a voter that missed the addition of its new leader hears it once a member vouches for it', () => {
    const net = new RaftNetwork({ voters: ['a', 'b', 'c'], spares: ['d'] });
    elect(net, 'a');
    net.crash('c');
    for (const kind of ['add-learner', 'promote'] as const) {
      net.core('a').proposeConfChange({ kind, id: mid('d') });
      net.tickUntil(() =>
        ['a', 'b', 'd'].every(
          (id) => net.core(id).status().applied === net.core('a').status().lastIndex,
        ),
      );
    }
    net.core('a').transferLeadership(mid('d'));
    net.tickUntil(() => net.leader() === mid('d'));
    net.core('d').propose(bytes('while-c-was-down'));
    net.stabilize();
    net.restart('c');
    expect(net.core('c').status().conf).toEqual({ voters: [a, b, c], learners: [] });
    // c drops d's heartbeats until b or a, refusing its pre-vote, names d as their leader.
    net.tickUntil(() => net.member('c').appliedTexts().includes('while-c-was-down'));
    expect(net.core('c').status()).toMatchObject({
      leader: mid('d'),
      conf: { voters: [a, b, c, mid('d')], learners: [] },
    });
    expect(net.leader()).toBe(mid('d'));
  });
});

describe('snapshots', () => {
  test('a follower behind the compaction point is sent the snapshot and catches up', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.isolate('c');
    for (let i = 0; i < 20; i++) net.core('a').propose(bytes(`v${i}`));
    net.stabilize();
    const snapshot = net.compact('a');
    expect(snapshot.meta.index).toBe(21);
    net.core('a').propose(bytes('after'));
    net.stabilize();
    net.heal();
    net.member('a').readies = [];
    for (let i = 0; i < 5; i++) {
      net.tickAll();
      net.stabilize();
    }
    const sent = net.member('a').readies.flatMap((ready) => ready.messages);
    expect(sent.filter((m) => m.type === 'snapshot' && m.to === c)).toHaveLength(1);
    expect(net.member('c').disk.snapshot?.meta).toEqual(snapshot.meta);
    expect(net.member('c').appliedTexts()).toEqual(net.member('a').appliedTexts());
    expect(net.core('a').status().progress?.[c]).toMatchObject({ state: 'replicate', match: 22 });
  });

  test('a leader restarted from a snapshot can still send it', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.isolate('c');
    for (let i = 0; i < 5; i++) net.core('a').propose(bytes(`v${i}`));
    net.stabilize();
    net.compact('a');
    net.crash('a');
    net.restart('a');
    net.heal();
    net.partition([['a', 'c'], ['b']]);
    net.tickUntil(() => net.leader() === a || net.leader() === c, 500);
    net.heal();
    net.tickUntil(() => net.member('c').appliedTexts().length === 5);
  });
});

describe('leadership transfer', () => {
  test('leadership moves to a caught-up target', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.core('a').transferLeadership(b);
    net.stabilize();
    expect(net.leader()).toBe(b);
    expect(net.core('b').status().term).toBe(2);
    expect(net.core('a').status()).toMatchObject({ role: 'follower', leader: b });
  });

  test('a lagging target is caught up first; proposals are refused meanwhile', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.isolate('c');
    for (let i = 0; i < 5; i++) net.core('a').propose(bytes(`v${i}`));
    net.stabilize();
    net.heal();
    net.core('a').transferLeadership(c);
    expect(() => net.core('a').propose(bytes('during'))).toThrow('being transferred');
    net.stabilize();
    expect(net.leader()).toBe(c);
    expect(net.member('c').appliedTexts()).toHaveLength(5);
  });

  test('a transfer to an unreachable target is abandoned after an election timeout', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.isolate('c');
    net.core('a').propose(bytes('x'));
    net.stabilize();
    net.core('a').transferLeadership(c);
    expect(net.core('a').status().transferee).toBe(c);
    for (let i = 0; i < 10; i++) {
      net.tickAll();
      net.stabilize();
    }
    expect(net.core('a').status()).toMatchObject({ role: 'leader', transferee: null });
    expect(net.core('a').propose(bytes('y'))).toBe(3);
  });
});

describe('ReadIndex', () => {
  test('the leader yields a ReadState at its commit index after a heartbeat quorum', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.core('a').propose(bytes('x'));
    net.stabilize();
    net.readIndex('a', 'r1');
    net.processReady('a');
    expect(net.member('a').readStates).toEqual([]);
    net.stabilize();
    expect(net.member('a').readStates).toEqual([{ index: 2, context: 'r1' }]);
  });

  test('a leader cut off from the quorum never answers a read', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.isolate('a');
    net.readIndex('a', 'r1');
    net.stabilize();
    expect(net.member('a').readStates).toEqual([]);
  });

  test('a read on a follower is forwarded and answered through the leader', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.core('a').propose(bytes('x'));
    net.stabilize();
    net.readIndex('b', 'r2');
    net.stabilize();
    expect(net.member('b').readStates).toEqual([{ index: 2, context: 'r2' }]);
  });

  test('a new leader answers only after committing an entry of its term', () => {
    const net = threeMembers({ preVote: false });
    net.core('a').campaign();
    while (net.core('a').status().role !== 'leader') {
      net.processAllReady();
      for (const m of net.take(() => true)) net.deliver(m);
    }
    net.readIndex('a', 'early');
    expect(net.core('a').status().commit).toBe(0);
    net.stabilize();
    expect(net.member('a').readStates).toEqual([{ index: 1, context: 'early' }]);
  });

  test('a follower without a leader refuses a read', () => {
    const net = threeMembers();
    expect(() => net.readIndex('b', 'r')).toThrow('knows no leader');
  });
});

describe('messages', () => {
  test('a message from an older term is answered with the current term and otherwise ignored', () => {
    const net = threeMembers();
    elect(net, 'a');
    net.deliver({
      type: 'append',
      from: c,
      to: b,
      term: 0,
      prevIndex: 0,
      prevTerm: 0,
      entries: [],
      commit: 0,
    });
    const ready = net.core('b').ready();
    expect(ready.messages).toEqual([
      { type: 'append-response', from: b, to: c, term: 1, reject: false, index: 0 },
    ]);
    expect(ready.hardState).toBeNull();
    net.core('b').advance(ready);
  });
});
