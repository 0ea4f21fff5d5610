import { createKeyAndCSR, createRootCA, issueCertificate } from '../../src/crypto/index.ts';

/** A worker's certificate (node id `node-1`, cluster `cluster-1`) from a CA of its own: for tests that only read one. */
export async function workerCertificatePem(): Promise<string> {
  const now = new Date();
  return issueCertificate(await createRootCA({ now }), (await createKeyAndCSR()).csrPem, {
    nodeId: 'node-1',
    role: 'worker',
    clusterId: 'cluster-1',
    now,
    lifetimeMs: 3_600_000,
    serial: new Uint8Array(16).fill(7),
  });
}
