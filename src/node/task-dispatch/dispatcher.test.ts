/** The dispatcher against a real store, with a hand-driven clock: what each node is sent. */
import { describe, expect, test } from 'bun:test';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import { activeDispatcher, applierOf, sessionReader } from '../../../test/helpers/dispatcher.ts';
import { callApp } from '../../../test/helpers/app-request.ts';
import type { Random } from '../../crypto/index.ts';
import type { SecretdError } from '../../errors.ts';
import { createApp } from '../api/index.ts';
import type { Backend, Identity } from '../api/index.ts';
import { sessionPath, sessionPathFor, type SessionClaim, type SessionMessage } from './messages.ts';
import type { Command } from '../store/index.ts';
import { Store, toBase64 } from '../store/index.ts';
import type { ContainerSpec } from '../store/index.ts';

const at = '2026-11-28T00:00:00.000Z';

function setup(options: { readonly random?: Random } = {}) {
  const store = new Store();
  const proposed: Command[] = [];
  const apply = applierOf(store);
  apply({
    op: 'node-add',
    at,
    node: { id: 'n1', role: 'worker', hostname: 'one', addr: '10.0.0.1:4377' },
  });
  apply({
    op: 'node-add',
    at,
    node: { id: 'n2', role: 'worker', hostname: 'two', addr: '10.0.0.2:4377' },
  });
  for (const [id, name] of [
    ['s1', 'db_pass'],
    ['s2', 'api_key'],
  ])
    apply({
      op: 'secret-create',
      at,
      id: id!,
      name: name!,
      labels: {},
      data: new TextEncoder().encode(`value-of-${name}`),
    });
  // The tasks below belong to service svc: the store creates no task for a service it lacks.
  apply({
    op: 'service-create',
    at,
    id: 'svc',
    spec: {
      name: 'svc',
      labels: {},
      container: container([]),
      mode: { kind: 'replicated', replicas: 1 },
      update: { parallelism: 1, delayMs: 0 },
    },
  });
  const timers = new ManualTimers();
  const logged: string[] = [];
  const dispatcher = activeDispatcher(store, at, {
    propose: async (c) => void proposed.push(c),
    timers,
    log: (line) => logged.push(line),
    ...options,
  });
  return { store, apply, proposed, timers, dispatcher, logged };
}

const container = (secretIds: string[]): ContainerSpec => ({
  image: 'busybox',
  command: [],
  args: ['sleep', '1'],
  env: [],
  secrets: secretIds.map((id) => ({
    secretId: id,
    secretName: id === 's1' ? 'db_pass' : 'api_key',
    target: id,
    uid: '0',
    gid: '0',
    mode: 0o444,
  })),
});

/** Puts task t1 of service svc on n1, using `secretIds`, in the states given (running, assigned). */
function placeTask(
  apply: (command: Command) => unknown,
  {
    secretIds = [],
    desiredState = 'running',
    state = 'assigned',
  }: {
    secretIds?: string[];
    desiredState?: 'running' | 'shutdown';
    state?: 'assigned' | 'shutdown';
  } = {},
): void {
  apply({
    op: 'tasks-put',
    at,
    tasks: [
      {
        id: 't1',
        serviceId: 'svc',
        slot: 1,
        nodeId: 'n1',
        specVersion: 1,
        container: container(secretIds),
        desiredState,
        state,
      },
    ],
  });
}

async function read(
  stream: ReadableStream<Uint8Array>,
): Promise<{ next: () => Promise<SessionMessage> }> {
  return sessionReader(stream);
}

