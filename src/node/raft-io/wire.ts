/**
 * Raft messages on the wire between managers: a batch is one binary body
 *
 *   u32 headerBytes | header JSON | (u32 length | bytes)*
 *
 * where the JSON carries every field and each Uint8Array (entry data, snapshot data) is replaced by
 * the index of its blob. Bytes travel raw, not as base64: snapshots can be megabytes.
 */
import { SecretdError } from '../../errors.ts';
import { raftBatchBytesMax } from '../../limits.ts';
import type { Message } from '../../raft/types.ts';

const blobTag = '\u0000blob:';

export function encodeMessages(messages: readonly Message[]): Uint8Array {
  const blobs: Uint8Array[] = [];
  const tag = (bytes: Uint8Array): string => `${blobTag}${blobs.push(bytes) - 1}`;
  // The two places a message holds bytes are replaced by hand: a JSON.stringify replacer, called
  // for every key of every message, cost twice as much on the Raft hot path.
  const plain = messages.map((message): unknown => {
    if (message.type === 'append')
      return { ...message, entries: message.entries.map((e) => ({ ...e, data: tag(e.data) })) };
    if (message.type === 'snapshot')
      return { ...message, snapshot: { ...message.snapshot, data: tag(message.snapshot.data) } };
    return message;
  });
  const headerBytes = new TextEncoder().encode(JSON.stringify(plain));
  let total = 4 + headerBytes.length;
  for (const blob of blobs) total += 4 + blob.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, headerBytes.length);
  out.set(headerBytes, 4);
  let offset = 4 + headerBytes.length;
  for (const blob of blobs) {
    view.setUint32(offset, blob.length);
    out.set(blob, offset + 4);
    offset += 4 + blob.length;
  }
  return out;
}

export function decodeMessages(input: Uint8Array): Message[] {
  // A plain view even of a Buffer, whose slice() would share memory the stream then reuses.
  const bytes = new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (bytes.length > raftBatchBytesMax)
    throw malformed(`batch of ${bytes.length} bytes is over the limit`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw malformed('batch is too short');
  const headerLength = view.getUint32(0);
  if (4 + headerLength > bytes.length) throw malformed('header runs past the end');
  const blobs: Uint8Array[] = [];
  let offset = 4 + headerLength;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) throw malformed('blob length runs past the end');
    const length = view.getUint32(offset);
    if (offset + 4 + length > bytes.length) throw malformed('blob runs past the end');
    blobs.push(bytes.slice(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(4, 4 + headerLength)),
    );
  } catch {
    throw malformed('header is not valid JSON');
  }
  if (!Array.isArray(parsed)) throw malformed('expected a list of messages');
  const blob = (value: unknown): Uint8Array => {
    if (typeof value !== 'string' || !value.startsWith(blobTag)) throw malformed('bytes expected');
    const found = blobs[Number(value.slice(blobTag.length))];
    if (!found) throw malformed('unknown blob');
    return found;
  };
  for (const m of parsed as unknown[]) {
    if (typeof m !== 'object' || m === null) throw malformed('expected a list of messages');
    const message = m as { type?: unknown; entries?: unknown; snapshot?: unknown };
    if (typeof message.type !== 'string') throw malformed('expected a list of messages');
    if (message.type === 'append') {
      if (!Array.isArray(message.entries)) throw malformed('an append without entries');
      for (const entry of message.entries as unknown[]) {
        if (typeof entry !== 'object' || entry === null)
          throw malformed('an entry is not an object');
        (entry as { data: unknown }).data = blob((entry as { data: unknown }).data);
      }
    } else if (message.type === 'snapshot') {
      const snapshot = message.snapshot;
      if (typeof snapshot !== 'object' || snapshot === null)
        throw malformed('a snapshot without data');
      (snapshot as { data: unknown }).data = blob((snapshot as { data: unknown }).data);
    }
  }
  return parsed as Message[];
}

function malformed(reason: string): SecretdError {
  return new SecretdError('invalid', `Invalid Raft message batch: ${reason}`);
}
