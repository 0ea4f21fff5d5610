import { describe, expect, test } from 'bun:test';
import {
  emptyOrchestratorMemory,
  reconcileServices,
  restartDelayMs,
  stopWaitMaxMs,
  taskHistoryPerSlot,
} from './orchestrator.ts';
import { SimCluster } from '../../../test/helpers/orchestrator-cluster.ts';
import type { TaskRecord } from '../store/index.ts';
import { isLive } from '../store/index.ts';

/** slot → state of the slot's live task, for compact whole-value assertions. */
function liveBySlot(sim: SimCluster, serviceId: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of sim
    .tasks(serviceId)
    .filter(isLive)
    .sort((a, b) => a.slot - b.slot || (a.nodeId ?? '').localeCompare(b.nodeId ?? ''))) {
    out[t.slot === 0 ? `@${t.nodeId}` : String(t.slot)] =
      `${t.status.state} v${t.specVersion}${t.slot === 0 ? '' : ` on ${t.nodeId}`}`;
  }
  return out;
}

function liveInSlot(sim: SimCluster, serviceId: string, slot: number): TaskRecord {
  const [task, ...more] = sim.tasks(serviceId).filter((t) => t.slot === slot && isLive(t));
  expect(more).toEqual([]);
  expect(task).toBeDefined();
  return task!;
}

function cluster(nodes: readonly string[]): SimCluster {
  const sim = new SimCluster();
  for (const id of nodes) sim.addNode(id);
  return sim;
}

describe('reconcileServices() replicated services', () => {
  test('creates one new, unplaced task per slot, then has nothing more to do', () => {
    const sim = cluster(['n1']);
    sim.createService('web', { replicas: 3 });
    const plan = sim.reconcile();
    expect(plan.puts.map((p) => ({ ...p, container: undefined }))).toEqual(
      [1, 2, 3].map((slot) => ({
        id: `t0000${slot}`,
        serviceId: 'web',
        slot,
        nodeId: null,
        specVersion: 1,
        container: undefined,
        desiredState: 'running',
        state: 'new',
        message: 'created',
      })),
    );
    expect(plan.puts[0]!.container).toEqual(sim.service('web').spec.container);
    expect(plan.removeIds).toEqual([]);
    expect(plan.nextLookAtMs).toBeNull();
    expect(sim.reconcile().puts).toEqual([]);
  });

  test('is deterministic: the same view, time and ids give the same plan', () => {
    const sim = cluster(['n1', 'n2']);
    sim.createService('web', { replicas: 2 });
    sim.createService('db', { global: true });
    const view = {
      services: [...sim.workloads.services.values()],
      tasks: sim.tasks(),
      nodes: [...sim.nodes.values()],
      memory: emptyOrchestratorMemory,
    };
    const ids = (): (() => string) => {
      let n = 0;
      return () => `id${++n}`;
    };
    expect(reconcileServices(view, { now: 5, newId: ids() })).toEqual(
      reconcileServices(
        { ...view, services: [...view.services].reverse(), nodes: [...view.nodes].reverse() },
        { now: 5, newId: ids() },
      ),
    );
  });

  test('scaling up adds slots; scaling down shuts the top slots down and forgets them once stopped', () => {
    const sim = cluster(['n1', 'n2']);
    sim.createService('web', { replicas: 1 });
    sim.settle();
    sim.updateService('web', { replicas: 3 });
    sim.settle();
    expect(liveBySlot(sim, 'web')).toEqual({
      1: 'running v1 on n1',
      2: 'running v1 on n2',
      3: 'running v1 on n1',
    });
    sim.updateService('web', { replicas: 1 });
    const plan = sim.reconcile();
    expect(plan.puts.map((p) => [p.slot, p.desiredState])).toEqual([
      [2, 'shutdown'],
      [3, 'shutdown'],
    ]);
    sim.runAgents();
    expect([...sim.reconcile().removeIds].sort()).toEqual(['t00002', 't00003']);
    expect(sim.tasks('web').map((t) => t.slot)).toEqual([1]);
  });

  test('a task never placed is shut down by the orchestrator itself when its slot goes away', () => {
    const sim = new SimCluster();
    sim.createService('web', { replicas: 2 });
    sim.settle();
    expect(sim.tasks('web').map((t) => t.status)).toEqual(
      [1, 2].map(() =>
        expect.objectContaining({
          state: 'pending',
          message: 'no suitable node (0 nodes not available for new tasks)',
        }),
      ),
    );
    sim.updateService('web', { replicas: 1 });
    const plan = sim.reconcile();
    expect(plan.puts).toEqual([
      expect.objectContaining({
        slot: 2,
        desiredState: 'shutdown',
        state: 'shutdown',
        message: 'shut down before it was scheduled',
      }),
    ]);
    expect(sim.reconcile().removeIds).toEqual(['t00002']);
  });

  test('a slot holding two live tasks after a race keeps the running one of the current spec', () => {
    const sim = cluster(['n1']);
    sim.createService('web', { replicas: 1 });
    sim.settle();
    const running = liveInSlot(sim, 'web', 1);
    sim.put([{ ...running, id: 'stray', nodeId: null, state: 'new' }]);
    expect(sim.reconcile().puts).toEqual([
      expect.objectContaining({ id: 'stray', desiredState: 'shutdown', state: 'shutdown' }),
    ]);
    expect(liveInSlot(sim, 'web', 1).id).toBe(running.id);
  });
});

