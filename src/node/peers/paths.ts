/**
 * Every path one node calls on another, in one list: the servers' routes and the clients' calls
 * are both written against these names, so the two sides cannot drift apart.
 *
 *   joining       joinCA (no certificate yet: the CA, checked against the token's digest), join
 *   Raft          raftStream (one long-lived stream per peer, manager certificates of members only)
 *   leader        propose (a write forwarded to the leader), internalNodes and internalExec (node
 *                 operations and exec that only the leader can do, forwarded by another manager)
 *   dispatcher    session (the agent's long-lived stream), heartbeat, status, execResult
 *   certificates  renewCertificate (a node's new certificate for a new key, over its mTLS connection)
 */
export const peerPaths = {
  joinCA: '/secretd/join/ca',
  join: '/secretd/join',
  raftStream: '/secretd/raft/stream',
  raftStatus: '/secretd/raft/status',
  propose: '/secretd/raft/propose',
  internalNodes: '/secretd/internal/nodes',
  internalExec: '/secretd/internal/exec',
  session: '/secretd/dispatcher/session',
  heartbeat: '/secretd/dispatcher/heartbeat',
  status: '/secretd/dispatcher/status',
  execResult: '/secretd/dispatcher/exec-result',
  renewCertificate: '/secretd/node/certificate',
  /** The client certificates list, which a manager reads on the others to confirm a revocation. */
  clientCertificates: '/secretd/ca/client-certificates',
} as const;
