/**
 * How fresh a read must be, for the request being served. Reads are linearizable (ReadIndex: the
 * leader confirms it still leads first) unless the client asks for `local` — this manager's own
 * state, possibly a little behind, answered without a round trip (etcd's serializable reads).
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export type ReadConsistency = 'linearizable' | 'local';

export const readConsistency = new AsyncLocalStorage<ReadConsistency>();

/** The header a client sets to ask for local reads: `Secretd-Consistency: local`. */
export const consistencyHeader = 'secretd-consistency';
