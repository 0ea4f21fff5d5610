/**
 * Where a task is in its life, from its record alone: the one place these rules are written, for
 * the store, the orchestrator, the dispatcher, lookups and the API.
 *
 *   live      desired running, not terminal: the task that holds its slot
 *   stopping  desired shutdown, not terminal: told to stop, its agent has not confirmed yet
 *   dead      terminal (complete, shutdown, failed, rejected, orphaned): history
 */
import { terminalTaskStates, type TaskRecord, type TaskState } from './types.ts';

export function isDead(task: TaskRecord): boolean {
  return terminalTaskStates.has(task.status.state);
}

export function isLive(task: TaskRecord): boolean {
  return task.desiredState === 'running' && !isDead(task);
}

export function isStopping(task: TaskRecord): boolean {
  return task.desiredState === 'shutdown' && !isDead(task);
}

/**
 * How far along a task is: later states never go back to earlier ones (a late report must not
 * revive a stopped task), and of two live tasks the one further along keeps its slot.
 */
export const taskStateRank: Readonly<Record<TaskState, number>> = {
  new: 0,
  pending: 1,
  assigned: 2,
  preparing: 3,
  starting: 4,
  running: 5,
  complete: 6,
  shutdown: 6,
  failed: 6,
  rejected: 6,
  orphaned: 6,
};
