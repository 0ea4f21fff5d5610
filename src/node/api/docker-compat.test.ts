/**
 * What the docker CLI sends and expects where secretd differs from Docker: honest 501s for what
 * secretd does not do, the CLI's default ServiceSpec fields accepted, anything else refused, and
 * Docker's task filters. Through `app.request()` against a real manager.
 */
import { beforeAll, describe, expect, test } from 'bun:test';
import { useManagerApp } from '../../../test/helpers/manager-app.ts';

const api = useManagerApp();
const call = api.call;

beforeAll(async () => {
  expect(
    (
      await call('POST', '/secrets/create', {
        Name: 'db',
        Data: Buffer.from('pw').toString('base64'),
      })
    ).status,
  ).toBe(201);
});

/** What `docker service create --name NAME --secret db busybox sh -c 'sleep 1000'` sends (docker CLI 28). */
function cliSpec(
  name: string,
  extra: { container?: object; template?: object; top?: object } = {},
): object {
  return {
    Name: name,
    Labels: {},
    TaskTemplate: {
      ContainerSpec: {
        Image: 'busybox:latest',
        Args: ['sh', '-c', 'sleep 1000'],
        Init: false,
        DNSConfig: {},
        Secrets: [{ File: { Name: 'db', UID: '0', GID: '0', Mode: 292 }, SecretName: 'db' }],
        ...extra.container,
      },
      Resources: { Limits: {}, Reservations: {} },
      Placement: {},
      ForceUpdate: 0,
      ...extra.template,
    },
    Mode: { Replicated: {} },
    EndpointSpec: { Mode: 'vip' },
    ...extra.top,
  };
}

describe('Docker endpoints secretd does not implement', () => {
  test.each([
    ['GET', '/v1.47/containers/json', 'runs containers only as service tasks'],
    ['GET', '/networks', 'no networks'],
    ['GET', '/v1.41/volumes', 'no volumes'],
    ['GET', '/plugins', 'no plugins'],
    ['GET', '/configs', 'no configs'],
    ['GET', '/services/web/logs', 'does not collect container logs'],
    ['GET', '/tasks/abc/logs', 'does not collect container logs'],
    ['GET', '/distribution/busybox:latest/json', 'does not pull'],
    ['POST', '/swarm/init', 'secretd init'],
    ['POST', '/swarm/leave', 'node rm'],
  ])('%s %s is 501 naming what secretd does not do', async (method, path, message) => {
    const response = await call(method, path);
    expect(response.status).toBe(501);
    expect(response.json.message).toContain(message);
  });

  test('a path Docker does not have either stays 404', async () => {
    expect((await call('GET', '/nonsense')).status).toBe(404);
  });
});

