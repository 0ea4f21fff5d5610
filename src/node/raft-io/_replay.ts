/**
 * How a committed log entry becomes state, written once for the raft loop (live, entry by entry)
 * and for `--force-new-cluster` (replaying the log from disk): a 'normal' entry with data is a
 * command for the store; a leader's no-op (empty data) and a membership change ('conf', which the
 * Raft core applies to itself) only move the store's applied index.
 */
import type { Entry, LogIndex } from '../../raft/types.ts';
import type { ApplyResult, Store } from '../store/index.ts';

/** Applies one committed entry; returns the store's verdict on a command, null for any other entry. */
export function applyCommitted(store: Store, entry: Entry): ApplyResult | null {
  if (entry.type === 'normal' && entry.data.length > 0)
    return store.applyEntry(entry.index, entry.data);
  store.skip(entry.index);
  return null;
}

/**
 * Applies, in log order, the entries after the store's applied index and up to `upTo` (the commit
 * index), calling `onApplied` after each; entries the store already holds are passed over.
 */
export function replayCommitted(
  store: Store,
  entries: readonly Entry[],
  upTo: LogIndex,
  onApplied?: (entry: Entry, result: ApplyResult | null) => void,
): void {
  for (const entry of entries) {
    if (entry.index > upTo) break;
    if (entry.index <= store.appliedIndex) continue;
    const result = applyCommitted(store, entry);
    onApplied?.(entry, result);
  }
}
