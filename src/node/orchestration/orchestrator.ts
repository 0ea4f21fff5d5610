/**
 * The leader's orchestrator: turns services into tasks, as Docker Swarm's does. A pure function of
 * the services, tasks and nodes, the caller's time and what the previous round remembered; it
 * returns what to write (one `tasks-put`, one `tasks-remove`), when to look again, and what to
 * remember. It never sleeps: a delay is a next-look time.
 *
 *   replicated  one live task per slot 1…N; a new task (state new, no node) for an empty slot;
 *               tasks of slots above N are shut down
 *   global      one live task per node that is active and not down and where the service's
 *               placement constraints hold, its node fixed at creation; a paused node keeps its
 *               task but gets no new one; a node that stops matching has its task shut down
 *   exits       a task that ended while desired running is acknowledged (desired → shutdown) and
 *               its slot restarts after a back-off per slot (0.5 s doubling to 30 s, back to 0.5 s
 *               once a task ran 10 s); a task orphaned by its node restarts at once
 *   nodes       tasks on a drained node are shut down; tasks on a down or removed node are marked
 *               orphaned; replicated slots get a replacement, placed by the scheduler
 *   updates     outdated tasks are replaced stop-first in batches (orchestrator-rollout.ts)
 *   history     per slot the newest taskHistoryPerSlot tasks are kept for `service ps`; dead tasks
 *               of removed services and slots are removed
 *
 * The caller's contract (the leader's loop):
 *   - call after every applied change to services, tasks or nodes, and at plan.nextLookAtMs;
 *   - propose plan.puts and plan.removeIds, and call again only once they are applied (or
 *     failed); run the scheduler in the same loop, never concurrently: `tasks-put` replaces whole
 *     records, so a plan built on a view that misses another plan's writes can undo them;
 *   - keep plan.memory and pass it back as view.memory; a new leader starts from
 *     emptyOrchestratorMemory (restart back-off and update delays then start afresh).
 */
import type { NodeRecord, ServiceRecord, TaskRecord } from '../store/index.ts';
import { taskHistoryPerSlot } from '../../limits.ts';
import {
  type OrchestratorMemory,
  type OrchestratorPlan,
  PlanBuilder,
  type ReconcileOptions,
} from './_plan.ts';
import { chooseReplacements } from './_rollout.ts';
import { fillSlot, type Slot, settleSlot } from './_slot.ts';
import { isDead, nodeMatches } from '../store/index.ts';

export { emptyOrchestratorMemory } from './_plan.ts';
export {
  restartDelayMaxMs,
  restartDelayMinMs,
  restartResetAfterRunMs,
  stopWaitMaxMs,
  taskHistoryPerSlot,
} from '../../limits.ts';
export type {
  OrchestratorMemory,
  OrchestratorPlan,
  ReconcileOptions,
  RolloutMemory,
  SlotMemory,
} from './_plan.ts';
export { restartDelayMs } from './_slot.ts';

export interface OrchestratorView {
  readonly services: readonly ServiceRecord[];
  readonly tasks: readonly TaskRecord[];
  readonly nodes: readonly NodeRecord[];
  /** The previous round's plan.memory, or emptyOrchestratorMemory. */
  readonly memory: OrchestratorMemory;
}

export function reconcileServices(
  view: OrchestratorView,
  options: ReconcileOptions,
): OrchestratorPlan {
  const plan = new PlanBuilder(view.tasks, options);
  const nodes = new Map(view.nodes.map((node) => [node.id as string, node]));
  for (const task of plan.tasks()) followNode(plan, task, nodes);
  const byService = groupBy(plan.tasks(), (task) => task.serviceId as string);
  const sortedNodes = [...view.nodes].sort((a, b) => compareIds(a.id, b.id));
  for (const service of [...view.services].sort((a, b) => compareIds(a.id, b.id))) {
    reconcileService(plan, service, byService.get(service.id) ?? [], sortedNodes, view.memory);
    byService.delete(service.id);
  }
  // What is left belongs to removed services: the store has set them to shut down.
  for (const tasks of byService.values()) retire(plan, tasks);
  return plan.finish();
}

