import { describe, expect, test } from 'bun:test';
import { SimCluster } from '../../../test/helpers/orchestrator-cluster.ts';
import { assignedMessage, noSuitableNodeMessage, schedule } from './scheduler.ts';

function placements(sim: SimCluster): Record<string, string | null> {
  return Object.fromEntries(
    sim
      .tasks()
      .filter((t) => t.desiredState === 'running')
      .map((t) => [`${t.serviceId}.${t.slot || t.nodeId}`, t.nodeId]),
  );
}

describe('schedule()', () => {
  test('spreads a service over ready, active nodes, ties going to the lowest node id', () => {
    const sim = new SimCluster();
    for (const id of ['n3', 'n1', 'n2']) sim.addNode(id);
    sim.createService('web', { replicas: 5 });
    sim.reconcile();
    const puts = sim.schedule();
    expect(puts.map((p) => [p.slot, p.nodeId, p.state, p.message])).toEqual([
      [1, 'n1', 'assigned', assignedMessage],
      [2, 'n2', 'assigned', assignedMessage],
      [3, 'n3', 'assigned', assignedMessage],
      [4, 'n1', 'assigned', assignedMessage],
      [5, 'n2', 'assigned', assignedMessage],
    ]);
    expect(sim.schedule()).toEqual([]);
  });

  test('prefers a node without a task of the same service over one with fewer tasks in all', () => {
    const sim = new SimCluster();
    sim.addNode('n2');
    sim.createService('big', { replicas: 3 });
    sim.settle();
    sim.addNode('n1');
    sim.createService('web', { replicas: 2 });
    sim.settle();
    // web.1 goes to the empty n1; web.2 to n2, which runs 3 tasks but none of web's.
    expect(placements(sim)).toEqual({
      'big.1': 'n2',
      'big.2': 'n2',
      'big.3': 'n2',
      'web.1': 'n1',
      'web.2': 'n2',
    });
  });

  test('gives nothing to drained, paused, down or unknown nodes', () => {
    const sim = new SimCluster();
    sim.addNode('a', { availability: 'drain' });
    sim.addNode('b', { availability: 'pause' });
    sim.addNode('c', { status: 'down' });
    sim.addNode('d', { status: 'unknown' });
    sim.addNode('e');
    sim.createService('web', { replicas: 2 });
    sim.reconcile();
    expect(sim.schedule().map((p) => p.nodeId)).toEqual(['e', 'e']);
  });

  test("marks a task pending with Docker's explanation when no node can take it, once", () => {
    const sim = new SimCluster();
    sim.addNode('a', { availability: 'drain' });
    sim.addNode('b', { status: 'down' });
    sim.createService('web', { replicas: 1 });
    sim.reconcile();
    const puts = sim.schedule();
    expect(puts).toEqual([
      {
        ...puts[0]!,
        nodeId: null,
        desiredState: 'running',
        state: 'pending',
        message: 'no suitable node (2 nodes not available for new tasks)',
      },
    ]);
    expect(sim.schedule()).toEqual([]);
    expect(noSuitableNodeMessage(1)).toBe('no suitable node (1 node not available for new tasks)');
    sim.addNode('c');
    expect(sim.schedule().map((p) => [p.nodeId, p.state])).toEqual([['c', 'assigned']]);
  });

  test('assigns a global task to its own node only once that node is ready and active', () => {
    const sim = new SimCluster();
    sim.addNode('n1', { status: 'unknown' });
    sim.addNode('n2');
    sim.createService('agent', { global: true });
    sim.reconcile();
    expect(sim.schedule().map((p) => [p.nodeId, p.state, p.message])).toEqual([
      ['n1', 'pending', noSuitableNodeMessage(1)],
      ['n2', 'assigned', assignedMessage],
    ]);
    sim.setNode('n1', { status: 'ready' });
    expect(sim.schedule().map((p) => [p.nodeId, p.state])).toEqual([['n1', 'assigned']]);
  });

  test('ignores the order of its input and tasks not waiting for a node', () => {
    const sim = new SimCluster();
    for (const id of ['n1', 'n2', 'n3']) sim.addNode(id);
    sim.createService('web', { replicas: 4 });
    sim.createService('api', { replicas: 3 });
    sim.reconcile();
    const tasks = sim.tasks();
    const nodes = [...sim.nodes.values()];
    const expected = schedule({ tasks, nodes });
    expect(schedule({ tasks: [...tasks].reverse(), nodes: [...nodes].reverse() })).toEqual(
      expected,
    );
    const stopped = tasks.map((t) => ({ ...t, desiredState: 'shutdown' as const }));
    expect(schedule({ tasks: stopped, nodes })).toEqual([]);
  });

  test('places a task only on nodes where every placement constraint of its service holds', () => {
    const sim = new SimCluster();
    sim.addNode('n1', { labels: { zone: 'a' } });
    sim.addNode('n2', { labels: { zone: 'B', disk: 'ssd' } });
    sim.addNode('n3', { labels: { zone: 'b' } });
    sim.createService('db', {
      replicas: 3,
      constraints: ['node.labels.zone==b', 'node.labels.disk!=hdd'],
    });
    sim.reconcile();
    // zone==b matches B (values ignore case); n1 is never used although it is the least loaded.
    expect(sim.schedule().map((p) => [p.slot, p.nodeId])).toEqual([
      [1, 'n2'],
      [2, 'n3'],
      [3, 'n2'],
    ]);
  });

  test("leaves a task pending with Docker's explanation when no node matches, until one does", () => {
    const sim = new SimCluster();
    sim.addNode('n1');
    sim.addNode('n2');
    sim.addNode('n3', { availability: 'drain' });
    sim.createService('db', { replicas: 1, constraints: ['node.labels.role==db'] });
    sim.reconcile();
    expect(sim.schedule().map((p) => [p.nodeId, p.state, p.message])).toEqual([
      [
        null,
        'pending',
        'no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)',
      ],
    ]);
    expect(sim.schedule()).toEqual([]);
    sim.setNode('n2', { labels: { role: 'db' } });
    expect(sim.schedule().map((p) => [p.nodeId, p.state])).toEqual([['n2', 'assigned']]);
  });

  test('names only the constraints when every node is available but none matches', () => {
    expect(noSuitableNodeMessage(0, 1)).toBe(
      'no suitable node (scheduling constraints not satisfied on 1 node)',
    );
    expect(noSuitableNodeMessage(2, 2)).toBe(
      'no suitable node (2 nodes not available for new tasks; scheduling constraints not satisfied on 2 nodes)',
    );
  });

  test("runs a global service's tasks only on matching nodes, and stops one on a node that stops matching", () => {
    const sim = new SimCluster();
    sim.addNode('n1', { labels: { agent: 'yes' } });
    sim.addNode('n2');
    sim.addNode('n3', { labels: { agent: 'yes' } });
    sim.createService('agent', { global: true, constraints: ['node.labels.agent==yes'] });
    sim.settle();
    const running = (): (string | null)[] =>
      sim
        .tasks()
        .filter((t) => t.desiredState === 'running')
        .map((t) => t.nodeId)
        .sort();
    expect(running()).toEqual(['n1', 'n3']);
    sim.setNode('n3', { labels: {} });
    sim.settle();
    expect(running()).toEqual(['n1']);
  });
});
