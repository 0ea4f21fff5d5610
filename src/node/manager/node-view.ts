/**
 * What a manager shows of nodes: Docker's node view (with the leader's Raft view of each manager)
 * and this node's summary (`docker info`). Pure: the Raft status, the store and what the transport
 * saw are read once by the caller and passed in, so a list of n nodes costs one status, not n.
 */
import type { ProgressStatus, RaftStatus } from '../../raft/core.ts';
import type { MemberId } from '../../raft/types.ts';
import type { NodeSummary, NodeView } from '../api/index.ts';
import type { NodeState } from '../data-dir/index.ts';
import { isDead, type NodeRecord, type Store } from '../store/index.ts';

export type Reachability = NonNullable<NodeView['manager']>['reachability'];

export interface NodeViewContext {
  /** The Raft status of the manager answering (the leader, when the call was forwarded). */
  readonly status: RaftStatus;
  /** Members the leader heard from recently (`activeIds`); empty on a follower. */
  readonly activeIds: ReadonlySet<string>;
  readonly selfId: string;
  readonly tls: NodeView['tls'];
}

/**
 * How reachable a voter is, by who answers (the leader knows; a follower only knows itself) and
 * what it saw of the node. A manager that is no voter (a learner still catching up, or one being
 * removed) is `unknown`: counting it would overstate how many failures the cluster survives.
 */
const reachabilityOf: Readonly<
  Record<'leader' | 'follower', Readonly<Record<'self' | 'active' | 'silent', Reachability>>>
> = {
  leader: { self: 'reachable', active: 'reachable', silent: 'unreachable' },
  follower: { self: 'reachable', active: 'unknown', silent: 'unknown' },
};

/** A manager's state is the leader's Raft view of it; a worker's is its dispatcher session (the store's status). */
const managerStateOf: Readonly<Record<Reachability, NodeView['state']>> = {
  reachable: 'ready',
  unreachable: 'down',
  unknown: 'unknown',
};

export function reachability(nodeId: string, context: Omit<NodeViewContext, 'tls'>): Reachability {
  const { status, activeIds, selfId } = context;
  if (!(status.conf.voters as readonly string[]).includes(nodeId)) return 'unknown';
  const seen = nodeId === selfId ? 'self' : activeIds.has(nodeId) ? 'active' : 'silent';
  return reachabilityOf[status.role === 'leader' ? 'leader' : 'follower'][seen];
}

export function nodeView(node: NodeRecord, context: NodeViewContext): NodeView {
  const manager =
    node.role === 'manager'
      ? {
          leader: context.status.leader === (node.id as string),
          reachability: reachability(node.id, context),
        }
      : null;
  return {
    id: node.id,
    metaIndex: node.metaIndex,
    createdAt: node.createdAt,
    updatedAt: node.updatedAt,
    role: node.role,
    availability: node.availability,
    labels: node.labels,
    hostname: node.hostname,
    addr: node.addr,
    state: manager ? managerStateOf[manager.reachability] : node.status,
    manager,
    resources: node.resources ?? null,
    tls: context.tls,
  };
}

/**
 * The leader's progress, with `recentActive` meaning what an operator means by it. The core
 * clears it for every follower at each check-quorum round (once per election timeout) and sets it
 * again at the follower's next answer, so just after a round a live follower reads as inactive;
 * a successful exchange on the Raft transport within the window (`reachable`) also counts.
 * None on a follower.
 */
export function activeProgress(
  status: RaftStatus,
  reachable: (id: MemberId) => boolean,
): Readonly<Record<string, ProgressStatus>> | undefined {
  if (!status.progress) return undefined;
  const progress: Record<string, ProgressStatus> = {};
  for (const [id, pr] of Object.entries(status.progress)) {
    progress[id] =
      pr.recentActive || !reachable(id as MemberId) ? pr : { ...pr, recentActive: true };
  }
  return progress;
}

/** The members counted as active in `activeProgress`. */
export function activeIds(
  progress: Readonly<Record<string, ProgressStatus>> | undefined,
): ReadonlySet<string> {
  return new Set(
    Object.entries(progress ?? {}).flatMap(([id, pr]) => (pr.recentActive ? [id] : [])),
  );
}

export interface SummaryInput {
  readonly state: NodeState;
  /** None while locked. */
  readonly store: Store | undefined;
  readonly locked: boolean;
  readonly hostname: string;
  readonly agentSecrets: { readonly received: number; readonly held: number };
}

/** This manager as `docker info` shows it. */
export function nodeSummary(input: SummaryInput): NodeSummary {
  const { state, store, locked } = input;
  const nodes = store ? [...store.nodes()] : [];
  const managers = nodes.filter((n) => n.role === 'manager');
  return {
    nodeId: state.nodeId,
    clusterId: state.clusterId,
    addr: state.advertiseAddr,
    state: locked ? 'locked' : 'active',
    isManager: true,
    hostname: input.hostname,
    managers: managers.length,
    nodes: nodes.length,
    secrets: store ? [...store.secrets()].length : 0,
    secretsReceived: input.agentSecrets.received,
    secretsHeld: input.agentSecrets.held,
    remoteManagers: managers.map((n) => ({ nodeId: n.id as string, addr: n.addr })),
    tasks: localTaskCounts(store, state.nodeId),
    cluster: store && !locked ? (store.cluster ?? null) : null,
  };
}

/** This node's tasks that have not finished, and those running. */
export function localTaskCounts(store: Store | undefined, nodeId: string): NodeSummary['tasks'] {
  let live = 0;
  let running = 0;
  for (const task of store?.workloads.tasks.values() ?? []) {
    if (task.nodeId !== nodeId || isDead(task)) continue;
    live++;
    if (task.status.state === 'running') running++;
  }
  return { live, running };
}
