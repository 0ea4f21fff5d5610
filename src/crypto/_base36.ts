/**
 * Fixed-width base-36 renderings of big-endian byte strings, as Docker prints join-token parts and
 * ids. Lower-case digits only, so a rendering has exactly one spelling.
 */

const digits = /^[0-9a-z]+$/;

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** `n` as `length` big-endian bytes; the caller has checked that it fits. */
export function bigIntToBytes(n: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let rest = n;
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}

export function toBase36(bytes: Uint8Array, width: number): string {
  return bytesToBigInt(bytes).toString(36).padStart(width, '0');
}

/** Parses exactly `width` base-36 digits encoding fewer than `byteLength` bytes' worth, else undefined. */
export function fromBase36(
  text: string,
  width: number,
  byteLength: number,
): Uint8Array | undefined {
  if (text.length !== width || !digits.test(text)) return undefined;
  let n = 0n;
  for (const c of text) n = n * 36n + BigInt(parseInt(c, 36));
  if (n >> BigInt(8 * byteLength) !== 0n) return undefined;
  return bigIntToBytes(n, byteLength);
}
