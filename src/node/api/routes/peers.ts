/**
 * Between managers (manager certificates only; the Raft stream itself is in stream-routes.ts): writes forwarded to the leader and
 * node operations run on the leader. And the two join routes, the only ones a connection without a
 * client certificate may reach.
 */
import type { Context, Hono } from 'hono';
import { invalid, SecretdError } from '../../../errors.ts';
import { parseCommand, type NodeResources } from '../../store/index.ts';
import { requireRole, type AppEnv } from '../app.ts';
import type { Backend, NodeUpdate } from '../backend.ts';
import { joinRequestBytesMax } from '../../../limits.ts';
import { parseBoolParam, parseJsonObject, readBodyBytes, readJsonObject } from '../request.ts';

export function raftRoutes(api: Hono<AppEnv>, backend: Backend): void {
  api.get('/secretd/join/ca', async (c) => c.json({ CA: await backend.joinCA() }));

  api.post('/secretd/join', async (c) => {
    // Anyone may reach this route: it buffers no more than a CSR and its fields need.
    const body = parseJsonObject(await readBodyBytes(c, joinRequestBytesMax), 'join request', ['Token', 'CSR', 'Addr', 'Hostname', 'Resources']);
    for (const field of ['Token', 'CSR', 'Addr', 'Hostname'] as const) {
      if (typeof body[field] !== 'string' || body[field] === '') throw invalid(`Invalid join request: ${field} must be provided`);
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

  api.get('/secretd/raft/status', (c) => {
    requireRole(c, ['admin', 'manager'], 'read the Raft status');
    return c.json(backend.raftStatus());
  });

  api.post('/secretd/raft/propose', async (c) => {
    requireRole(c, ['manager'], 'forward writes');
    const body = await readJsonObject(c, 'forwarded write', ['Command']);
    // The schema every command meets (the store checks it again before applying): a malformed one is a 400, never a log entry.
    return c.json(await backend.proposeForwarded(parseCommand(body.Command)));
  });

  api.post('/secretd/internal/exec', async (c) => {
    requireRole(c, ['manager'], 'use internal routes');
    const body = await readJsonObject(c, 'exec request', ['Task', 'Cmd']);
    return c.json(await backend.exec(String(body.Task), (body.Cmd as string[]) ?? []));
  });

  api.get('/secretd/internal/nodes', async (c) => {
    requireRole(c, ['manager'], 'use internal routes');
    return c.json(await backend.listNodes());
  });
  api.get('/secretd/internal/nodes/:id', async (c) => {
    requireRole(c, ['manager'], 'use internal routes');
    return c.json(await backend.getNode(c.req.param('id')));
  });
  api.post('/secretd/internal/nodes/:id/update', async (c) => {
    requireRole(c, ['manager'], 'use internal routes');
    const body = await readJsonObject(c, 'node update', ['ExpectedIndex', 'Update']);
    await backend.updateNode(c.req.param('id'), Number(body.ExpectedIndex), body.Update as NodeUpdate);
    return c.json(null);
  });
  api.delete('/secretd/internal/nodes/:id', async (c) => {
    requireRole(c, ['manager'], 'use internal routes');
    await backend.removeNode(c.req.param('id'), parseBoolParam(c.req.query('force')));
    return c.json(null);
  });
}

function remoteAddress(c: Context<AppEnv>): string | null {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ?? null;
}

export function forbiddenAnonymous(): SecretdError {
  return new SecretdError('forbidden', 'Permission denied: a client certificate signed by the cluster CA is required');
}

function readResources(value: unknown): NodeResources | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid('Invalid join request: Resources must be an object');
  const { NanoCPUs, MemoryBytes, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw invalid('Invalid join request: Resources takes only NanoCPUs and MemoryBytes');
  if (typeof NanoCPUs !== 'number' || typeof MemoryBytes !== 'number') throw invalid('Invalid join request: Resources.NanoCPUs and Resources.MemoryBytes must be numbers');
  for (const [field, number] of [['NanoCPUs', NanoCPUs], ['MemoryBytes', MemoryBytes]] as const) {
    if (!Number.isSafeInteger(number) || number < 0) throw invalid(`Invalid join request: Resources.${field} must be a whole number, 0 or more`);
  }
  return { nanoCpus: NanoCPUs, memoryBytes: MemoryBytes };
}
