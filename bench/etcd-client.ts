/**
 * etcd's HTTP/JSON gateway (`/v3/kv/put`, keys and values in base64) over the same HTTP/2 mutual-TLS
 * session code as secretd's client: one session, each concurrent request a stream on it. etcd
 * serves the gateway on its client port and passes each call on to its own gRPC server, which is
 * how any non-Go client without gRPC reaches it.
 */
import { errorReason, type HttpAnswer } from './create-outcome.ts';
import type { CreateOutcome, CreateTarget } from './load.ts';
import type { SecretdSession } from './secretd-client.ts';

/** The body of a put of `valueBase64` at `key` (a name, encoded here). */
export function etcdPutBody(key: string, valueBase64: string): string {
  return `{"key":"${Buffer.from(key).toString('base64')}","value":"${valueBase64}"}`;
}

/** 200 with a header carrying the new revision is a put done; anything else is an error. */
export function putOutcome(answer: HttpAnswer): CreateOutcome {
  if (answer.status !== 200)
    return {
      ok: false,
      reason: `HTTP ${answer.status}: ${answer.body.slice(0, 120).trim() || '(empty body)'}`,
    };
  try {
    const revision = (JSON.parse(answer.body) as { header?: { revision?: unknown } } | null)?.header
      ?.revision;
    if (typeof revision === 'string' && revision !== '') return { ok: true, id: revision };
  } catch {
    // Falls through: a 200 without a revision is an error like any other.
  }
  return { ok: false, reason: 'HTTP 200 without a revision in the body' };
}

/** `create` takes a body from etcdPutBody; `remove` is not used (the cluster is thrown away). */
export function etcdTarget(session: SecretdSession): CreateTarget {
  return {
    label: 'etcd',
    create: (body) =>
      session
        .request('POST', '/v3/kv/put', body)
        .then(putOutcome, (error: unknown) => ({ ok: false as const, reason: errorReason(error) })),
    remove: async () => false,
    close: () => session.close(),
  };
}
