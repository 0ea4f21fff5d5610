/**
 * Docker Engine API over its unix socket. dockerd speaks HTTP/1.1 there, so concurrency comes from
 * a keep-alive pool of C connections rather than from streams on one connection as with secretd.
 */
import { Agent, request } from 'node:http';
import { createOutcome, errorReason, type HttpAnswer } from './create-outcome.ts';
import type { CreateTarget } from './load.ts';

/**
 * The newest API version Debian's docker.io 20.10 speaks; an engine that has dropped it needs this
 * raised (the request shape for secrets has not changed).
 */
export const dockerApiPrefix = '/v1.41';

export interface DockerRequestOptions {
  readonly socketPath: string;
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: string;
  readonly timeoutMs: number;
  /** Omitted: a fresh connection closed after the answer (fine for setup, not for load). */
  readonly agent?: Agent;
}

export function dockerRequest(options: DockerRequestOptions): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = Buffer.byteLength(options.body);
    }
    const req = request(
      {
        socketPath: options.socketPath,
        method: options.method,
        path: options.path,
        headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`timed out after ${options.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface DockerTargetOptions {
  readonly socketPath: string;
  readonly concurrency: number;
  readonly requestTimeoutMs: number;
}

export function dockerTarget(options: DockerTargetOptions): CreateTarget {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  const send = (method: 'POST' | 'DELETE', path: string, body?: string): Promise<HttpAnswer> =>
    dockerRequest({
      socketPath: options.socketPath,
      method,
      path: `${dockerApiPrefix}${path}`,
      timeoutMs: options.requestTimeoutMs,
      agent,
      ...(body === undefined ? {} : { body }),
    });
  return {
    label: 'docker',
    create: (body) =>
      send('POST', '/secrets/create', body).then(createOutcome, (error: unknown) => ({
        ok: false as const,
        reason: errorReason(error),
      })),
    remove: (id) =>
      send('DELETE', `/secrets/${encodeURIComponent(id)}`).then(
        (answer) => answer.status === 204 || answer.status === 200,
        () => false,
      ),
    close: async () => agent.destroy(),
  };
}