/** A task's node went down, away or into drain: whatever the service, the task cannot stay. */
function followNode(
  plan: PlanBuilder,
  task: TaskRecord,
  nodes: ReadonlyMap<string, NodeRecord>,
): void {
  if (isDead(task)) return;
  if (task.nodeId === null) {
    // Never placed, so no agent will confirm a stop: change() ends it if it is desired shutdown.
    if (task.desiredState === 'shutdown') plan.change(task, {});
    return;
  }
  const node = nodes.get(task.nodeId);
  if (!node || node.status === 'down') {
    const message = node ? `node ${task.nodeId} is down` : `node ${task.nodeId} was removed`;
    plan.change(task, { desiredState: 'shutdown', state: 'orphaned', message });
  } else if (node.availability === 'drain' && task.desiredState === 'running') {
    plan.change(task, { desiredState: 'shutdown' });
  }
}

function reconcileService(
  plan: PlanBuilder,
  service: ServiceRecord,
  tasks: readonly TaskRecord[],
  nodes: readonly NodeRecord[],
  memory: OrchestratorMemory,
): void {
  const { wanted, surplus } = slotsOf(service, tasks, nodes);
  const settled = wanted.map(({ slot, tasks }) =>
    settleSlot(plan, slot, tasks, memory.slots.get(slot.key)),
  );
  const replace = chooseReplacements(plan, service, settled, memory.rollouts.get(service.id));
  for (const slot of settled) fillSlot(plan, slot, replace.has(slot.key));
  for (const { tasks } of wanted) trimHistory(plan, tasks);
  for (const tasks of surplus) retire(plan, tasks);
}

interface SlotTasks {
  readonly slot: Slot;
  /** Oldest first. */
  readonly tasks: readonly TaskRecord[];
}

/** The slots the service should fill, and the tasks of slots it no longer has. */
function slotsOf(
  service: ServiceRecord,
  tasks: readonly TaskRecord[],
  nodes: readonly NodeRecord[],
): { wanted: SlotTasks[]; surplus: TaskRecord[][] } {
  const mode = service.spec.mode;
  if (mode.kind === 'replicated') {
    const bySlot = groupBy(tasks, (task) => task.slot);
    const wanted: SlotTasks[] = [];
    for (let slot = 1; slot <= mode.replicas; slot++) {
      wanted.push({
        slot: { key: `${service.id}/${slot}`, service, slot, nodeId: null, mayStart: true },
        tasks: bySlot.get(slot) ?? [],
      });
      bySlot.delete(slot);
    }
    return { wanted, surplus: [...bySlot.values()] };
  }
  const byNode = groupBy(tasks, (task) => task.nodeId ?? '');
  // Only the nodes its placement constraints hold on: a node that stops matching loses its task.
  const constraints = service.spec.constraints ?? [];
  const placed = nodes.filter((node) => nodeMatches(constraints, node));
  const wanted = placed.map((node) => {
    const mayStart = node.availability === 'active' && node.status !== 'down';
    const slotTasks = byNode.get(node.id) ?? [];
    byNode.delete(node.id);
    return {
      slot: { key: `${service.id}@${node.id}`, service, slot: 0, nodeId: node.id, mayStart },
      tasks: slotTasks,
    };
  });
  return { wanted, surplus: [...byNode.values()] };
}

/** Keeps the newest taskHistoryPerSlot tasks of a slot; older dead ones go. */
function trimHistory(plan: PlanBuilder, tasks: readonly TaskRecord[]): void {
  let kept = tasks.length;
  for (const task of tasks) {
    if (kept <= taskHistoryPerSlot) return;
    if (plan.removeIfDone(task)) kept--;
  }
}

/** Tasks of a slot or service that no longer exists: stop what runs, then forget them. */
function retire(plan: PlanBuilder, tasks: readonly TaskRecord[]): void {
  for (const task of tasks) {
    if (task.desiredState === 'running') plan.change(task, { desiredState: 'shutdown' });
    else plan.removeIfDone(task);
  }
}

function groupBy<K, T>(items: readonly T[], keyOf: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>();
  for (const item of items) {
    const group = groups.get(keyOf(item));
    if (group) group.push(item);
    else groups.set(keyOf(item), [item]);
  }
  return groups;
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
