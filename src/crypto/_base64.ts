/**
 * Strict standard-alphabet base64 (RFC 4648 §4). Written here rather than taken from `atob` or
 * `Buffer` because those accept whitespace, missing padding and non-zero trailing bits, so two
 * different strings could decode to the same key; this decoder accepts exactly one spelling of
 * each byte string and works the same under Bun, Deno and Node.
 */

const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const values: ReadonlyMap<string, number> = new Map([...alphabet].map((c, i) => [c, i]));

export interface Base64Options {
  /** Whether `=` padding is written and required. */
  readonly padded: boolean;
}

export function base64Encode(bytes: Uint8Array, options: Base64Options): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const chunk = bytes.subarray(i, i + 3);
    const n = ((chunk[0] ?? 0) << 16) | ((chunk[1] ?? 0) << 8) | (chunk[2] ?? 0);
    const chars = chunk.length + 1;
    for (let j = 0; j < 4; j++) {
      if (j < chars) out += alphabet[(n >> (18 - 6 * j)) & 63];
      else if (options.padded) out += '=';
    }
  }
  return out;
}

/** Returns the bytes, or undefined when `text` is not canonical base64; never throws with the input. */
export function base64Decode(text: string, options: Base64Options): Uint8Array | undefined {
  const body = options.padded ? stripPadding(text) : text;
  if (body === undefined || body.length % 4 === 1) return undefined;
  const out = new Uint8Array(Math.floor((body.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (const c of body) {
    const v = values.get(c);
    if (v === undefined) return undefined;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  // Leftover bits must be zero, or a second spelling of the same bytes would be accepted.
  if ((acc & ((1 << bits) - 1)) !== 0) return undefined;
  return out;
}

function stripPadding(text: string): string | undefined {
  if (text.length % 4 !== 0) return undefined;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const body = text.slice(0, text.length - pad);
  return body.includes('=') ? undefined : body;
}
