/**
 * A one-member Raft node on real files, started and leading: what the Raft shell's tests write
 * through. `extra` overrides or adds options (keys, snapshot cadence, metrics…).
 */
import { NodeFileSystem } from '../../src/io/node-fs.ts';
import { systemRandom } from '../../src/io/system.ts';
import type { OpenRaftOptions, RaftNode } from '../../src/node/raft-io/index.ts';
import { openRaftNode } from '../../src/node/raft-io/index.ts';
import type { MemberId } from '../../src/raft/types.ts';

export const leaderId = 'node-a' as MemberId;

/** The same member opened, not started: no tick, no leader until a test makes one. */
export function openOneMember(
  root: string,
  extra: Partial<OpenRaftOptions> = {},
): Promise<RaftNode> {
  return openRaftNode({
    id: leaderId,
    walDir: `${root}/raft/wal`,
    snapshotDir: `${root}/raft/snap`,
    dek: systemRandom(32),
    dekKeyId: 1,
    fs: new NodeFileSystem(),
    random: systemRandom,
    electionRandom: () => 0.5,
    bootstrapConf: { voters: [leaderId], learners: [] },
    transport: { send: () => {} },
    tickMs: 5,
    onFatal: (error) => {
      throw error;
    },
    ...extra,
  });
}

export async function oneMemberLeader(
  root: string,
  extra: Partial<OpenRaftOptions> = {},
): Promise<RaftNode> {
  const node = await openOneMember(root, extra);
  node.start();
  node.campaign();
  await node.waitForLeader(5000);
  return node;
}
