/**
 * Reads for operators that only the leader answers whole, in the API's shapes (routes/holdings.ts):
 *   - who holds a secret now: what the leader's dispatcher sent over each open session, by task
 *     and by grant (containers of other engines hold granted secrets through the node's grant
 *     copy, node-local, and are not reported to the leader);
 *   - each node's certificate end, as its dispatcher session presented it (this manager's own from
 *     its certificate), and each manager's lock state, asked of it (`/info`, which a locked manager
 *     answers).
 * Metadata only: never a value.
 */
import { managerLockProbeTimeoutMs } from '../../limits.ts';
import type { NodeStateView, SecretHolderView } from '../api/index.ts';
import type { PeerLink } from '../peers/index.ts';
import type { Store } from '../store/index.ts';

/** The dispatcher's holdings of one secret, with hostnames, sorted by node then version then task. */
export function secretHoldersView(
  store: Store,
  held: ReadonlyArray<{ nodeId: string; version: number; by: 'task' | 'grant'; taskId?: string }>,
): SecretHolderView[] {
  return held
    .map((h) => ({
      NodeID: h.nodeId,
      Hostname: store.node(h.nodeId)?.hostname ?? h.nodeId,
      Version: h.version,
      By: h.by,
      ...(h.taskId === undefined ? {} : { TaskID: h.taskId }),
    }))
    .sort(
      (a, b) =>
        a.Hostname.localeCompare(b.Hostname) ||
        a.NodeID.localeCompare(b.NodeID) ||
        a.Version - b.Version ||
        (a.TaskID ?? '').localeCompare(b.TaskID ?? ''),
    );
}

export interface NodeStatesOptions {
  readonly selfId: string;
  /** This manager's own certificate end (ms since the epoch). */
  readonly selfNotAfterMs: number | null;
  /** The dispatcher's sessions: node id → certificate end (ms since the epoch). */
  readonly sessions: ReadonlyMap<string, number | undefined>;
  /** Asks a manager (by address) whether it is locked; null when it did not answer. */
  readonly probeLocked: (addr: string) => Promise<boolean | null>;
}

/** Every node in the store, sorted by role (managers first) then hostname. */
export async function nodeStatesView(
  store: Store,
  options: NodeStatesOptions,
): Promise<NodeStateView[]> {
  const nodes = [...store.nodes()].sort(
    (a, b) =>
      Number(b.role === 'manager') - Number(a.role === 'manager') ||
      a.hostname.localeCompare(b.hostname) ||
      a.id.localeCompare(b.id),
  );
  return Promise.all(
    nodes.map(async (node): Promise<NodeStateView> => {
      const self = node.id === options.selfId;
      const notAfter = options.sessions.get(node.id) ?? (self ? options.selfNotAfterMs : null);
      const locked =
        node.role !== 'manager' ? null : self ? false : await options.probeLocked(node.addr);
      return {
        NodeID: node.id,
        Hostname: node.hostname,
        Role: node.role,
        Session: options.sessions.has(node.id),
        CertificateNotAfter:
          notAfter === null || notAfter === undefined ? null : new Date(notAfter).toISOString(),
        Locked: locked,
      };
    }),
  );
}

/** A manager's `/info` answer → locked or not (Docker's `Swarm.LocalNodeState`); null for anything else. */
export function lockedFromInfo(status: number, body: Uint8Array): boolean | null {
  if (status !== 200) return null;
  try {
    const info = JSON.parse(new TextDecoder().decode(body)) as {
      Swarm?: { LocalNodeState?: unknown };
    };
    const state = info.Swarm?.LocalNodeState;
    return state === 'locked' ? true : state === 'active' ? false : null;
  } catch {
    return null;
  }
}

/** Asks the manager at `addr` for its `/info` (a locked manager answers it): locked or not; null when it did not answer. */
export function probeLocked(
  peers: Pick<PeerLink, 'request'>,
  addr: string,
): Promise<boolean | null> {
  return peers.request(addr, 'GET', '/info', null, { timeoutMs: managerLockProbeTimeoutMs }).then(
    (answer) => lockedFromInfo(answer.status, answer.body),
    () => null,
  );
}