describe('Dispatcher', () => {
  test('a node is sent its tasks and only the secrets they reference; the others get none', async () => {
    const { apply, dispatcher } = setup();
    placeTask(apply, { secretIds: ['s1'] });
    const one = await read(dispatcher.openSession('n1'));
    const two = await read(dispatcher.openSession('n2'));
    const first = await one.next();
    expect(first).toMatchObject({
      type: 'assignments',
      full: true,
      removedTasks: [],
      removedSecrets: [],
    });
    if (first.type !== 'assignments') throw new Error('expected assignments');
    expect(first.tasks.map((t) => t.id)).toEqual(['t1']);
    expect(
      first.secrets.map((s) => [s.id, s.version, Buffer.from(s.data, 'base64').toString()]),
    ).toEqual([['s1', 1, 'value-of-db_pass']]);
    expect(await two.next()).toEqual({
      type: 'assignments',
      full: true,
      tasks: [],
      removedTasks: [],
      secrets: [],
      removedSecrets: [],
    });
  });

  test('when the last task using a secret stops, the node is told to drop it', async () => {
    const { apply, dispatcher } = setup();
    const put = (desiredState: 'running' | 'shutdown', state: 'assigned' | 'shutdown') =>
      placeTask(apply, { secretIds: ['s1', 's2'], desiredState, state });
    put('running', 'assigned');
    const one = await read(dispatcher.openSession('n1'));
    await one.next();
    put('shutdown', 'assigned');
    dispatcher.storeChanged();
    const stopping = await one.next();
    expect(stopping).toMatchObject({
      type: 'assignments',
      full: false,
      removedTasks: [],
      secrets: [],
    });
    if (stopping.type !== 'assignments') throw new Error('expected assignments');
    expect(stopping.tasks.map((t) => [t.id, t.desiredState])).toEqual([['t1', 'shutdown']]);
    expect(stopping.removedSecrets).toEqual([
      { id: 's1', version: 1 },
      { id: 's2', version: 1 },
    ]);
    put('shutdown', 'shutdown');
    dispatcher.storeChanged();
    expect(await one.next()).toEqual({
      type: 'assignments',
      full: false,
      tasks: [],
      removedTasks: ['t1'],
      secrets: [],
      removedSecrets: [],
    });
  });

  test('a node that misses three heartbeats is marked down; one that keeps beating stays ready', async () => {
    const { dispatcher, timers, proposed } = setup();
    await read(dispatcher.openSession('n1'));
    await read(dispatcher.openSession('n2'));
    for (let second = 0; second < 6; second++) {
      timers.advance(1000);
      dispatcher.heartbeat('n1');
    }
    const statuses = proposed
      .filter((c): c is Extract<Command, { op: 'node-status' }> => c.op === 'node-status')
      .map((c) => [c.id, c.status]);
    expect(statuses).toContainEqual(['n2', 'down']);
    expect(statuses).not.toContainEqual(['n1', 'down']);
  });

  test('only the leader serves sessions', () => {
    const { dispatcher } = setup();
    dispatcher.setActive(false);
    expect(() => dispatcher.openSession('n1')).toThrow('Not the leader');
  });
});

