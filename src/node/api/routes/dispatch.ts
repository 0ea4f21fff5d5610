/** A node's session with the leader's dispatcher, and what the node sends back. Node certificates only. */
import { Hono, type Context } from 'hono';
import { invalid } from '../../../errors.ts';
import { execOutputBytesMax } from '../../../limits.ts';
import { peerPaths } from '../../peers/index.ts';
import {
  sessionInstanceParam,
  sessionInstancePattern,
  type SessionClaim,
} from '../../task-dispatch/index.ts';
import type { TaskStatusUpdate } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend } from '../backend.ts';
import { presentedCertificate } from '../peer-certificate.ts';
import { readJsonObject } from '../request.ts';

const taskStates = new Set([
  'preparing',
  'starting',
  'running',
  'complete',
  'shutdown',
  'failed',
  'rejected',
]);

export function dispatchRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  api.get(peerPaths.session, allow(`GET ${peerPaths.session}`), (c) => {
    const stream = backend.openSession(c.get('identity'), sessionClaim(c));
    return new Response(stream, {
      status: 200,
      headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' },
    });
  });

  api.post(peerPaths.heartbeat, allow(`POST ${peerPaths.heartbeat}`), (c) => {
    backend.sessionHeartbeat(c.get('identity'));
    return c.body(null, 204);
  });

  api.post(peerPaths.status, allow(`POST ${peerPaths.status}`), async (c) => {
    const from = c.get('identity');
    const body = await readJsonObject(c, 'status report', ['Updates']);
    if (!Array.isArray(body.Updates) || body.Updates.length > 1000)
      throw invalid('Invalid status report: Updates must be a list of at most 1000');
    await backend.sessionStatus(from, body.Updates.map(checkUpdate));
    return c.body(null, 204);
  });

  api.post(peerPaths.execResult, allow(`POST ${peerPaths.execResult}`), async (c) => {
    const from = c.get('identity');
    const body = await readJsonObject(c, 'exec result', ['Id', 'code', 'stdout', 'stderr']);
    if (
      typeof body.Id !== 'string' ||
      typeof body.code !== 'number' ||
      typeof body.stdout !== 'string' ||
      typeof body.stderr !== 'string'
    ) {
      throw invalid('Invalid exec result');
    }
    backend.sessionExecResult(from, body.Id, {
      code: body.code,
      stdout: body.stdout.slice(0, execOutputBytesMax),
      stderr: body.stderr.slice(0, execOutputBytesMax),
    });
    return c.body(null, 204);
  });

  return api;
}

/** The agent process's instance id (optional: an agent that sends none never replaces a live session) and the caller's address. */
function sessionClaim(c: Context<AppEnv>): SessionClaim {
  const instance = c.req.query(sessionInstanceParam);
  if (instance !== undefined && !sessionInstancePattern.test(instance)) {
    throw invalid(
      `Invalid session request: ${sessionInstanceParam} must be 16 to 64 characters of A-Z, a-z, 0-9, _ and -`,
    );
  }
  const presented = presentedCertificate(c);
  const role = presented?.role;
  return {
    instance,
    address: remoteAddress(c),
    ...(role === 'manager' || role === 'worker' ? { certificateRole: role } : {}),
    ...(presented?.notAfterMs === undefined ? {} : { certificateNotAfter: presented.notAfterMs }),
  };
}

function remoteAddress(c: Context<AppEnv>): string | undefined {
  const socket = (
    c.env as { incoming?: { socket?: { remoteAddress?: string; remotePort?: number } } } | undefined
  )?.incoming?.socket;
  const host = socket?.remoteAddress;
  if (host === undefined) return undefined;
  const port = socket?.remotePort;
  return port === undefined ? host : host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function checkUpdate(value: unknown): TaskStatusUpdate {
  const u = value as Partial<TaskStatusUpdate> | null;
  if (
    typeof u !== 'object' ||
    u === null ||
    typeof u.id !== 'string' ||
    typeof u.state !== 'string' ||
    !taskStates.has(u.state)
  )
    throw invalid('Invalid status report: bad update');
  return {
    id: u.id,
    state: u.state,
    message: String(u.message ?? '').slice(0, 1024),
    error: String(u.error ?? '').slice(0, 1024),
    exitCode: typeof u.exitCode === 'number' ? u.exitCode : null,
    secretVersions:
      typeof u.secretVersions === 'object' && u.secretVersions !== null ? u.secretVersions : {},
  };
}
