/**
 * Framing for the Raft stream between two managers: each batch of messages (raft-wire.ts) travels as
 *
 *   u32 length | batch bytes
 *
 * on one long-lived HTTP/2 stream per direction, so a batch costs a few bytes of framing instead of
 * a request and its answer.
 */
import { SecretdError } from '../../errors.ts';

export function frame(batch: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + batch.length);
  new DataView(out.buffer).setUint32(0, batch.length);
  out.set(batch, 4);
  return out;
}

/** Reassembles frames from the chunks a stream delivers, whatever their boundaries. */
export class FrameReader {
  readonly #maxFrameBytes: number;
  #pending: Uint8Array = new Uint8Array(0);

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /**
   * The frames completed by this chunk, in order: views that are valid until the next push (a
   * stream reuses its chunks' memory), as plain Uint8Arrays even when the chunk is a Buffer, so
   * that `slice()` on them copies. Throws on a frame over the limit.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let buffer = this.#pending.length === 0 ? bytes : concat(this.#pending, bytes);
    const frames: Uint8Array[] = [];
    for (;;) {
      if (buffer.length < 4) break;
      const length = new DataView(buffer.buffer, buffer.byteOffset, 4).getUint32(0);
      if (length > this.#maxFrameBytes)
        throw new SecretdError(
          'too_large',
          `Raft frame of ${length} bytes is over the limit of ${this.#maxFrameBytes}`,
        );
      if (buffer.length < 4 + length) break;
      frames.push(buffer.subarray(4, 4 + length));
      buffer = buffer.subarray(4 + length);
    }
    // Copied, not kept as a view: the chunk's memory belongs to the stream.
    this.#pending = buffer.length === 0 ? new Uint8Array(0) : buffer.slice();
    return frames;
  }

  /** Bytes of a frame begun but not finished. */
  get pendingBytes(): number {
    return this.#pending.length;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
