/** node.json: the public facts a node needs to restart. Nothing secret is written here. */
import type { Role } from '../../crypto/ca.ts';
import { SecretdError } from '../../errors.ts';
import type { FileSystem } from '../../io/fs.ts';
import { readTextFile, systemFs, writeFileAtomic } from './layout.ts';

export interface NodeState {
  readonly format: 1;
  readonly nodeId: string;
  readonly clusterId: string;
  readonly role: Role;
  readonly listenAddr: string;
  readonly advertiseAddr: string;
  readonly createdAt: string;
  /** The Raft configuration before entry 1 (the founding manager); a joiner replays the log on top of it. */
  readonly bootstrapVoters: readonly string[];
  /** Managers known at join time, so this node can answer the leader before its store has caught up. */
  readonly peers: ReadonlyArray<{ readonly id: string; readonly addr: string }>;
}

export async function writeNodeState(
  path: string,
  state: NodeState,
  fs: FileSystem = systemFs,
): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(state, null, 2)}\n`, 0o600, fs);
}

export async function readNodeState(
  path: string,
  dataDir: string,
  fs: FileSystem = systemFs,
): Promise<NodeState> {
  let text: string;
  try {
    text = await readTextFile(path, fs);
  } catch {
    throw new SecretdError(
      'not_found',
      `No secretd node in ${dataDir}: run \`secretd init\` (or \`secretd join\`) first`,
    );
  }
  let state: NodeState;
  try {
    state = JSON.parse(text) as NodeState;
  } catch {
    throw new SecretdError('corrupt', `Cannot read ${path}: not valid JSON`);
  }
  if (
    state.format !== 1 ||
    typeof state.nodeId !== 'string' ||
    typeof state.clusterId !== 'string' ||
    !Array.isArray(state.bootstrapVoters)
  ) {
    throw new SecretdError('corrupt', `Cannot read ${path}: unknown format`);
  }
  return state;
}
