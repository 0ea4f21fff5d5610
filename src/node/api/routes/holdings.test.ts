/**
 * GET /secretd/secrets/{id}/holders and GET /secretd/nodes/state on a real manager (the leader of
 * its one-member cluster) through `app.request()`: a node's dispatcher session opened through the
 * session route, a grant pushed over it, each read as the roles that may and may not.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { callApp } from '../../../../test/helpers/app-request.ts';
import { until } from '../../../../test/helpers/cluster.ts';
import { startTestManager, type TestManager } from '../../../../test/helpers/manager.ts';
import { peerPaths } from '../../peers/index.ts';
import { createApp } from '../app.ts';
import type { Identity } from '../backend.ts';

let tm: TestManager;
let selfId: string;
const apps = new Map<string, ReturnType<typeof createApp>>();
const as = (identity: Identity) => {
  const key = JSON.stringify(identity);
  if (!apps.has(key))
    apps.set(key, createApp({ backend: tm.manager, version: 'test', identify: () => identity }));
  return apps.get(key)!;
};
const admin = (): ReturnType<typeof createApp> =>
  as({ role: 'admin', nodeId: 'local', via: 'socket' });

beforeAll(async () => {
  tm = await startTestManager();
  selfId = tm.manager.state.nodeId;
  await until('the leader duties (the dispatcher) to start', 10_000, () =>
    tm.manager.leaderDutiesActive ? true : undefined,
  );
  await tm.manager.createSecret({
    name: 'app_db',
    labels: {},
    data: new TextEncoder().encode('x1'),
  });
});
afterAll(async () => {
  await tm[Symbol.asyncDispose]();
});

describe('GET /secretd/secrets/{id}/holders', () => {
  test('lists nothing while no node holds the secret, and 404 for an unknown one', async () => {
    expect(await callApp(admin(), 'GET', '/secretd/secrets/app_db/holders')).toMatchObject({
      status: 200,
      json: [],
    });
    expect(await callApp(admin(), 'GET', '/secretd/secrets/nope/holders')).toMatchObject({
      status: 404,
    });
  });

  test('names the node a grant was pushed to over its session, with its hostname and version, never a value', async () => {
    const session = await as({ role: 'manager', nodeId: selfId, via: 'tls' }).request(
      peerPaths.session,
    );
    expect(session.status).toBe(200);
    const reader = session.body!.getReader();
    try {
      const granted = await callApp(admin(), 'POST', '/secretd/secrets/app_db/grants', {
        Constraints: ['node.role==manager'],
      });
      expect(granted.status).toBe(201);
      const hostname = (await tm.manager.getNode(selfId)).hostname;
      const want = [{ NodeID: selfId, Hostname: hostname, Version: 1, By: 'grant' }];
      // The dispatcher pushes the grant on the store's change: wait for that, not for a time.
      const answer = await until('the grant to reach the session', 10_000, async () => {
        const read = await callApp(admin(), 'GET', '/secretd/secrets/app_db/holders');
        return read.json?.length > 0 ? read : undefined;
      });
      expect(answer).toMatchObject({ status: 200, json: want });
      expect(answer.text).not.toContain(Buffer.from('x1').toString('base64'));
    } finally {
      await reader.cancel();
    }
  });

  test('a writer reads holders in its scope only; an auditor not at all', async () => {
    const writer = (scope: string[]) =>
      as({ role: 'writer', nodeId: 'w', name: 'w', serial: '01', via: 'tls', scope });
    expect(
      (await callApp(writer(['app_*']), 'GET', '/secretd/secrets/app_db/holders')).status,
    ).toBe(200);
    expect(
      await callApp(writer(['web_*']), 'GET', '/secretd/secrets/app_db/holders'),
    ).toMatchObject({
      status: 403,
      json: {
        message:
          'Permission denied: role writer (scope web_*) may not list the holders of secret app_db',
      },
    });
    const auditor = as({ role: 'auditor', nodeId: 'a', name: 'a', serial: '02', via: 'tls' });
    expect(await callApp(auditor, 'GET', '/secretd/secrets/app_db/holders')).toMatchObject({
      status: 403,
      json: { message: 'Permission denied: role auditor may not list secret holders' },
    });
  });
});

describe('GET /secretd/nodes/state', () => {
  test("gives the leader itself its own certificate's end, unlocked, without a session", async () => {
    const notAfter = new Date(
      new X509Certificate(readFileSync(join(tm.dataDir, 'certificates', 'node.pem'))).validTo,
    ).toISOString();
    const answer = await callApp(admin(), 'GET', '/secretd/nodes/state');
    expect(answer).toMatchObject({
      status: 200,
      json: [
        {
          NodeID: selfId,
          Hostname: (await tm.manager.getNode(selfId)).hostname,
          Role: 'manager',
          Session: false,
          CertificateNotAfter: notAfter,
          Locked: false,
        },
      ],
    });
  });

  test('is refused to a writer, and the internal route to anything but a manager', async () => {
    const writer = as({ role: 'writer', nodeId: 'w', name: 'w', serial: '01', via: 'tls' });
    expect(await callApp(writer, 'GET', '/secretd/nodes/state')).toMatchObject({
      status: 403,
      json: { message: "Permission denied: role writer may not read the nodes' state" },
    });
    expect((await callApp(admin(), 'GET', '/secretd/internal/node-states')).status).toBe(403);
    expect(
      (
        await callApp(
          as({ role: 'manager', nodeId: 'm', via: 'tls' }),
          'GET',
          '/secretd/internal/node-states',
        )
      ).status,
    ).toBe(200);
  });
});
