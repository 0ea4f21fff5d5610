/**
 * Grants through the dispatcher against a real store: what each node is pushed and withdrawn, read
 * as the node reads it (its session's messages applied to a GrantedSecrets, as the agent does).
 */
import { describe, expect, test } from 'bun:test';
import { activeDispatcher, applierOf, sessionReader } from '../../../test/helpers/dispatcher.ts';
import type { AuditEntry } from '../audit/index.ts';
import { Store, toBase64 } from '../store/index.ts';
import { Dispatcher } from './dispatcher.ts';
import { GrantedSecrets, type GrantedChange } from './granted.ts';
import type { SessionMessage } from './messages.ts';

const at = '2026-12-06T00:00:00.000Z';
const text = (value: string): string => toBase64(new TextEncoder().encode(value));
const raw = (value: string): Uint8Array => new TextEncoder().encode(value);

function setup() {
  const store = new Store();
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
  apply({ op: 'node-update', at, id: 'n1', expectedIndex: null, labels: { role: 'db' } });
  apply({ op: 'secret-create', at, id: 's1', name: 'db_pass', labels: {}, data: raw('v1') });
  const records: AuditEntry[] = [];
  const dispatcher = activeDispatcher(store, at, { record: (entry) => records.push(entry) });
  return { store, apply, dispatcher, records };
}

/** A node's view: its session's messages applied to what it holds by grant, as the agent does. */
async function nodeView(dispatcher: Dispatcher, nodeId: string) {
  // One agent process per node: a second view of the same node is that process reconnecting.
  const instance = `agent-process-of-${nodeId}`;
  const granted = new GrantedSecrets();
  const changes: GrantedChange[] = [];
  granted.onChange((change) => changes.push(change));
  const { next } = sessionReader(dispatcher.openSession(nodeId, { instance }), (message) => {
    if (message.type === 'assignments') granted.apply(message);
  });
  /** What the node holds now: name, version and value. */
  const holds = (): Array<[string, number, string]> =>
    granted
      .list()
      .map((g) => [g.name, g.version, new TextDecoder().decode(granted.get(g.secretId)!.data)]);
  return { next, holds, granted, changes };
}

/** Lets the coalesced recomputation run, then reads the one message it sent. */
async function changed(
  dispatcher: Dispatcher,
  view: Awaited<ReturnType<typeof nodeView>>,
): Promise<SessionMessage> {
  dispatcher.storeChanged();
  return view.next();
}