describe('ServiceSpec fields from the docker CLI', () => {
  test('the defaults the CLI sends on create, and those inspect returns on update, are accepted', async () => {
    const created = await call('POST', '/services/create', cliSpec('defaults'));
    expect(created.status).toBe(201);
    const current = (await call('GET', '/services/defaults')).json;
    const echoed = {
      ...current.Spec,
      TaskTemplate: {
        ...current.Spec.TaskTemplate,
        Runtime: 'container',
        RestartPolicy: { Condition: 'any', Delay: 5e9, MaxAttempts: 0 },
      },
    };
    echoed.TaskTemplate.ContainerSpec = {
      ...echoed.TaskTemplate.ContainerSpec,
      Isolation: 'default',
      StopGracePeriod: 10e9,
    };
    expect(
      (
        await call(
          'POST',
          `/services/${created.json.ID}/update?version=${current.Version.Index}`,
          echoed,
        )
      ).status,
    ).toBe(200);
  });

  test('placement constraints are taken, normalized, and shown by inspect as Docker shows them', async () => {
    const extra = {
      template: { Placement: { Constraints: [' node.ROLE == manager', 'node.labels.Zone!=b'] } },
    };
    expect((await call('POST', '/services/create', cliSpec('placed', extra))).status).toBe(201);
    const inspected = await call('GET', '/services/placed');
    expect(inspected.json.Spec.TaskTemplate.Placement).toEqual({
      Constraints: ['node.role==manager', 'node.labels.Zone!=b'],
    });
    expect((await call('DELETE', '/services/placed')).status).toBe(200);
  });

  test('a placement constraint secretd cannot parse is refused (400) naming it, and nothing is created', async () => {
    const extra = { template: { Placement: { Constraints: ['node.platform.os==linux'] } } };
    const response = await call('POST', '/services/create', cliSpec('misplaced', extra));
    expect(response.status).toBe(400);
    expect(response.json.message).toContain('node.platform.os');
    expect((await call('GET', '/services/misplaced')).status).toBe(404);
  });

  test.each([
    [
      'a mount',
      { container: { Mounts: [{ Type: 'tmpfs', Target: '/x' }] } },
      'mounts',
      'ContainerSpec.Mounts',
    ],
    ['a user', { container: { User: '1000' } }, 'another user', 'ContainerSpec.User'],
    ['an init process', { container: { Init: true } }, 'init process', 'ContainerSpec.Init'],
    [
      'a health check',
      { container: { Healthcheck: { Test: ['CMD', 'true'] } } },
      'health checks',
      'Healthcheck',
    ],
    [
      'a memory limit',
      { template: { Resources: { Limits: { MemoryBytes: 100 } } } },
      'resource limits',
      'TaskTemplate.Resources',
    ],
    [
      'a placement preference',
      {
        template: {
          Placement: { Preferences: [{ Spread: { SpreadDescriptor: 'node.labels.z' } }] },
        },
      },
      'placement preferences',
      'TaskTemplate.Placement.Preferences',
    ],
    [
      'a restart condition',
      { template: { RestartPolicy: { Condition: 'none' } } },
      'restart policies',
      'RestartPolicy',
    ],
    [
      'a network',
      { template: { Networks: [{ Target: 'backend' }] } },
      'networks',
      'TaskTemplate.Networks',
    ],
    [
      'a published port',
      { top: { EndpointSpec: { Mode: 'vip', Ports: [{ TargetPort: 80, PublishedPort: 8080 }] } } },
      'published ports',
      'EndpointSpec',
    ],
    [
      'start-first updates',
      { top: { UpdateConfig: { Parallelism: 1, Order: 'start-first' } } },
      'start-first',
      'UpdateConfig.Order',
    ],
  ])(
    '%s is refused (501) naming the feature and the field, and nothing is created',
    async (_what, extra, feature, field) => {
      const response = await call('POST', '/services/create', cliSpec('refused', extra));
      expect(response.status).toBe(501);
      expect(response.json.message).toContain(feature);
      expect(response.json.message).toContain(field);
      expect((await call('GET', '/services/refused')).status).toBe(404);
    },
  );

  test('ForceUpdate (service update --force) rolls the tasks even with nothing else changed', async () => {
    const created = (await call('POST', '/services/create', cliSpec('forced'))).json;
    const specVersion = (): number =>
      api.tm.manager.raft.store.workloads.services.get(created.ID)!.specVersion;
    const before = specVersion();
    const current = (await call('GET', `/services/${created.ID}`)).json;
    const forced = {
      ...current.Spec,
      TaskTemplate: { ...current.Spec.TaskTemplate, ForceUpdate: 1 },
    };
    expect(
      (
        await call(
          'POST',
          `/services/${created.ID}/update?version=${current.Version.Index}`,
          forced,
        )
      ).status,
    ).toBe(200);
    expect(specVersion()).toBe(before + 1);
    const after = (await call('GET', `/services/${created.ID}`)).json;
    expect(after.Spec.TaskTemplate.ForceUpdate).toBe(1);
    const bad = { ...after.Spec, TaskTemplate: { ...after.Spec.TaskTemplate, ForceUpdate: -1 } };
    expect(
      (await call('POST', `/services/${created.ID}/update?version=${after.Version.Index}`, bad))
        .status,
    ).toBe(400);
  });
});

