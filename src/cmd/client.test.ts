/**
 * The CLI's `--host` client checks that it talks to a manager of its own cluster (the O of its
 * admin certificate), not only the CA and the host name: a worker's certificate that carries the
 * host's name gets no request, and so no secret.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  keyPkcs8ToPem,
  newId,
  type Role,
} from '../crypto/index.ts';
import { systemRandom } from '../io/system.ts';
import { serveImpostor, workerCertificateNamedAsManager } from '../../test/helpers/impostor.ts';
import { call, openClient } from './client.ts';

const ca = await createRootCA({ now: new Date() });
const clusterId = newId(systemRandom);
const certDir = mkdtempSync(join(tmpdir(), 'secretd-client-test-'));
afterAll(() => rmSync(certDir, { recursive: true, force: true }));

async function certificate(
  role: Role,
  nodeId: string,
  cluster = clusterId,
): Promise<{ cert: string; key: string }> {
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const cert = await issueCertificate(ca, csrPem, {
    nodeId,
    role,
    clusterId: cluster,
    now: new Date(),
    lifetimeMs: 3_600_000,
    serial: systemRandom(16),
    ...(role === 'manager' ? { ipAddresses: ['127.0.0.1'] } : {}),
  });
  return { cert, key: keyPkcs8ToPem(keyPkcs8) };
}

const admin = await certificate('admin', 'alice');
writeFileSync(join(certDir, 'ca.pem'), ca.certPem);
writeFileSync(join(certDir, 'cert.pem'), admin.cert);
writeFileSync(join(certDir, 'key.pem'), admin.key);
const files = {
  tlscacert: join(certDir, 'ca.pem'),
  tlscert: join(certDir, 'cert.pem'),
  tlskey: join(certDir, 'key.pem'),
};
const secretBody = {
  Name: 'db_pass',
  Data: Buffer.from('TOP-SECRET-admin-password').toString('base64'),
};
const created = () => ({ status: 201, body: '{"ID":"fake"}' });

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the call to fail');
}

describe('openClient over TLS', () => {
  test('the --host client refuses a server holding a worker certificate named as the host, and sends it no secret', async () => {
    await using impostor = await serveImpostor(
      {
        ca: ca.certPem,
        ...(await workerCertificateNamedAsManager(ca, clusterId, newId(systemRandom))),
      },
      created,
    );
    const client = openClient({ dataDir: certDir, host: impostor.url, ...files });
    try {
      const message = await failure(call(client, 'POST', '/secrets/create', secretBody));
      expect(message).toBe(
        `Cannot reach secretd at ${impostor.url}: the server is not a secretd manager: its certificate is not a manager's (role "secretd-worker", not secretd-manager)`,
      );
    } finally {
      client.close();
    }
    expect(impostor.seen).toEqual([]);
  });

  test('the --host client refuses a manager certificate of another cluster than its own certificate', async () => {
    const other = newId(systemRandom);
    await using stranger = await serveImpostor(
      { ca: ca.certPem, ...(await certificate('manager', newId(systemRandom), other)) },
      created,
    );
    const client = openClient({ dataDir: certDir, host: stranger.url, ...files });
    try {
      expect(await failure(call(client, 'POST', '/secrets/create', secretBody))).toBe(
        `Cannot reach secretd at ${stranger.url}: the server is not a secretd manager: its certificate belongs to another cluster ("${other}", not ${clusterId})`,
      );
    } finally {
      client.close();
    }
    expect(stranger.seen).toEqual([]);
  });

  /** A manager of the client's own cluster (an impostor server with a genuine certificate). */
  const ownManager = async () =>
    serveImpostor(
      { ca: ca.certPem, ...(await certificate('manager', newId(systemRandom))) },
      created,
    );

  test('the --host client reaches a manager of its own cluster', async () => {
    await using manager = await ownManager();
    const client = openClient({ dataDir: certDir, host: manager.url, ...files });
    try {
      expect(await call(client, 'POST', '/secrets/create', secretBody)).toEqual({ ID: 'fake' });
    } finally {
      client.close();
    }
    expect(manager.seen.map((r) => `${r.method} ${r.path}`)).toEqual(['POST /secrets/create']);
  });

  test("after the manager's GOAWAY (it is stopping, or closes an idle connection), the next request goes on a new connection", async () => {
    await using manager = await ownManager();
    const client = openClient({ dataDir: certDir, host: manager.url, ...files });
    try {
      expect(await call(client, 'POST', '/secrets/create', secretBody)).toEqual({ ID: 'fake' });
      manager.goawayAll();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await call(client, 'POST', '/secrets/create', secretBody)).toEqual({ ID: 'fake' });
    } finally {
      client.close();
    }
    expect({ requests: manager.seen.length, sessions: manager.sessionsOpened() }).toEqual({
      requests: 2,
      sessions: 2,
    });
  });
});
