/** RootRotationDriver: the leader asks unconverged nodes to renew, in batches, and finishes once all have converged. */
import { describe, expect, test } from 'bun:test';
import {
  caMatchesToken,
  certDerFromPem,
  createRootCA,
  parseJoinToken,
} from '../../crypto/index.ts';
import { caRotationReconcileMs, caRotationRenewAgainMs } from '../../limits.ts';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import { rootKeyOf, Store, toBase64, type Command } from '../store/index.ts';
import { RootRotationDriver } from './ca-rotation-driver.ts';

const at = '2026-11-28T00:00:00.000Z';
const oldRoot = await createRootCA({ now: new Date(at) });
const newRoot = await createRootCA({ now: new Date(at) });
const issuerKey = rootKeyOf(newRoot.certPem);

function setup(workers: number, options: { leading?: () => boolean } = {}) {
  const store = new Store();
  let index = 0;
  const apply = (command: Command) => store.apply(++index, command);
  apply({
    op: 'cluster-init',
    at,
    clusterId: 'c1',
    caCertPem: oldRoot.certPem,
    caKey: toBase64(oldRoot.keyPkcs8),
    joinTokens: { worker: 'w', manager: 'm' },
    unlockKey: null,
    node: { id: 'm1', role: 'manager', hostname: 'm1', addr: '127.0.0.1:1' },
  });
  for (let i = 0; i < workers; i++)
    apply({
      op: 'node-add',
      at,
      node: { id: `w${i}`, role: 'worker', hostname: `w${i}`, addr: '127.0.0.1:2' },
    });
  apply({
    op: 'ca-rotation-start',
    at,
    rotation: {
      id: 'r1',
      startedAt: at,
      caCertPem: newRoot.certPem,
      caKey: toBase64(newRoot.keyPkcs8),
      crossSignedPem: 'cross-signed',
      issuerKey,
    },
  });
  const asked: Array<{ nodeId: string; reason: string }> = [];
  const proposed: Command[] = [];
  const timers = new ManualTimers();
  let bytes = 0;
  const driver = new RootRotationDriver({
    store: () => store,
    leading: options.leading ?? (() => true),
    askRenewal: (nodeId, reason) => {
      asked.push({ nodeId, reason });
      return true;
    },
    propose: async (command) => {
      proposed.push(command);
      return apply(command);
    },
    timers,
    random: (n) => new Uint8Array(n).fill(++bytes),
    now: () => at,
    log: () => {},
  });
  const converge = (id: string) => apply({ op: 'node-cert-issuer', at, id, issuerKey });
  return { store, driver, asked, proposed, timers, converge };
}

describe('RootRotationDriver', () => {
  test('a pass asks every unconverged node to renew, at most 30 at a time, and each again only after caRotationRenewAgainMs', () => {
    const { driver, asked, timers } = setup(40);
    driver.pass();
    expect(asked.length).toBe(30);
    expect(asked[0]).toEqual({ nodeId: 'm1', reason: 'the root CA is rotating (rotation r1)' });
    driver.pass();
    // The 11 not asked yet, and none of the first 30 again.
    expect(asked.length).toBe(41);
    expect(new Set(asked.map((a) => a.nodeId)).size).toBe(41);
    timers.advance(caRotationRenewAgainMs);
    driver.pass();
    expect(asked.length).toBe(71);
  });

  test('a follower does nothing', () => {
    const { driver, asked, proposed } = setup(2, { leading: () => false });
    driver.pass();
    expect({ asked, proposed }).toEqual({ asked: [], proposed: [] });
  });

  test('once every node has converged the timer finishes the rotation with new join tokens for the new root, then asks the workers to renew once more', async () => {
    const { store, driver, asked, proposed, timers, converge } = setup(2);
    driver.start();
    for (const id of ['m1', 'w0']) converge(id);
    timers.advance(caRotationReconcileMs);
    expect(proposed).toEqual([]);
    converge('w1');
    asked.length = 0;
    timers.advance(caRotationReconcileMs);
    await Promise.resolve();
    await Promise.resolve();
    expect(proposed.map((c) => c.op)).toEqual(['ca-rotation-finish']);
    const cluster = store.cluster!;
    expect({ root: cluster.caCertPem, rotation: cluster.rootRotation }).toEqual({
      root: newRoot.certPem,
      rotation: undefined,
    });
    // Both tokens pin the new root: a joiner checks the CA it is shown against their digest.
    for (const token of [cluster.joinTokens.worker, cluster.joinTokens.manager])
      expect(caMatchesToken(certDerFromPem(newRoot.certPem), parseJoinToken(token))).toBe(true);
    expect(cluster.joinTokens.worker).not.toBe(cluster.joinTokens.manager);
    expect(asked.map((a) => a.nodeId)).toEqual(['w0', 'w1']);
    driver.stop();
  });
});
