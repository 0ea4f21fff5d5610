import { describe, expect, test } from 'bun:test';
import { taskHistoryPerSlot } from './orchestrator.ts';
import { SimCluster } from '../../../test/helpers/orchestrator-cluster.ts';
import type { Availability, NodeStatus, TaskRecord } from '../store/index.ts';
import { isLive } from '../store/index.ts';
import { acceptsNewTasks } from './task-view.ts';

/** A small seeded generator (mulberry32): one seed reproduces a whole run. */
function random(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const nodeIds = ['n1', 'n2', 'n3', 'n4'];
const replicated = ['web', 'api'];
const availabilities: Availability[] = ['active', 'active', 'pause', 'drain'];
const statuses: NodeStatus[] = ['ready', 'ready', 'down'];

function slotOf(task: TaskRecord): string {
  return task.slot === 0 ? `${task.serviceId}@${task.nodeId}` : `${task.serviceId}/${task.slot}`;
}

function groupBySlot(tasks: readonly TaskRecord[]): Map<string, TaskRecord[]> {
  const slots = new Map<string, TaskRecord[]>();
  for (const task of tasks) slots.set(slotOf(task), [...(slots.get(slotOf(task)) ?? []), task]);
  return slots;
}

/** The safety property, checked after every write: no slot ever has two live tasks. */
function assertOneLivePerSlot(sim: SimCluster, seed: number): void {
  for (const [slot, tasks] of groupBySlot(sim.tasks().filter(isLive))) {
    if (tasks.length > 1)
      throw new Error(
        `seed ${seed}: slot ${slot} has live tasks ${tasks.map((t) => t.id).join(', ')}`,
      );
  }
}

function randomEvent(sim: SimCluster, pick: (n: number) => number): void {
  const node = nodeIds[pick(nodeIds.length)]!;
  const live = sim.tasks().filter((t) => isLive(t) && t.status.state === 'running');
  switch (pick(8)) {
    case 0:
      return sim.setNode(node, { status: statuses[pick(statuses.length)]! });
    case 1:
      return sim.setNode(node, { availability: availabilities[pick(availabilities.length)]! });
    case 2:
    case 3: {
      const task = live[pick(live.length)];
      if (task) sim.report(task.id, pick(2) === 0 ? 'failed' : 'complete');
      return;
    }
    case 4:
      return sim.updateService(replicated[pick(2)]!, { replicas: pick(5) });
    case 5:
      return sim.updateService(['web', 'api', 'agent'][pick(3)]!, { image: `app:${pick(100)}` });
    case 6:
      sim.now += pick(5000);
      return;
    default:
      sim.now += pick(50);
  }
}

/** One random part of the leader's loop or the agents, so writes interleave with events. */
function randomTurn(sim: SimCluster, pick: (n: number) => number, seed: number): void {
  switch (pick(4)) {
    case 0:
      sim.reconcile();
      break;
    case 1:
      sim.schedule();
      break;
    case 2:
      sim.runAgents();
      break;
    default:
      sim.step();
  }
  assertOneLivePerSlot(sim, seed);
}

function assertConverged(sim: SimCluster, seed: number): void {
  const context = `seed ${seed}`;
  expect({ context, plan: sim.reconcile(), placed: sim.schedule() }).toMatchObject({
    context,
    plan: { puts: [], removeIds: [], nextLookAtMs: null },
    placed: [],
  });
  const usable = [...sim.nodes.values()].some(acceptsNewTasks);
  for (const id of replicated) {
    const service = sim.service(id);
    const replicas = service.spec.mode.kind === 'replicated' ? service.spec.mode.replicas : 0;
    const live = sim
      .tasks(id)
      .filter(isLive)
      .sort((a, b) => a.slot - b.slot);
    expect({ context, slots: live.map((t) => t.slot) }).toEqual({
      context,
      slots: Array.from({ length: replicas }, (_, i) => i + 1),
    });
    for (const task of live) {
      // With no node to run on, new tasks wait pending and an update waits for its batch to run.
      const expected = usable
        ? [service.specVersion, 'running']
        : task.status.state === 'running'
          ? [task.specVersion, 'running']
          : [service.specVersion, 'pending'];
      expect({
        context,
        task: task.id,
        is: [task.specVersion, task.status.state as string],
      }).toEqual({ context, task: task.id, is: expected });
    }
  }
  const agent = sim.service('agent');
  for (const node of sim.nodes.values()) {
    const live = sim.tasks('agent').filter((t) => isLive(t) && t.nodeId === node.id);
    if (node.availability === 'active' && node.status !== 'down') {
      expect({
        context,
        node: node.id,
        live: live.map((t) => [t.specVersion, t.status.state]),
      }).toEqual({ context, node: node.id, live: [[agent.specVersion, 'running']] });
    } else if (node.availability === 'pause' && node.status !== 'down') {
      expect(live.length).toBeLessThanOrEqual(1);
    } else {
      expect({ context, node: node.id, live }).toEqual({ context, node: node.id, live: [] });
    }
  }
  for (const [slot, tasks] of groupBySlot(sim.tasks()))
    expect({ context, slot, tooMany: tasks.length > taskHistoryPerSlot }).toEqual({
      context,
      slot,
      tooMany: false,
    });
  if (usable)
    expect({ context, rollouts: [...sim.memory.rollouts] }).toEqual({ context, rollouts: [] });
}

describe('orchestrator and scheduler under random events', () => {
  test('never give a slot two live tasks, and converge once events stop', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const pick = random(seed);
      const sim = new SimCluster();
      for (const id of nodeIds) sim.addNode(id);
      sim.createService('web', { replicas: 3, parallelism: 1, delayMs: 2000 });
      sim.createService('api', { replicas: 2, parallelism: 0 });
      sim.createService('agent', { global: true, parallelism: 2, delayMs: 500 });
      for (let i = 0; i < 80; i++) {
        if (pick(2) === 0) randomEvent(sim, pick);
        randomTurn(sim, pick, seed);
      }
      sim.settle();
      assertOneLivePerSlot(sim, seed);
      assertConverged(sim, seed);
    }
  });
});
