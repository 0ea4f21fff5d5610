/**
 * RaftNode's loop takes every input when it comes, not at the next tick: a write proposed while
 * the loop finishes the turn that answered a read (`secret rm` and `secret update` read, then
 * propose) went out only when the tick came, 0-50 ms later.
 */
import { expect, test } from 'bun:test';
import { tempDir } from '../../../test/helpers/process.ts';
import { NodeFileSystem } from '../../io/node-fs.ts';
import { systemRandom } from '../../io/system.ts';
import type { MemberId } from '../../raft/types.ts';
import { openRaftNode } from './open-raft-node.ts';

const at = '2026-12-07T00:00:00.000Z';

/** Resolves with 'stuck' after `ms`: far longer than a write takes, and no tick comes before. */
function stuckAfter(ms: number): Promise<'stuck'> {
  return new Promise((resolve) => setTimeout(() => resolve('stuck'), ms));
}

test('a write proposed as a read is answered is written without waiting for a tick', async () => {
  using dir = tempDir('secretd-raft-loop-');
  const node = await openRaftNode({
    id: 'node-a' as MemberId,
    walDir: `${dir.path}/raft/wal`,
    snapshotDir: `${dir.path}/raft/snap`,
    dek: systemRandom(32),
    dekKeyId: 1,
    fs: new NodeFileSystem(),
    random: systemRandom,
    electionRandom: () => 0.5,
    bootstrapConf: { voters: ['node-a' as MemberId], learners: [] },
    transport: { send: () => {} },
    // No tick comes during the test: anything left for one would wait an hour.
    tickMs: 3_600_000,
    onFatal: (error) => {
      throw error;
    },
  });
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
