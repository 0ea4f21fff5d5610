/** Docker-shaped services and tasks, plus `exec` (secretd's own) and local image import. */
import { Hono } from 'hono';
import { invalid } from '../../../errors.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend } from '../backend.ts';
import {
  parseFilters,
  parseStrictBoolParam,
  parseVersionParam,
  readExecRequest,
  readJsonObject,
} from '../request.ts';
import { serviceSpecFields } from '../service-fields.ts';
import { readServiceSpec, serviceJSON, serviceStatus, taskJSON } from '../service-shapes.ts';

export function serviceRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get('/services', allow('GET /services'), async (c) => {
    const filters = parseFilters(c.req.query('filters'), ['id', 'name', 'label', 'mode']);
    const match = (key: string, value: string): boolean =>
      (filters.get(key) ?? []).length === 0 || filters.get(key)!.some((v) => value.startsWith(v));
    const services = (await backend.listServices()).filter(
      (s) => match('id', s.id) && match('name', s.spec.name),
    );
    // `?status=true` (API 1.41): each service's task counts, as Docker's `service ls` reads them.
    if (!parseStrictBoolParam(c.req.query('status'), 'status'))
      return c.json(services.map((s) => serviceJSON(s)));
    const tasks = await backend.listTasks(new Map());
    return c.json(services.map((s) => serviceJSON(s, { status: serviceStatus(s, tasks) })));
  });

  api.post('/services/create', allow('POST /services/create'), async (c) => {
    const spec = readServiceSpec(await readJsonObject(c, 'service spec', serviceSpecFields));
    return c.json({ ID: await backend.createService(spec) }, 201);
  });

  api.get('/services/:id', allow('GET /services/:id'), async (c) => {
    const insertDefaults = parseStrictBoolParam(c.req.query('insertDefaults'), 'insertDefaults');
    return c.json(serviceJSON(await backend.getService(c.req.param('id')), { insertDefaults }));
  });

  api.post('/services/:id/update', allow('POST /services/:id/update'), async (c) => {
    const expectedIndex = parseVersionParam(c.req.query('version'), 'service');
    const spec = readServiceSpec(await readJsonObject(c, 'service spec', serviceSpecFields));
    await backend.updateService(c.req.param('id'), expectedIndex, spec);
    return c.json({ Warnings: null });
  });

  api.delete('/services/:id', allow('DELETE /services/:id'), async (c) => {
    await backend.removeService(c.req.param('id'));
    return c.body(null, 200);
  });

  api.get('/tasks', allow('GET /tasks'), async (c) => {
    const filters = parseFilters(c.req.query('filters'), [
      'id',
      'name',
      'service',
      'node',
      'desired-state',
      'label',
      '_up-to-date',
    ]);
    return c.json((await backend.listTasks(filters)).map(taskJSON));
  });

  api.get('/tasks/:id', allow('GET /tasks/:id'), async (c) => {
    return c.json(taskJSON(await backend.getTask(c.req.param('id'))));
  });

  api.post('/secretd/exec', allow('POST /secretd/exec'), async (c) => {
    const { task, cmd } = readExecRequest(await readJsonObject(c, 'exec request', ['Task', 'Cmd']));
    const result = await backend.exec(task, cmd);
    return c.json({ ExitCode: result.code, Stdout: result.stdout, Stderr: result.stderr });
  });

  api.post('/secretd/images/import', allow('POST /secretd/images/import'), async (c) => {
    if (c.get('identity').via !== 'socket')
      throw invalid('Images are imported on the node itself, through its admin socket');
    const body = await readJsonObject(c, 'image import', ['Name', 'Path']);
    if (typeof body.Name !== 'string' || typeof body.Path !== 'string')
      throw invalid('Invalid image import: Name and Path must be provided');
    return c.json(await backend.importImage(body.Name, body.Path), 201);
  });

  return api;
}
