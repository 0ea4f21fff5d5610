/**
 * The renewal route through `app.request()` against a real manager: the connection's certificate
 * is handed to the route as the HTTP/2 server hands it (env.incoming.socket).
 */
import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { certDerFromPem, parseIdentity, pemEncode } from '../../../crypto/index.ts';
import { certBackdateMs } from '../../../limits.ts';
import { startTestManager, type TestManager } from '../../../../test/helpers/manager.ts';
import { peerPaths } from '../../peers/index.ts';
import { createApp } from '../app.ts';
import type { Identity } from '../backend.ts';

const subtle = globalThis.crypto.subtle;
let tm: TestManager;
let identity: Identity;
let presented = '';
let app: ReturnType<typeof createApp>;
let workerId = '';
let workerKeys: CryptoKeyPair;

async function csrFor(keys: CryptoKeyPair): Promise<string> {
  const csr = await Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return pemEncode('CERTIFICATE REQUEST', new Uint8Array(csr.rawData));
}
const newKeys = (): Promise<CryptoKeyPair> =>
  subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);

/** POST the renewal as `identity`, over a connection that presented `presented`. */
async function renew(nodeId: string, csrPem: string): Promise<{ status: number; json: any }> {
  const socket = {
    remoteAddress: '127.0.0.1',
    getPeerCertificate: () => ({
      raw: Buffer.from(certDerFromPem(presented)),
      subject: { OU: `secretd-${parseIdentity(presented).role}` },
    }),
  };
  const response = await app.request(
    peerPaths.renewCertificate,
    { method: 'POST', body: JSON.stringify({ NodeID: nodeId, CSR: csrPem }) },
    { incoming: { socket } },
  );
  return { status: response.status, json: await response.json() };
}

beforeAll(async () => {
  tm = await startTestManager();
  app = createApp({ backend: tm.manager, version: 'test', identify: () => identity });
  const cluster = await tm.manager.cluster();
  workerKeys = await newKeys();
  const joined = await tm.manager.join({
    token: cluster.joinTokens.worker,
    csrPem: await csrFor(workerKeys),
    addr: '127.0.0.1:5000',
    hostname: 'w1',
    resources: null,
    observedIp: '127.0.0.1',
  });
  workerId = joined.NodeID;
  presented = joined.Certificate;
  identity = { role: 'worker', nodeId: workerId, via: 'tls' };
});
afterAll(async () => {
  await tm[Symbol.asyncDispose]();
});

describe('POST /secretd/node/certificate', () => {
  test("renews a worker's certificate for a new key: same node, role and cluster, a new serial, the cluster's validity backdated 1 h", async () => {
    const before = parseIdentity(presented);
    const answer = await renew(workerId, await csrFor(await newKeys()));
    expect(answer.status).toBe(200);
    const renewed = parseIdentity(answer.json.Certificate);
    expect(renewed).toMatchObject({
      nodeId: workerId,
      role: 'worker',
      clusterId: before.clusterId,
    });
    expect(renewed.serialHex).not.toBe(before.serialHex);
    expect(renewed.notAfter.getTime() - renewed.notBefore.getTime()).toBe(
      90 * 86_400_000 + certBackdateMs,
    );
    expect(new X509Certificate(answer.json.Certificate).subjectAltName).toBe(
      `DNS:secretd-worker, DNS:${workerId}`,
    );
    expect(answer.json.CA).toBe((await tm.manager.cluster()).caCertPem);
  });

  test("refuses (403) a request naming another node than the connection's certificate", async () => {
    const answer = await renew(tm.manager.state.nodeId, await csrFor(await newKeys()));
    expect(answer.status).toBe(403);
    expect(answer.json.message).toBe(
      `Permission denied: cannot renew the certificate of node ${tm.manager.state.nodeId}: this connection's certificate is node ${workerId}'s, not node ${tm.manager.state.nodeId}'s`,
    );
  });

  test('refuses (403) a CSR for the key the node already holds', async () => {
    const answer = await renew(workerId, await csrFor(workerKeys));
    expect(answer.status).toBe(403);
    expect(answer.json.message).toBe(
      `Permission denied: cannot renew the certificate of node ${workerId}: the certificate request is for the key this node already holds; a renewal needs a new key`,
    );
  });

  test('refuses an admin certificate and bad input', async () => {
    identity = { role: 'admin', nodeId: 'me', via: 'tls' };
    const admin = await renew(workerId, await csrFor(await newKeys()));
    expect([admin.status, admin.json.message]).toEqual([
      403,
      'Permission denied: role admin may not renew a node certificate',
    ]);
    identity = { role: 'worker', nodeId: workerId, via: 'tls' };
    const garbage = await renew(workerId, 'not a CSR');
    expect(garbage.status).toBe(400);
  });

  test("a manager's renewal keeps the names of the manager certificate it presented", async () => {
    const saved = [identity, presented] as const;
    identity = { role: 'manager', nodeId: tm.manager.state.nodeId, via: 'tls' };
    presented = tm.manager.certificatePem;
    const answer = await renew(tm.manager.state.nodeId, await csrFor(await newKeys()));
    expect(answer.status).toBe(200);
    expect(parseIdentity(answer.json.Certificate).role).toBe('manager');
    const names = (pem: string) => new X509Certificate(pem).subjectAltName!.split(', ').sort();
    expect(names(answer.json.Certificate)).toEqual(names(presented));
    [identity, presented] = saved;
  });

  test('uses the validity setting of the cluster when it is changed', async () => {
    const cluster = await tm.manager.cluster();
    await tm.manager.updateSwarm({
      expectedIndex: cluster.metaIndex,
      rotateWorkerToken: false,
      rotateManagerToken: false,
      rotateUnlockKey: false,
      nodeCertExpiryMs: 2 * 3_600_000,
    });
    const renewed = parseIdentity(
      (await renew(workerId, await csrFor(await newKeys()))).json.Certificate,
    );
    expect(renewed.notAfter.getTime() - renewed.notBefore.getTime()).toBe(
      2 * 3_600_000 + certBackdateMs,
    );
  });

  test('refuses (403) a removed node, whose certificate the server refuses anyway', async () => {
    await tm.manager.removeNode(workerId, true);
    const answer = await renew(workerId, await csrFor(await newKeys()));
    expect(answer.status).toBe(403);
    expect(answer.json.message).toBe(
      `Permission denied: cannot renew the certificate of node ${workerId}: node ${workerId} was removed from the cluster`,
    );
  });
  // Last: the promoted node never answers Raft, so the test cluster is left with a learner it cannot reach.
  test('gives the role the store says now: a promoted worker gets a manager certificate', async () => {
    const keys = await newKeys();
    const joined = await tm.manager.join({
      token: (await tm.manager.cluster()).joinTokens.worker,
      csrPem: await csrFor(keys),
      addr: '127.0.0.1:5001',
      hostname: 'w2',
      resources: null,
      observedIp: '127.0.0.1',
    });
    workerId = joined.NodeID;
    presented = joined.Certificate;
    identity = { role: 'worker', nodeId: workerId, via: 'tls' };
    await tm.manager.updateNode(workerId, (await tm.manager.getNode(workerId)).metaIndex, {
      role: 'manager',
    });
    const answer = await renew(workerId, await csrFor(await newKeys()));
    expect(answer.status).toBe(200);
    expect(parseIdentity(answer.json.Certificate).role).toBe('manager');
    // Loopback names, and its address: the request came from the IP it advertises.
    expect(new X509Certificate(answer.json.Certificate).subjectAltName).toBe(
      `DNS:secretd-manager, DNS:${workerId}, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1`,
    );
  });
});
