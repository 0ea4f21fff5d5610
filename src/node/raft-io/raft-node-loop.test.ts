/**
 * RaftNode's loop takes every input when it comes, not at the next tick: a write proposed while
 * the loop finishes the turn that answered a read (`secret rm` and `secret update` read, then
 * propose) went out only when the tick came, 0-50 ms later. And a wait for a leader ends with the
 * Ready that makes one known, with the member's stop, or at its time limit, not at a poll.
 */
import { expect, test } from 'bun:test';
import { tempDir } from '../../../test/helpers/process.ts';
import { leaderId, openOneMember } from '../../../test/helpers/raft-leader.ts';
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