describe('Dispatcher, grants', () => {
  test('a grant by label reaches only the matching node, in its full set', async () => {
    const { apply, dispatcher } = setup();
    apply({
      op: 'secret-grant',
      at,
      id: 's1',
      constraints: ['node.labels.role==db'],
      version: null,
    });
    const one = await nodeView(dispatcher, 'n1');
    const two = await nodeView(dispatcher, 'n2');
    expect(await one.next()).toEqual({
      type: 'assignments',
      full: true,
      tasks: [],
      removedTasks: [],
      secrets: [],
      removedSecrets: [],
      grants: [{ id: 's1', name: 'db_pass', version: 1, data: text('v1') }],
    });
    expect(one.holds()).toEqual([['db_pass', 1, 'v1']]);
    await two.next();
    expect(two.holds()).toEqual([]);
  });

  test('a grant added while the session is open is pushed; ungrant withdraws it and the node zeroes its copy', async () => {
    const { apply, dispatcher } = setup();
    const one = await nodeView(dispatcher, 'n1');
    await one.next();
    apply({ op: 'secret-grant', at, id: 's1', constraints: ['node.id==n1'], version: null });
    expect(await changed(dispatcher, one)).toMatchObject({
      full: false,
      grants: [{ id: 's1', version: 1 }],
    });
    const copy = one.granted.get('db_pass')!.data;
    apply({ op: 'secret-ungrant', at, id: 's1', constraints: ['node.id==n1'] });
    expect(await changed(dispatcher, one)).toEqual({
      type: 'assignments',
      full: false,
      tasks: [],
      removedTasks: [],
      secrets: [],
      removedSecrets: [],
      removedGrants: ['s1'],
    });
    expect(one.holds()).toEqual([]);
    expect([...copy]).toEqual([0, 0]);
    expect(one.changes).toEqual([
      { secretId: 's1', name: 'db_pass', version: 1 },
      { secretId: 's1', name: 'db_pass', version: null },
    ]);
  });

  test('a label change that stops matching withdraws the secret; one that matches again pushes it again', async () => {
    const { apply, dispatcher } = setup();
    apply({
      op: 'secret-grant',
      at,
      id: 's1',
      constraints: ['node.labels.role==db'],
      version: null,
    });
    const one = await nodeView(dispatcher, 'n1');
    await one.next();
    apply({ op: 'node-update', at, id: 'n1', expectedIndex: null, labels: { role: 'web' } });
    expect(await changed(dispatcher, one)).toMatchObject({ removedGrants: ['s1'] });
    expect(one.holds()).toEqual([]);
    apply({ op: 'node-update', at, id: 'n1', expectedIndex: null, labels: { role: 'DB' } });
    expect(await changed(dispatcher, one)).toMatchObject({ grants: [{ id: 's1', version: 1 }] });
    expect(one.holds()).toEqual([['db_pass', 1, 'v1']]);
  });

  test('a role change that stops matching withdraws the secret', async () => {
    const { apply, dispatcher } = setup();
    apply({ op: 'secret-grant', at, id: 's1', constraints: ['node.role==worker'], version: null });
    const one = await nodeView(dispatcher, 'n1');
    await one.next();
    expect(one.holds()).toEqual([['db_pass', 1, 'v1']]);
    apply({ op: 'node-update', at, id: 'n1', expectedIndex: null, role: 'manager' });
    expect(await changed(dispatcher, one)).toMatchObject({ removedGrants: ['s1'] });
    expect(one.holds()).toEqual([]);
  });

  test('a new version is pushed to a node an unpinned grant matches, and not to one a pinned grant matches', async () => {
    const { apply, dispatcher } = setup();
    apply({
      op: 'secret-grant',
      at,
      id: 's1',
      constraints: ['node.labels.role==db'],
      version: null,
    });
    apply({ op: 'secret-grant', at, id: 's1', constraints: ['node.id==n2'], version: 1 });
    const one = await nodeView(dispatcher, 'n1');
    const two = await nodeView(dispatcher, 'n2');
    await one.next();
    await two.next();
    const old = one.granted.get('s1')!.data;
    apply({ op: 'secret-version-add', at, id: 's1', data: raw('v2'), ifVersion: null });
    expect(await changed(dispatcher, one)).toMatchObject({
      grants: [{ id: 's1', name: 'db_pass', version: 2, data: text('v2') }],
    });
    expect(one.holds()).toEqual([['db_pass', 2, 'v2']]);
    expect([...old]).toEqual([0, 0]); // the replaced version is zeroed
    expect(two.holds()).toEqual([['db_pass', 1, 'v1']]);
    // A change that concerns n2 (its pin moves) is the next thing it hears: nothing came before it.
    apply({ op: 'secret-grant', at, id: 's1', constraints: ['node.id==n2'], version: 2 });
    expect(await changed(dispatcher, two)).toMatchObject({ grants: [{ id: 's1', version: 2 }] });
    expect(two.holds()).toEqual([['db_pass', 2, 'v2']]);
  });

  test('secret rm is refused while granted, and the node keeps what it holds', async () => {
    const { apply, dispatcher, store } = setup();
    apply({ op: 'secret-grant', at, id: 's1', constraints: ['node.id==n1'], version: null });
    const one = await nodeView(dispatcher, 'n1');
    await one.next();
    const removal = apply({ op: 'secret-remove', at, ids: ['s1'] });
    expect(removal.ok).toBe(false);
    expect(store.secret('s1')).toBeDefined();
    // Nothing changed for the node: the next message is the next real change.
    apply({ op: 'secret-ungrant', at, id: 's1', constraints: ['node.id==n1'] });
    expect(await changed(dispatcher, one)).toMatchObject({ removedGrants: ['s1'] });
  });

  test('a full set after a reconnect withdraws what the node held and no grant gives it any more', async () => {
    const { apply, dispatcher } = setup();
    apply({ op: 'secret-grant', at, id: 's1', constraints: ['node.id==n1'], version: null });
    const first = await nodeView(dispatcher, 'n1');
    await first.next();
    apply({ op: 'secret-ungrant', at, id: 's1', constraints: ['node.id==n1'] });
    // The same node's agent, reconnecting: its holdings carried over, the full set decides.
    const again = await nodeView(dispatcher, 'n1');
    again.granted.hold('s1', 'db_pass', 1, new TextEncoder().encode('v1'));
    expect(await again.next()).toMatchObject({ full: true });
    expect(again.holds()).toEqual([]);
  });

  test('deliveries and withdrawals by grant are audit records naming the node, secret and version, never the value', async () => {
    const { apply, dispatcher, records } = setup();
    apply({
      op: 'secret-grant',
      at,
      id: 's1',
      constraints: ['node.labels.role==db'],
      version: null,
    });
    const one = await nodeView(dispatcher, 'n1');
    await one.next();
    apply({ op: 'secret-version-add', at, id: 's1', data: raw('v2'), ifVersion: null });
    await changed(dispatcher, one);
    apply({ op: 'node-update', at, id: 'n1', expectedIndex: null, labels: {} });
    await changed(dispatcher, one);
    const base = {
      at,
      actor: { kind: 'node' as const, name: 'dispatcher', role: 'manager' },
      source: 'dispatcher',
      object: { id: 's1', name: 'db_pass' },
      node: 'n1',
      detail: 'by grant',
      result: 'ok',
    };
    expect(records).toEqual([
      { ...base, action: 'secret-deliver', version: 1 },
      { ...base, action: 'secret-release', version: 1 },
      { ...base, action: 'secret-deliver', version: 2 },
      { ...base, action: 'secret-release', version: 2 },
    ]);
    expect(JSON.stringify(records)).not.toContain(text('v2'));
  });
});

