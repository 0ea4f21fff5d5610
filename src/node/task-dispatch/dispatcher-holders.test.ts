/**
 * The dispatcher's read of who holds what now (holdersOf) and of its sessions' certificates
 * (sessionCertificates): what it sent over the open sessions, by task and by grant, against a real store.
 */
import { describe, expect, test } from 'bun:test';
import { activeDispatcher, applierOf } from '../../../test/helpers/dispatcher.ts';
import type { ContainerSpec } from '../store/index.ts';
import { Store, toBase64 } from '../store/index.ts';

const at = '2026-12-06T00:00:00.000Z';
const text = (value: string): Uint8Array => new TextEncoder().encode(value);

const container = (secretIds: string[]): ContainerSpec => ({
  image: 'busybox',
  command: [],
  args: ['sleep', '1'],
  env: [],
  secrets: secretIds.map((id) => ({
    secretId: id,
    secretName: 'db_pass',
    target: id,
    uid: '0',
    gid: '0',
    mode: 0o444,
  })),
});

function setup() {
  const store = new Store();
  const apply = applierOf(store);
  for (const [id, role] of [
    ['n1', 'worker'],
    ['n2', 'manager'],
  ] as const)
    apply({ op: 'node-add', at, node: { id, role, hostname: `host-${id}`, addr: `${id}:4377` } });
  apply({ op: 'secret-create', at, id: 's1', name: 'db_pass', labels: {}, data: text('v1') });
  apply({
    op: 'service-create',
    at,
    id: 'svc',
    spec: {
      name: 'svc',
      labels: {},
      container: container(['s1']),
      mode: { kind: 'replicated', replicas: 1 },
      update: { parallelism: 1, delayMs: 0 },
    },
  });
  const task = (id: string, nodeId: string, desiredState: 'running' | 'shutdown') => ({
    id,
    serviceId: 'svc',
    slot: 1,
    nodeId,
    specVersion: 1,
    container: container(['s1']),
    desiredState,
    state: 'assigned' as const,
  });
  return { apply, dispatcher: activeDispatcher(store, at), task };
}

/** Lets the coalesced recomputation that storeChanged() queues run. */
const settled = (): Promise<void> => new Promise((resolve) => queueMicrotask(resolve));

describe('Dispatcher.holdersOf', () => {
  test('names each task that was sent the secret, with its node and version, and nothing for a node without a session', () => {
    const { apply, dispatcher, task } = setup();
    apply({
      op: 'tasks-put',
      at,
      tasks: [task('t1', 'n1', 'running'), task('t2', 'n2', 'running')],
    });
    dispatcher.openSession('n1');
    expect(dispatcher.holdersOf('s1')).toEqual([
      { nodeId: 'n1', version: 1, by: 'task', taskId: 't1' },
    ]);
    expect(dispatcher.holdersOf('other')).toEqual([]);
  });

  test('follows a new version and a grant as they are sent, and drops a task told to shut down', async () => {
    const { apply, dispatcher, task } = setup();
    apply({ op: 'tasks-put', at, tasks: [task('t1', 'n1', 'running')] });
    dispatcher.openSession('n1');
    dispatcher.openSession('n2');
    apply({ op: 'secret-version-add', at, id: 's1', data: text('v2'), ifVersion: null });
    apply({ op: 'secret-grant', at, id: 's1', constraints: ['node.role==manager'], version: 1 });
    dispatcher.storeChanged();
    await settled();
    expect(dispatcher.holdersOf('s1')).toEqual([
      { nodeId: 'n1', version: 2, by: 'task', taskId: 't1' },
      { nodeId: 'n2', version: 1, by: 'grant' },
    ]);
    apply({ op: 'tasks-put', at, tasks: [task('t1', 'n1', 'shutdown')] });
    dispatcher.storeChanged();
    await settled();
    expect(dispatcher.holdersOf('s1')).toEqual([{ nodeId: 'n2', version: 1, by: 'grant' }]);
  });

  test('is empty once the dispatcher is no longer active (its sessions closed)', () => {
    const { apply, dispatcher, task } = setup();
    apply({ op: 'tasks-put', at, tasks: [task('t1', 'n1', 'running')] });
    dispatcher.openSession('n1');
    dispatcher.setActive(false);
    expect(dispatcher.holdersOf('s1')).toEqual([]);
  });
});

describe('Dispatcher.sessionCertificates', () => {
  test('gives each open session the end of the certificate it presented, undefined when it presented none', () => {
    const { dispatcher } = setup();
    dispatcher.openSession('n1', {
      certificateRole: 'worker',
      certificateNotAfter: 1_800_000_000_000,
    });
    dispatcher.openSession('n2');
    expect([...dispatcher.sessionCertificates()]).toEqual([
      ['n1', 1_800_000_000_000],
      ['n2', undefined],
    ]);
  });
});
