/**
 * RaftNode's loop takes every input when it comes, not at the next tick: a write proposed while
 * the loop finishes the turn that answered a read (`secret rm` and `secret update` read, then
 * propose) went out only when the tick came, 0-50 ms later. And a wait for a leader ends with the
 * Ready that makes one known, with the member's stop, or at its time limit, not at a poll; and a
 * stop waits for the loop's run to end, not for a timer. A follower answers an append before it
 * applies what the append commits.
 */
import { expect, test } from 'bun:test';
import { until } from '../../../test/helpers/cluster.ts';
import { tempDir } from '../../../test/helpers/process.ts';
import { leaderId, openOneMember } from '../../../test/helpers/raft-leader.ts';
import type { Timers } from '../../io/timers.ts';
import type { Entry, MemberId, Message } from '../../raft/types.ts';
import { encodeCommand } from '../store/index.ts';
import type { RaftNode } from './raft-node.ts';

const at = '2026-12-07T00:00:00.000Z';

/** Resolves with 'stuck' after `ms`: far longer than a write takes, and no tick comes before. */
function stuckAfter(ms: number): Promise<'stuck'> {
  return new Promise((resolve) => setTimeout(() => resolve('stuck'), ms));
}

/** A one-member node, not started: no tick comes; anything left for one would wait forever. */
const oneMember = (root: string): Promise<RaftNode> => openOneMember(root, { tickMs: 3_600_000 });

test('a write proposed as a read is answered is written without waiting for a tick', async () => {
  using dir = tempDir('secretd-raft-loop-');
  const node = await oneMember(dir.path);
  try {
    node.campaign();
    await node.waitForLeader(5_000);
    for (let i = 0; i < 20; i++) {
      await node.linearizableRead();
      // Proposed in the read's continuation, while the loop that answered it finishes its turn.
      const written = node.propose({ op: 'secret-remove', at, ids: [`secret-${i}`] });
      // An fsync takes milliseconds; the tick that would carry a stranded write is an hour away.
      const outcome = await Promise.race([written, stuckAfter(10_000)]);
      expect(outcome, `write ${i}`).toMatchObject({ ok: false, code: 'not_found' });
    }
  } finally {
    await node.stop();
  }
});

test('waitForLeader() ends when the member leads, when it stops, or at its time limit', async () => {
  using dir = tempDir('secretd-raft-loop-');
  const node = await oneMember(dir.path);
  // No leader and no tick to elect one: the limit ends the wait.
  await expect(node.waitForLeader(20)).rejects.toThrow('No leader was elected in time');
  // A stop ends a wait still under way, whatever its limit.
  const waiting = node.waitForLeader(3_600_000);
  const stopping = node.stop();
  expect(await Promise.race([waiting.catch((e: Error) => e.message), stuckAfter(10_000)])).toBe(
    'Node is shutting down',
  );
  await stopping;
  await expect(node.waitForLeader(5_000)).rejects.toThrow('Node is shutting down');
  // A campaign ends it at the Ready that makes this member the leader.
  using other = tempDir('secretd-raft-loop-');
  const again = await oneMember(other.path);
  try {
    const led = again.waitForLeader(3_600_000);
    again.campaign();
    expect(await Promise.race([led.then(() => 'leads'), stuckAfter(10_000)])).toBe('leads');
    expect(again.core.leader).toBe(leaderId);
  } finally {
    await again.stop();
  }
});

test('stop() during a write ends with the loop, with no timer', async () => {
  using dir = tempDir('secretd-raft-loop-');
  // Timers that never fire: whatever waits on one never ends (the stop polled one every 1 ms).
  const frozen: Timers = {
    now: () => performance.now(),
    after: () => () => {},
    every: () => () => {},
    turn: (fn) => void setImmediate(fn),
  };
  const node = await openOneMember(dir.path, { timers: frozen });
  node.campaign();
  await node.waitForLeader(3_600_000);
  for (let i = 0; i < 3; i++)
    expect(await node.propose({ op: 'secret-remove', at, ids: [`secret-${i}`] })).toMatchObject({
      ok: false,
      code: 'not_found',
    });
  // Stopped while a write's fsync is under way (the loop is running), with another write
  // proposed meanwhile, which waits in the inbox for that Ready to end.
  const outcome = (result: Promise<{ ok: boolean; code?: string }>): Promise<string> =>
    result.then(
      (r) => (r.ok ? 'written' : r.code!),
      (error: Error) => error.message,
    );
  const first = outcome(node.propose({ op: 'secret-remove', at, ids: ['first'] }));
  await new Promise((resolve) => setImmediate(resolve));
  const waiting = outcome(node.propose({ op: 'secret-remove', at, ids: ['waiting'] }));
  const stopped = node.stop().then(() => 'stopped');
  expect(await Promise.race([stopped, stuckAfter(10_000)])).toBe('stopped');
  // Each answered or refused, none left waiting: the one from the inbox was proposed to the core
  // after the stop had refused the writes it knew of, and never settled.
  expect(await Promise.race([first, stuckAfter(10_000)])).toMatch(
    /^(not_found|Node is shutting down.*)$/,
  );
  expect(await Promise.race([waiting, stuckAfter(10_000)])).toBe('Node is shutting down');
}, 30_000);

