/**
 * secretd's own secret routes, beside the Docker-shaped ones (whose `/update` keeps Docker's rule:
 * labels only): versions of a secret's data, rollback, and the retention setting. Data goes in as
 * base64 and never comes out.
 */
import { Hono, type Context } from 'hono';
import { invalid } from '../../../errors.ts';
import { checkSecretData, checkVersionNumber, checkVersionsKept } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend, SecretVersionView, VersionOutcome } from '../backend.ts';
import { decodeBase64Field, readJsonObject } from '../request.ts';

export function secretVersionRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get(
    '/secretd/secrets/:id/versions',
    allow('GET /secretd/secrets/:id/versions', backend),
    async (c) => {
      const { secret, versions } = await backend.listSecretVersions(c.req.param('id'));
      return c.json({ ID: secret.id, Name: secret.name, Versions: versions.map(versionJSON) });
    },
  );

  api.post(
    '/secretd/secrets/:id/versions',
    allow('POST /secretd/secrets/:id/versions', backend),
    async (c) => {
      const body = await readJsonObject(c, 'secret version', ['Data', 'IfVersion']);
      if (body.Data === undefined || body.Data === null)
        throw invalid('Invalid secret version: Data (base64) must be provided');
      const ifVersion = optionalVersion(body.IfVersion, 'IfVersion');
      const data = decodeBase64Field(body.Data, 'secret data');
      checkSecretData(data);
      return outcomeAnswer(c, await backend.addSecretVersion(c.req.param('id'), data, ifVersion));
    },
  );

  api.post(
    '/secretd/secrets/:id/rollback',
    allow('POST /secretd/secrets/:id/rollback', backend),
    async (c) => {
      const body = await readJsonObject(c, 'secret rollback', ['To', 'IfVersion']);
      const to = checkVersionNumber(body.To, 'rollback target To');
      const ifVersion = optionalVersion(body.IfVersion, 'IfVersion');
      return outcomeAnswer(c, await backend.rollbackSecret(c.req.param('id'), to, ifVersion));
    },
  );

  api.delete(
    '/secretd/secrets/:id/versions/:version',
    allow('DELETE /secretd/secrets/:id/versions/:version', backend),
    async (c) => {
      await backend.removeSecretVersion(
        c.req.param('id'),
        checkVersionNumber(c.req.param('version'), 'version'),
      );
      return c.body(null, 204);
    },
  );

  api.get('/secretd/settings', allow('GET /secretd/settings'), async (c) => {
    return c.json({ SecretVersionsKept: (await backend.secretSettings()).versionsKept });
  });

  api.post('/secretd/settings', allow('POST /secretd/settings'), async (c) => {
    const body = await readJsonObject(c, 'settings', ['SecretVersionsKept']);
    if (body.SecretVersionsKept === undefined)
      throw invalid('Invalid settings: nothing to change (give SecretVersionsKept)');
    await backend.updateSecretSettings({
      versionsKept: checkVersionsKept(body.SecretVersionsKept),
    });
    return c.json({ SecretVersionsKept: (await backend.secretSettings()).versionsKept });
  });

  return api;
}

function optionalVersion(value: unknown, what: string): number | null {
  return value === undefined || value === null ? null : checkVersionNumber(value, what);
}

function versionJSON(view: SecretVersionView): object {
  return {
    Version: view.version,
    CreatedAt: view.createdAt,
    InUseBy: {
      Services: view.services.map((s) => ({ ID: s.id, Name: s.name, Pinned: s.pinned })),
      Tasks: view.tasks.map((t) => ({ ID: t.id, Name: t.name })),
    },
  };
}

/** A new version or rollback: 201 with the version it made, or 200 with the one it already was. */
function outcomeAnswer(c: Context<AppEnv>, outcome: VersionOutcome): Response {
  return c.json(
    { Version: outcome.version, Changed: outcome.changed },
    outcome.changed ? 201 : 200,
  );
}