describe('Docker task filters', () => {
  test('name, label and _up-to-date filter as Docker does; unknown filters are refused', async () => {
    const created = (
      await call(
        'POST',
        '/services/create',
        cliSpec('filtered', { top: { Mode: { Replicated: { Replicas: 2 } } } }),
      )
    ).json;
    const tasks = async (filters: object): Promise<any[]> =>
      (
        await call(
          'GET',
          `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { filtered: true }, ...filters }))}`,
        )
      ).json;
    for (let i = 0; i < 100 && (await tasks({})).length < 2; i++) await Bun.sleep(20);
    expect((await tasks({})).length).toBe(2);
    expect((await tasks({ name: { 'filtered.2': true } })).map((t) => t.Slot)).toEqual([2]);
    expect(await tasks({ label: { team: true } })).toEqual([]);
    expect((await tasks({ '_up-to-date': { true: true } })).length).toBe(2);
    const before = (await tasks({})).map((t) => t.ID as string);
    const current = (await call('GET', `/services/${created.ID}`)).json;
    await call('POST', `/services/${created.ID}/update?version=${current.Version.Index}`, {
      ...current.Spec,
      TaskTemplate: { ...current.Spec.TaskTemplate, ForceUpdate: 1 },
    });
    // The tasks of the old spec are no longer up to date; whatever is, runs the new one.
    const store = api.tm.manager.raft.store.workloads;
    const upToDate = (await tasks({ '_up-to-date': { true: true } })).map((t) => t.ID as string);
    expect(upToDate.filter((id) => before.includes(id))).toEqual([]);
    for (const id of upToDate)
      expect(store.tasks.get(id as never)!.specVersion).toBe(
        store.services.get(created.ID)!.specVersion,
      );
    expect(
      (await tasks({ '_up-to-date': { false: true } })).map((t) => t.ID as string).sort(),
    ).toEqual(expect.arrayContaining(before.sort()));
    expect(
      (await call('GET', `/tasks?filters=${encodeURIComponent('{"colour":["red"]}')}`)).status,
    ).toBe(400);
  });
});

