/** API routes through `api.app.request()` against a real manager (real sealed WAL, real Raft core). */
import { describe, expect, test } from 'bun:test';
import { requestBodyBytesMax, secretBytesMax } from '../../limits.ts';
import { adminIdentity, useManagerApp } from '../../../test/helpers/manager-app.ts';
import type { Identity } from './backend.ts';

const admin: Identity = adminIdentity;
const worker: Identity = { role: 'worker', nodeId: 'w1', via: 'tls' };
const b64 = (text: string): string => Buffer.from(text).toString('base64');

const api = useManagerApp();
const call = api.call;

describe('secrets routes', () => {
  test('create, inspect, list and remove a secret in Docker shapes, never returning data', async () => {
    const created = await call('POST', '/v1.41/secrets/create', {
      Name: 'db_pass',
      Labels: { env: 'prod' },
      Data: b64('s3cr3t-value'),
    });
    expect(created.status).toBe(201);
    const id: string = created.json.ID;
    expect(id).toMatch(/^[0-9a-z]{25}$/);

    const inspect = await call('GET', `/secrets/${id}`);
    expect(inspect.status).toBe(200);
    expect(Object.keys(inspect.json).sort()).toEqual([
      'CreatedAt',
      'ID',
      'Spec',
      'UpdatedAt',
      'Version',
    ]);
    expect(inspect.json.Spec).toEqual({ Name: 'db_pass', Labels: { env: 'prod' } });
    expect(inspect.text).not.toContain(b64('s3cr3t-value'));

    expect((await call('GET', '/secrets/DB_PASS')).json.ID).toBe(id);
    expect((await call('GET', `/secrets/${id.slice(0, 6)}`)).json.ID).toBe(id);
    const list = await call(
      'GET',
      `/secrets?filters=${encodeURIComponent(JSON.stringify({ label: ['env=prod'] }))}`,
    );
    expect(list.json.map((s: { ID: string }) => s.ID)).toEqual([id]);
    expect(
      (
        await call(
          'GET',
          `/secrets?filters=${encodeURIComponent(JSON.stringify({ name: { db_: true } }))}`,
        )
      ).json,
    ).toHaveLength(1);
    expect(
      (
        await call(
          'GET',
          `/secrets?filters=${encodeURIComponent(JSON.stringify({ names: ['db_'] }))}`,
        )
      ).json,
    ).toHaveLength(0);

    expect((await call('DELETE', `/secrets/${id}`)).status).toBe(204);
    expect((await call('GET', `/secrets/${id}`)).status).toBe(404);
  });

  test('a duplicate name, even in another case, is 409 and the first secret is untouched', async () => {
    expect((await call('POST', '/secrets/create', { Name: 'dup', Data: b64('one') })).status).toBe(
      201,
    );
    const again = await call('POST', '/secrets/create', { Name: 'DUP', Data: b64('two') });
    expect(again.status).toBe(409);
    expect(again.json.message).toBe('Secret DUP already exists');
    expect((await call('GET', '/secrets/dup')).json.Spec.Name).toBe('dup');
  });

  test.each([
    ['an invalid name', { Name: 'bad name', Data: 'eA==' }, 400, 'Invalid secret name'],
    ['a missing name', { Data: 'eA==' }, 400, 'a name must be provided'],
    ['empty data', { Name: 'e1', Data: '' }, 400, 'at least 1 byte'],
    ['missing data', { Name: 'e2' }, 400, 'Data (base64) must be provided'],
    ['bad base64', { Name: 'e3', Data: 'not base64!' }, 400, 'not valid base64'],
    ['an unknown field', { Name: 'e4', Data: 'eA==', Extra: 1 }, 400, 'unknown field "Extra"'],
    ['non-string labels', { Name: 'e5', Data: 'eA==', Labels: { a: 1 } }, 400, 'must be a string'],
    ['a driver', { Name: 'e6', Data: 'eA==', Driver: { Name: 'vault' } }, 400, 'drivers'],
    [
      'data over 1 MiB',
      { Name: 'e7', Data: Buffer.alloc(secretBytesMax + 1).toString('base64') },
      413,
      'over the limit',
    ],
  ])('create with %s is refused (%d) and stores nothing', async (_what, body, status, message) => {
    const response = await call('POST', '/secrets/create', body);
    expect(response.status).toBe(status as number);
    expect(response.json.message).toContain(message as string);
    expect(
      (await call('GET', `/secrets?filters=${encodeURIComponent(JSON.stringify({ name: ['e'] }))}`))
        .json,
    ).toEqual([]);
  });

  test('malformed and oversized bodies get clear errors', async () => {
    expect((await call('POST', '/secrets/create', '{not json')).json.message).toContain(
      'not valid JSON',
    );
    expect((await call('POST', '/secrets/create', '[1,2]')).json.message).toContain(
      'expected a JSON object',
    );
    expect((await call('POST', '/secrets/create', '')).json.message).toContain('body is empty');
    const huge = await call(
      'POST',
      '/secrets/create',
      `{"Name":"x","Data":"${'A'.repeat(requestBodyBytesMax)}"}`,
    );
    expect(huge.status).toBe(413);
    expect((await call('GET', '/secrets?filters=nope')).status).toBe(400);
    expect(
      (await call('GET', `/secrets?filters=${encodeURIComponent('{"color":["red"]}')}`)).json
        .message,
    ).toContain("Invalid filter 'color'");
  });

  test('a declared Content-Length is checked before the body is read', async () => {
    const body = JSON.stringify({ Name: 'declared', Data: b64('v') });
    const ok = await api.app.request('/secrets/create', {
      method: 'POST',
      body,
      headers: { 'content-length': String(body.length) },
    });
    expect(ok.status).toBe(201);
    const huge = await api.app.request('/secrets/create', {
      method: 'POST',
      body,
      headers: { 'content-length': String(requestBodyBytesMax + 1) },
    });
    expect(huge.status).toBe(413);
    const bogus = await api.app.request('/secrets/create', {
      method: 'POST',
      body,
      headers: { 'content-length': 'lots' },
    });
    expect(bogus.status).toBe(400);
    expect(((await bogus.json()) as { message: string }).message).toContain('Content-Length');
  });

  test('exactly 1 MiB of data is accepted', async () => {
    const response = await call('POST', '/secrets/create', {
      Name: 'big',
      Data: Buffer.alloc(secretBytesMax, 7).toString('base64'),
    });
    expect(response.status).toBe(201);
  });

  test('update changes labels with the current version; a stale version is 409; data must not change', async () => {
    const id = (
      await call('POST', '/secrets/create', { Name: 'upd', Labels: { a: '1' }, Data: b64('v') })
    ).json.ID;
    const version = (await call('GET', `/secrets/${id}`)).json.Version.Index;
    const ok = await call('POST', `/secrets/${id}/update?version=${version}`, {
      Name: 'upd',
      Labels: { a: '2' },
    });
    expect(ok.status).toBe(200);
    const stale = await call('POST', `/secrets/${id}/update?version=${version}`, {
      Name: 'upd',
      Labels: { a: '3' },
    });
    expect(stale.status).toBe(409);
    expect(stale.json.message).toContain('out of date');
    const current = (await call('GET', `/secrets/${id}`)).json;
    expect(current.Spec.Labels).toEqual({ a: '2' });
    const rename = await call('POST', `/secrets/${id}/update?version=${current.Version.Index}`, {
      Name: 'renamed',
    });
    expect(rename.json.message).toContain('only updates to Labels are allowed');
    const newData = await call('POST', `/secrets/${id}/update?version=${current.Version.Index}`, {
      Name: 'upd',
      Data: b64('other'),
    });
    expect(newData.status).toBe(400);
    expect(newData.text).not.toContain('other');
    expect((await call('POST', `/secrets/${id}/update`, { Name: 'upd' })).json.message).toContain(
      'version',
    );
    expect((await call('POST', `/secrets/${id}/update?version=abc`, { Name: 'upd' })).status).toBe(
      400,
    );
  });

  test('update with a value over 4 KiB (read from the body bytes): the same value passes, another is refused', async () => {
    const value = Buffer.alloc(20_000, 'large value ').toString('base64');
    const id = (await call('POST', '/secrets/create', { Name: 'upd-large', Data: value })).json.ID;
    const version = (await call('GET', `/secrets/${id}`)).json.Version.Index;
    const same = await call('POST', `/secrets/${id}/update?version=${version}`, {
      name: 'upd-large',
      data: value,
      labels: { a: '1' },
    });
    expect(same.status).toBe(200);
    const current = (await call('GET', `/secrets/${id}`)).json;
    expect(current.Spec.Labels).toEqual({ a: '1' });
    const other = await call('POST', `/secrets/${id}/update?version=${current.Version.Index}`, {
      Name: 'upd-large',
      Data: Buffer.alloc(20_000, 'other value ').toString('base64'),
    });
    expect(other.status).toBe(400);
    expect(other.json.message).toContain('only updates to Labels are allowed');
  });

  test('unknown ids are 404 and ambiguous prefixes are 400', async () => {
    expect((await call('GET', '/secrets/doesnotexist')).status).toBe(404);
    expect((await call('DELETE', '/secrets/doesnotexist')).status).toBe(404);
    expect(
      (await call('POST', '/secrets/doesnotexist/update?version=1', { Name: 'doesnotexist' }))
        .status,
    ).toBe(404);
    const ids: string[] = (await call('GET', '/secrets')).json.map((s: { ID: string }) => s.ID);
    const firstChars = new Map<string, number>();
    for (const id of ids) firstChars.set(id[0]!, (firstChars.get(id[0]!) ?? 0) + 1);
    const shared = [...firstChars].find(([, n]) => n > 1);
    if (shared)
      expect((await call('GET', `/secrets/${shared[0]}`)).json.message).toContain('ambiguous');
  });
});

