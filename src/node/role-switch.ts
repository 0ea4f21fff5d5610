/**
 * A node changing role in place, as Docker's do: a promoted worker becomes a manager and a demoted
 * manager a worker in the same process, and its agent, executor and running tasks (with their
 * secrets in memory and in their tmpfs) carry over (daemon.ts does the switch, _node-agent.ts
 * moves the agent's session to the new role's wiring). This file is the switch's part on disk.
 *
 * What a manager has that a worker lacks: a DEK that seals its log (in the keys file, wrapped by
 * the unlock key under autolock), raft/wal and raft/snap, and node.json's role. A worker's keys
 * file is never wrapped (it holds nothing sealed); the DEK a join gives it seals nothing.
 *
 * Each switch writes in an order a start-up resolves; the keys file (one rename) is the commit
 * point, node.json's role is written last, after the new role's files exist:
 *
 *   promotion (a manager certificate came by renewal):
 *     1. raft/ leftovers removed (nothing in them was ever this node's: it was a worker)
 *     2. keys file: TLS key and certificate, a fresh DEK, `role: manager`, unwrapped (an
 *        autolocked cluster's unlock key reaches the new manager through the store, and its
 *        keys file is wrapped as soon as its store holds it, as every manager's is)
 *     3. node.json: role manager
 *   demotion (once Raft no longer counts this node, its manager stopped):
 *     1. keys file: TLS key and certificate, a fresh DEK (the old one is gone with the old file),
 *        `role: worker`, unwrapped
 *     2. node.json: role worker, the managers as the store last listed them
 *     3. raft/ removed (the sealed log and snapshots, now unreadable without the old DEK)
 *
 * At start (`settleRoleSwitch`): a keys file written for another role than node.json's finishes
 * that switch (node.json, then raft/ for a worker); a worker with a raft/ left removes it. A crash
 * before the keys file's rename leaves the old role whole. A promotion is then asked for again: the
 * worker's certificate names a manager, so it renews at once and switches. A demoted manager takes
 * its worker's certificate only once it has left Raft (manager.ts), so a manager whose keys file
 * holds a worker's certificate was demoted and left: its demotion is done here (unless its keys
 * file is autolocked: it starts locked, and the unlock key is needed first). Were it wrong (the
 * node promoted again meanwhile), the dispatcher's renewal request would promote it back.
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseIdentity, type Random } from '../crypto/index.ts';
import {
  dataDirPaths,
  exists,
  nodeKeysLocked,
  nodeKeysRole,
  readNodeCertificate,
  readTlsPair,
  readNodeState,
  writeNodeKeys,
  writeNodeState,
  type DataDirPaths,
  type NodeState,
} from './data-dir/index.ts';

/** The key pair this node has now (its certificate names the new role). */
export interface SwitchKeys {
  readonly tlsKey: Uint8Array;
  readonly tlsCert: string;
}

function raftDir(paths: DataDirPaths): string {
  return dirname(paths.wal);
}

/** Steps 1–3 of a promotion; returns the new node state. */
export async function writePromotedFiles(
  paths: DataDirPaths,
  state: NodeState,
  keys: SwitchKeys,
  random: Random,
): Promise<NodeState> {
  await rm(raftDir(paths), { recursive: true, force: true });
  await writeSwitchedKeys(paths, keys, 'manager', random);
  const promoted: NodeState = { ...state, role: 'manager' };
  await writeNodeState(paths.nodeState, promoted);
  return promoted;
}

/** Steps 1–3 of a demotion (the manager stopped, Raft no longer counting it); returns the new node state. */
export async function writeDemotedFiles(
  paths: DataDirPaths,
  state: NodeState,
  keys: SwitchKeys,
  managers: NodeState['peers'],
  random: Random,
): Promise<NodeState> {
  await writeSwitchedKeys(paths, keys, 'worker', random);
  const demoted: NodeState = {
    ...state,
    role: 'worker',
    peers: managers.length > 0 ? managers : state.peers,
  };
  await writeNodeState(paths.nodeState, demoted);
  await rm(raftDir(paths), { recursive: true, force: true });
  return demoted;
}

/** The keys file for `role`: one rename, unwrapped, with a fresh DEK zeroed here once written. */
async function writeSwitchedKeys(
  paths: DataDirPaths,
  keys: SwitchKeys,
  role: 'manager' | 'worker',
  random: Random,
): Promise<void> {
  const dek = random(32);
  try {
    await writeNodeKeys(
      paths.nodeKeys,
      { dek, dekKeyId: 1, tlsKey: keys.tlsKey, tlsCert: keys.tlsCert, role },
      null,
      random,
    );
  } finally {
    dek.fill(0); // best effort under a GC
  }
}

/**
 * At start: a switch a crash cut short is finished (see the header). Returns node.json's state as
 * it is now, and logs what it finished.
 */
export async function settleRoleSwitch(
  dataDir: string,
  log: (line: string) => void,
  random: Random,
): Promise<NodeState> {
  const paths = dataDirPaths(dataDir);
  let state = await readNodeState(paths.nodeState, dataDir);
  const keysRole = await nodeKeysRole(paths.nodeKeys);
  if (state.role === 'manager' && keysRole !== 'worker' && (await leftAsWorker(paths))) {
    log(
      "secretd: this manager holds a worker's certificate: it was demoted and had left Raft when it stopped; it goes on as a worker",
    );
    const keys = await readTlsPair(paths);
    try {
      return await writeDemotedFiles(paths, state, keys, [], random);
    } finally {
      keys.tlsKey.fill(0); // best effort under a GC
    }
  }
  if (keysRole !== null && keysRole !== state.role) {
    log(
      `secretd: finishing this node's switch from ${state.role} to ${keysRole} that a stop cut short`,
    );
    state = { ...state, role: keysRole };
    await writeNodeState(paths.nodeState, state);
  }
  if (state.role === 'worker' && (await exists(raftDir(paths)))) {
    log(`secretd: erasing the Raft log and snapshots this node kept from when it was a manager`);
    await rm(raftDir(paths), { recursive: true, force: true });
  }
  return state;
}

/** The keys file pairs a worker's certificate with its key, and is not autolocked. */
async function leftAsWorker(paths: DataDirPaths): Promise<boolean> {
  const certPem = await readNodeCertificate(paths.nodeKeys, paths.nodeCert);
  if (parseIdentity(certPem).role !== 'worker') return false;
  return !(await nodeKeysLocked(paths.nodeKeys));
}