describe('reconcileServices() restarts', () => {
  test('an exit is acknowledged at once and the slot restarts after a back-off that doubles to 30 s', () => {
    const sim = cluster(['n1']);
    sim.createService('web', { replicas: 1 });
    sim.settle();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const failed = liveInSlot(sim, 'web', 1);
      sim.report(failed.id, 'failed');
      const plan = sim.reconcile();
      expect(plan.puts).toEqual([
        expect.objectContaining({ id: failed.id, desiredState: 'shutdown' }),
      ]);
      expect(plan.puts[0]!.state).toBeUndefined();
      delays.push(plan.nextLookAtMs! - sim.now);
      sim.now = plan.nextLookAtMs! - 1;
      expect(sim.reconcile().puts).toEqual([]);
      sim.now += 1;
      expect(sim.reconcile().puts).toEqual([
        expect.objectContaining({ slot: 1, state: 'new', desiredState: 'running' }),
      ]);
      sim.schedule();
      sim.runAgents();
      sim.reconcile();
    }
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    expect([1, 2, 7, 8].map(restartDelayMs)).toEqual([500, 1000, 30000, 30000]);
  });

  test('a task that ran 10 s before it failed restarts after the first delay again', () => {
    const sim = cluster(['n1']);
    sim.createService('web', { replicas: 1 });
    sim.settle();
    for (let i = 0; i < 3; i++) {
      sim.report(liveInSlot(sim, 'web', 1).id, 'failed');
      sim.settle();
    }
    sim.now += 10_000;
    sim.report(liveInSlot(sim, 'web', 1).id, 'complete');
    expect(sim.reconcile().nextLookAtMs).toBe(sim.now + 500);
  });

  test('a node going down orphans its tasks and their slots are replaced at once, elsewhere', () => {
    const sim = cluster(['n1', 'n2']);
    sim.createService('web', { replicas: 2 });
    sim.settle();
    const lost = sim.tasks('web').find((t) => t.nodeId === 'n1')!;
    sim.setNode('n1', { status: 'down' });
    const plan = sim.reconcile();
    expect(plan.puts).toEqual([
      expect.objectContaining({
        id: lost.id,
        desiredState: 'shutdown',
        state: 'orphaned',
        message: 'node n1 is down',
      }),
      expect.objectContaining({
        slot: lost.slot,
        nodeId: null,
        state: 'new',
        desiredState: 'running',
      }),
    ]);
    expect(plan.nextLookAtMs).toBeNull();
    sim.settle();
    expect(liveBySlot(sim, 'web')).toEqual({ 1: 'running v1 on n2', 2: 'running v1 on n2' });
  });

  test('a drained node has its tasks stopped; each slot restarts elsewhere once its old task has stopped', () => {
    const sim = cluster(['n1', 'n2']);
    sim.createService('web', { replicas: 2 });
    sim.settle();
    const drained = sim.tasks('web').find((t) => t.nodeId === 'n1')!;
    sim.setNode('n1', { availability: 'drain' });
    const plan = sim.reconcile();
    expect(plan.puts).toEqual([
      expect.objectContaining({ id: drained.id, desiredState: 'shutdown', nodeId: 'n1' }),
    ]);
    expect(plan.nextLookAtMs).toBe(sim.now + stopWaitMaxMs);
    sim.runAgents();
    expect(sim.reconcile().puts).toEqual([
      expect.objectContaining({ slot: drained.slot, nodeId: null, state: 'new' }),
    ]);
    sim.settle();
    expect(liveBySlot(sim, 'web')).toEqual({ 1: 'running v1 on n2', 2: 'running v1 on n2' });
  });

  test('a slot whose old task never confirms its stop starts the new one after stopWaitMaxMs', () => {
    const sim = cluster(['n1', 'n2']);
    sim.createService('web', { replicas: 1 });
    sim.settle();
    sim.setNode('n1', { availability: 'drain', status: 'unknown' });
    sim.reconcile();
    sim.now += stopWaitMaxMs - 1;
    expect(sim.reconcile().puts).toEqual([]);
    sim.now += 1;
    expect(sim.reconcile().puts).toEqual([expect.objectContaining({ slot: 1, state: 'new' })]);
  });
});

