/**
 * A buffer kept between writes for the next one to fill: the largest given back, up to `max`
 * bytes. A new buffer per write has its pages faulted in and zeroed while it is filled: a new
 * 1 MiB array cost 112 µs here, where sealing 1 MiB into it takes 220-370 µs, and a new 2 MiB
 * buffer per snapshot pack write was 512 page faults (`perf record -e page-faults`: most of the
 * server's faults came in copies into new memory). One user at a time: `take` hands the buffer
 * out, `give` takes one back once nothing reads it any more (its write has returned: a thread may
 * read it until then). The WAL keeps one for its batches, a snapshot store one for its files;
 * both hold sealed bytes only, never a plaintext.
 */
export class SpareBytes {
  private spare: Uint8Array | null = null;

  constructor(private readonly max: number) {}

  /** A buffer of at least `length` bytes: the spare one if it is large enough, else a new one. */
  take(length: number): Uint8Array {
    const spare = this.spare;
    if (spare !== null && spare.length >= length) {
      this.spare = null;
      return spare;
    }
    return new Uint8Array(length);
  }

  /**
   * The spare buffer whatever its size, or undefined: for a writer that learns its length only as
   * it fills it (encodeBatch uses it when it is large enough), and gives back what it used.
   */
  takeAny(): Uint8Array | undefined {
    const spare = this.spare ?? undefined;
    this.spare = null;
    return spare;
  }

  /** Keeps `bytes` for the next `take` if it is larger than the spare one and at most `max`. */
  give(bytes: Uint8Array): void {
    if (bytes.length > this.max) return;
    if (this.spare === null || bytes.length > this.spare.length) this.spare = bytes;
  }
}
