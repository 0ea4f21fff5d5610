/** Docker-shaped swarm routes: inspect (join tokens for managers), update and rotations, unlock. */
import type { Context, Hono } from 'hono';
import { invalid } from '../../errors.ts';
import { checkLabels } from '../store/secret-rules.ts';
import { requireRole, type AppEnv } from './app.ts';
import type { Backend, SwarmUpdate } from './backend.ts';
import { parseBoolParam, parseVersionParam, readJsonObject } from './request.ts';
import { swarmJSON } from './shapes.ts';

/** Spec fields Docker's CLI sends back on `swarm update`; secretd acts on Labels and autolock. */
const swarmSpecFields = ['Name', 'Labels', 'Orchestration', 'Raft', 'Dispatcher', 'CAConfig', 'TaskDefaults', 'EncryptionConfig'];

export function swarmRoutes(api: Hono<AppEnv>, backend: Backend): void {
  api.get('/swarm', async (c) => {
    requireRole(c, ['admin', 'manager'], 'inspect the swarm');
    return c.json(swarmJSON(await backend.cluster(), true));
  });

  api.get('/swarm/unlockkey', async (c) => {
    requireRole(c, ['admin', 'manager'], 'read the unlock key');
    return c.json({ UnlockKey: await backend.unlockKey() });
  });

  api.post('/swarm/update', async (c) => {
    requireRole(c, ['admin', 'manager'], 'update the swarm');
    const update: SwarmUpdate = {
      expectedIndex: parseVersionParam(c.req.query('version'), 'swarm'),
      rotateWorkerToken: parseBoolParam(c.req.query('rotateWorkerToken'), 'rotateWorkerToken'),
      rotateManagerToken: parseBoolParam(c.req.query('rotateManagerToken'), 'rotateManagerToken'),
      rotateUnlockKey: parseBoolParam(c.req.query('rotateManagerUnlockKey'), 'rotateManagerUnlockKey'),
      ...(await readSwarmSpec(c)),
    };
    await backend.updateSwarm(update);
    return c.body(null, 200);
  });

  api.post('/swarm/unlock', async (c) => {
    requireRole(c, ['admin', 'manager'], 'unlock a manager');
    const body = await readJsonObject(c, 'unlock request', ['UnlockKey']);
    if (typeof body.UnlockKey !== 'string' || body.UnlockKey === '') throw invalid('Invalid unlock request: UnlockKey must be provided');
    await backend.unlock(body.UnlockKey);
    return c.body(null, 200);
  });
}

type SpecUpdate = Pick<SwarmUpdate, 'labels' | 'autolock'>;

async function readSwarmSpec(c: Context<AppEnv>): Promise<SpecUpdate> {
  const body = await readJsonObject(c, 'swarm spec', swarmSpecFields);
  const out: { -readonly [K in keyof SpecUpdate]: SpecUpdate[K] } = {};
  if (body.Labels !== undefined) out.labels = checkLabels(body.Labels, 'swarm');
  const encryption = body.EncryptionConfig;
  if (encryption !== undefined && encryption !== null) {
    if (typeof encryption !== 'object' || Array.isArray(encryption)) throw invalid('Invalid swarm spec: EncryptionConfig must be an object');
    const autolock = (encryption as Record<string, unknown>).AutoLockManagers;
    if (autolock !== undefined) {
      if (typeof autolock !== 'boolean') throw invalid('Invalid swarm spec: EncryptionConfig.AutoLockManagers must be true or false');
      out.autolock = autolock;
    }
  }
  return out;
}
