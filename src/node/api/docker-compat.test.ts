/**
 * What the docker CLI sends and expects where secretd differs from Docker: honest 501s for what
 * secretd does not do, the CLI's default ServiceSpec fields accepted, anything else refused, and
 * Docker's task filters. Through `app.request()` against a real manager.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { callApp, type AppAnswer } from '../../../test/helpers/app-request.ts';
import { startTestManager, type TestManager } from '../../../test/helpers/manager.ts';
import { createApp } from './app.ts';
import type { Identity } from './backend.ts';

const admin: Identity = { role: 'admin', nodeId: 'tester', via: 'tls' };
let tm: TestManager;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  tm = await startTestManager();
  app = createApp({ backend: tm.manager, version: 'test', identify: () => admin });
  expect((await call('POST', '/secrets/create', { Name: 'db', Data: Buffer.from('pw').toString('base64') })).status).toBe(201);
});
afterAll(async () => {
  await tm[Symbol.asyncDispose]();
});

const call = (method: string, path: string, body?: unknown): Promise<AppAnswer> => callApp(app, method, path, body);

/** What `docker service create --name NAME --secret db busybox sh -c 'sleep 1000'` sends (docker CLI 28). */
function cliSpec(name: string, extra: { container?: object; template?: object; top?: object } = {}): object {
  return {
    Name: name,
    Labels: {},
    TaskTemplate: {
      ContainerSpec: { Image: 'busybox:latest', Args: ['sh', '-c', 'sleep 1000'], Init: false, DNSConfig: {}, Secrets: [{ File: { Name: 'db', UID: '0', GID: '0', Mode: 292 }, SecretName: 'db' }], ...extra.container },
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
    const echoed = { ...current.Spec, TaskTemplate: { ...current.Spec.TaskTemplate, Runtime: 'container', RestartPolicy: { Condition: 'any', Delay: 5e9, MaxAttempts: 0 } } };
    echoed.TaskTemplate.ContainerSpec = { ...echoed.TaskTemplate.ContainerSpec, Isolation: 'default', StopGracePeriod: 10e9 };
    expect((await call('POST', `/services/${created.json.ID}/update?version=${current.Version.Index}`, echoed)).status).toBe(200);
  });

  test.each([
    ['a mount', { container: { Mounts: [{ Type: 'tmpfs', Target: '/x' }] } }, 'mounts', 'ContainerSpec.Mounts'],
    ['a user', { container: { User: '1000' } }, 'another user', 'ContainerSpec.User'],
    ['an init process', { container: { Init: true } }, 'init process', 'ContainerSpec.Init'],
    ['a health check', { container: { Healthcheck: { Test: ['CMD', 'true'] } } }, 'health checks', 'Healthcheck'],
    ['a memory limit', { template: { Resources: { Limits: { MemoryBytes: 100 } } } }, 'resource limits', 'TaskTemplate.Resources'],
    ['a placement constraint', { template: { Placement: { Constraints: ['node.role==manager'] } } }, 'placement constraints', 'TaskTemplate.Placement'],
    ['a restart condition', { template: { RestartPolicy: { Condition: 'none' } } }, 'restart policies', 'RestartPolicy'],
    ['a network', { template: { Networks: [{ Target: 'backend' }] } }, 'networks', 'TaskTemplate.Networks'],
    ['a published port', { top: { EndpointSpec: { Mode: 'vip', Ports: [{ TargetPort: 80, PublishedPort: 8080 }] } } }, 'published ports', 'EndpointSpec'],
    ['start-first updates', { top: { UpdateConfig: { Parallelism: 1, Order: 'start-first' } } }, 'start-first', 'UpdateConfig.Order'],
  ])('%s is refused (501) naming the feature and the field, and nothing is created', async (_what, extra, feature, field) => {
    const response = await call('POST', '/services/create', cliSpec('refused', extra));
    expect(response.status).toBe(501);
    expect(response.json.message).toContain(feature);
    expect(response.json.message).toContain(field);
    expect((await call('GET', '/services/refused')).status).toBe(404);
  });

  test('ForceUpdate (service update --force) rolls the tasks even with nothing else changed', async () => {
    const created = (await call('POST', '/services/create', cliSpec('forced'))).json;
    const specVersion = (): number => tm.manager.raft.store.workloads.services.get(created.ID)!.specVersion;
    const before = specVersion();
    const current = (await call('GET', `/services/${created.ID}`)).json;
    const forced = { ...current.Spec, TaskTemplate: { ...current.Spec.TaskTemplate, ForceUpdate: 1 } };
    expect((await call('POST', `/services/${created.ID}/update?version=${current.Version.Index}`, forced)).status).toBe(200);
    expect(specVersion()).toBe(before + 1);
    const after = (await call('GET', `/services/${created.ID}`)).json;
    expect(after.Spec.TaskTemplate.ForceUpdate).toBe(1);
    const bad = { ...after.Spec, TaskTemplate: { ...after.Spec.TaskTemplate, ForceUpdate: -1 } };
    expect((await call('POST', `/services/${created.ID}/update?version=${after.Version.Index}`, bad)).status).toBe(400);
  });
});

describe('Docker task filters', () => {
  test('name, label and _up-to-date filter as Docker does; unknown filters are refused', async () => {
    const created = (await call('POST', '/services/create', cliSpec('filtered', { top: { Mode: { Replicated: { Replicas: 2 } } } }))).json;
    const tasks = async (filters: object): Promise<any[]> => (await call('GET', `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: { filtered: true }, ...filters }))}`)).json;
    for (let i = 0; i < 100 && (await tasks({})).length < 2; i++) await Bun.sleep(20);
    expect((await tasks({})).length).toBe(2);
    expect((await tasks({ name: { 'filtered.2': true } })).map((t) => t.Slot)).toEqual([2]);
    expect(await tasks({ label: { team: true } })).toEqual([]);
    expect((await tasks({ '_up-to-date': { true: true } })).length).toBe(2);
    const before = (await tasks({})).map((t) => t.ID as string);
    const current = (await call('GET', `/services/${created.ID}`)).json;
    await call('POST', `/services/${created.ID}/update?version=${current.Version.Index}`, { ...current.Spec, TaskTemplate: { ...current.Spec.TaskTemplate, ForceUpdate: 1 } });
    // The tasks of the old spec are no longer up to date; whatever is, runs the new one.
    const store = tm.manager.raft.store.workloads;
    const upToDate = (await tasks({ '_up-to-date': { true: true } })).map((t) => t.ID as string);
    expect(upToDate.filter((id) => before.includes(id))).toEqual([]);
    for (const id of upToDate) expect(store.tasks.get(id as never)!.specVersion).toBe(store.services.get(created.ID)!.specVersion);
    expect((await tasks({ '_up-to-date': { false: true } })).map((t) => t.ID as string).sort()).toEqual(expect.arrayContaining(before.sort()));
    expect((await call('GET', `/tasks?filters=${encodeURIComponent('{"colour":["red"]}')}`)).status).toBe(400);
  });
});
