/** The real clock and random source, injected into everything that is pure. */
import type { Random } from '../crypto/random.ts';

export const systemRandom: Random = (bytes) => {
  const out = new Uint8Array(bytes);
  // getRandomValues fills at most 65536 bytes per call. Most calls (ids, nonces) want a few bytes:
  // filled at once, without a view (subarray was most of their cost under load).
  if (bytes <= 65536) return crypto.getRandomValues(out);
  for (let offset = 0; offset < bytes; offset += 65536)
    crypto.getRandomValues(out.subarray(offset, Math.min(bytes, offset + 65536)));
  return out;
};

export const systemNow = (): Date => new Date();
