/** leader-router.ts with a fake Raft member, a fake peer client and a hand-driven clock. */
import { describe, expect, test } from 'bun:test';
import { NotManagerError, SecretdError } from '../../errors.ts';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import { readConsistency } from '../api/index.ts';
import type { PeerClient } from '../peers/index.ts';
import { peerPaths } from '../peers/index.ts';
import { Store, type ApplyResult, type Command, type TaggedCommand } from '../store/index.ts';
import { LeaderRouter, writeDeadlineMs, type RouterRaft } from './leader-router.ts';

type PeerResponse = Awaited<ReturnType<PeerClient['request']>>;

class FakeRaft implements RouterRaft {
  readonly core: { leader: string | null };
  readonly store = new Store();
  readonly proposals: TaggedCommand[] = [];
  reads = 0;
  readonly #listeners = new Set<() => void>();

  constructor(leader: string | null) {
    this.core = { leader };
    // The store knows b and c; d is known only from the node state (knownAddr).
    this.store.apply(1, {
      op: 'node-add',
      at: 't',
      node: { id: 'b', role: 'manager', hostname: 'hb', addr: '10.0.0.2:4377' },
    });
    this.store.apply(2, {
      op: 'node-add',
      at: 't',
      node: { id: 'c', role: 'manager', hostname: 'hc', addr: '10.0.0.3:4377' },
    });
  }

  async propose(command: TaggedCommand): Promise<ApplyResult> {
    this.proposals.push(command);
    return { ok: true, id: 'new-id' };
  }

  async linearizableRead(): Promise<void> {
    this.reads++;
  }

