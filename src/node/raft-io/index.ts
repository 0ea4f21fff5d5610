/** The raft-io room's door: what other parts of secretd may use of it. */
export { forceNewCluster } from './force-new-cluster.ts';
export { frame, FrameReader } from './frames.ts';
export { bestSuccessor, nextMembershipAction, quorumSurvivesRemoval } from './membership.ts';
export { openRaftNode, walMarkerPath, type OpenRaftOptions } from './open-raft-node.ts';
export { type DataKey, type RaftNode, type Transport } from './raft-node.ts';
export { raftStreamPath, RaftTransport } from './transport.ts';
export { decodeMessages, encodeMessages } from './wire.ts';
