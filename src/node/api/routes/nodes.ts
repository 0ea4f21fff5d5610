/** Docker-shaped node routes: list, inspect, update (role, availability, labels), remove. */
import { Hono } from 'hono';
import { invalid } from '../../../errors.ts';
import { checkLabels } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend, NodeUpdate } from '../backend.ts';
import { parseBoolParam, parseFilters, parseVersionParam, readJsonObject } from '../request.ts';
import { nodeJSON } from '../shapes.ts';

export function nodeRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get('/nodes', allow('GET /nodes'), async (c) => {
    const filters = parseFilters(c.req.query('filters'), [
      'id',
      'name',
      'role',
      'membership',
      'label',
      'node.label',
    ]);
    const nodes = (await backend.listNodes()).filter((n) => {
      const match = (key: string, value: string): boolean =>
        (filters.get(key) ?? []).length === 0 || filters.get(key)!.some((v) => value.startsWith(v));
      return (
        match('id', n.id) &&
        match('name', n.hostname) &&
        ((filters.get('role') ?? []).length === 0 || filters.get('role')!.includes(n.role))
      );
    });
    return c.json(nodes.map(nodeJSON));
  });

  api.get('/nodes/:id', allow('GET /nodes/:id'), async (c) => {
    return c.json(nodeJSON(await backend.getNode(c.req.param('id'))));
  });

  api.post('/nodes/:id/update', allow('POST /nodes/:id/update'), async (c) => {
    const expectedIndex = parseVersionParam(c.req.query('version'), 'node');
    const body = await readJsonObject(c, 'node spec', ['Name', 'Labels', 'Role', 'Availability']);
    const update: { -readonly [K in keyof NodeUpdate]: NodeUpdate[K] } = {};
    if (body.Role !== undefined) {
      if (body.Role !== 'manager' && body.Role !== 'worker')
        throw invalid('Invalid node spec: Role must be manager or worker');
      update.role = body.Role;
    }
    if (body.Availability !== undefined) {
      if (
        body.Availability !== 'active' &&
        body.Availability !== 'pause' &&
        body.Availability !== 'drain'
      )
        throw invalid('Invalid node spec: Availability must be active, pause or drain');
      update.availability = body.Availability;
    }
    if (body.Labels !== undefined) update.labels = checkLabels(body.Labels, 'node');
    await backend.updateNode(c.req.param('id'), expectedIndex, update);
    return c.body(null, 200);
  });

  api.delete('/nodes/:id', allow('DELETE /nodes/:id'), async (c) => {
    await backend.removeNode(c.req.param('id'), parseBoolParam(c.req.query('force')));
    return c.body(null, 200);
  });

  return api;
}
