/** The dispatcher against a real store, with a hand-driven clock: what each node is sent. */
import { describe, expect, test } from 'bun:test';
import type { Timers } from '../io/timers.ts';
import type { SessionMessage } from './dispatch-messages.ts';
import { Dispatcher } from './dispatcher.ts';
import type { Command } from './store/commands.ts';
import { Store, toBase64 } from './store/store.ts';
import type { ContainerSpec } from './store/types.ts';

const at = '2026-11-28T00:00:00.000Z';

class ManualTimers implements Timers {
  time = 0;
  readonly #tasks: Array<{ at: number; every: number; fn: () => void; live: boolean }> = [];
  now(): number {
    return this.time;
  }
  after(ms: number, fn: () => void): () => void {
    const task = { at: this.time + ms, every: 0, fn, live: true };
    this.#tasks.push(task);
    return () => (task.live = false);
  }
  every(ms: number, fn: () => void): () => void {
    const task = { at: this.time + ms, every: ms, fn, live: true };
    this.#tasks.push(task);
    return () => (task.live = false);
  }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const next = this.#tasks.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.time = next.at;
      if (next.every > 0) next.at += next.every;
      else next.live = false;
      next.fn();
    }
    this.time = end;
  }
}

function setup() {
  const store = new Store();
  let index = 0;
  const proposed: Command[] = [];
  const apply = (command: Command): void => void store.apply(++index, command);
  apply({ op: 'node-add', at, node: { id: 'n1', role: 'worker', hostname: 'one', addr: '10.0.0.1:4377' } });
  apply({ op: 'node-add', at, node: { id: 'n2', role: 'worker', hostname: 'two', addr: '10.0.0.2:4377' } });
  for (const [id, name] of [['s1', 'db_pass'], ['s2', 'api_key']]) apply({ op: 'secret-create', at, id: id!, name: name!, labels: {}, data: toBase64(new TextEncoder().encode(`value-of-${name}`)) });
  // The tasks below belong to service svc: the store creates no task for a service it lacks.
  apply({ op: 'service-create', at, id: 'svc', spec: { name: 'svc', labels: {}, container: container([]), mode: { kind: 'replicated', replicas: 1 }, update: { parallelism: 1, delayMs: 0 } } });
  const timers = new ManualTimers();
  const dispatcher = new Dispatcher({ store: () => store, propose: async (c) => void proposed.push(c), timers, now: () => at, log: () => {} });
  dispatcher.setActive(true);
  return { store, apply, proposed, timers, dispatcher };
}

const container = (secretIds: string[]): ContainerSpec => ({
  image: 'busybox',
  command: [],
  args: ['sleep', '1'],
  env: [],
  secrets: secretIds.map((id) => ({ secretId: id, secretName: id === 's1' ? 'db_pass' : 'api_key', target: id, uid: '0', gid: '0', mode: 0o444 })),
});

async function read(stream: ReadableStream<Uint8Array>): Promise<{ next: () => Promise<SessionMessage> }> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  return {
    async next() {
      for (;;) {
        const newline = buffered.indexOf('\n');
        if (newline >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          return JSON.parse(line) as SessionMessage;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('session ended');
        buffered += decoder.decode(value);
      }
    },
  };
}

describe('Dispatcher', () => {
  test('a node is sent its tasks and only the secrets they reference; the others get none', async () => {
    const { apply, dispatcher } = setup();
    apply({ op: 'tasks-put', at, tasks: [{ id: 't1', serviceId: 'svc', slot: 1, nodeId: 'n1', specVersion: 1, container: container(['s1']), desiredState: 'running', state: 'assigned' }] });
    const one = await read(dispatcher.openSession('n1'));
    const two = await read(dispatcher.openSession('n2'));
    const first = await one.next();
    expect(first).toMatchObject({ type: 'assignments', full: true, removedTasks: [], removedSecrets: [] });
    if (first.type !== 'assignments') throw new Error('expected assignments');
    expect(first.tasks.map((t) => t.id)).toEqual(['t1']);
    expect(first.secrets.map((s) => [s.id, s.version, Buffer.from(s.data, 'base64').toString()])).toEqual([['s1', 1, 'value-of-db_pass']]);
    expect(await two.next()).toEqual({ type: 'assignments', full: true, tasks: [], removedTasks: [], secrets: [], removedSecrets: [] });
  });

  test('when the last task using a secret stops, the node is told to drop it', async () => {
    const { apply, dispatcher } = setup();
    const put = (desiredState: 'running' | 'shutdown', state: 'assigned' | 'shutdown') =>
      apply({ op: 'tasks-put', at, tasks: [{ id: 't1', serviceId: 'svc', slot: 1, nodeId: 'n1', specVersion: 1, container: container(['s1', 's2']), desiredState, state }] });
    put('running', 'assigned');
    const one = await read(dispatcher.openSession('n1'));
    await one.next();
    put('shutdown', 'assigned');
    dispatcher.storeChanged();
    const stopping = await one.next();
    expect(stopping).toMatchObject({ type: 'assignments', full: false, removedTasks: [], secrets: [] });
    if (stopping.type !== 'assignments') throw new Error('expected assignments');
    expect(stopping.tasks.map((t) => [t.id, t.desiredState])).toEqual([['t1', 'shutdown']]);
    expect(stopping.removedSecrets).toEqual([{ id: 's1', version: 1 }, { id: 's2', version: 1 }]);
    put('shutdown', 'shutdown');
    dispatcher.storeChanged();
    expect(await one.next()).toEqual({ type: 'assignments', full: false, tasks: [], removedTasks: ['t1'], secrets: [], removedSecrets: [] });
  });

  test('a node that misses three heartbeats is marked down; one that keeps beating stays ready', async () => {
    const { dispatcher, timers, proposed } = setup();
    await read(dispatcher.openSession('n1'));
    await read(dispatcher.openSession('n2'));
    for (let second = 0; second < 6; second++) {
      timers.advance(1000);
      dispatcher.heartbeat('n1');
    }
    const statuses = proposed.filter((c): c is Extract<Command, { op: 'node-status' }> => c.op === 'node-status').map((c) => [c.id, c.status]);
    expect(statuses).toContainEqual(['n2', 'down']);
    expect(statuses).not.toContainEqual(['n1', 'down']);
  });

  test('only the leader serves sessions', () => {
    const { dispatcher } = setup();
    dispatcher.setActive(false);
    expect(() => dispatcher.openSession('n1')).toThrow('Not the leader');
  });
});
