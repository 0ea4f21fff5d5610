/** The cluster's DEK rotation count: `cluster rotate-keys` and turning autolock on raise it; nothing else does. */
import { describe, expect, test } from 'bun:test';
import { systemRandom } from '../../io/system.ts';
import { Store } from './store.ts';
import { toBase64 } from './commands.ts';

const at = '2026-11-28T00:00:00.000Z';
const key = (): string => toBase64(systemRandom(32));

function initialized(): Store {
  const store = new Store();
  store.apply(1, {
    op: 'cluster-init',
    at,
    clusterId: 'c1',
    caCertPem: 'PEM',
    caKey: toBase64(new Uint8Array([1, 2, 3])),
    joinTokens: { worker: 'w', manager: 'm' },
    unlockKey: null,
    node: { id: 'n1', role: 'manager', hostname: 'h', addr: '127.0.0.1:4377' },
  });
  return store;
}

const update = (unlockKey: string | null) => ({
  op: 'cluster-update',
  at,
  expectedIndex: null,
  unlockKey,
});

describe('cluster DEK rotations', () => {
  test('dek-rotate raises the count by one each time and moves the cluster version', () => {
    const store = initialized();
    expect(store.cluster?.dekRotations).toBeUndefined();
    expect(store.apply(2, { op: 'dek-rotate', at })).toEqual({ ok: true, id: 'c1' });
    expect(store.apply(3, { op: 'dek-rotate', at })).toEqual({ ok: true, id: 'c1' });
    expect(store.cluster?.dekRotations).toBe(2);
    expect(store.cluster?.metaIndex).toBe(3);
  });

  test('turning autolock on raises the count; rotating the unlock key or turning autolock off does not', () => {
    const store = initialized();
    store.apply(2, update(key()));
    expect(store.cluster?.dekRotations).toBe(1);
    store.apply(3, update(key())); // unlock-key --rotate
    store.apply(4, update(null)); // autolock off
    expect(store.cluster?.dekRotations).toBe(1);
    store.apply(5, update(key()));
    expect(store.cluster?.dekRotations).toBe(2);
  });

  test('the count survives a snapshot', () => {
    const store = initialized();
    store.apply(2, { op: 'dek-rotate', at });
    expect(Store.restore(store.snapshot()).cluster?.dekRotations).toBe(1);
  });

  test('dek-rotate before the cluster exists is refused', () => {
    expect(new Store().apply(1, { op: 'dek-rotate', at })).toEqual({
      ok: false,
      code: 'unavailable',
      message: 'Cluster is not initialized',
    });
  });
});
