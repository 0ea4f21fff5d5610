/** The dispatcher tells a node to renew its certificate when the store's role differs from the certificate's. */
import { describe, expect, test } from 'bun:test';
import { activeDispatcher, applierOf } from '../../../test/helpers/dispatcher.ts';
import { Store } from '../store/index.ts';
import type { SessionMessage } from './messages.ts';

const at = '2026-11-28T00:00:00.000Z';

function setup() {
  const store = new Store();
  const apply = applierOf(store);
  for (const [id, role, addr] of [
    ['m1', 'manager', '10.0.0.0:4377'],
    ['w1', 'worker', '10.0.0.1:4377'],
  ] as const)
    apply({ op: 'node-add', at, node: { id, role, hostname: id, addr } });
  return { store, apply, dispatcher: activeDispatcher(store, at) };
}

/** A session's messages, read as they come: `drain` returns those sent since the last call. */
function session(stream: ReadableStream<Uint8Array>): { drain: () => Promise<SessionMessage[]> } {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  const received: SessionMessage[] = [];
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const line of decoder.decode(value).split('\n').filter(Boolean))
        received.push(JSON.parse(line) as SessionMessage);
    }
  })();
  return {
    // One turn of the event loop: whatever the dispatcher enqueued (at once or in a microtask) has been read by then.
    drain: () => new Promise((resolve) => setImmediate(() => resolve(received.splice(0)))),
  };
}

const renewals = (messages: SessionMessage[]) =>
  messages.filter((m) => m.type === 'renew-certificate');

describe('Dispatcher: certificate roles', () => {
  test('asks a node whose session presented a manager certificate, but which the store says is a worker, to renew once', async () => {
    const { dispatcher } = setup();
    const reader = session(dispatcher.openSession('w1', { certificateRole: 'manager' }));
    expect(renewals(await reader.drain())).toEqual([
      {
        type: 'renew-certificate',
        reason: 'the node is a worker now, its certificate says manager',
        role: 'worker',
      },
    ]);
    dispatcher.storeChanged();
    expect(renewals(await reader.drain())).toEqual([]);
  });

  test('asks at once when a node is promoted during its session, and says nothing while roles match', async () => {
    const { store, apply, dispatcher } = setup();
    const reader = session(dispatcher.openSession('w1', { certificateRole: 'worker' }));
    expect(renewals(await reader.drain())).toEqual([]);
    apply({
      op: 'node-update',
      at,
      id: 'w1',
      expectedIndex: store.node('w1')!.metaIndex,
      role: 'manager',
    });
    dispatcher.storeChanged();
    expect(renewals(await reader.drain())).toEqual([
      {
        type: 'renew-certificate',
        reason: 'the node is a manager now, its certificate says worker',
        role: 'manager',
      },
    ]);
  });

  test('asks a node whose certificate outlasts a validity the cluster shortened, once, and not one renewed since', async () => {
    const { apply, dispatcher } = setup();
    apply({
      op: 'cluster-init',
      at,
      clusterId: 'c1',
      caCertPem: 'pem',
      caKey: '',
      joinTokens: { worker: 'w', manager: 'm' },
      unlockKey: null,
      node: { id: 'm0', role: 'manager', hostname: 'm0', addr: '10.0.0.9:4377' },
    });
    apply({ op: 'cluster-update', at, expectedIndex: null, nodeCertExpiryMs: 60_000 });
    const now = Date.parse(at);
    const old = session(
      dispatcher.openSession('w1', {
        instance: 'agent-instance-0001',
        certificateRole: 'worker',
        certificateNotAfter: now + 90 * 86_400_000,
      }),
    );
    expect(renewals(await old.drain())).toEqual([
      {
        type: 'renew-certificate',
        reason: "the cluster's certificates now last 1m, this one until 2027-02-26T00:00:00.000Z",
      },
    ]);
    dispatcher.storeChanged();
    expect(renewals(await old.drain())).toEqual([]);
    // The same agent's next session, on the renewed certificate.
    const renewed = session(
      dispatcher.openSession('w1', {
        instance: 'agent-instance-0001',
        certificateRole: 'worker',
        certificateNotAfter: now + 60_000,
      }),
    );
    expect(renewals(await renewed.drain())).toEqual([]);
  });

  test('a session that did not say which certificate it presented is never asked', async () => {
    const { dispatcher } = setup();
    const reader = session(dispatcher.openSession('m1'));
    expect(renewals(await reader.drain())).toEqual([]);
    const manager = session(dispatcher.openSession('w1', { certificateRole: 'worker' }));
    expect(renewals(await manager.drain())).toEqual([]);
  });
});
