/**
 * Taking a backup: the store as it is at one applied Raft index, serialized in one synchronous
 * step (its snapshot form, the same bytes a Raft snapshot seals: secrets with every kept version,
 * services and tasks, nodes, the cluster record with the CA key and join tokens, client
 * certificate records, the audit trail), then sealed chunk by chunk as the reader pulls
 * (crypto/backup-format.ts). Writes go on meanwhile: nothing waits for the reader.
 */
import { BackupSealer, type BackupCounts, type BackupHeader } from '../../crypto/backup-format.ts';
import type { Random } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { backupChunkBytes } from '../../limits.ts';
import type { Store } from '../store/index.ts';

export interface BackupStreamOptions {
  /** The backup key (32 bytes); the caller keeps it and shows it once. */
  readonly key: Uint8Array;
  readonly random: Random;
  /** When the backup is taken (ISO 8601), for the header. */
  readonly at: string;
}

export interface BackupStream {
  readonly header: BackupHeader;
  /** The file's bytes: the header, then each chunk sealed when the reader asks for it. */
  readonly stream: ReadableStream<Uint8Array>;
}

/** Counts for the readable header: numbers only, never a name. */
export function countsOf(store: Store): BackupCounts {
  let secrets = 0;
  let versions = 0;
  for (const secret of store.secrets()) {
    secrets++;
    versions += secret.versions.length;
  }
  return {
    secrets,
    versions,
    services: store.workloads.snapshot().services.length,
    nodes: [...store.nodes()].length,
    clientCerts: store.clientCerts.size,
    auditRecords: store.audit.size,
  };
}

/** The store as it is now, as a backup stream. Must be called with an applied, linearizable store. */
export function backupStream(store: Store, options: BackupStreamOptions): BackupStream {
  const cluster = store.cluster;
  if (cluster === null)
    throw new SecretdError('unavailable', 'Cannot back up: the cluster is not initialized yet');
  // One synchronous step: the bytes and the index are of the same applied state.
  const index = store.appliedIndex;
  let plaintext: Uint8Array | null = store.snapshot();
  const sealer = new BackupSealer(
    options.key,
    { clusterId: cluster.id, index, createdAt: options.at, counts: countsOf(store) },
    options.random,
  );
  let offset = 0;
  let headerSent = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (!headerSent) {
        headerSent = true;
        controller.enqueue(sealer.headerBytes);
        return;
      }
      if (plaintext === null) return;
      const piece = plaintext.subarray(offset, offset + backupChunkBytes);
      offset += piece.length;
      const final = offset >= plaintext.length;
      controller.enqueue(sealer.chunk(piece, final));
      if (final) {
        // Best effort under a GC: our copy of the store's bytes is zeroed once sealed.
        plaintext.fill(0);
        plaintext = null;
        controller.close();
      }
    },
    cancel() {
      plaintext?.fill(0);
      plaintext = null;
    },
  });
  return { header: sealer.header, stream };
}
