/**
 * What the orchestrator and the scheduler share: which nodes take new tasks, the order of tasks,
 * and how a decision about a task becomes a `TaskPut`. Both decide from plain records (the store's
 * own types), so the leader can hand them a copy of its state and they never see the store, a
 * clock or a socket. Whether a task is live, stopping or dead is the store's rule
 * (src/node/store/task-states.ts).
 */
import type { TaskPut } from '../store/index.ts';
import type { DesiredState, NodeRecord, TaskRecord, TaskState } from '../store/index.ts';

/** A node the scheduler may give a new task to; a paused node keeps its tasks but gets no new ones. */
export function acceptsNewTasks(node: NodeRecord): boolean {
  return node.status === 'ready' && node.availability === 'active';
}

/** Oldest first; the id breaks ties between tasks created in the same millisecond. */
export function byCreation(a: TaskRecord, b: TaskRecord): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** A decision about one task. A message is recorded only together with a state (the store's rule). */
export interface TaskChange {
  readonly desiredState?: DesiredState;
  readonly nodeId?: string | null;
  readonly state?: TaskState;
  readonly message?: string;
}

/** The task as it is, with the change applied: `tasks-put` replaces every field but the status. */
export function taskPut(task: TaskRecord, change: TaskChange): TaskPut {
  const put: TaskPut = {
    id: task.id,
    serviceId: task.serviceId,
    slot: task.slot,
    nodeId: change.nodeId === undefined ? task.nodeId : change.nodeId,
    specVersion: task.specVersion,
    container: task.container,
    desiredState: change.desiredState ?? task.desiredState,
  };
  if (change.state === undefined) return put;
  return change.message === undefined
    ? { ...put, state: change.state }
    : { ...put, state: change.state, message: change.message };
}