describe('reconcileServices() global services', () => {
  test('runs one task per active node that is not down, following nodes as they come and go', () => {
    const sim = cluster(['n1', 'n2']);
    sim.addNode('n3', { availability: 'pause' });
    sim.createService('agent', { global: true });
    expect(sim.reconcile().puts.map((p) => [p.slot, p.nodeId, p.state])).toEqual([
      [0, 'n1', 'new'],
      [0, 'n2', 'new'],
    ]);
    sim.settle();
    sim.addNode('n4');
    sim.settle();
    expect(liveBySlot(sim, 'agent')).toEqual({
      '@n1': 'running v1',
      '@n2': 'running v1',
      '@n4': 'running v1',
    });

    sim.setNode('n1', { availability: 'drain' });
    sim.setNode('n2', { status: 'down' });
    sim.setNode('n4', { availability: 'pause' });
    expect(sim.reconcile().puts.map((p) => [p.nodeId, p.desiredState, p.state])).toEqual([
      ['n1', 'shutdown', undefined],
      ['n2', 'shutdown', 'orphaned'],
    ]);
    sim.settle();
    expect(liveBySlot(sim, 'agent')).toEqual({ '@n4': 'running v1' });

    sim.setNode('n2', { status: 'ready' });
    sim.setNode('n3', { availability: 'active' });
    sim.settle();
    expect(liveBySlot(sim, 'agent')).toEqual({
      '@n2': 'running v1',
      '@n3': 'running v1',
      '@n4': 'running v1',
    });
  });

  test('a task on a node that left the cluster is orphaned, then removed', () => {
    const sim = cluster(['n1', 'n2']);
    sim.createService('agent', { global: true });
    sim.settle();
    const gone = sim.tasks('agent').find((t) => t.nodeId === 'n2')!;
    sim.nodes.delete('n2');
    expect(sim.reconcile().puts).toEqual([
      expect.objectContaining({ id: gone.id, state: 'orphaned', message: 'node n2 was removed' }),
    ]);
    expect(sim.reconcile().removeIds).toEqual([gone.id]);
  });
});

