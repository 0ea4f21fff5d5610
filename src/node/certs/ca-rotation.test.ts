/** The managers' side of a root CA rotation: a renewal during it is chained to the old root, the trust bundle, which root signed a certificate. */
import { describe, expect, test } from 'bun:test';
import {
  certDerFromPem,
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  verifyChain,
} from '../../crypto/index.ts';
import { rootKeyOf, toBase64, type ClusterRecord, type NodeRecord } from '../store/index.ts';
import {
  chainPemOf,
  issuerKeyOf,
  leafPem,
  newRotation,
  signingCAOf,
  trustBundleOf,
} from './ca-rotation.ts';
import { issueRenewal } from './issue-renewal.ts';

const now = new Date('2026-11-28T00:00:00.000Z');
const oldRoot = await createRootCA({ now });
const cluster: ClusterRecord = {
  id: 'c1',
  createdAt: now.toISOString(),
  updatedAt: now.toISOString(),
  metaIndex: 1,
  caCertPem: oldRoot.certPem,
  caKey: oldRoot.keyPkcs8,
  joinTokens: { worker: 'w', manager: 'm' },
  unlockKey: null,
  labels: {},
};
let counter = 0;
const random = (n: number) => new Uint8Array(n).fill(++counter);
const node = {
  id: 'w1',
  role: 'worker',
  hostname: 'w1',
  addr: '127.0.0.1:1',
  availability: 'active',
  labels: {},
  status: 'ready',
  createdAt: now.toISOString(),
  updatedAt: now.toISOString(),
  metaIndex: 1,
} as NodeRecord;

async function oldCertificate(): Promise<string> {
  const { csrPem } = await createKeyAndCSR();
  return issueCertificate({ certPem: oldRoot.certPem, keyPkcs8: oldRoot.keyPkcs8 }, csrPem, {
    nodeId: 'w1',
    role: 'worker',
    clusterId: 'c1',
    now,
    lifetimeMs: 3600_000,
    serial: random(16),
  });
}

describe('root CA rotation, the managers’ side', () => {
  test('without a rotation: the cluster root signs, is the only root trusted, and signed the certificates it issued', async () => {
    expect(signingCAOf(cluster)).toEqual({ certPem: oldRoot.certPem, keyPkcs8: oldRoot.keyPkcs8 });
    expect(trustBundleOf(cluster)).toBe(oldRoot.certPem);
    expect(await issuerKeyOf(await oldCertificate(), cluster)).toBe(rootKeyOf(oldRoot.certPem));
  });

  test('a renewal during a rotation comes from the new key with the cross-signed root as its chain: it verifies under the old root alone, the new root alone, and both', async () => {
    const rotation = await newRotation(cluster, { now, random });
    const rotating: ClusterRecord = { ...cluster, rootRotation: rotation };
    expect(trustBundleOf(rotating)).toBe(oldRoot.certPem + rotation.caCertPem);
    const presented = await oldCertificate();
    const { csrPem } = await createKeyAndCSR();
    const renewed = await issueRenewal(
      { nodeId: 'w1', csrPem, presentedCertDer: certDerFromPem(presented), observedIp: null },
      { cluster: rotating, callerId: 'w1', node, removed: false, random, now },
    );
    const chain = chainPemOf(renewed);
    expect(chain).toBe(rotation.crossSignedPem);
    for (const roots of [[oldRoot.certPem], [rotation.caCertPem], [trustBundleOf(rotating)]]) {
      const verdict = await verifyChain(leafPem(renewed), {
        chainPems: [chain],
        trustedRootPems: roots,
        now,
      });
      expect(verdict.ok).toBe(true);
    }
    // Which root signed it: the new one; the old certificate: the old one.
    expect(await issuerKeyOf(renewed, rotating)).toBe(rotation.issuerKey);
    expect(await issuerKeyOf(presented, rotating)).toBe(rootKeyOf(oldRoot.certPem));
    // After the finish the new root alone is the cluster's: the renewed certificate is its.
    const finished: ClusterRecord = {
      ...cluster,
      caCertPem: rotation.caCertPem,
      caKey: Buffer.from(rotation.caKey, 'base64'),
    };
    expect(await issuerKeyOf(renewed, finished)).toBe(rotation.issuerKey);
    expect(await issuerKeyOf(presented, finished)).toBeNull();
    expect(toBase64(signingCAOf(finished).keyPkcs8)).toBe(rotation.caKey);
  });
});
