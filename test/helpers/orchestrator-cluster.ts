/**
 * Test support only (no production code imports it): a simulated cluster for the orchestrator and
 * scheduler tests. The store's own rules (Workloads) apply every plan, nodes are plain records,
 * agents are instant and obedient, and time is a number the test moves. It lives beside the tests
 * because they are the only users; it could move to test/sim/ with them.
 */
import { assert } from '../../src/errors.ts';
import type { TaskPut } from '../../src/node/store/index.ts';
import type {
  Availability,
  NodeId,
  NodeRecord,
  NodeStatus,
  ServiceId,
  ServiceMode,
  ServiceRecord,
  ServiceSpec,
  TaskRecord,
  TaskState,
} from '../../src/node/store/index.ts';
import { Workloads } from '../../src/node/store/index.ts';
import {
  emptyOrchestratorMemory,
  type OrchestratorMemory,
  type OrchestratorPlan,
  reconcileServices,
} from '../../src/node/orchestration/index.ts';
import { schedule } from '../../src/node/orchestration/index.ts';
import { isDead } from '../../src/node/store/index.ts';

export interface SimServiceOptions {
  readonly replicas?: number;
  readonly global?: boolean;
  readonly image?: string;
  readonly parallelism?: number;
  readonly delayMs?: number;
  /** Placement constraints, normalized (`node.labels.zone==a`). */
  readonly constraints?: readonly string[];
}

export interface SimNodeFields {
  readonly availability?: Availability;
  readonly status?: NodeStatus;
  readonly labels?: Readonly<Record<string, string>>;
}

export class SimCluster {
  now = 1_000_000;
  readonly workloads = new Workloads();
  readonly nodes = new Map<string, NodeRecord>();
  memory: OrchestratorMemory = emptyOrchestratorMemory;
  nextLookAtMs: number | null = null;
  #index = 0;
  #taskIds = 0;

  get at(): string {
    return new Date(this.now).toISOString();
  }

  addNode(id: string, fields: SimNodeFields = {}): void {
    const index = ++this.#index;
    this.nodes.set(id, {
      id: id as NodeId,
      role: 'worker',
      hostname: id,
      addr: `${id}:4242`,
      availability: fields.availability ?? 'active',
      labels: fields.labels ?? {},
      status: fields.status ?? 'ready',
      createdAt: this.at,
      updatedAt: this.at,
      metaIndex: index,
    });
  }

  setNode(id: string, fields: SimNodeFields): void {
    const node = this.nodes.get(id);
    assert(node, `no node ${id}`);
    this.nodes.set(id, { ...node, ...fields, metaIndex: ++this.#index });
  }

  createService(id: string, options: SimServiceOptions = {}): void {
    this.workloads.createService(++this.#index, this.at, id, specOf(id, options), () => undefined);
  }

  updateService(id: string, options: SimServiceOptions): void {
    const service = this.service(id);
    const mode: ServiceMode =
      options.replicas === undefined
        ? service.spec.mode
        : { kind: 'replicated', replicas: options.replicas };
    const update = {
      parallelism: options.parallelism ?? service.spec.update.parallelism,
      delayMs: options.delayMs ?? service.spec.update.delayMs,
    };
    const container = {
      ...service.spec.container,
      image: options.image ?? service.spec.container.image,
    };
    this.workloads.updateService(
      ++this.#index,
      this.at,
      id,
      service.metaIndex,
      { ...service.spec, mode, update, container },
      () => undefined,
    );
  }

  removeService(id: string): void {
    this.workloads.removeService(this.at, id, ++this.#index);
  }

  service(id: string): ServiceRecord {
    const service = this.workloads.services.get(id as ServiceId);
    assert(service, `no service ${id}`);
    return service;
  }

  tasks(serviceId?: string): TaskRecord[] {
    const all = [...this.workloads.tasks.values()];
    return serviceId === undefined ? all : all.filter((t) => t.serviceId === serviceId);
  }

  task(id: string): TaskRecord {
    const task = this.workloads.tasks.get(id as TaskRecord['id']);
    assert(task, `no task ${id}`);
    return task;
  }

  /** Runs the orchestrator on the current state and applies its plan. */
  reconcile(): OrchestratorPlan {
    const view = {
      services: [...this.workloads.services.values()],
      tasks: this.tasks(),
      nodes: [...this.nodes.values()],
      memory: this.memory,
    };
    const plan = reconcileServices(view, {
      now: this.now,
      newId: () => `t${String(++this.#taskIds).padStart(5, '0')}`,
    });
    this.put(plan.puts);
    this.workloads.removeTasks(plan.removeIds);
    this.memory = plan.memory;
    this.nextLookAtMs = plan.nextLookAtMs;
    return plan;
  }

  /** Runs the scheduler on the current state and applies its placements. */
  schedule(): TaskPut[] {
    const puts = schedule({
      tasks: this.tasks(),
      nodes: [...this.nodes.values()],
      services: [...this.workloads.services.values()],
    });
    this.put(puts);
    return puts;
  }

  put(puts: readonly TaskPut[]): void {
    if (puts.length > 0) this.workloads.putTasks(++this.#index, this.at, puts);
  }

  /** What an agent reports about one of its tasks. */
  report(taskId: string, state: TaskState): void {
    const task = this.task(taskId);
    assert(task.nodeId !== null, `task ${taskId} has no node to report it`);
    this.workloads.reportStatus(++this.#index, this.at, task.nodeId, [
      { id: taskId, state, message: state, error: '', exitCode: null, secretVersions: {} },
    ]);
  }

  /** Agents on ready nodes start what they are given and stop what they are told to; returns the reports. */
  runAgents(): number {
    let reports = 0;
    for (const task of this.tasks()) {
      if (task.nodeId === null || this.nodes.get(task.nodeId)?.status !== 'ready' || isDead(task))
        continue;
      if (task.desiredState === 'shutdown') this.report(task.id, 'shutdown');
      else if (
        task.status.state !== 'running' &&
        task.status.state !== 'new' &&
        task.status.state !== 'pending'
      )
        this.report(task.id, 'running');
      else continue;
      reports++;
    }
    return reports;
  }

  /** One turn of the leader's loop and the agents; returns whether anything changed. */
  step(): boolean {
    const plan = this.reconcile();
    const placed = this.schedule();
    const reports = this.runAgents();
    return plan.puts.length + plan.removeIds.length + placed.length + reports > 0;
  }

  /** Turns the loop, moving time to each next look, until nothing changes and nothing is due. */
  settle(roundsMax = 1000): void {
    for (let round = 0; round < roundsMax; round++) {
      if (this.step()) continue;
      if (this.nextLookAtMs === null) return;
      this.now = this.nextLookAtMs;
    }
    throw new Error(`cluster did not settle in ${roundsMax} rounds`);
  }
}

function specOf(name: string, options: SimServiceOptions): ServiceSpec {
  return {
    name,
    labels: {},
    container: { image: options.image ?? 'app:1', command: [], args: [], env: [], secrets: [] },
    mode: options.global
      ? { kind: 'global' }
      : { kind: 'replicated', replicas: options.replicas ?? 1 },
    update: { parallelism: options.parallelism ?? 1, delayMs: options.delayMs ?? 0 },
    ...(options.constraints ? { constraints: options.constraints } : {}),
  };
}