describe("Docker-shaped input as Docker's Go server reads it", () => {
  test('boolean query flags: force as httputils.BoolValue (True is true), rotations as strconv.ParseBool', async () => {
    // Removing a node that does not exist gets past the flag to the lookup (404), whatever the spelling.
    for (const force of ['True', 'yes', '1', 'none'])
      expect((await call('DELETE', `/nodes/nosuchnode?force=${force}`)).status).toBe(404);
    const before = (await call('GET', '/swarm')).json;
    const rotated = await call(
      'POST',
      `/v1.41/swarm/update?version=${before.Version.Index}&rotateWorkerToken=True&rotateManagerToken=False`,
      {},
    );
    expect(rotated.status).toBe(200);
    const after = (await call('GET', '/swarm')).json;
    expect([
      after.JoinTokens.Worker === before.JoinTokens.Worker,
      after.JoinTokens.Manager === before.JoinTokens.Manager,
    ]).toEqual([false, true]);
    const bad = await call(
      'POST',
      `/swarm/update?version=${after.Version.Index}&rotateWorkerToken=perhaps`,
      {},
    );
    expect({ status: bad.status, message: bad.json.message }).toEqual({
      status: 400,
      message: 'invalid value for rotateWorkerToken: perhaps',
    });
  });

  test('what the Python SDK sends: lowercase mode keys and an update config that continues on failure', async () => {
    const body = {
      ...cliSpec('sdk'),
      Mode: { replicated: { Replicas: 2 } },
      UpdateConfig: { Parallelism: 0, FailureAction: 'continue', Delay: 1_500_000 },
    };
    const created = await call('POST', '/services/create', body);
    expect(created.status).toBe(201);
    const spec = (await call('GET', '/services/sdk')).json.Spec;
    expect({ Mode: spec.Mode, UpdateConfig: spec.UpdateConfig }).toEqual({
      Mode: { Replicated: { Replicas: 2 } },
      UpdateConfig: {
        Parallelism: 0,
        Delay: 1_500_000,
        FailureAction: 'continue',
        MaxFailureRatio: 0,
        Order: 'stop-first',
      },
    });
    const global = await call('POST', '/services/create', {
      ...cliSpec('sdkglobal'),
      Mode: { global: {} },
    });
    expect(global.status).toBe(201);
    expect((await call('GET', '/services/sdkglobal')).json.Spec.Mode).toEqual({ Global: {} });
    // Keys of any case on the other Docker routes too.
    expect(
      (
        await call('POST', '/secrets/create', {
          name: 'lower_case',
          data: Buffer.from('v').toString('base64'),
        })
      ).status,
    ).toBe(201);
  });

  test('GET /services/{id}?insertDefaults=true fills in the restart policy secretd applies; a bad value is 400', async () => {
    const id = (await call('POST', '/services/create', cliSpec('defaulted'))).json.ID;
    expect(
      (await call('GET', `/services/${id}`)).json.Spec.TaskTemplate.RestartPolicy,
    ).toBeUndefined();
    expect(
      (await call('GET', `/services/${id}?insertDefaults=True`)).json.Spec.TaskTemplate
        .RestartPolicy,
    ).toEqual({ Condition: 'any', MaxAttempts: 0 });
    // What the SDK then sends back on update (fetch_current_spec) is accepted.
    const current = (await call('GET', `/services/${id}?insertDefaults=True`)).json;
    expect(
      (await call('POST', `/services/${id}/update?version=${current.Version.Index}`, current.Spec))
        .status,
    ).toBe(200);
    expect((await call('GET', `/services/${id}?insertDefaults=perhaps`)).status).toBe(400);
  });

  test('GET /services?status=true carries ServiceStatus {RunningTasks, DesiredTasks, CompletedTasks}', async () => {
    await call('POST', '/services/create', {
      ...cliSpec('counted'),
      Mode: { Replicated: { Replicas: 3 } },
    });
    const listed = (
      await call(
        'GET',
        `/services?status=True&filters=${encodeURIComponent('{"name":["counted"]}')}`,
      )
    ).json;
    // This manager has no executor: no task ever runs.
    expect(listed.map((s: any) => s.ServiceStatus)).toEqual([
      { RunningTasks: 0, DesiredTasks: 3, CompletedTasks: 0 },
    ]);
    expect(
      (await call('GET', `/services?filters=${encodeURIComponent('{"name":["counted"]}')}`)).json[0]
        .ServiceStatus,
    ).toBeUndefined();
  });

  test.each([
    ['job mode', { top: { Mode: { ReplicatedJob: {} } } }, 501, 'Mode.ReplicatedJob'],
    [
      'placement platforms',
      { template: { Placement: { Platforms: [{ OS: 'linux' }] } } },
      501,
      'TaskTemplate.Placement.Platforms',
    ],
    [
      'a rollback config',
      { top: { RollbackConfig: { Parallelism: 1, FailureAction: 'continue' } } },
      501,
      'RollbackConfig',
    ],
    [
      'a rollback failure action',
      { top: { UpdateConfig: { FailureAction: 'rollback' } } },
      501,
      'UpdateConfig.FailureAction',
    ],
    ['an update monitor', { top: { UpdateConfig: { Monitor: 5e9 } } }, 501, 'UpdateConfig.Monitor'],
    [
      'an absolute target with ..',
      { container: { Secrets: [{ File: { Name: '/etc/../x' }, SecretName: 'db' }] } },
      400,
      "secret target '/etc/../x'",
    ],
    [
      'an absolute target under /proc',
      { container: { Secrets: [{ File: { Name: '/proc/1/x' }, SecretName: 'db' }] } },
      400,
      "secret target '/proc/1/x' is reserved",
    ],
  ])(
    'a spec with %s is refused (%d) naming it, and nothing is created',
    async (_what, extra, status, words) => {
      const response = await call('POST', '/services/create', cliSpec('refused2', extra));
      expect({ status: response.status, named: response.json.message.includes(words) }).toEqual({
        status,
        named: true,
      });
      expect((await call('GET', '/services/refused2')).status).toBe(404);
    },
  );

  test('swarm update: fixed settings sent back unchanged are accepted, a change is 501 naming the field', async () => {
    const current = (await call('GET', '/swarm')).json;
    // The Python SDK's Swarm.update() sends CAConfig.NodeCertExpiry of 90 days and Raft fields as null.
    const sdk = {
      CAConfig: { NodeCertExpiry: 7_776_000_000_000_000 },
      raft: { SnapshotInterval: null, ElectionTick: null },
      encryptionConfig: { autoLockManagers: false },
    };
    expect((await call('POST', `/swarm/update?version=${current.Version.Index}`, sdk)).status).toBe(
      200,
    );
    const now = (await call('GET', '/swarm')).json;
    for (const [body, field] of [
      [{ Raft: { SnapshotInterval: 5 } }, 'Spec.Raft.SnapshotInterval is 10000 here, not 5'],
      [{ Raft: { LogEntriesForSlowFollowers: 500 } }, 'Spec.Raft.LogEntriesForSlowFollowers'],
      [{ Dispatcher: { HeartbeatPeriod: 1 } }, 'Spec.Dispatcher.HeartbeatPeriod'],
      [
        { CAConfig: { ExternalCAs: [{ Protocol: 'cfssl', URL: 'https://ca' }] } },
        'Spec.CAConfig.ExternalCAs is not set here',
      ],
      [{ Name: 'other' }, 'renaming the swarm'],
    ] as const) {
      const response = await call('POST', `/swarm/update?version=${now.Version.Index}`, body);
      expect({ status: response.status, named: response.json.message.includes(field) }).toEqual({
        status: 501,
        named: true,
      });
    }
    expect(
      (await call('POST', `/swarm/update?version=${now.Version.Index}`, { Raft: { Colour: 1 } }))
        .json.message,
    ).toBe('Invalid swarm spec: unknown field Raft.Colour');
  });
});
