/** The root CA rotation in the store: start, a node's report, the convergence rule, finish, snapshots. */
import { describe, expect, test } from 'bun:test';
import { createRootCA } from '../../crypto/index.ts';
import { toBase64, type Command } from './commands.ts';
import { rootKeyOf, rotationProgress, type RootRotation } from './root-rotation.ts';
import { Store } from './store.ts';

const at = '2026-11-28T00:00:00.000Z';
const oldRoot = await createRootCA({ now: new Date(at) });
const newRoot = await createRootCA({ now: new Date(at) });
const rotation: RootRotation = {
  id: 'r1',
  startedAt: at,
  caCertPem: newRoot.certPem,
  caKey: toBase64(newRoot.keyPkcs8),
  crossSignedPem: 'cross-signed PEM',
  issuerKey: rootKeyOf(newRoot.certPem),
};
const oldKey = rootKeyOf(oldRoot.certPem);

function cluster(): { store: Store; index: () => number } {
  const store = new Store();
  let n = 0;
  const index = () => ++n;
  const node = (id: string, role: 'manager' | 'worker'): Command => ({
    op: 'node-add',
    at,
    node: { id, role, hostname: id, addr: `127.0.0.1:${4000 + n}` },
  });
  expect(
    store.apply(index(), {
      op: 'cluster-init',
      at,
      clusterId: 'c1',
      caCertPem: oldRoot.certPem,
      caKey: toBase64(oldRoot.keyPkcs8),
      joinTokens: { worker: 'old-w', manager: 'old-m' },
      unlockKey: null,
      node: { id: 'm1', role: 'manager', hostname: 'm1', addr: '127.0.0.1:4001' },
    }),
  ).toEqual({ ok: true, id: 'c1' });
  for (const [id, role] of [
    ['m2', 'manager'],
    ['w1', 'worker'],
  ] as const)
    expect(store.apply(index(), node(id, role)).ok).toBe(true);
  return { store, index };
}

const start: Command = { op: 'ca-rotation-start', at, rotation, forceRotate: 1 };
const report = (id: string, issuerKey: string): Command => ({
  op: 'node-cert-issuer',
  at,
  id,
  issuerKey,
});
const finish: Command = {
  op: 'ca-rotation-finish',
  at,
  rotationId: 'r1',
  joinTokens: { worker: 'new-w', manager: 'new-m' },
};

describe('root CA rotation in the store', () => {
  test('ca-rotation-start records the rotation and the ForceRotate counter; a second start is a conflict naming the first', () => {
    const { store, index } = cluster();
    expect(store.apply(index(), start)).toEqual({ ok: true, id: 'r1' });
    expect(store.cluster?.rootRotation).toEqual(rotation);
    expect(store.cluster?.forceRotate).toBe(1);
    expect(store.cluster?.caCertPem).toBe(oldRoot.certPem);
    expect(store.apply(index(), { ...start, rotation: { ...rotation, id: 'r2' } })).toEqual({
      ok: false,
      code: 'conflict',
      message: `A root CA rotation is already in progress (started at ${at})`,
    });
  });

  test('rotationProgress counts every node, managers and workers, as pending until it reports the new root', () => {
    const { store, index } = cluster();
    store.apply(index(), start);
    expect(rotationProgress(rotation, store.nodes())).toEqual({
      converged: [],
      pending: ['m1', 'm2', 'w1'],
    });
    store.apply(index(), report('m2', rotation.issuerKey));
    // A report of the old root's key is not convergence.
    store.apply(index(), report('w1', oldKey));
    expect(rotationProgress(rotation, store.nodes())).toEqual({
      converged: ['m2'],
      pending: ['m1', 'w1'],
    });
  });

  test('node-cert-issuer for an unknown node is not_found', () => {
    const { store, index } = cluster();
    expect(store.apply(index(), report('nope', oldKey))).toEqual({
      ok: false,
      code: 'not_found',
      message: 'Node nope not found',
    });
  });

  test('ca-rotation-finish is refused while a node has not converged, naming it, and changes nothing', () => {
    const { store, index } = cluster();
    store.apply(index(), start);
    store.apply(index(), report('m1', rotation.issuerKey));
    store.apply(index(), report('m2', rotation.issuerKey));
    expect(store.apply(index(), finish)).toEqual({
      ok: false,
      code: 'conflict',
      message:
        'Cannot finish the root CA rotation: 1 node(s) have no certificate from the new root yet (w1)',
    });
    expect(store.cluster?.rootRotation?.id).toBe('r1');
    expect(store.cluster?.joinTokens).toEqual({ worker: 'old-w', manager: 'old-m' });
  });

  test('ca-rotation-finish once every node converged: the new root and key replace the old, new join tokens, no rotation', () => {
    const { store, index } = cluster();
    store.apply(index(), start);
    for (const id of ['m1', 'm2', 'w1']) store.apply(index(), report(id, rotation.issuerKey));
    expect(store.apply(index(), finish)).toEqual({ ok: true, id: 'r1' });
    const after = store.cluster!;
    expect(after.caCertPem).toBe(newRoot.certPem);
    expect(toBase64(after.caKey)).toBe(toBase64(newRoot.keyPkcs8));
    expect(after.joinTokens).toEqual({ worker: 'new-w', manager: 'new-m' });
    expect(after.rootRotation).toBeUndefined();
  });

  test('a removed node does not hold the rotation open; a node added during it does', () => {
    const { store, index } = cluster();
    store.apply(index(), start);
    for (const id of ['m1', 'm2']) store.apply(index(), report(id, rotation.issuerKey));
    store.apply(index(), { op: 'node-remove', at, ids: ['w1'] });
    store.apply(index(), {
      op: 'node-add',
      at,
      node: { id: 'w2', role: 'worker', hostname: 'w2', addr: '127.0.0.1:4100' },
    });
    expect(rotationProgress(rotation, store.nodes()).pending).toEqual(['w2']);
    expect(store.apply(index(), finish).ok).toBe(false);
    store.apply(index(), report('w2', rotation.issuerKey));
    expect(store.apply(index(), finish).ok).toBe(true);
  });

  test('ca-rotation-finish for another rotation id, or with none in progress, is a conflict', () => {
    const { store, index } = cluster();
    expect(store.apply(index(), finish)).toEqual({
      ok: false,
      code: 'conflict',
      message: 'Cannot finish root CA rotation r1: it is not the one in progress',
    });
    store.apply(index(), start);
    expect(store.apply(index(), { ...finish, rotationId: 'r0' }).ok).toBe(false);
  });

  test('a snapshot keeps the rotation in progress and the nodes’ reports', () => {
    const { store, index } = cluster();
    store.apply(index(), start);
    store.apply(index(), report('w1', rotation.issuerKey));
    const restored = Store.restore(store.snapshot());
    expect(restored.cluster?.rootRotation).toEqual(rotation);
    expect(restored.node('w1')?.certIssuerKey).toBe(rotation.issuerKey);
    expect(rotationProgress(rotation, restored.nodes())).toEqual(
      rotationProgress(rotation, store.nodes()),
    );
  });
});