describe('GrantedSecrets', () => {
  test('get finds a held secret by id or by name; list names versions and never values', () => {
    const granted = new GrantedSecrets();
    granted.hold('s1', 'db_pass', 3, new Uint8Array([1, 2]));
    expect(granted.get('s1')).toEqual({
      secretId: 's1',
      name: 'db_pass',
      version: 3,
      data: new Uint8Array([1, 2]),
    });
    expect(granted.get('db_pass')?.secretId).toBe('s1');
    expect(granted.get('other')).toBeUndefined();
    expect(granted.list()).toEqual([{ secretId: 's1', name: 'db_pass', version: 3 }]);
  });

  test('withdrawAllBut zeroes and drops everything else; a throwing listener does not stop the others', () => {
    const errors: unknown[] = [];
    const granted = new GrantedSecrets((error) => errors.push(error));
    const a = new Uint8Array([1]);
    const b = new Uint8Array([2]);
    granted.hold('a', 'a', 1, a);
    granted.hold('b', 'b', 1, b);
    const heard: Array<number | null> = [];
    granted.onChange(() => {
      throw new Error('listener failed');
    });
    const stop = granted.onChange((change) => heard.push(change.version));
    granted.withdrawAllBut(new Set(['b']));
    expect([[...a], [...b], heard, errors.length]).toEqual([[0], [2], [null], 1]);
    stop();
    granted.withdrawAllBut();
    expect([[...b], heard, granted.size]).toEqual([[0], [null], 0]);
  });

  test('holding the version already held keeps the held copy and zeroes the new one', () => {
    const granted = new GrantedSecrets();
    const held = new Uint8Array([5]);
    const again = new Uint8Array([5]);
    granted.hold('s1', 'db_pass', 1, held);
    granted.hold('s1', 'db_pass', 1, again);
    expect([[...held], [...again]]).toEqual([[5], [0]]);
  });
});
