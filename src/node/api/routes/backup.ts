/**
 * Backups (backup/, crypto/backup-format.ts), admins only:
 *
 *   POST /secretd/backup  {"Key"?: "SDBAK-1-…"}
 *        the whole store at one committed index (a linearizable read, then one synchronous
 *        snapshot of the store), streamed as a backup file sealed chunk by chunk with the key:
 *        the caller's (the CLI draws it where it runs), or else a fresh random one this manager
 *        draws and answers in the `Secretd-Backup-Key` header (for curl). Writes go on meanwhile.
 *        Headers `Secretd-Backup-Index` and `Secretd-Backup-Cluster` say what it holds.
 *   GET  /secretd/backup
 *        the same with a key this manager draws, answered in `Secretd-Backup-Key` (issue 15's
 *        form: `curl --cert … -D headers -o file https://…/secretd/backup`).
 *
 * A request that hands out every secret is a change of who holds them, GET included: its audit
 * record (action `backup`, the index in its detail) is written whoever asked, like an exec's. The
 * key's bytes are zeroed once the stream ends or is cancelled (best effort under a GC: the
 * `SDBAK-1-…` text in the header is a string and cannot be).
 */
import { Hono } from 'hono';
import { SecretdError } from '../../../errors.ts';
import { systemRandom } from '../../../io/system.ts';
import { auditContext } from '../../audit/index.ts';
import { backupStream, encodeBackupKey, parseBackupKey } from '../../backup/index.ts';
import type { Store } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend } from '../backend.ts';
import { readJsonObject } from '../request.ts';

/** What a backup needs of a node: its Raft node's store after a linearizable read (a manager). */
interface StoreSource {
  readonly raft: {
    readonly store: Store;
    linearizableRead(timeoutMs?: number): Promise<void>;
  };
}

function storeSourceOf(backend: Backend): StoreSource {
  if (!('raft' in backend))
    throw new SecretdError('unimplemented', 'This node holds no store to back up');
  return backend as unknown as StoreSource;
}

export function backupRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();

  api.post('/secretd/backup', allow('POST /secretd/backup'), async (c) => {
    const body = await readJsonObject(c, 'backup request', ['Key']);
    if (body.Key !== undefined && typeof body.Key !== 'string')
      throw new SecretdError('invalid', 'Invalid backup request: Key must be a string');
    if (body.Key === undefined) return takeBackup(backend, systemRandom(32), true);
    return takeBackup(backend, parseBackupKey(body.Key as string), false);
  });

  api.get('/secretd/backup', allow('GET /secretd/backup'), () =>
    takeBackup(backend, systemRandom(32), true),
  );

  return api;
}

/** The backup stream sealed with `key` (ours: zeroed after use), the key in a header when `drawn`. */
async function takeBackup(backend: Backend, key: Uint8Array, drawn: boolean): Promise<Response> {
  let stream: ReadableStream<Uint8Array>;
  let headers: Record<string, string>;
  try {
    ({ stream, headers } = await startBackup(backend, key));
    if (drawn) headers['secretd-backup-key'] = encodeBackupKey(key);
  } catch (error) {
    key.fill(0);
    throw error;
  }
  return new Response(zeroKeyAfter(stream, key), { status: 200, headers });
}

async function startBackup(
  backend: Backend,
  key: Uint8Array,
): Promise<{ stream: ReadableStream<Uint8Array>; headers: Record<string, string> }> {
  const raft = storeSourceOf(backend).raft;
  await raft.linearizableRead();
  const at = backend.audit?.sink.now() ?? new Date(0).toISOString();
  const { header, stream } = backupStream(raft.store, { key, random: systemRandom, at });
  const ctx = auditContext.current();
  if (backend.audit && ctx) {
    backend.audit.sink.record({
      at,
      actor: ctx.actor,
      source: ctx.source,
      action: 'backup',
      detail: `index ${header.index}, ${header.counts.secrets} secrets, ${header.counts.services} services`,
      result: 'ok',
      requestId: ctx.requestId ?? backend.audit.sink.requestId(),
    });
    // This is the request's record: the generic one for a request that proposed nothing is not needed.
    ctx.proposed = true;
  }
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    'cache-control': 'no-store',
    'secretd-backup-index': String(header.index),
    'secretd-backup-cluster': header.clusterId,
  };
  return { stream, headers };
}

/** `stream` as it is, but `key` is zeroed once it has ended, failed or been cancelled. */
function zeroKeyAfter(
  stream: ReadableStream<Uint8Array>,
  key: Uint8Array,
): ReadableStream<Uint8Array> {
  const reader = stream.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (!done) return controller.enqueue(value);
        key.fill(0);
        controller.close();
      } catch (error) {
        key.fill(0);
        throw error;
      }
    },
    async cancel(reason) {
      key.fill(0);
      await reader.cancel(reason);
    },
  });
}