test("a follower answers the leader's append before it applies the entry the append commits", async () => {
  using dir = tempDir('secretd-raft-loop-');
  const sent: Message[] = [];
  // The store's applied index at the moment each answer to the leader is handed over.
  const appliedAtAnswer: number[] = [];
  let node: RaftNode | undefined;
  node = await followerOfThree(dir.path, sent, (messages) => {
    for (const m of messages)
      if (m.type === 'append-response') appliedAtAnswer.push(node!.store.appliedIndex);
  });
  const entry = (index: number): Entry => ({
    term: 1,
    index,
    type: 'normal',
    data: encodeCommand({ op: 'secret-remove', at, ids: [`secret-${index}`] }),
  });
  const append = (prevIndex: number, commit: number): Message => ({
    type: 'append',
    from: memberB,
    to: leaderId,
    term: 1,
    prevIndex,
    prevTerm: prevIndex === 0 ? 0 : 1,
    entries: [entry(prevIndex + 1)],
    commit,
  });
  try {
    node.step(append(0, 0));
    await sentOfType(sent, 'append-response', 1);
    // The next write's append tells the follower that the first is committed (core.ts
    // #onCommitted): its answer goes first, and the first entry is applied after it.
    node.step(append(1, 1));
    await sentOfType(sent, 'append-response', 2);
    expect(appliedAtAnswer).toEqual([0, 0]);
    await until(
      'the first entry applied',
      10_000,
      () => node.store.appliedIndex >= 1 || undefined,
      1,
    );
  } finally {
    await node.stop();
  }
}, 30_000);

/** A follower of three voters, not started, whose messages are kept and whose timers never fire. */
async function followerOfThree(
  root: string,
  sent: Message[],
  onSend?: (messages: readonly Message[]) => void,
): Promise<RaftNode> {
  const never: Timers = {
    now: () => performance.now(),
    after: () => () => {},
    every: () => () => {},
    turn: (fn) => void setImmediate(fn),
  };
  return openOneMember(root, {
    timers: never,
    bootstrapConf: { voters: [leaderId, memberB, memberC], learners: [] },
    transport: {
      send: (messages) => {
        onSend?.(messages as Message[]);
        sent.push(...(messages as Message[]));
      },
    },
  });
}

const memberB = 'node-b' as MemberId;
const memberC = 'node-c' as MemberId;
const heartbeat = (from: MemberId, term: number): Message => ({
  type: 'heartbeat',
  from,
  to: leaderId,
  term,
  commit: 0,
});

/**
 * The messages of `type` in `sent`, once there are `count` of them (the Ready that sends one ends
 * after an fsync); fails after 10 s.
 */
function sentOfType<T extends Message['type']>(
  sent: Message[],
  type: T,
  count: number,
): Promise<Extract<Message, { type: T }>[]> {
  const ofType = (): Extract<Message, { type: T }>[] =>
    sent.filter((m): m is Extract<Message, { type: T }> => m.type === type);
  return until(
    `${count} ${type} message(s) sent`,
    10_000,
    () => (ofType().length >= count ? ofType() : undefined),
    1,
  );
}

const forwardedRead = (
  sent: Message[],
  count: number,
): Promise<Extract<Message, { type: 'read-index' }>[]> => sentOfType(sent, 'read-index', count);

/** Resolves with how `read` ended: 'read', or its error's message. */
const readOutcome = (read: Promise<void>): Promise<string> =>
  read.then(
    () => 'read',
    (error: Error) => error.message,
  );

test('a read the leader never confirms is refused when the member stops, not at its time limit', async () => {
  using dir = tempDir('secretd-raft-loop-');
  const sent: Message[] = [];
  const node = await followerOfThree(dir.path, sent);
  node.step(heartbeat(memberB, 1));
  const read = readOutcome(node.linearizableRead(3_600_000));
  // Forwarded to the leader, which never answers: without the stop it waits for its hour.
  expect((await forwardedRead(sent, 1)).map((m) => m.to)).toEqual([memberB]);
  await node.stop();
  expect(await Promise.race([read, stuckAfter(10_000)])).toBe('Node is shutting down');
}, 30_000);

test('a read sent to a leader is refused once another leader is known; one sent to the leader, elected again or not, waits for its answer', async () => {
  using dir = tempDir('secretd-raft-loop-');
  const sent: Message[] = [];
  const node = await followerOfThree(dir.path, sent);
  try {
    node.step(heartbeat(memberB, 1));
    const lost = readOutcome(node.linearizableRead(3_600_000));
    expect((await forwardedRead(sent, 1)).map((m) => m.to)).toEqual([memberB]);
    // node-b's heartbeat in its own term changes nothing: its answer may still come.
    node.step(heartbeat(memberB, 1));
    expect(await Promise.race([lost, stuckAfter(200)])).toBe('stuck');
    // node-c leads in term 2: node-b's answer, if any, will never come.
    node.step(heartbeat(memberC, 2));
    expect(await Promise.race([lost, stuckAfter(10_000)])).toBe(
      'Cannot read: another leader was elected before this read was confirmed; try again',
    );
    // A read sent to node-c is not refused by a heartbeat from node-c; its answer ends it. And
    // with node-c elected again, in term 3: a forwarded read names no term, so node-c answers one
    // that reaches it whenever it leads. The read waits for that answer.
    for (const [term, count] of [
      [2, 2],
      [3, 3],
    ] as const) {
      const kept = readOutcome(node.linearizableRead(3_600_000));
      const forwarded = (await forwardedRead(sent, count))[count - 1]!;
      expect(forwarded.to).toBe(memberC);
      node.step(heartbeat(memberC, term));
      expect(await Promise.race([kept, stuckAfter(200)])).toBe('stuck');
      node.step({
        type: 'read-index-response',
        from: memberC,
        to: leaderId,
        term,
        index: 0,
        context: forwarded.context,
      });
      expect(await Promise.race([kept, stuckAfter(10_000)])).toBe('read');
    }
  } finally {
    await node.stop();
  }
}, 30_000);