describe('Dispatcher: one process per node id', () => {
  const first = { instance: 'first-process-0001', address: '10.0.0.1:40001' };
  const copy = { instance: 'copied-data-dir-02', address: '10.0.0.9:50002' };
  const refusal = `Node n1 already has a session from another process (address 10.0.0.1:40001): two processes claim this node's identity (a copied data dir?); this one is refused while that one keeps its heartbeats`;
  const putTask = (apply: (c: Command) => void, desiredState: 'running' | 'shutdown') =>
    placeTask(apply, { secretIds: ['s1'], desiredState });

  function conflictOf(open: () => unknown): { code: string; message: string } {
    try {
      open();
    } catch (error) {
      return { code: (error as SecretdError).code, message: (error as Error).message };
    }
    throw new Error('the session was opened but should have been refused');
  }

  test("a second process's session is refused with 409 while the first keeps its heartbeats, and the first keeps its tasks", async () => {
    const { apply, dispatcher, timers, proposed, logged } = setup();
    putTask(apply, 'running');
    const live = await read(dispatcher.openSession('n1', first));
    expect(await live.next()).toMatchObject({
      type: 'assignments',
      full: true,
      tasks: [{ id: 't1' }],
    });
    for (let second = 0; second < 5; second++) {
      expect(conflictOf(() => dispatcher.openSession('n1', copy))).toEqual({
        code: 'conflict',
        message: refusal,
      });
      timers.advance(1000);
      dispatcher.heartbeat('n1');
    }
    expect(logged).toEqual([
      `secretd: dispatcher: refused a session for node n1 from 10.0.0.9:50002: another process (address 10.0.0.1:40001) holds this node's session; two processes claim this node's identity (a copied data dir?)`,
    ]);
    // The first session still carries the node's changes; nothing was taken from it.
    expect(dispatcher.connected('n1')).toBe(true);
    putTask(apply, 'shutdown');
    dispatcher.storeChanged();
    let next = await live.next();
    while (next.type === 'heartbeat') next = await live.next();
    expect(next).toMatchObject({
      type: 'assignments',
      full: false,
      tasks: [{ id: 't1', desiredState: 'shutdown' }],
    });
    const statusesOfOne = proposed.flatMap((c) =>
      c.op === 'node-status' && c.id === 'n1' ? [c.status] : [],
    );
    expect([...new Set(statusesOfOne)]).toEqual(['ready']); // never down
  });

  test('a session request without an instance id never replaces a live session', async () => {
    const { dispatcher } = setup();
    await read(dispatcher.openSession('n1', first));
    expect(conflictOf(() => dispatcher.openSession('n1', { address: '10.0.0.9:50003' })).code).toBe(
      'conflict',
    );
  });

  test('the same process reconnecting replaces its old session at once, heartbeats or not', async () => {
    const { dispatcher } = setup();
    const old = await read(dispatcher.openSession('n1', first));
    await old.next();
    const again = await read(dispatcher.openSession('n1', { ...first, address: '10.0.0.1:40777' }));
    expect(await again.next()).toMatchObject({ type: 'assignments', full: true });
    await expect(old.next()).rejects.toThrow('session ended');
    // The replacement is the live one now: a copy is refused naming its address.
    expect(conflictOf(() => dispatcher.openSession('n1', copy)).message).toContain(
      '(address 10.0.0.1:40777)',
    );
  });

  test('another process may take over once the first session misses its heartbeats, or its stream is gone', async () => {
    const { dispatcher, timers } = setup();
    await read(dispatcher.openSession('n1', first));
    timers.advance(3000);
    expect(conflictOf(() => dispatcher.openSession('n1', copy)).code).toBe('conflict');
    timers.advance(1000); // the fourth period without a heartbeat: the first session is closed
    const taken = await read(dispatcher.openSession('n1', copy));
    expect(await taken.next()).toMatchObject({ type: 'assignments', full: true });

    const stream = dispatcher.openSession('n2', first);
    await stream.cancel(); // the connection died: the dispatcher drops the session at once
    const other = await read(dispatcher.openSession('n2', copy));
    expect(await other.next()).toMatchObject({ type: 'assignments', full: true });
  });

  test('the session route answers 409 with the refusal and 400 for a malformed instance id', async () => {
    const { dispatcher } = setup();
    await read(dispatcher.openSession('n1', first));
    const backend = {
      locked: false,
      openSession: (from: Identity, claim?: SessionClaim) =>
        dispatcher.openSession(from.nodeId, claim),
    } as unknown as Backend;
    const app = createApp({
      backend,
      version: 'test',
      identify: () => ({ role: 'worker', nodeId: 'n1', via: 'tls' }),
    });
    expect(await callApp(app, 'GET', sessionPathFor(copy.instance))).toEqual({
      status: 409,
      text: JSON.stringify({ message: refusal }),
      json: { message: refusal },
    });
    const bad = await callApp(app, 'GET', `${sessionPath}?instance=short`);
    expect(bad.status).toBe(400);
    expect(bad.json).toEqual({
      message:
        'Invalid session request: instance must be 16 to 64 characters of A-Z, a-z, 0-9, _ and -',
    });
  });

  test("exec() names its request with an id from the injected random source and resolves with the node's answer", async () => {
    const { apply, dispatcher } = setup({ random: (bytes) => new Uint8Array(bytes).fill(7) });
    placeTask(apply);
    const one = await read(dispatcher.openSession('n1'));
    expect(await one.next()).toMatchObject({ type: 'assignments', full: true });
    const answer = dispatcher.exec('n1', 't1', ['cat', '/run/secrets/db'], 1000);
    const id = '7'.repeat(25);
    expect(await one.next()).toEqual({
      type: 'exec',
      id,
      taskId: 't1',
      argv: ['cat', '/run/secrets/db'],
    });
    dispatcher.execResult('n1', id, { code: 0, stdout: 'out', stderr: '' });
    expect(await answer).toEqual({ code: 0, stdout: 'out', stderr: '' });
  });

  test('an exec unanswered when its session ends (its message perhaps lost) is sent again on the next session of its node, and answered', async () => {
    const { apply, dispatcher } = setup({ random: (bytes) => new Uint8Array(bytes).fill(8) });
    placeTask(apply);
    const claim = { instance: 'agent-process-0001', address: '10.0.0.1:40001' };
    const one = await read(dispatcher.openSession('n1', claim));
    expect(await one.next()).toMatchObject({ type: 'assignments', full: true });
    const answer = dispatcher.exec('n1', 't1', ['cat', '/run/secrets/db'], 1000);
    const sent: SessionMessage = {
      type: 'exec',
      id: '8'.repeat(25),
      taskId: 't1',
      argv: ['cat', '/run/secrets/db'],
    };
    expect(await one.next()).toEqual(sent);
    // The same process's next session (a renewal or a reconnect): the exec again, after the tasks.
    const two = await read(dispatcher.openSession('n1', claim));
    expect(await two.next()).toMatchObject({ type: 'assignments', full: true });
    expect(await two.next()).toEqual(sent);
    dispatcher.execResult('n1', sent.id, { code: 0, stdout: 'out', stderr: '' });
    expect(await answer).toEqual({ code: 0, stdout: 'out', stderr: '' });
    // Answered: a third session is not sent it.
    const three = await read(dispatcher.openSession('n1', claim));
    expect(await three.next()).toMatchObject({ type: 'assignments', full: true });
    dispatcher.askRenewal('n1', 'a marker');
    expect(await three.next()).toEqual({ type: 'renew-certificate', reason: 'a marker' });
  });

  test('a renewal asked (a root CA rotation) is asked again on each new session of the node until one presents another certificate', async () => {
    const { apply, dispatcher } = setup();
    placeTask(apply);
    const claim = {
      instance: 'agent-process-0001',
      address: '10.0.0.1:40001',
      certificateRole: 'worker' as const,
      certificateNotAfter: Date.parse('2030-01-01T00:00:00Z'),
    };
    const one = await read(dispatcher.openSession('n1', claim));
    expect(await one.next()).toMatchObject({ type: 'assignments', full: true });
    const ask = { type: 'renew-certificate', reason: 'the root CA rotation finished' } as const;
    expect(dispatcher.askRenewal('n1', ask.reason)).toBe(true);
    expect(await one.next()).toEqual(ask);
    // The session moved (its connection retired) with the ask perhaps in flight: asked again.
    const two = await read(dispatcher.openSession('n1', claim));
    expect(await two.next()).toMatchObject({ type: 'assignments', full: true });
    expect(await two.next()).toEqual(ask);
    // Renewed: a session presenting another certificate is not asked again.
    const renewed = { ...claim, certificateNotAfter: Date.parse('2030-02-01T00:00:00Z') };
    const three = await read(dispatcher.openSession('n1', renewed));
    expect(await three.next()).toMatchObject({ type: 'assignments', full: true });
    dispatcher.askRenewal('n1', 'a marker');
    expect(await three.next()).toEqual({ type: 'renew-certificate', reason: 'a marker' });
    const four = await read(dispatcher.openSession('n1', { ...renewed, certificateNotAfter: 1 }));
    expect(await four.next()).toMatchObject({ type: 'assignments', full: true });
    // Nothing came between: the next message is the next ask.
    dispatcher.askRenewal('n1', 'another marker');
    expect(await four.next()).toEqual({ type: 'renew-certificate', reason: 'another marker' });
    expect(dispatcher.askRenewal('n2', 'no session')).toBe(false);
  });
});