describe('roles and the swarm routes', () => {
  test('a worker certificate gets 403 on every secret and swarm route', async () => {
    api.identity = worker;
    try {
      for (const [method, path] of [
        ['GET', '/secrets'],
        ['POST', '/secrets/create'],
        ['GET', '/secrets/x'],
        ['DELETE', '/secrets/x'],
        ['POST', '/secrets/x/update?version=1'],
        ['GET', '/swarm'],
        ['GET', '/swarm/unlockkey'],
        ['POST', '/swarm/update?version=1'],
        ['POST', '/secretd/ca/client-certificates'],
      ] as const) {
        const response = await call(
          method,
          path,
          method === 'POST' ? { Name: 'x', Data: 'eA==' } : undefined,
        );
        expect(response.status).toBe(403);
        expect(response.json.message).toContain('Permission denied');
      }
      expect((await call('GET', '/_ping')).status).toBe(200);
    } finally {
      api.identity = admin;
    }
  });

  test('swarm inspect carries join tokens; rotating one changes only that one', async () => {
    const before = (await call('GET', '/swarm')).json;
    expect(before.JoinTokens.Worker).toMatch(/^SDTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
    expect(before.Spec.EncryptionConfig.AutoLockManagers).toBe(false);
    const rotated = await call(
      'POST',
      `/swarm/update?version=${before.Version.Index}&rotateWorkerToken=true`,
      before.Spec,
    );
    expect(rotated.status).toBe(200);
    const after = (await call('GET', '/swarm')).json;
    expect(after.JoinTokens.Worker).not.toBe(before.JoinTokens.Worker);
    expect(after.JoinTokens.Manager).toBe(before.JoinTokens.Manager);
    expect(
      (await call('POST', `/swarm/update?version=${before.Version.Index}`, before.Spec)).status,
    ).toBe(409);
    expect(
      (
        await call(
          'POST',
          `/swarm/update?version=${after.Version.Index}&rotateWorkerToken=perhaps`,
          after.Spec,
        )
      ).status,
    ).toBe(400);
    expect(
      (
        await call('POST', `/swarm/update?version=${after.Version.Index}`, {
          ...after.Spec,
          Bogus: 1,
        })
      ).status,
    ).toBe(400);
  });

  test('unlock on an unlocked manager is 409; a malformed unlock body is 400', async () => {
    expect((await call('POST', '/swarm/unlock', { UnlockKey: 'SDKEY-1-x' })).status).toBe(409);
    expect((await call('POST', '/swarm/unlock', {})).status).toBe(400);
    expect((await call('GET', '/swarm/unlockkey')).json).toEqual({ UnlockKey: '' });
  });

  test("Secretd-Consistency: local reads this manager's state; an unknown value is 400", async () => {
    const id = (await call('POST', '/secrets/create', { Name: 'local_read', Data: b64('v') })).json
      .ID;
    const local = await api.app.request(`/secrets/${id}`, {
      headers: { 'secretd-consistency': 'local' },
    });
    expect(local.status).toBe(200);
    expect(((await local.json()) as { ID: string }).ID).toBe(id);
    const bad = await api.app.request('/secrets', {
      headers: { 'secretd-consistency': 'eventual' },
    });
    expect(bad.status).toBe(400);
  });

  test('_ping, version and info answer with Docker shapes; unknown routes are 404 JSON', async () => {
    const ping = await api.app.request('/_ping');
    expect(await ping.text()).toBe('OK');
    expect(ping.headers.get('API-Version')).toBe('1.47');
    expect(ping.headers.get('Swarm')).toBe('active/manager');
    expect((await call('GET', '/v1.44/version')).json.ApiVersion).toBe('1.47');
    const info = (await call('GET', '/info')).json;
    expect(info.Swarm.LocalNodeState).toBe('active');
    // A manager without an executor runs no tasks, so its agent was given no secret (counts only, never values).
    expect({ SecretsReceived: info.SecretsReceived, SecretsHeld: info.SecretsHeld }).toEqual({
      SecretsReceived: 0,
      SecretsHeld: 0,
    });
    const missing = await call('GET', '/nope');
    expect(missing.status).toBe(404);
    expect(missing.json.message).toContain('not found');
  });
});

describe('join request resources', () => {
  test.each([
    [{ NanoCPUs: -1, MemoryBytes: 1 }, 'Resources.NanoCPUs must be a whole number'],
    [{ NanoCPUs: 1.5, MemoryBytes: 1 }, 'Resources.NanoCPUs must be a whole number'],
    [{ NanoCPUs: 1, MemoryBytes: '1' }, 'must be numbers'],
    [{ NanoCPUs: 1, MemoryBytes: 1, Disk: 1 }, 'only NanoCPUs and MemoryBytes'],
    [[1, 2], 'Resources must be an object'],
  ])(
    'a join request with Resources %j is refused (400) before anything else',
    async (resources, message) => {
      const response = await call('POST', '/secretd/join', {
        Token: 'SDTKN-1-x',
        CSR: 'csr',
        Addr: '10.0.0.9:4377',
        Hostname: 'w9',
        Resources: resources,
      });
      expect(response.status).toBe(400);
      expect(response.json.message).toContain(message);
    },
  );
});
