/**
 * The leader's control loop for services: orchestrate (tasks per slot or per node), then schedule
 * (tasks onto nodes), one round at a time, each round's writes applied before the next reads the
 * store. It runs after changes are applied (coalesced) and when the orchestrator asked to look
 * again (back-off, update delays); it stops when this manager stops leading.
 */
import { orchestratorRetryDelayMs } from '../../limits.ts';
import type { Timers } from '../../io/timers.ts';
import {
  emptyOrchestratorMemory,
  reconcileServices,
  type OrchestratorMemory,
} from './orchestrator.ts';
import { schedule } from './scheduler.ts';
import type { Command } from '../store/index.ts';
import type { Store } from '../store/index.ts';

export interface WorkloadLoopOptions {
  readonly store: () => Store;
  readonly propose: (command: Command) => Promise<unknown>;
  readonly timers: Timers;
  readonly now: () => string;
  readonly newId: () => string;
  readonly log: (line: string) => void;
}

export class WorkloadLoop {
  readonly #options: WorkloadLoopOptions;
  #active = false;
  #memory: OrchestratorMemory = emptyOrchestratorMemory;
  #running = false;
  #again = false;
  #cancelTimer: (() => void) | null = null;

  constructor(options: WorkloadLoopOptions) {
    this.#options = options;
  }

  setActive(active: boolean): void {
    if (active === this.#active) return;
    this.#active = active;
    this.#memory = emptyOrchestratorMemory;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    if (active) this.kick();
  }

  /** Something changed: run a round now (or right after the one in progress). */
  kick(): void {
    if (!this.#active) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void this.#rounds().finally(() => (this.#running = false));
  }

  async #rounds(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.#round();
      } catch (error) {
        // Leadership moved or a write failed: the plan is dropped and the next round starts afresh.
        if (this.#active) this.#options.log(`secretd: orchestrator: ${(error as Error).message}`);
        this.#arm(this.#options.timers.now() + orchestratorRetryDelayMs);
        return;
      }
    } while (this.#again && this.#active);
  }

  async #round(): Promise<void> {
    const { store, propose, timers, now } = this.#options;
    const state = store();
    const plan = reconcileServices(
      {
        services: [...state.workloads.services.values()],
        tasks: [...state.workloads.tasks.values()],
        nodes: [...state.nodes()],
        memory: this.#memory,
      },
      { now: timers.now(), newId: this.#options.newId },
    );
    if (plan.puts.length > 0) await propose({ op: 'tasks-put', at: now(), tasks: plan.puts });
    if (plan.removeIds.length > 0)
      await propose({ op: 'tasks-remove', at: now(), ids: plan.removeIds });
    this.#memory = plan.memory;
    const fresh = store();
    const placements = schedule({
      tasks: [...fresh.workloads.tasks.values()],
      nodes: [...fresh.nodes()],
      services: [...fresh.workloads.services.values()],
    });
    if (placements.length > 0) await propose({ op: 'tasks-put', at: now(), tasks: placements });
    if (plan.nextLookAtMs !== null) this.#arm(plan.nextLookAtMs);
  }

  /** One timer, for the time the orchestrator asked to look again (ms on the `timers` clock, as `plan.nextLookAtMs`). */
  #arm(atMs: number): void {
    this.#cancelTimer?.();
    this.#cancelTimer = this.#options.timers.after(
      Math.max(0, atMs - this.#options.timers.now()),
      () => {
        this.#cancelTimer = null;
        this.kick();
      },
    );
  }
}
