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
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
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
        res.on('end', () =>
          settle(() =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          ),
        );
        res.on('error', (error) => settle(() => reject(error)));
      },
    );
    // A timer of our own, not req.setTimeout: Bun 1.4.5's keep-alive Agent, after C failed
    // connects, queues later requests forever without giving them a socket to time out on.
    const timer = setTimeout(() => {
      settle(() => reject(new Error(`timed out after ${options.timeoutMs} ms`)));
      req.destroy();
    }, options.timeoutMs);
    req.on('error', (error) => settle(() => reject(error)));
    req.end(options.body);
  });
}

export interface DockerTargetOptions {
  readonly socketPath: string;
  /** Size of the keep-alive connection pool: one connection per concurrent request. */
  readonly concurrency: number;
  readonly requestTimeoutMs: number;
}

/** Connect errors that mean dockerd is gone, not that one request failed. */
const daemonGoneCodes = new Set(['ENOENT', 'ECONNREFUSED']);

export function dockerTarget(options: DockerTargetOptions): CreateTarget {
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  // Once dockerd is gone, stop using the Agent: in Bun 1.4.5 a keep-alive Agent whose connects
  // keep failing wedges, and then throws its sockets' errors as uncaught exceptions.
  let gone: string | undefined;
  const send = async (
    method: 'POST' | 'DELETE',
    path: string,
    body?: string,
  ): Promise<HttpAnswer> => {
    if (gone !== undefined) throw new Error(`not sent, dockerd is gone (${gone})`);
    try {
      return await dockerRequest({
        socketPath: options.socketPath,
        method,
        path: `${dockerApiPrefix}${path}`,
        timeoutMs: options.requestTimeoutMs,
        agent,
        ...(body === undefined ? {} : { body }),
      });
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code;
      if (typeof code === 'string' && daemonGoneCodes.has(code)) gone = code;
      throw error;
    }
  };
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
