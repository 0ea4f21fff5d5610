/** secretd's version routes through `app.request()` against a real manager (real sealed WAL, real Raft core). */
import { describe, expect, test } from 'bun:test';
import { secretBytesMax } from '../../../limits.ts';
import { adminIdentity, useManagerApp } from '../../../../test/helpers/manager-app.ts';
import type { Identity } from '../backend.ts';

const admin: Identity = adminIdentity;
const b64 = (text: string): string => Buffer.from(text).toString('base64');

const api = useManagerApp();
const call = api.call;

async function versionsOf(name: string): Promise<number[]> {
  const answer = await call('GET', `/secretd/secrets/${name}/versions`);
  expect(answer.status).toBe(200);
  return answer.json.Versions.map((v: { Version: number }) => v.Version);
}

describe('secret version routes', () => {
  test('update, no-op, compare-and-set, rollback and list, never returning data', async () => {
    expect(
      (await call('POST', '/secrets/create', { Name: 'rot', Data: b64('first-value') })).status,
    ).toBe(201);
    expect(
      await call('POST', '/secretd/secrets/rot/versions', {
        Data: b64('second-value'),
        IfVersion: 1,
      }),
    ).toMatchObject({ status: 201, json: { Version: 2, Changed: true } });
    expect(
      await call('POST', '/secretd/secrets/rot/versions', { Data: b64('second-value') }),
    ).toMatchObject({ status: 200, json: { Version: 2, Changed: false } });
    const stale = await call('POST', '/secretd/secrets/rot/versions', {
      Data: b64('third-value'),
      IfVersion: 1,
    });
    expect(stale).toMatchObject({
      status: 409,
      json: {
        message:
          'Cannot update secret rot: --if-version 1 is out of date (the newest version is 2)',
      },
    });
    expect(await versionsOf('rot')).toEqual([1, 2]);
    expect(await call('POST', '/secretd/secrets/rot/rollback', { To: 1 })).toMatchObject({
      status: 201,
      json: { Version: 3, Changed: true },
    });
    const list = await call('GET', '/secretd/secrets/rot/versions');
    expect(Object.keys(list.json.Versions[0]).sort()).toEqual(['CreatedAt', 'InUseBy', 'Version']);
    expect(list.json.Versions[2].InUseBy).toEqual({ Services: [], Tasks: [] });
    for (const value of ['first-value', 'second-value']) {
      expect(list.text).not.toContain(value);
      expect(list.text).not.toContain(b64(value));
    }
    expect(await call('DELETE', '/secretd/secrets/rot/versions/2')).toMatchObject({ status: 204 });
    expect(await versionsOf('rot')).toEqual([1, 3]);
    expect(await call('DELETE', '/secretd/secrets/rot/versions/3')).toMatchObject({ status: 409 });
  });

  test("the Docker-shaped update still refuses a data change, with Docker's message", async () => {
    const created = await call('POST', '/secrets/create', { Name: 'dock', Data: b64('a') });
    const secret = (await call('GET', `/secrets/${created.json.ID}`)).json;
    const answer = await call(
      'POST',
      `/secrets/${secret.ID}/update?version=${secret.Version.Index}`,
      { Name: 'dock', Data: b64('b') },
    );
    expect(answer).toMatchObject({
      status: 400,
      json: { message: 'Cannot update secret dock: only updates to Labels are allowed' },
    });
    expect(await versionsOf('dock')).toEqual([1]);
  });

  test('bad input gets clear errors: version numbers, missing or bad data, oversized data, unknown fields and secrets', async () => {
    await call('POST', '/secrets/create', { Name: 'val', Data: b64('x') });
    const cases: Array<[string, string, unknown, number, string | RegExp]> = [
      [
        'POST',
        '/secretd/secrets/val/versions',
        { Data: b64('y'), IfVersion: 0 },
        400,
        'Invalid IfVersion 0: a version is a whole number from 1 to 2147483647',
      ],
      [
        'POST',
        '/secretd/secrets/val/versions',
        { Data: b64('y'), IfVersion: 'two' },
        400,
        /^Invalid IfVersion "two"/,
      ],
      [
        'POST',
        '/secretd/secrets/val/versions',
        {},
        400,
        'Invalid secret version: Data (base64) must be provided',
      ],
      [
        'POST',
        '/secretd/secrets/val/versions',
        { Data: '' },
        400,
        'Invalid secret data: it must be at least 1 byte',
      ],
      [
        'POST',
        '/secretd/secrets/val/versions',
        { Data: b64('y'), Labels: {} },
        400,
        'Invalid secret version: unknown field "Labels"',
      ],
      [
        'POST',
        '/secretd/secrets/val/versions',
        { Data: Buffer.alloc(secretBytesMax + 1).toString('base64') },
        413,
        /over the limit of 1048576 bytes/,
      ],
      ['POST', '/secretd/secrets/nope/versions', { Data: b64('y') }, 404, 'Secret nope not found'],
      ['GET', '/secretd/secrets/nope/versions', undefined, 404, 'Secret nope not found'],
      ['POST', '/secretd/secrets/val/rollback', { To: -3 }, 400, /^Invalid rollback target To -3/],
      [
        'POST',
        '/secretd/secrets/val/rollback',
        { To: 7 },
        404,
        'Cannot roll back secret val: it has no version 7 (it has 1)',
      ],
      ['DELETE', '/secretd/secrets/val/versions/x1', undefined, 400, /^Invalid version "x1"/],
      [
        'DELETE',
        '/secretd/secrets/val/versions/1',
        undefined,
        409,
        'Cannot remove version 1 of secret val: it is the newest version (add a new one or roll back first)',
      ],
      [
        'POST',
        '/secretd/settings',
        { SecretVersionsKept: 0 },
        400,
        'Invalid secret versions kept 0: expected a whole number from 1 to 1000',
      ],
    ];
    for (const [method, path, body, status, message] of cases) {
      const answer = await call(method, path, body);
      expect({ path, status: answer.status }).toEqual({ path, status });
      if (typeof message === 'string') expect(answer.json.message).toBe(message);
      else expect(answer.json.message).toMatch(message);
    }
    expect(await versionsOf('val')).toEqual([1]);
  });

  test('the retention setting reads back, applies to the next update, and a worker may not change it', async () => {
    expect(await call('GET', '/secretd/settings')).toMatchObject({
      status: 200,
      json: { SecretVersionsKept: 10 },
    });
    expect(await call('POST', '/secretd/settings', { SecretVersionsKept: 2 })).toMatchObject({
      status: 200,
      json: { SecretVersionsKept: 2 },
    });
    await call('POST', '/secrets/create', { Name: 'kept', Data: b64('k1') });
    for (const value of ['k2', 'k3', 'k4'])
      await call('POST', '/secretd/secrets/kept/versions', { Data: b64(value) });
    expect(await versionsOf('kept')).toEqual([3, 4]);
    api.identity = { role: 'worker', nodeId: 'w1', via: 'tls' };
    try {
      expect((await call('POST', '/secretd/settings', { SecretVersionsKept: 5 })).status).toBe(403);
      expect(
        (await call('POST', '/secretd/secrets/kept/versions', { Data: b64('k5') })).status,
      ).toBe(403);
      expect((await call('GET', '/secretd/secrets/kept/versions')).status).toBe(403);
    } finally {
      api.identity = admin;
    }
    await call('POST', '/secretd/settings', { SecretVersionsKept: 10 });
  });

  test('a service may pin a version and choose on-update through the Secretd extension field; bad values are refused', async () => {
    await call('POST', '/secrets/create', { Name: 'svc', Data: b64('s1') });
    await call('POST', '/secretd/secrets/svc/versions', { Data: b64('s2') });
    const spec = (secret: object): object => ({
      Name: `s${Math.random().toString(36).slice(2, 8)}`,
      Mode: { Replicated: { Replicas: 0 } },
      TaskTemplate: {
        ContainerSpec: {
          Image: 'busybox',
          Command: ['sh'],
          Secrets: [{ SecretName: 'svc', File: { Name: 'svc' }, ...secret }],
        },
      },
    });
    const pinned = await call('POST', '/services/create', spec({ Secretd: { Version: 1 } }));
    expect(pinned.status).toBe(201);
    const shown = await call('GET', `/services/${pinned.json.ID}`);
    expect(shown.json.Spec.TaskTemplate.ContainerSpec.Secrets[0].Secretd).toEqual({ Version: 1 });
    expect(
      (await call('POST', '/services/create', spec({ Secretd: { OnUpdate: 'signal:SIGHUP' } })))
        .status,
    ).toBe(201);
    // Without the extension, a Docker client's spec is taken as it is.
    const docker = await call('POST', '/services/create', spec({}));
    expect(
      (await call('GET', `/services/${docker.json.ID}`)).json.Spec.TaskTemplate.ContainerSpec
        .Secrets[0].Secretd,
    ).toBeUndefined();
    const refused: Array<[object, string | RegExp]> = [
      [{ Secretd: { Version: 9 } }, 'Secret svc has no version 9'],
      [{ Secretd: { Version: 'x' } }, /^Invalid version of secret svc "x"/],
      [
        { Secretd: { OnUpdate: 'reload' } },
        'Invalid on-update "reload": expected none, restart or signal:SIGNAL (e.g. signal:SIGHUP)',
      ],
      [{ Secretd: { OnUpdate: 'signal:SIGKILL' } }, /the signal must be one of SIGHUP/],
      [
        { Secretd: { Version: 1, OnUpdate: 'restart' } },
        'Invalid service spec: secret svc is pinned to version 1, so on-update restart would never apply',
      ],
      [
        { Secretd: { Colour: 1 } },
        'Invalid service spec: unknown field TaskTemplate.ContainerSpec.Secrets.Secretd.Colour',
      ],
      [
        { File: { Name: '/etc/x' }, Secretd: { OnUpdate: 'signal:SIGHUP' } },
        /absolute target "\/etc\/x", which cannot change under a running container: use on-update restart$/,
      ],
    ];
    for (const [secret, message] of refused) {
      const answer = await call('POST', '/services/create', spec(secret));
      expect({ secret, status: answer.status }).toEqual({ secret, status: 400 });
      if (typeof message === 'string') expect(answer.json.message).toBe(message);
      else expect(answer.json.message).toMatch(message);
    }
    const versions = (await call('GET', '/secretd/secrets/svc/versions')).json.Versions;
    expect(versions[0].InUseBy.Services.map((s: { Pinned: boolean }) => s.Pinned)).toEqual([true]);
    expect(versions[1].InUseBy.Services.map((s: { Pinned: boolean }) => s.Pinned)).toEqual([
      false,
      false,
    ]);
    const inUse = await call('DELETE', '/secretd/secrets/svc/versions/1');
    expect(inUse.status).toBe(409);
    expect(inUse.json.message).toMatch(
      /^Cannot remove version 1 of secret svc: it is pinned by service s\w+$/,
    );
  });
});
