/**
 * One slot of a service, internal to the orchestrator. A slot is a replica number of a replicated
 * service or a node of a global one, and holds at most one live task. Two steps, between which the
 * rolling update chooses which live tasks to replace:
 *
 *   settleSlot  acknowledges exits (desired state → shutdown, restart back-off counted), notes
 *               when the live task came up, and keeps one live task if a race left several;
 *   fillSlot    stops the live task if the update replaces it, and starts a task when the slot is
 *               empty: stop-first (only after every stopping task of the slot has ended, or after
 *               stopWaitMaxMs), and never before the back-off has passed.
 *
 * Stop-first is Docker's default update order, used here for every replacement (update, drain,
 * restart): the old container and its secrets are gone before the new one starts, so a slot never
 * runs twice, at the price of a short gap per slot. Only a node that never confirms the stop
 * (stopWaitMaxMs) or is down (its tasks orphaned, at once) lets the successor start without it.
 */
import type { ServiceRecord, TaskRecord } from '../store/index.ts';
import {
  restartDelayMaxMs,
  restartDelayMinMs,
  restartResetAfterRunMs,
  stopWaitMaxMs,
} from '../../limits.ts';
import type { PlanBuilder, SlotMemory } from './_plan.ts';
import { isDead, isLive, isStopping, taskStateRank } from '../store/index.ts';
import { byCreation } from './task-view.ts';

export interface Slot {
  /** Unique across services; names the slot in the orchestrator's memory. */
  readonly key: string;
  readonly service: ServiceRecord;
  /** The tasks' `slot`: 1…N for a replicated service, 0 for a global one. */
  readonly slot: number;
  /** The node of a global service's slot; null for a replicated one (the scheduler places it). */
  readonly nodeId: string | null;
  /** False on a node that takes no new tasks: what runs there stays, nothing starts or is updated. */
  readonly mayStart: boolean;
}

export interface SettledSlot extends Slot {
  /** The slot's tasks after settling, oldest first. */
  readonly tasks: readonly TaskRecord[];
  readonly live: TaskRecord | null;
  readonly memory: SlotMemory;
}

const noMemory: SlotMemory = {
  failures: 0,
  restartAtMs: 0,
  runningTaskId: null,
  runningSinceMs: 0,
  stopWaitSinceMs: null,
};

/** Delay before the next task of a slot whose tasks exited `failures` times in a row. */
export function restartDelayMs(failures: number): number {
  return Math.min(restartDelayMaxMs, restartDelayMinMs * 2 ** Math.max(0, failures - 1));
}

export function settleSlot(
  plan: PlanBuilder,
  slot: Slot,
  tasks: readonly TaskRecord[],
  memory: SlotMemory | undefined,
): SettledSlot {
  let mem = memory ?? noMemory;
  let working = [...tasks];
  const update = (task: TaskRecord, next: TaskRecord): void => {
    working = working.map((t) => (t.id === task.id ? next : t));
  };
  for (const task of tasks) {
    if (!isDead(task) || task.desiredState !== 'running') continue;
    // An exit nobody asked for: acknowledge it so it is counted once, and back off unless the
    // node (not the task) failed.
    update(task, plan.change(task, { desiredState: 'shutdown' }));
    if (task.status.state !== 'orphaned') mem = countExit(mem, task.id, plan.now);
  }
  const [live = null, ...extra] = working.filter(isLive).sort(keepFirst(slot.service.specVersion));
  for (const task of extra) update(task, plan.change(task, { desiredState: 'shutdown' }));
  if (live?.status.state === 'running' && mem.runningTaskId !== live.id)
    mem = { ...mem, runningTaskId: live.id, runningSinceMs: plan.now };
  if (live?.status.state === 'running' && plan.now - mem.runningSinceMs >= restartResetAfterRunMs)
    mem = { ...mem, failures: 0 };
  return { ...slot, tasks: working, live, memory: mem };
}

export function fillSlot(plan: PlanBuilder, settled: SettledSlot, replace: boolean): void {
  const mem = fill(plan, settled, replace);
  const idle =
    mem.failures === 0 &&
    mem.restartAtMs <= plan.now &&
    mem.runningTaskId === null &&
    mem.stopWaitSinceMs === null;
  if (!idle) plan.slots.set(settled.key, mem);
}

function fill(plan: PlanBuilder, settled: SettledSlot, replace: boolean): SlotMemory {
  const { live, memory } = settled;
  let tasks = settled.tasks;
  if (live && !replace) return { ...memory, stopWaitSinceMs: null };
  if (live) {
    const stopped = plan.change(live, { desiredState: 'shutdown' });
    tasks = tasks.map((t) => (t.id === live.id ? stopped : t));
  }
  if (!settled.mayStart) return { ...memory, stopWaitSinceMs: null };
  if (tasks.some(isStopping)) {
    const since = memory.stopWaitSinceMs ?? plan.now;
    if (plan.now < since + stopWaitMaxMs) {
      plan.lookAt(since + stopWaitMaxMs);
      return { ...memory, stopWaitSinceMs: since };
    }
  }
  if (memory.restartAtMs > plan.now) {
    plan.lookAt(memory.restartAtMs);
    return { ...memory, stopWaitSinceMs: null };
  }
  plan.create(settled.service, settled.slot, settled.nodeId);
  return { ...memory, restartAtMs: 0, stopWaitSinceMs: null };
}

/** One more exit in a row, unless the task had run long enough to start the count again. */
function countExit(mem: SlotMemory, taskId: string, now: number): SlotMemory {
  const ranMs = mem.runningTaskId === taskId ? now - mem.runningSinceMs : 0;
  const failures = ranMs >= restartResetAfterRunMs ? 1 : mem.failures + 1;
  return {
    ...mem,
    failures,
    restartAtMs: now + restartDelayMs(failures),
    runningTaskId: null,
    runningSinceMs: 0,
  };
}

/** Which of several live tasks keeps the slot: the current spec, then the furthest along, then the newest. */
function keepFirst(specVersion: number): (a: TaskRecord, b: TaskRecord) => number {
  return (a, b) =>
    Number(b.specVersion === specVersion) - Number(a.specVersion === specVersion) ||
    taskStateRank[b.status.state] - taskStateRank[a.status.state] ||
    byCreation(b, a);
}
