/**
 * /secretd/local/containers: this node's agent giving granted secrets to containers other engines
 * start (`secretd oci-runtime`, `secretd-runc`) and to `secretd spawn` processes. Served on the
 * admin socket only (root-only, like /var/run/docker.sock): the manager's app refuses them over TLS
 * (no remote caller prepares or erases a container's secrets on a node), and the worker's admin
 * socket app mounts the same routes. Answers carry paths, ids, names and versions, never a value.
 *
 *   POST   /secretd/local/containers      {Id, Owner, Secrets: [{Spec, Where}]} → 201 {SecretsDir, FileMounts[]}
 *   DELETE /secretd/local/containers/:id  → 200 {Erased}
 *   GET    /secretd/local/containers      → [{Id, Owner, Secrets: [{ID, Name, Version, Target}]}]
 */
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { AppEnv } from '../_gate.ts';
import { invalid, SecretdError } from '../../../errors.ts';
import { localSecretRefsMax } from '../../../limits.ts';
import {
  processStartTime,
  type LocalContainers,
  type LocalOwner,
  type LocalSecretRef,
} from '../../task-dispatch/index.ts';
import { readJsonObject } from '../request.ts';
import { parseSecretFlag, type SecretFlag } from '../../store/index.ts';

export interface LocalContainersRoutesOptions {
  /** The agent's service; null while this node runs no agent (a locked manager). */
  readonly containers: () => LocalContainers | null;
  /** Middleware run before each route: the access check (the manager's app) or nothing. */
  readonly guard: (key: string) => MiddlewareHandler<AppEnv>;
  /** Whether the request came through the admin socket. */
  readonly viaSocket: (c: Context<AppEnv>) => boolean;
}

export const localContainersPath = '/secretd/local/containers';

/** `/info`'s counts of containers and spawned processes holding granted secrets here (never names or values). */
export function localContainerCounts(containers: LocalContainers | null): {
  LocalContainers: number;
  LocalSecretFiles: number;
  LocalSecretFilesWritten: number;
} {
  const counts = containers?.counts() ?? { containers: 0, filesHeld: 0, filesWritten: 0 };
  return {
    LocalContainers: counts.containers,
    LocalSecretFiles: counts.filesHeld,
    LocalSecretFilesWritten: counts.filesWritten,
  };
}

export function localContainerRoutes(options: LocalContainersRoutesOptions): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  const service = (c: Context<AppEnv>): LocalContainers => {
    if (!options.viaSocket(c))
      // As image import: a 400 (not a role's 403), since no certificate ever may.
      throw invalid("Containers' secrets are given on the node itself, through its admin socket");
    const containers = options.containers();
    if (containers === null)
      throw new SecretdError(
        'unavailable',
        "Cannot give secrets to containers: this node's agent is not running (is the manager locked?)",
      );
    return containers;
  };

  api.post(localContainersPath, options.guard(`POST ${localContainersPath}`), async (c) => {
    const containers = service(c);
    const body = await readJsonObject(c, 'container secrets request', ['Id', 'Owner', 'Secrets']);
    if (typeof body.Id !== 'string')
      throw invalid('Invalid container secrets request: Id must be a string');
    const prepared = await containers.prepare({
      containerId: body.Id,
      owner: readOwner(body.Owner),
      refs: readLocalSecretRefs(body.Secrets),
    });
    return c.json(
      {
        SecretsDir: prepared.secretsDir,
        FileMounts: prepared.fileMounts.map((m) => ({
          Source: m.source,
          Destination: m.destination,
        })),
      },
      201,
    );
  });

  api.delete(
    `${localContainersPath}/:id`,
    options.guard(`DELETE ${localContainersPath}/:id`),
    async (c) => {
      const erased = await service(c).erase(c.req.param('id'));
      return c.json({ Erased: erased });
    },
  );

  api.get(localContainersPath, options.guard(`GET ${localContainersPath}`), (c) =>
    c.json(
      service(c)
        .list()
        .map((row) => ({
          Id: row.containerId,
          Owner: row.owner,
          Secrets: row.secrets.map((s) => ({
            ID: s.secretId,
            Name: s.name,
            Version: s.version,
            Target: s.target,
          })),
        })),
    ),
  );
  return api;
}

function readOwner(value: unknown): LocalOwner {
  const owner = (typeof value === 'object' && value !== null ? value : {}) as Record<
    string,
    unknown
  >;
  if (owner.Kind === 'runc') {
    const root = owner.Root ?? null;
    const binary = owner.Binary ?? 'runc';
    if ((root !== null && typeof root !== 'string') || typeof binary !== 'string')
      throw invalid(
        'Invalid container secrets request: Owner.Root and Owner.Binary must be strings',
      );
    if ((root !== null && !root.startsWith('/')) || binary.includes('\0') || binary === '')
      throw invalid('Invalid container secrets request: Owner.Root must be an absolute path');
    return { kind: 'runc', root, binary };
  }
  if (owner.Kind === 'process') {
    const pid = owner.Pid;
    const startTime =
      typeof pid === 'number' && Number.isInteger(pid) && pid > 1 ? processStartTime(pid) : null;
    if (startTime === null)
      throw invalid('Invalid container secrets request: Owner.Pid must be a running process');
    return { kind: 'process', pid: pid as number, startTime };
  }
  throw invalid("Invalid container secrets request: Owner.Kind must be 'runc' or 'process'");
}

/**
 * The request's references, each the `--secret` text as the runtime found it (`Spec`) and where
 * (`Where`, for messages: "environment variable SECRETD_SECRET_DB"), parsed here by the one parser.
 */
export function readLocalSecretRefs(value: unknown): LocalSecretRef[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > localSecretRefsMax)
    throw invalid(
      `Invalid container secrets request: Secrets must be a list of 1 to ${localSecretRefsMax} references`,
    );
  return value.map((item: unknown, i): LocalSecretRef => {
    const ref = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof ref.Spec !== 'string' || (ref.Where !== undefined && typeof ref.Where !== 'string'))
      throw invalid(
        `Invalid container secrets request: Secrets[${i}] must be {"Spec": "--secret text", "Where": "…"}`,
      );
    const where = ((ref.Where as string | undefined) ?? `reference ${i + 1}`).slice(0, 200);
    let flag: SecretFlag;
    try {
      flag = parseSecretFlag(ref.Spec);
    } catch (error) {
      throw invalid(
        `Cannot prepare secrets: ${where} is not a valid reference: ${(error as Error).message.replace(/^Invalid --secret:? ?/, '')}`,
      );
    }
    return {
      secret: flag.SecretName,
      target: flag.File.Name,
      uid: flag.File.UID,
      gid: flag.File.GID,
      mode: flag.File.Mode,
      onUpdate: flag.Secretd?.OnUpdate ?? 'none',
      ...(flag.Secretd?.Version === undefined ? {} : { version: flag.Secretd.Version }),
    };
  });
}
