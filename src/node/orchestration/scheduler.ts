/**
 * The leader's scheduler: gives each task waiting for a node (desired running, state new or
 * pending) a node, as Docker Swarm's spread strategy does. Pure: the same tasks and nodes give the
 * same placements.
 *
 * A task without a node goes to a node that is ready and active, the one with the fewest tasks of
 * the same service (so replicas spread before they stack), then the fewest tasks in all, then the
 * lowest node id, among the nodes where every one of its service's placement constraints holds
 * (store/node-constraints.ts, the one matcher grants use too). A global task comes with its node:
 * it is assigned once that node is ready, active and matching. A task no node can take is marked
 * pending with Docker's explanation, written once (an unchanged pending task gives no put, so the
 * scheduler is quiet when there is nothing to do).
 *
 * Caller's contract: call after every applied change to tasks or nodes, in the same loop as the
 * orchestrator and never concurrently with it (see orchestrator.ts), and propose the result as
 * one `tasks-put`.
 */
import type { TaskPut } from '../store/index.ts';
import type { NodeRecord, ServiceRecord, TaskRecord } from '../store/index.ts';
import { isDead, nodeMatches } from '../store/index.ts';
import { acceptsNewTasks, taskPut } from './task-view.ts';

export interface SchedulerView {
  readonly tasks: readonly TaskRecord[];
  readonly nodes: readonly NodeRecord[];
  /** The services, for their placement constraints (default: none, so no constraints). */
  readonly services?: readonly ServiceRecord[];
}

export const assignedMessage = 'scheduler assigned task to node';

/**
 * Docker's words for a task no node can take (swarmkit's pipeline explanation): each filter's count
 * of the nodes it turned away, the larger first; without constraints, only the unavailable nodes.
 */
export function noSuitableNodeMessage(unavailableNodes: number, unmatchedNodes = 0): string {
  const plural = (n: number): string => `${n} ${n === 1 ? 'node' : 'nodes'}`;
  const unavailable = `${plural(unavailableNodes)} not available for new tasks`;
  if (unmatchedNodes === 0) return `no suitable node (${unavailable})`;
  const unmatched = `scheduling constraints not satisfied on ${plural(unmatchedNodes)}`;
  if (unavailableNodes === 0) return `no suitable node (${unmatched})`;
  const parts =
    unmatchedNodes > unavailableNodes ? [unmatched, unavailable] : [unavailable, unmatched];
  return `no suitable node (${parts.join('; ')})`;
}

export function schedule(view: SchedulerView): TaskPut[] {
  const usable = view.nodes.filter(acceptsNewTasks).sort((a, b) => compareIds(a.id, b.id));
  const constraintsOf = new Map(
    (view.services ?? []).map((s) => [s.id as string, s.spec.constraints ?? []]),
  );
  const load = new Load(view.tasks);
  const puts: TaskPut[] = [];
  for (const task of view.tasks.filter(waiting).sort(byServiceSlotId)) {
    const constraints = constraintsOf.get(task.serviceId) ?? [];
    const matching = usable.filter((node) => nodeMatches(constraints, node));
    if (task.nodeId !== null) {
      // Placed by the orchestrator (a global task): already counted in the load.
      const ok = matching.some((node) => node.id === task.nodeId);
      const unmatched = usable.some((node) => node.id === task.nodeId) ? 1 : 0;
      const put = ok
        ? taskPut(task, { state: 'assigned', message: assignedMessage })
        : pending(task, noSuitableNodeMessage(1 - unmatched, unmatched));
      if (put) puts.push(put);
      continue;
    }
    const best = load.leastLoaded(matching, task.serviceId);
    if (best === undefined) {
      const unavailable = view.nodes.length - usable.length;
      const put = pending(task, noSuitableNodeMessage(unavailable, usable.length));
      if (put) puts.push(put);
      continue;
    }
    load.add(best.id, task.serviceId);
    puts.push(taskPut(task, { nodeId: best.id, state: 'assigned', message: assignedMessage }));
  }
  return puts;
}

function waiting(task: TaskRecord): boolean {
  return (
    task.desiredState === 'running' &&
    (task.status.state === 'new' || task.status.state === 'pending')
  );
}

/** A pending put, or null if the task already says exactly that. */
function pending(task: TaskRecord, message: string): TaskPut | null {
  if (task.status.state === 'pending' && task.status.message === message) return null;
  return taskPut(task, { state: 'pending', message });
}

/** Tasks per node and per node and service: everything not dead that holds a node, stopping tasks included. */
class Load {
  readonly #total = new Map<string, number>();
  readonly #perService = new Map<string, number>();

  constructor(tasks: readonly TaskRecord[]) {
    for (const task of tasks)
      if (task.nodeId !== null && !isDead(task)) this.add(task.nodeId, task.serviceId);
  }

  add(nodeId: string, serviceId: string): void {
    this.#total.set(nodeId, (this.#total.get(nodeId) ?? 0) + 1);
    const key = `${nodeId}\n${serviceId}`;
    this.#perService.set(key, (this.#perService.get(key) ?? 0) + 1);
  }

  /** `nodes` sorted by id, so the first of equals is the lowest id. */
  leastLoaded(nodes: readonly NodeRecord[], serviceId: string): NodeRecord | undefined {
    let best: NodeRecord | undefined;
    let bestScore: readonly [number, number] = [Infinity, Infinity];
    for (const node of nodes) {
      const score = [
        this.#perService.get(`${node.id}\n${serviceId}`) ?? 0,
        this.#total.get(node.id) ?? 0,
      ] as const;
      if (score[0] < bestScore[0] || (score[0] === bestScore[0] && score[1] < bestScore[1])) {
        best = node;
        bestScore = score;
      }
    }
    return best;
  }
}

function byServiceSlotId(a: TaskRecord, b: TaskRecord): number {
  return compareIds(a.serviceId, b.serviceId) || a.slot - b.slot || compareIds(a.id, b.id);
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
