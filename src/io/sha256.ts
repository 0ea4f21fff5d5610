/**
 * The SHA-256 port (src/crypto/sha256.ts): production calls WebCrypto, the simulator hashes in
 * the seed's order. Each takes bytes that must not change until it resolves.
 *
 * A snapshot names every large piece it holds (a secret's value, a full audit segment) by the
 * SHA-256 of its bytes. The snapshot store hashes the pieces it has no id for a group at a time
 * and awaits each group, so that hundreds of new values do not hold the event loop in one turn
 * (they held it 30–85 ms per snapshot: bench/README.md). WebCrypto's `digest` is asynchronous by
 * its contract, so a runtime may hash on a thread of its own; Bun 1.4 hashes at the call and
 * resolves on a later turn (measured: 1,000 digests of 87 KB took 45–51 ms of the caller's loop).
 * Either way its promise settles when the runtime says, which a simulated run, where every
 * completion is an event of the seed's schedule, cannot allow: the simulator passes
 * `inOrderSha256`.
 */
import { createHash } from 'node:crypto';
import type { Sha256 } from '../crypto/sha256.ts';

/** WebCrypto's digest. */
export const webCryptoSha256: Sha256 = async (bytes) =>
  new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));

/** Hashed at the call, resolved at the next microtask: the same order on every run. */
export const inOrderSha256: Sha256 = (bytes) =>
  Promise.resolve(new Uint8Array(createHash('sha256').update(bytes).digest()));
