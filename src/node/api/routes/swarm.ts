/** Docker-shaped swarm routes: inspect (join tokens for managers), update and rotations, unlock; and secretd's DEK rotation. */
import { Hono, type Context } from 'hono';
import { invalid, SecretdError } from '../../../errors.ts';
import { checkLabels, checkNodeCertExpiry } from '../../store/index.ts';
import type { ClusterRecord } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import { seesJoinTokens } from '../access.ts';
import type { Backend, SwarmUpdate } from '../backend.ts';
import {
  parseStrictBoolParam,
  parseVersionParam,
  readJsonObject,
  refuseUnknownFields,
  type FieldTree,
} from '../request.ts';
import { swarmJSON } from '../shapes.ts';

/** Docker's SwarmSpec. secretd acts on Labels and autolock; the rest are its fixed settings. */
const swarmSpecFields: FieldTree = {
  Name: null,
  Labels: null,
  Orchestration: { TaskHistoryRetentionLimit: null },
  Raft: {
    SnapshotInterval: null,
    KeepOldSnapshots: null,
    LogEntriesForSlowFollowers: null,
    ElectionTick: null,
    HeartbeatTick: null,
  },
  Dispatcher: { HeartbeatPeriod: null },
  CAConfig: {
    NodeCertExpiry: null,
    ExternalCAs: null,
    SigningCACert: null,
    SigningCAKey: null,
    ForceRotate: null,
  },
  TaskDefaults: { LogDriver: null },
  EncryptionConfig: { AutoLockManagers: null },
};

/**
 * The sections of settings secretd reports in `GET /swarm` but does not let change. CAConfig is
 * fixed but for NodeCertExpiry (`docker swarm update --cert-expiry`), read by `readCAConfig`.
 */
const fixedSections = ['Orchestration', 'Raft', 'Dispatcher', 'CAConfig', 'TaskDefaults'] as const;

export function swarmRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get('/swarm', allow('GET /swarm'), async (c) => {
    // Join tokens only to the roles that may join nodes with them (access.ts).
    return c.json(swarmJSON(await backend.cluster(), seesJoinTokens(c.get('identity'))));
  });

  api.get('/swarm/unlockkey', allow('GET /swarm/unlockkey'), async (c) => {
    return c.json({ UnlockKey: await backend.unlockKey() });
  });

  api.post('/swarm/update', allow('POST /swarm/update'), async (c) => {
    // Docker reads these flags with Go's strconv.ParseBool (`True` is true, `perhaps` is a 400).
    const update: SwarmUpdate = {
      expectedIndex: parseVersionParam(c.req.query('version'), 'swarm'),
      rotateWorkerToken: parseStrictBoolParam(
        c.req.query('rotateWorkerToken'),
        'rotateWorkerToken',
      ),
      rotateManagerToken: parseStrictBoolParam(
        c.req.query('rotateManagerToken'),
        'rotateManagerToken',
      ),
      rotateUnlockKey: parseStrictBoolParam(
        c.req.query('rotateManagerUnlockKey'),
        'rotateManagerUnlockKey',
      ),
      ...(await readSwarmSpec(c, await backend.cluster())),
    };
    await backend.updateSwarm(update);
    return c.body(null, 200);
  });

  // secretd's own: every manager seals its log under a new DEK (README, "Keys and encryption at rest").
  api.post('/secretd/rotate-keys', allow('POST /secretd/rotate-keys'), async (c) => {
    const { rotation, encryption } = await backend.rotateDataKeys();
    return c.json({ Rotation: rotation, Encryption: encryption });
  });

  api.post('/swarm/unlock', allow('POST /swarm/unlock'), async (c) => {
    const body = await readJsonObject(c, 'unlock request', ['UnlockKey']);
    if (typeof body.UnlockKey !== 'string' || body.UnlockKey === '')
      throw invalid('Invalid unlock request: UnlockKey must be provided');
    await backend.unlock(body.UnlockKey);
    return c.body(null, 200);
  });

  return api;
}

type SpecUpdate = Pick<SwarmUpdate, 'labels' | 'autolock' | 'nodeCertExpiryMs' | 'forceRotate'>;

async function readSwarmSpec(c: Context<AppEnv>, cluster: ClusterRecord): Promise<SpecUpdate> {
  const body = await readJsonObject(c, 'swarm spec', swarmSpecFields);
  refuseUnknownFields(body, swarmSpecFields, 'swarm spec');
  const reported = (swarmJSON(cluster, false) as { Spec: Record<string, unknown> }).Spec;
  const nodeCertExpiryMs = readNodeCertExpiry(body, reported);
  const forceRotate = readForceRotate(body, reported);
  refuseFixedChanges(body, reported);
  const out: { -readonly [K in keyof SpecUpdate]: SpecUpdate[K] } = {};
  if (forceRotate !== undefined) out.forceRotate = forceRotate;
  if (nodeCertExpiryMs !== undefined) out.nodeCertExpiryMs = nodeCertExpiryMs;
  if (body.Labels !== undefined) out.labels = checkLabels(body.Labels, 'swarm');
  const encryption = body.EncryptionConfig;
  if (encryption !== undefined && encryption !== null) {
    if (typeof encryption !== 'object' || Array.isArray(encryption))
      throw invalid('Invalid swarm spec: EncryptionConfig must be an object');
    const autolock = (encryption as Record<string, unknown>).AutoLockManagers;
    if (autolock !== undefined) {
      if (typeof autolock !== 'boolean')
        throw invalid(
          'Invalid swarm spec: EncryptionConfig.AutoLockManagers must be true or false',
        );
      out.autolock = autolock;
    }
  }
  return out;
}

