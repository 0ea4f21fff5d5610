/**
 * One reconciliation's scratch state, internal to the orchestrator: working copies of the tasks
 * with this round's decisions already applied (so a later step sees what an earlier one decided),
 * and the puts, removals, next-look time and memory the round hands back.
 */
import { assert } from '../../errors.ts';
import type { TaskPut } from '../store/index.ts';
import type { ServiceRecord, TaskId, TaskRecord } from '../store/index.ts';
import { isDead } from '../store/index.ts';
import { byCreation, taskPut, type TaskChange } from './task-view.ts';

/** What the orchestrator remembers about one slot (a replica number, or a node of a global service). */
export interface SlotMemory {
  /** Exits in a row; each doubles the restart delay. */
  readonly failures: number;
  /** No new task for the slot before this time (restart back-off); 0 when none is due. */
  readonly restartAtMs: number;
  /** The slot's task last seen running, and when it was first seen so: how long it ran if it exits. */
  readonly runningTaskId: string | null;
  readonly runningSinceMs: number;
  /** Since when the slot has waited for a stopping task before starting its successor; null if not waiting. */
  readonly stopWaitSinceMs: number | null;
}

/** A rolling update in progress for one service. */
export interface RolloutMemory {
  /** The spec version being rolled out; a newer one cancels the batch in flight (as Docker does). */
  readonly specVersion: number;
  /** Slot keys replaced by the batch in flight; empty between batches. */
  readonly batchSlotKeys: readonly string[];
  /** No new batch before this time (the update delay after the last batch came up). */
  readonly nextBatchAtMs: number;
}

/** Everything the orchestrator needs to remember between rounds; the caller stores it, never reads it. */
export interface OrchestratorMemory {
  readonly slots: ReadonlyMap<string, SlotMemory>;
  readonly rollouts: ReadonlyMap<string, RolloutMemory>;
}

export const emptyOrchestratorMemory: OrchestratorMemory = {
  slots: new Map(),
  rollouts: new Map(),
};

export interface OrchestratorPlan {
  /** Proposed as one `tasks-put`: new tasks and changes to existing ones. */
  readonly puts: readonly TaskPut[];
  /** Proposed as one `tasks-remove`: dead tasks past the history limit. */
  readonly removeIds: readonly string[];
  /** When to call again even if nothing changes (back-off, update delay, stop timeout); null: only on change. */
  readonly nextLookAtMs: number | null;
  /** Pass this back as `view.memory` in the next call. */
  readonly memory: OrchestratorMemory;
}

export interface ReconcileOptions {
  /** The caller's clock, in ms; only compared with earlier values of itself. */
  readonly now: number;
  /** A fresh, unique task id. */
  readonly newId: () => string;
}

export class PlanBuilder {
  readonly now: number;
  readonly slots = new Map<string, SlotMemory>();
  readonly rollouts = new Map<string, RolloutMemory>();
  readonly #newId: () => string;
  readonly #original: ReadonlyMap<string, TaskRecord>;
  readonly #tasks: Map<string, TaskRecord>;
  readonly #changes = new Map<string, TaskChange>();
  readonly #removeIds: string[] = [];
  #nextLookAtMs: number | null = null;

  constructor(tasks: readonly TaskRecord[], options: ReconcileOptions) {
    this.now = options.now;
    this.#newId = options.newId;
    this.#original = new Map(tasks.map((task) => [task.id, task]));
    assert(
      this.#original.size === tasks.length,
      'the orchestrator was given two tasks with one id',
    );
    this.#tasks = new Map([...tasks].sort(byCreation).map((task) => [task.id, task]));
  }

  /** The working copies, oldest first. */
  tasks(): TaskRecord[] {
    return [...this.#tasks.values()];
  }

  change(task: TaskRecord, change: TaskChange): TaskRecord {
    const current = this.#tasks.get(task.id);
    assert(current, `orchestrator changes unknown task ${task.id}`);
    let next = applyChange(current, change);
    let merged = mergeChanges(this.#changes.get(task.id), change);
    // A task that never reached a node has no agent to stop it and confirm: it ends here.
    if (next.desiredState === 'shutdown' && next.nodeId === null && !isDead(next)) {
      const end: TaskChange = { state: 'shutdown', message: 'shut down before it was scheduled' };
      next = applyChange(next, end);
      merged = mergeChanges(merged, end);
    }
    this.#tasks.set(next.id, next);
    this.#changes.set(next.id, merged);
    return next;
  }

  create(service: ServiceRecord, slot: number, nodeId: string | null): TaskRecord {
    const id = this.#newId();
    assert(!this.#tasks.has(id), `newId() returned ${id} twice`);
    const task: TaskRecord = {
      id: id as TaskId,
      serviceId: service.id,
      slot,
      nodeId,
      specVersion: service.specVersion,
      container: service.spec.container,
      desiredState: 'running',
      status: {
        state: 'new',
        message: 'created',
        error: '',
        exitCode: null,
        at: '',
        secretVersions: {},
      },
      createdAt: new Date(this.now).toISOString(),
      metaIndex: 0,
    };
    this.#tasks.set(id, task);
    this.#changes.set(id, { state: 'new', message: 'created' });
    return task;
  }

  /**
   * Removes a task that was already dead and desired shutdown when the round began (one this round
   * just ended is written first and removed in a later round). Returns whether it was removed.
   */
  removeIfDone(task: TaskRecord): boolean {
    const original = this.#original.get(task.id);
    if (
      !original ||
      !isDead(original) ||
      original.desiredState !== 'shutdown' ||
      this.#changes.has(task.id)
    )
      return false;
    this.#removeIds.push(task.id);
    return true;
  }

  /** Asks to be called again at `atMs` (the earliest such request wins). */
  lookAt(atMs: number): void {
    assert(atMs > this.now, `next look ${atMs} is not after now ${this.now}`);
    if (this.#nextLookAtMs === null || atMs < this.#nextLookAtMs) this.#nextLookAtMs = atMs;
  }

  finish(): OrchestratorPlan {
    const puts = [...this.#changes].map(([id, change]) => taskPut(this.#tasks.get(id)!, change));
    return {
      puts,
      removeIds: this.#removeIds,
      nextLookAtMs: this.#nextLookAtMs,
      memory: { slots: this.slots, rollouts: this.rollouts },
    };
  }
}

function applyChange(task: TaskRecord, change: TaskChange): TaskRecord {
  const status =
    change.state === undefined
      ? task.status
      : { ...task.status, state: change.state, message: change.message ?? task.status.message };
  return {
    ...task,
    desiredState: change.desiredState ?? task.desiredState,
    nodeId: change.nodeId === undefined ? task.nodeId : change.nodeId,
    status,
  };
}

function mergeChanges(earlier: TaskChange | undefined, later: TaskChange): TaskChange {
  const desiredState = later.desiredState ?? earlier?.desiredState;
  const nodeId = later.nodeId === undefined ? earlier?.nodeId : later.nodeId;
  // A message belongs to its state: a later state without one must not inherit the earlier's.
  const stated = later.state === undefined ? earlier : later;
  return {
    ...(desiredState === undefined ? {} : { desiredState }),
    ...(nodeId === undefined ? {} : { nodeId }),
    ...(stated?.state === undefined ? {} : { state: stated.state }),
    ...(stated?.message === undefined ? {} : { message: stated.message }),
  };
}
