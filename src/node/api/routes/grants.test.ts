/** The grant routes through `app.request()` against a real manager (real sealed WAL, real Raft core). */
import { describe, expect, test } from 'bun:test';
import { adminIdentity, useManagerApp } from '../../../../test/helpers/manager-app.ts';
import type { Identity } from '../backend.ts';

const admin: Identity = adminIdentity;
const b64 = (text: string): string => Buffer.from(text).toString('base64');

const api = useManagerApp();
const call = api.call;

const grant = (constraints: string[], version: number | null = null) => ({
  Constraints: constraints,
  Version: version,
  CreatedAt: expect.any(String),
});

describe('grant routes', () => {
  test('grant, grant again, list, inspect and ungrant by query or body', async () => {
    expect((await call('POST', '/secrets/create', { Name: 'g1', Data: b64('value') })).status).toBe(
      201,
    );
    const id = (await call('GET', '/secrets/g1')).json.ID as string;
    expect(
      await call('POST', '/secretd/secrets/g1/grants', {
        Constraints: ['node.labels.role == db', 'NODE.ROLE==worker'],
      }),
    ).toEqual({
      status: 201,
      text: expect.any(String),
      json: {
        ID: id,
        Name: 'g1',
        Grants: [grant(['node.labels.role==db', 'node.role==worker'])],
      },
    });
    // The same constraints, otherwise spelled: unchanged.
    const again = await call('POST', '/secretd/secrets/g1/grants', {
      Constraints: ['node.role==worker', 'node.labels.role==db'],
    });
    expect(again.status).toBe(200);
    await call('POST', '/secretd/secrets/g1/grants', { Constraints: ['node.id==n1'], Version: 1 });
    const listed = await call('GET', '/secretd/secrets/g1/grants');
    expect(listed.json.Grants).toEqual([
      grant(['node.labels.role==db', 'node.role==worker']),
      grant(['node.id==n1'], 1),
    ]);
    expect((await call('GET', '/secrets/g1')).json.Grants).toEqual(listed.json.Grants);

    const byQuery = await call(
      'DELETE',
      `/secretd/secrets/g1/grants?constraint=${encodeURIComponent('node.id==n1')}`,
    );
    expect(byQuery).toMatchObject({
      status: 200,
      json: { Grants: [grant(['node.labels.role==db', 'node.role==worker'])] },
    });
    const byBody = await call('DELETE', '/secretd/secrets/g1/grants', {
      Constraints: ['node.role==worker', 'node.labels.role==db'],
    });
    expect(byBody).toMatchObject({ status: 200, json: { Grants: [] } });
    // Without grants, a secret's inspect is Docker's shape again.
    expect(Object.keys((await call('GET', '/secrets/g1')).json)).not.toContain('Grants');
    expect((await call('DELETE', '/secrets/g1')).status).toBe(204);
  });

  test('bad input is refused naming it: an expression, no constraints, a missing version, an unknown grant', async () => {
    await call('POST', '/secrets/create', { Name: 'g2', Data: b64('value') });
    expect(
      await call('POST', '/secretd/secrets/g2/grants', { Constraints: ['node.labels.role=db'] }),
    ).toMatchObject({
      status: 400,
      json: {
        message:
          'Invalid node constraint "node.labels.role=db": expected KEY==VALUE or KEY!=VALUE (e.g. node.labels.role==db)',
      },
    });
    expect(await call('POST', '/secretd/secrets/g2/grants', { Constraints: [] })).toMatchObject({
      status: 400,
      json: {
        message: 'Invalid grant: give at least one node constraint (e.g. node.labels.role==db)',
      },
    });
    expect(
      await call('POST', '/secretd/secrets/g2/grants', { Constraints: ['node.id==x'], Version: 4 }),
    ).toMatchObject({
      status: 404,
      json: { message: 'Cannot grant secret g2: it has no version 4 (it has 1)' },
    });
    expect(
      await call('POST', '/secretd/secrets/g2/grants', { Constraints: ['node.id==x'], Data: 'x' }),
    ).toMatchObject({ status: 400 });
    expect(
      await call(
        'DELETE',
        `/secretd/secrets/g2/grants?constraint=${encodeURIComponent('node.id==x')}`,
      ),
    ).toMatchObject({
      status: 404,
      json: {
        message:
          'Cannot ungrant secret g2: it has no grant with node constraints [node.id==x] (it has no grants)',
      },
    });
    expect(await call('GET', '/secretd/secrets/nope/grants')).toMatchObject({ status: 404 });
    expect((await call('GET', '/secretd/secrets/g2/grants')).json.Grants).toEqual([]);
  });

  test('secret rm is refused while a grant exists, naming it (409)', async () => {
    await call('POST', '/secrets/create', { Name: 'g3', Data: b64('value') });
    await call('POST', '/secretd/secrets/g3/grants', { Constraints: ['node.labels.role==db'] });
    expect(await call('DELETE', '/secrets/g3')).toMatchObject({
      status: 409,
      json: {
        message:
          'Cannot remove secret g3: it is granted to nodes by a grant ([node.labels.role==db]); remove it first with secret ungrant',
      },
    });
  });

  test('GET /secretd/local/grants is refused over TLS, even to an admin', async () => {
    expect(await call('GET', '/secretd/local/grants')).toMatchObject({
      status: 400,
      json: {
        message: "A node's granted secrets are listed on the node itself, through its admin socket",
      },
    });
  });

  test('a writer scoped to app_* may grant app_ secrets only; a reader lists grants and cannot grant', async () => {
    api.identity = admin;
    await call('POST', '/secrets/create', { Name: 'app_g', Data: b64('value') });
    await call('POST', '/secrets/create', { Name: 'db_g', Data: b64('value') });
    try {
      api.identity = {
        role: 'writer',
        nodeId: 'w',
        name: 'w',
        serial: '4a',
        via: 'tls',
        scope: ['app_*'],
      };
      expect(
        (await call('POST', '/secretd/secrets/app_g/grants', { Constraints: ['node.id==n1'] }))
          .status,
      ).toBe(201);
      expect(
        await call('POST', '/secretd/secrets/db_g/grants', { Constraints: ['node.id==n1'] }),
      ).toMatchObject({
        status: 403,
        json: { message: 'Permission denied: role writer (scope app_*) may not grant secret db_g' },
      });
      api.identity = {
        role: 'reader',
        nodeId: 'r',
        name: 'r',
        serial: '4b',
        via: 'tls',
        scope: [],
      };
      expect((await call('GET', '/secretd/secrets/app_g/grants')).status).toBe(200);
      expect(
        await call('POST', '/secretd/secrets/app_g/grants', { Constraints: ['node.id==n2'] }),
      ).toMatchObject({
        status: 403,
        json: { message: 'Permission denied: role reader may not grant secrets' },
      });
    } finally {
      api.identity = admin;
    }
  });
});