/**
 * `Spec.CAConfig.NodeCertExpiry` (nanoseconds, as Docker's): a new validity for node certificates
 * issued from now on, checked as the store checks it (1 minute to 20 years; the manager refuses
 * more than the root CA's remaining life). Returned in milliseconds when it changes; it is then
 * taken out of `body` so that the fixed-settings check sees only the rest of CAConfig.
 */
function readNodeCertExpiry(
  body: Record<string, unknown>,
  reported: Record<string, unknown>,
): number | undefined {
  const ca = body.CAConfig;
  if (typeof ca !== 'object' || ca === null || Array.isArray(ca)) return undefined;
  const { NodeCertExpiry: given, ...rest } = ca as Record<string, unknown>;
  const current = (reported.CAConfig as { NodeCertExpiry?: unknown } | undefined)?.NodeCertExpiry;
  body.CAConfig = rest;
  // Go's zero value: a client that does not set it (Docker's own default applies: keep ours).
  if (given === undefined || given === null || given === 0 || given === current) return undefined;
  if (typeof given !== 'number' || !Number.isInteger(given) || given < 0)
    throw invalid(
      'Invalid swarm spec: CAConfig.NodeCertExpiry must be a whole number of nanoseconds',
    );
  return checkNodeCertExpiry(Math.round(given / 1e6));
}

/**
 * `Spec.CAConfig.ForceRotate` (`docker swarm ca --rotate` sends it incremented): a value other than
 * the reported one (absent: 0, as Docker omits it) starts a root CA rotation with a new root
 * secretd makes. Taken out of `body` like NodeCertExpiry; a root supplied by the client
 * (SigningCACert, SigningCAKey: `--ca-cert`, `--ca-key`) or external CAs (`--external-ca`) stay
 * fixed settings, refused (501) naming the field by `refuseFixedChanges`.
 */
function readForceRotate(
  body: Record<string, unknown>,
  reported: Record<string, unknown>,
): number | undefined {
  const ca = body.CAConfig;
  if (typeof ca !== 'object' || ca === null || Array.isArray(ca)) return undefined;
  const { ForceRotate: given, ...rest } = ca as Record<string, unknown>;
  body.CAConfig = rest;
  const current = (reported.CAConfig as { ForceRotate?: unknown } | undefined)?.ForceRotate ?? 0;
  if (given === undefined || given === null || given === current) return undefined;
  if (typeof given !== 'number' || !Number.isSafeInteger(given) || given < 0)
    throw invalid('Invalid swarm spec: CAConfig.ForceRotate must be a whole number, 0 or more');
  return given;
}

/**
 * secretd's Raft, dispatcher, CA and orchestration settings are fixed (`GET /swarm` reports them):
 * a value equal to the reported one is accepted, since clients send back what inspect returned, and
 * a change is refused (501) naming the field, never answered 200 and ignored.
 */
function refuseFixedChanges(
  body: Record<string, unknown>,
  reported: Record<string, unknown>,
): void {
  if (
    body.Name !== undefined &&
    body.Name !== null &&
    body.Name !== '' &&
    body.Name !== reported.Name
  ) {
    throw new SecretdError(
      'unimplemented',
      `secretd does not support renaming the swarm (Spec.Name is ${JSON.stringify(reported.Name)})`,
    );
  }
  for (const section of fixedSections) {
    const given = body[section];
    if (given === undefined || given === null) continue;
    if (typeof given !== 'object' || Array.isArray(given))
      throw invalid(`Invalid swarm spec: ${section} must be an object`);
    const current = reported[section] as Record<string, unknown>;
    for (const [field, value] of Object.entries(given)) {
      if (value === undefined || value === null || sameSetting(value, current[field])) continue;
      const now = current[field] === undefined ? 'not set' : JSON.stringify(current[field]);
      throw new SecretdError(
        'unimplemented',
        `secretd does not support changing its ${section} settings: Spec.${section}.${field} is ${now} here, not ${JSON.stringify(value).slice(0, 80)}`,
      );
    }
  }
}

/** Equal to the reported value; for a setting secretd does not report, Go's zero value (0, "", false, empty). */
function sameSetting(value: unknown, reported: unknown): boolean {
  if (reported !== undefined) return JSON.stringify(value) === JSON.stringify(reported);
  if (Array.isArray(value)) return value.length === 0;
  if (typeof value === 'object' && value !== null)
    return Object.values(value).every((v) => v === null || v === undefined);
  return value === 0 || value === '' || value === false;
}