describe('reconcileServices() rolling updates', () => {
  test('replaces parallelism slots at a time, stop-first, waiting delayMs after each batch runs', () => {
    const sim = cluster(['n1', 'n2']);
    sim.createService('web', { replicas: 4, parallelism: 2, delayMs: 5000 });
    sim.settle();
    sim.updateService('web', { image: 'app:2' });
    const first = sim.reconcile();
    expect(first.puts.map((p) => [p.slot, p.specVersion, p.desiredState])).toEqual([
      [1, 1, 'shutdown'],
      [2, 1, 'shutdown'],
    ]);
    // Stop-first: no successor until the old task has stopped.
    expect(sim.reconcile().puts).toEqual([]);
    sim.runAgents();
    expect(sim.reconcile().puts.map((p) => [p.slot, p.specVersion, p.state])).toEqual([
      [1, 2, 'new'],
      [2, 2, 'new'],
    ]);
    sim.schedule();
    expect(sim.reconcile().puts).toEqual([]);
    sim.runAgents();
    const batchDone = sim.reconcile();
    expect(batchDone.puts).toEqual([]);
    expect(batchDone.nextLookAtMs).toBe(sim.now + 5000);
    sim.now += 4999;
    expect(sim.reconcile().puts).toEqual([]);
    sim.now += 1;
    expect(sim.reconcile().puts.map((p) => [p.slot, p.specVersion, p.desiredState])).toEqual([
      [3, 1, 'shutdown'],
      [4, 1, 'shutdown'],
    ]);
    sim.settle();
    expect(liveBySlot(sim, 'web')).toEqual({
      1: 'running v2 on n1',
      2: 'running v2 on n2',
      3: 'running v2 on n1',
      4: 'running v2 on n2',
    });
    expect(sim.memory.rollouts.size).toBe(0);
  });

  test('parallelism 0 replaces every slot at once', () => {
    const sim = cluster(['n1']);
    sim.createService('web', { replicas: 3, parallelism: 0, delayMs: 60_000 });
    sim.settle();
    sim.updateService('web', { image: 'app:2' });
    expect(sim.reconcile().puts.map((p) => p.slot)).toEqual([1, 2, 3]);
  });

  test('a newer spec cancels the batch in flight and starts over at once', () => {
    const sim = cluster(['n1']);
    sim.createService('web', { replicas: 2, parallelism: 1, delayMs: 60_000 });
    sim.settle();
    sim.updateService('web', { image: 'app:2' });
    sim.reconcile();
    sim.runAgents();
    sim.reconcile();
    sim.updateService('web', { image: 'app:3' });
    // The v2 task was not placed yet, so it ends at once and v3 takes its slot in the same round,
    // outside the batch; the batch of one starts over with slot 2.
    expect(
      sim.reconcile().puts.map((p) => [p.slot, p.specVersion, p.desiredState, p.state]),
    ).toEqual([
      [1, 2, 'shutdown', 'shutdown'],
      [1, 3, 'running', 'new'],
      [2, 1, 'shutdown', undefined],
    ]);
    sim.settle();
    expect(liveBySlot(sim, 'web')).toEqual({ 1: 'running v3 on n1', 2: 'running v3 on n1' });
  });

  test('a global service rolls node by node and leaves a paused node alone', () => {
    const sim = cluster(['n1', 'n2', 'n3']);
    sim.createService('agent', { global: true, parallelism: 1 });
    sim.settle();
    sim.setNode('n2', { availability: 'pause' });
    sim.updateService('agent', { image: 'app:2' });
    expect(sim.reconcile().puts.map((p) => [p.nodeId, p.desiredState])).toEqual([
      ['n1', 'shutdown'],
    ]);
    sim.settle();
    expect(liveBySlot(sim, 'agent')).toEqual({
      '@n1': 'running v2',
      '@n2': 'running v1',
      '@n3': 'running v2',
    });
  });
});

describe('reconcileServices() history', () => {
  test(`keeps the newest ${taskHistoryPerSlot} tasks of a slot and removes older dead ones`, () => {
    const sim = cluster(['n1']);
    sim.createService('web', { replicas: 1 });
    sim.settle();
    for (let i = 0; i < 8; i++) {
      sim.report(liveInSlot(sim, 'web', 1).id, 'failed');
      sim.settle();
    }
    const ids = sim
      .tasks('web')
      .map((t): string => t.id)
      .sort();
    expect(ids).toEqual(['t00005', 't00006', 't00007', 't00008', 't00009']);
    expect(liveInSlot(sim, 'web', 1).id as string).toBe('t00009');
  });

  test('removes the tasks of a removed service once they have stopped', () => {
    const sim = cluster(['n1']);
    sim.createService('web', { replicas: 2 });
    sim.settle();
    sim.removeService('web');
    expect(sim.reconcile()).toEqual({
      puts: [],
      removeIds: [],
      nextLookAtMs: null,
      memory: { slots: new Map(), rollouts: new Map() },
    });
    sim.runAgents();
    expect(sim.reconcile().removeIds).toEqual(['t00001', 't00002']);
    expect(sim.tasks()).toEqual([]);
  });
});
