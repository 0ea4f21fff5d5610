/**
 * Where a task is in its life, from its record alone: the one place these rules are written, for
 * the store, the orchestrator, the dispatcher, lookups and the API.
 *
 *   live      desired running, not terminal: the task that holds its slot
 *   stopping  desired shutdown, not terminal: told to stop, its agent has not confirmed yet
 *   dead      terminal (complete, shutdown, failed, rejected, orphaned): history
 */
import { terminalTaskStates, type TaskRecord } from './types.ts';

export function isDead(task: TaskRecord): boolean {
  return terminalTaskStates.has(task.status.state);
}

export function isLive(task: TaskRecord): boolean {
  return task.desiredState === 'running' && !isDead(task);
}

export function isStopping(task: TaskRecord): boolean {
  return task.desiredState === 'shutdown' && !isDead(task);
}
