/** The leader's control loop against a real store, on a hand-driven clock (the Timers port). */
import { describe, expect, test } from 'bun:test';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import { orchestratorRetryDelayMs, restartDelayMinMs } from '../../limits.ts';
import { isLive, Store, type Command, type ContainerSpec } from '../store/index.ts';
import { WorkloadLoop } from './control-loop.ts';

const at = '2026-12-01T00:00:00.000Z';
const container: ContainerSpec = {
  image: 'busybox',
  command: [],
  args: ['sleep', '1'],
  env: [],
  secrets: [],
};

/** Lets every round in flight finish: proposals resolve at once, so one turn of the event loop is enough. */
const roundsDone = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function setup(options: { readonly failWrites?: () => boolean } = {}) {
  const store = new Store();
  let index = 0;
  const apply = (command: Command): void => void store.apply(++index, command);
  apply({
    op: 'node-add',
    at,
    node: { id: 'n1', role: 'worker', hostname: 'one', addr: '10.0.0.1:4377' },
  });
  apply({ op: 'node-status', at, id: 'n1', status: 'ready' });
  apply({
    op: 'service-create',
    at,
    id: 'web',
    spec: {
      name: 'web',
      labels: {},
      container,
      mode: { kind: 'replicated', replicas: 1 },
      update: { parallelism: 1, delayMs: 0 },
    },
  });
  // Far from 0, as a monotonic clock is: a round that mixed in another clock would be armed far off.
  const timers = new ManualTimers();
  timers.time = 7_000_000;
  let ids = 0;
  const logged: string[] = [];
  const loop = new WorkloadLoop({
    store: () => store,
    propose: async (command) => {
      if (options.failWrites?.()) throw new Error('Not the leader');
      apply(command);
    },
    timers,
    now: () => at,
    newId: () => `t${++ids}`,
    log: (line) => logged.push(line),
  });
  const liveTasks = (): string[] =>
    [...store.workloads.tasks.values()]
      .filter(isLive)
      .map((t) => `${t.id} ${t.status.state} on ${t.nodeId}`);
  return { store, apply, timers, loop, liveTasks, logged };
}

describe('WorkloadLoop', () => {
  test('a slot whose task failed gets its next task when the Timers clock reaches the restart delay, not before', async () => {
    const { apply, timers, loop, liveTasks } = setup();
    loop.setActive(true);
    await roundsDone();
    expect(liveTasks()).toEqual(['t1 assigned on n1']);

    apply({
      op: 'task-status',
      at,
      nodeId: 'n1',
      updates: [
        {
          id: 't1',
          state: 'failed',
          message: 'exited',
          error: 'exit 1',
          exitCode: 1,
          secretVersions: {},
        },
      ],
    });
    loop.kick();
    await roundsDone();
    expect({ live: liveTasks(), waiting: timers.pendingAfters() }).toEqual({
      live: [],
      waiting: [restartDelayMinMs],
    });

    timers.advance(restartDelayMinMs - 1);
    await roundsDone();
    expect(liveTasks()).toEqual([]);
    timers.advance(1);
    await roundsDone();
    expect(liveTasks()).toEqual(['t2 assigned on n1']);
  });

  test('a round whose write fails is tried again orchestratorRetryDelayMs later on the Timers clock', async () => {
    let failing = true;
    const { timers, loop, liveTasks, logged } = setup({ failWrites: () => failing });
    loop.setActive(true);
    await roundsDone();
    expect({ live: liveTasks(), waiting: timers.pendingAfters(), logged }).toEqual({
      live: [],
      waiting: [orchestratorRetryDelayMs],
      logged: ['secretd: orchestrator: Not the leader'],
    });
    failing = false;
    timers.advance(orchestratorRetryDelayMs - 1);
    await roundsDone();
    expect(liveTasks()).toEqual([]);
    timers.advance(1);
    await roundsDone();
    expect(liveTasks()).toEqual(['t2 assigned on n1']); // t1 was drawn by the round whose write failed
  });
});
