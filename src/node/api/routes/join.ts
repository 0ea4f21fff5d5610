/**
 * The two join routes: the only ones (with /_ping) a connection without a client certificate may
 * reach. A joiner fetches the CA (and checks it against its token's digest), then sends its token
 * and a CSR; the manager answers with a certificate for the token's role.
 */
import { Hono, type Context } from 'hono';
import { invalid } from '../../../errors.ts';
import { joinRequestBytesMax } from '../../../limits.ts';
import { peerPaths } from '../../peers/index.ts';
import type { NodeResources } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend } from '../backend.ts';
import { parseJsonObject, readBodyBytes } from '../request.ts';

export function joinRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();

  api.get(peerPaths.joinCA, allow(`GET ${peerPaths.joinCA}`), async (c) =>
    c.json({ CA: await backend.joinCA() }),
  );

  api.post(peerPaths.join, allow(`POST ${peerPaths.join}`), async (c) => {
    // Anyone may reach this route: it buffers no more than a CSR and its fields need.
    const body = parseJsonObject(await readBodyBytes(c, joinRequestBytesMax), 'join request', [
      'Token',
      'CSR',
      'Addr',
      'Hostname',
      'Resources',
    ]);
    for (const field of ['Token', 'CSR', 'Addr', 'Hostname'] as const) {
      if (typeof body[field] !== 'string' || body[field] === '')
        throw invalid(`Invalid join request: ${field} must be provided`);
    }
    const answer = await backend.join({
      token: body.Token as string,
      csrPem: body.CSR as string,
      addr: body.Addr as string,
      hostname: body.Hostname as string,
      resources: readResources(body.Resources),
      observedIp: remoteAddress(c),
    });
    return c.json(answer, 201);
  });

  return api;
}

function remoteAddress(c: Context<AppEnv>): string | null {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)
    ?.incoming;
  return incoming?.socket?.remoteAddress ?? null;
}

function readResources(value: unknown): NodeResources | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value))
    throw invalid('Invalid join request: Resources must be an object');
  const { NanoCPUs, MemoryBytes, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0)
    throw invalid('Invalid join request: Resources takes only NanoCPUs and MemoryBytes');
  if (typeof NanoCPUs !== 'number' || typeof MemoryBytes !== 'number')
    throw invalid(
      'Invalid join request: Resources.NanoCPUs and Resources.MemoryBytes must be numbers',
    );
  for (const [field, number] of [
    ['NanoCPUs', NanoCPUs],
    ['MemoryBytes', MemoryBytes],
  ] as const) {
    if (!Number.isSafeInteger(number) || number < 0)
      throw invalid(`Invalid join request: Resources.${field} must be a whole number, 0 or more`);
  }
  return { nanoCpus: NanoCPUs, memoryBytes: MemoryBytes };
}
