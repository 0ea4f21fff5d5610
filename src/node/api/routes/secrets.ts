/** Docker-shaped secret routes. Data goes in as base64 and never comes out. */
import { Hono } from 'hono';
import { invalid } from '../../../errors.ts';
import { checkLabels, checkSecretData, checkSecretName } from '../../store/index.ts';
import type { SecretRecord } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import { checkSecretScope, ruleOf, visibleSecrets } from '../access.ts';
import type { Backend, Identity, SecretSpecInput } from '../backend.ts';
import { requestBodyBytesMax } from '../../../limits.ts';
import {
  decodeBase64Field,
  parseFilters,
  parseJsonObjectWithBase64,
  parseVersionParam,
  readBodyBytes,
  zeroedIfRefused,
} from '../request.ts';
import { secretJSON } from '../shapes.ts';

const specFields = ['Name', 'Labels', 'Data', 'Driver', 'Templating'];

export function secretRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get('/secrets', allow('GET /secrets'), async (c) => {
    const filters = parseFilters(c.req.query('filters'), ['id', 'name', 'names', 'label']);
    // A writer with a scope sees only the secrets in it.
    const secrets = visibleSecrets(c.get('identity'), await backend.listSecrets()).filter((s) =>
      matchesFilters(s, filters),
    );
    secrets.sort((a, b) =>
      a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : 1,
    );
    return c.json(secrets.map(secretJSON));
  });

  api.post(createSecretRoute, allow(createSecretKey), async (c) => {
    const bytes = await readBodyBytes(c, requestBodyBytesMax);
    return c.json(await createSecret(backend, bytes, c.get('identity')), 201);
  });

  api.get('/secrets/:id', allow('GET /secrets/:id', backend), async (c) => {
    return c.json(secretJSON(await backend.getSecret(c.req.param('id'))));
  });

  api.post('/secrets/:id/update', allow('POST /secrets/:id/update', backend), async (c) => {
    const expectedIndex = parseVersionParam(c.req.query('version'), 'secret');
    const bytes = await readBodyBytes(c, requestBodyBytesMax);
    const { body, decoded } = parseJsonObjectWithBase64(bytes, 'secret', specFields, 'Data');
    const spec = zeroedIfRefused(decoded, () => {
      rejectDriver(body);
      const name = checkSecretName(body.Name);
      const labels = checkLabels(body.Labels, 'secret');
      const data =
        decoded ??
        (body.Data === undefined || body.Data === null
          ? null
          : decodeBase64Field(body.Data, 'secret data'));
      return { name, labels, data };
    });
    await backend.updateSecret(c.req.param('id'), expectedIndex, spec);
    return c.body(null, 200);
  });

  api.delete('/secrets/:id', allow('DELETE /secrets/:id', backend), async (c) => {
    await backend.removeSecret(c.req.param('id'));
    return c.body(null, 204);
  });

  return api;
}

export const createSecretRoute = '/secrets/create';
export const createSecretKey = `POST ${createSecretRoute}`;
/** Its access rule, looked up once rather than at every create. */
const createSecretRule = ruleOf(createSecretKey);

/**
 * The create route's work once its caller is admitted (role checked): served through hono and by
 * the TLS port's stream route (stream-routes.ts), so both give the same answers. A writer's scope
 * is checked here, on the name in the body, before anything else of it is checked; a value
 * decoded with the body (parseJsonObjectWithBase64) is zeroed when a check refuses it.
 */
export async function createSecret(
  backend: Backend,
  bytes: Uint8Array,
  identity: Identity,
): Promise<{ ID: string }> {
  const { body, decoded } = parseJsonObjectWithBase64(bytes, 'secret', specFields, 'Data');
  const spec = zeroedIfRefused(decoded, (): SecretSpecInput => {
    rejectDriver(body);
    const name = checkSecretName(body.Name);
    checkSecretScope(identity, createSecretRule, name);
    const labels = checkLabels(body.Labels, 'secret');
    if (decoded === undefined && (body.Data === undefined || body.Data === null))
      throw invalid('Invalid secret data: Data (base64) must be provided');
    const data = decoded ?? decodeBase64Field(body.Data, 'secret data');
    checkSecretData(data);
    return { name, labels, data };
  });
  return { ID: await backend.createSecret(spec) };
}

function rejectDriver(body: Record<string, unknown>): void {
  if (body.Driver !== undefined && body.Driver !== null)
    throw invalid(
      'Invalid secret: secret drivers (external providers) are not supported by secretd',
    );
  if (body.Templating !== undefined && body.Templating !== null)
    throw invalid('Invalid secret: templated secrets are not supported by secretd');
}

/** Docker's semantics: `names` exact and `name`/`id` prefix filters are OR-ed, labels AND-ed. */
function matchesFilters(secret: SecretRecord, filters: Map<string, string[]>): boolean {
  const names = filters.get('names') ?? [];
  const namePrefixes = filters.get('name') ?? [];
  const idPrefixes = filters.get('id') ?? [];
  if (names.length + namePrefixes.length + idPrefixes.length > 0) {
    const lower = secret.name.toLowerCase();
    const hit =
      names.some((n) => n.toLowerCase() === lower) ||
      namePrefixes.some((p) => lower.startsWith(p.toLowerCase())) ||
      idPrefixes.some((p) => secret.id.startsWith(p));
    if (!hit) return false;
  }
  for (const label of filters.get('label') ?? []) {
    const eq = label.indexOf('=');
    const key = eq === -1 ? label : label.slice(0, eq);
    if (!(key in secret.labels)) return false;
    if (eq !== -1 && secret.labels[key] !== label.slice(eq + 1)) return false;
  }
  return true;
}