  onAdvanced(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** A Ready was advanced: the core now names `leader`. */
  elect(leader: string | null): void {
    this.core.leader = leader;
    for (const listener of [...this.#listeners]) listener();
  }
}

interface Call {
  readonly addr: string;
  readonly method: string;
  readonly path: string;
  readonly body: unknown;
}

class FakePeers {
  readonly calls: Call[] = [];
  answer: (call: Call) => Promise<PeerResponse> = async () =>
    json(200, { ok: true, id: 'forwarded-id' });

  request(
    addr: string,
    method: string,
    path: string,
    body: Uint8Array | null,
  ): Promise<PeerResponse> {
    const call = {
      addr,
      method,
      path,
      body: body === null ? null : JSON.parse(new TextDecoder().decode(body)),
    };
    this.calls.push(call);
    return this.answer(call);
  }
}

function json(status: number, value: unknown): PeerResponse {
  return { status, body: new TextEncoder().encode(JSON.stringify(value)) };
}

const never = (): Promise<PeerResponse> => new Promise(() => {});
/** Lets every queued promise continuation run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const command: Command = { op: 'secret-remove', at: '2024-01-01T00:00:00.000Z', ids: ['s1'] };
/** Request ids come from these bytes. */
const requestId = '07'.repeat(16);

function setUp(options: { leader: string | null; locked?: boolean }) {
  const raft = new FakeRaft(options.leader);
  const peers = new FakePeers();
  const timers = new ManualTimers();
  const router = new LeaderRouter({
    selfId: 'a',
    raft: () => (options.locked ? null : raft),
    peers: () => peers,
    knownAddr: (id) => (id === 'd' ? '10.0.0.4:4377' : undefined),
    timers,
    random: (n) => new Uint8Array(n).fill(7),
  });
  return { raft, peers, timers, router };
}

async function outcome<T>(promise: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

describe('LeaderRouter.propose', () => {
  test('on the leader, the write goes to Raft tagged with a fresh request id', async () => {
    const { raft, peers, router } = setUp({ leader: 'a' });
    expect(await router.propose(command)).toEqual({ ok: true, id: 'new-id' });
    expect(raft.proposals).toEqual([{ ...command, requestId }]);
    expect(peers.calls).toEqual([]);
  });

  test("on a follower, the tagged write is forwarded to the leader's address from the store", async () => {
    const { raft, peers, router } = setUp({ leader: 'b' });
    expect(await router.propose(command)).toEqual({ ok: true, id: 'forwarded-id' });
    expect(peers.calls).toEqual([
      {
        addr: '10.0.0.2:4377',
        method: 'POST',
        path: peerPaths.propose,
        body: { Command: { ...command, requestId } },
      },
    ]);
    expect(raft.proposals).toEqual([]);
  });

  test('a leader the store does not know yet is reached at the address this node joined with', async () => {
    const { peers, router } = setUp({ leader: 'd' });
    await router.propose(command);
    expect(peers.calls.map((c) => c.addr)).toEqual(['10.0.0.4:4377']);
  });

  test("a write the leader refuses fails with the code of the leader's status and is not retried", async () => {
    const { peers, router } = setUp({ leader: 'b' });
    peers.answer = async () => json(409, { message: 'Secret s1 already exists' });
    const result = await outcome(router.propose(command));
    expect(result).toEqual({ error: new SecretdError('conflict', 'Secret s1 already exists') });
    expect((result as { error: SecretdError }).error.code).toBe('conflict');
    expect(peers.calls.length).toBe(1);
  });

  test('a forward the leader refuses for its certificate (a demoted manager) is a final 503 telling the client to go to another manager', async () => {
    const { peers, timers, router } = setUp({ leader: 'b' });
    const refusal = 'Permission denied: a worker certificate cannot forward writes';
    peers.answer = async () => json(403, { message: refusal });
    const result = await outcome(router.propose(command));
    const error = (result as { error: unknown }).error;
    expect(error).toBeInstanceOf(NotManagerError);
    expect({ code: (error as SecretdError).code, message: (error as Error).message }).toEqual({
      code: 'unavailable',
      message: `This node is no longer a manager (the leader refused it: ${refusal}); send the request to another manager`,
    });
    // Not retried: the leader will not take this node's certificate again.
    expect([peers.calls.length, timers.time]).toEqual([1, 0]);
  });

  test('a write the store refuses fails with its code', async () => {
    const { peers, router } = setUp({ leader: 'b' });
    peers.answer = async () =>
      json(200, { ok: false, code: 'not_found', message: 'Secret s1 not found' });
    const result = await outcome(router.propose(command));
    expect((result as { error: SecretdError }).error.code).toBe('not_found');
  });

  test('without a leader, a write waits for the election and then goes to the new leader', async () => {
    const { raft, peers, router } = setUp({ leader: null });
    const pending = router.propose(command);
    await settle();
    expect([raft.proposals.length, peers.calls.length]).toEqual([0, 0]);
    raft.elect('c');
    expect(await pending).toEqual({ ok: true, id: 'forwarded-id' });
    expect(
      peers.calls.map((c) => [c.addr, (c.body as { Command: TaggedCommand }).Command.requestId]),
    ).toEqual([['10.0.0.3:4377', requestId]]);
  });

  test('without a leader for the whole write deadline, a write fails as unavailable', async () => {
    const { timers, router } = setUp({ leader: null });
    let result: { value: unknown } | { error: unknown } | null = null;
    void outcome(router.propose(command)).then((r) => (result = r));
    while (result === null && timers.time < writeDeadlineMs - 200) {
      timers.advance(100);
      await settle();
    }
    expect(result).toBeNull();
    while (result === null && timers.time < writeDeadlineMs + 1000) {
      timers.advance(100);
      await settle();
    }
    const failure = (result as { error: unknown } | null)?.error;
    expect(failure instanceof SecretdError && failure.code).toBe('unavailable');
    expect((failure as Error).message).toBe(
      'No leader: the managers are electing one, or a quorum is unreachable',
    );
  });

  test('a forwarded write is sent again, with the same request id, to the next leader when leadership moves', async () => {
    const { raft, peers, router } = setUp({ leader: 'b' });
    peers.answer = async (call) =>
      call.addr === '10.0.0.2:4377' ? never() : json(200, { ok: true, id: 'from-c' });
    const pending = router.propose(command);
    await settle();
    expect(peers.calls.length).toBe(1);
    raft.elect('c');
    expect(await pending).toEqual({ ok: true, id: 'from-c' });
    expect(
      peers.calls.map((c) => [c.addr, (c.body as { Command: TaggedCommand }).Command.requestId]),
    ).toEqual([
      ['10.0.0.2:4377', requestId],
      ['10.0.0.3:4377', requestId],
    ]);
  });

  test('when leadership moves to this manager, the retried write is proposed here', async () => {
    const { raft, peers, router } = setUp({ leader: 'b' });
    peers.answer = never;
    const pending = router.propose(command);
    await settle();
    raft.elect('a');
    expect(await pending).toEqual({ ok: true, id: 'new-id' });
    expect(raft.proposals).toEqual([{ ...command, requestId }]);
  });

  test('a locked manager refuses a write at once, without retrying', async () => {
    const { router } = setUp({ leader: 'a', locked: true });
    const result = await outcome(router.propose(command));
    expect((result as { error: SecretdError }).error.code).toBe('locked');
  });
});

describe('LeaderRouter.onLeader', () => {
  test('on the leader, the call runs here', async () => {
    const { peers, router } = setUp({ leader: 'a' });
    expect(
      await router.onLeader(async () => 'local', { method: 'GET', path: peerPaths.internalNodes }),
    ).toBe('local');
    expect(peers.calls).toEqual([]);
  });

  test("on a follower, the call goes to the leader's internal route and its answer is returned", async () => {
    const { peers, router } = setUp({ leader: 'b' });
    peers.answer = async () => json(200, [{ id: 'b' }]);
    const answer = await router.onLeader<unknown>(async () => 'local', {
      method: 'POST',
      path: peerPaths.internalExec,
      body: { Task: 't1', Cmd: ['ls'] },
    });
    expect(answer).toEqual([{ id: 'b' }]);
    expect(peers.calls).toEqual([
      {
        addr: '10.0.0.2:4377',
        method: 'POST',
        path: peerPaths.internalExec,
        body: { Task: 't1', Cmd: ['ls'] },
      },
    ]);
  });

  test("the leader's refusal becomes the error of its status, with its message", async () => {
    const { peers, router } = setUp({ leader: 'b' });
    peers.answer = async () => json(404, { message: 'Node x not found' });
    const result = await outcome(
      router.onLeader(async () => null, { method: 'GET', path: `${peerPaths.internalNodes}/x` }),
    );
    expect(result).toEqual({ error: new SecretdError('not_found', 'Node x not found') });
    expect((result as { error: SecretdError }).error.code).toBe('not_found');
  });

  test("the leader's 403 (it no longer takes this node for a manager) is a 503 naming it", async () => {
    const { peers, router } = setUp({ leader: 'b' });
    peers.answer = async () =>
      json(403, { message: 'Permission denied: a worker certificate cannot list nodes' });
    const result = await outcome(
      router.onLeader(async () => null, { method: 'GET', path: peerPaths.internalNodes }),
    );
    const error = (result as { error: SecretdError }).error;
    expect(error).toBeInstanceOf(NotManagerError);
    expect(error.message).toStartWith('This node is no longer a manager');
  });

  test('without a leader, the call fails as unavailable', async () => {
    const { router } = setUp({ leader: null });
    const result = await outcome(
      router.onLeader(async () => null, { method: 'GET', path: peerPaths.internalNodes }),
    );
    expect((result as { error: SecretdError }).error.code).toBe('unavailable');
  });
});

describe('LeaderRouter reads and the leader end', () => {
  test('a read is linearizable unless the request asked for a local one', async () => {
    const { raft, router } = setUp({ leader: 'b' });
    expect(await router.read()).toBe(raft.store);
    await readConsistency.run('local', () => router.read());
    expect(raft.reads).toBe(1);
  });

  test('a forwarded write is refused by a manager that does not lead', async () => {
    const { raft, router } = setUp({ leader: 'b' });
    const result = await outcome(router.proposeForwarded({ ...command, requestId }));
    expect((result as { error: SecretdError }).error.code).toBe('unavailable');
    raft.elect('a');
    expect(await router.proposeForwarded({ ...command, requestId })).toEqual({
      ok: true,
      id: 'new-id',
    });
  });

  test("the refusal of a leader-only call names the leader's address when it is known", () => {
    const { raft, router } = setUp({ leader: 'b' });
    expect(router.notLeader('Not the leader').leaderAddr).toBe('10.0.0.2:4377');
    raft.elect(null);
    expect(router.notLeader('Not the leader').leaderAddr).toBeNull();
  });
});
