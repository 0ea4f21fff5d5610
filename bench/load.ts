/**
 * The closed-loop load generator shared by every system under test: C workers, each sending one
 * request and awaiting its answer before the next, until N requests are sent or the wall-clock cap
 * passes. Closed-loop keeps the offered load equal for both systems (a faster server simply gets
 * more requests per second) and bounds in-flight requests to C.
 */
import { randomBytes } from 'node:crypto';

/** The outcome of one create; `reason` is short and never contains the secret value. */
export type CreateOutcome =
  { readonly ok: true; readonly id: string } | { readonly ok: false; readonly reason: string };

/** One system under test, reached with the same request shape whatever the transport. */
export interface CreateTarget {
  /** Shown in the results table. */
  readonly label: string;
  /** POST the JSON body to the system's create endpoint; resolves, never rejects. */
  create(body: string): Promise<CreateOutcome>;
  /** Delete by id; false when the system refused or failed. */
  remove(id: string): Promise<boolean>;
  close(): Promise<void>;
}

export interface LoadOptions {
  readonly count: number;
  readonly concurrency: number;
  /** Builds the request body for request number `index`; called outside the timed section. */
  readonly bodyFor: (index: number) => string;
  /** No new request starts after this many milliseconds. */
  readonly wallCapMs: number;
  /** No new request starts once aborted (Ctrl-C); requests in flight are awaited. */
  readonly signal?: AbortSignal;
}

export interface LoadResult {
  /** Latencies of successful creates, in completion order. */
  readonly latenciesMs: number[];
  readonly errorCount: number;
  /** Distinct failure reasons and how often each occurred (at most errorReasonsMax of them). */
  readonly errorReasons: ReadonlyMap<string, number>;
  readonly ids: string[];
  readonly wallMs: number;
  /** True when the wall-clock cap, not the count, ended the run. */
  readonly capped: boolean;
  readonly aborted: boolean;
}

/** A server that fails every request would otherwise fill memory with identical messages. */
const errorReasonsMax = 8;

export async function runLoad(target: CreateTarget, options: LoadOptions): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const ids: string[] = [];
  const errorReasons = new Map<string, number>();
  let errorCount = 0;
  let next = 0;
  let capped = false;
  const startMs = performance.now();
  const deadlineMs = startMs + options.wallCapMs;

  const worker = async (): Promise<void> => {
    while (next < options.count && options.signal?.aborted !== true) {
      if (performance.now() >= deadlineMs) {
        capped = true;
        return;
      }
      const body = options.bodyFor(next++);
      const sentMs = performance.now();
      const outcome = await target.create(body);
      const elapsedMs = performance.now() - sentMs;
      if (outcome.ok) {
        latenciesMs.push(elapsedMs);
        ids.push(outcome.id);
      } else {
        errorCount++;
        if (errorReasons.has(outcome.reason) || errorReasons.size < errorReasonsMax) {
          errorReasons.set(outcome.reason, (errorReasons.get(outcome.reason) ?? 0) + 1);
        }
      }
    }
  };

  await Promise.all(Array.from({ length: options.concurrency }, worker));
  const wallMs = performance.now() - startMs;
  return {
    latenciesMs,
    errorCount,
    errorReasons,
    ids,
    wallMs,
    capped,
    aborted: options.signal?.aborted === true,
  };
}

/** Runs `task` over `items` with at most `limit` in flight; used for cleanup, so never throws. */
export async function forEachLimited<T>(
  items: readonly T[],
  task: (item: T) => Promise<void>,
  options: { readonly limit: number },
): Promise<void> {
  const { limit } = options;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item).catch(() => undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/**
 * The `n`th value sent in a run (base64): a pool value with its first 6 bytes replaced by `n`, so
 * that no two values of a run are alike, as real secrets are not (secretd's snapshots store a value
 * that another secret already holds only once), while the pool stays small and every system still
 * receives byte-identical values.
 */
export function distinctValue(pool: readonly string[], n: number): string {
  const value = pool[n % pool.length] ?? '';
  if (value.length < 8) return value;
  const head = Buffer.alloc(6);
  head.writeUIntBE(n % 2 ** 48, 0, 6);
  return head.toString('base64') + value.slice(8);
}

/** Random values are drawn once and shared, so every system receives byte-identical values. */
const valuePoolBytesMax = 64 * 1024 * 1024;

/** Base64 of random values of `valueBytes` each: as many as requests, up to 64 MiB, reused round-robin. */
export function valuePool(options: {
  readonly count: number;
  readonly valueBytes: number;
}): string[] {
  const size = Math.max(
    1,
    Math.min(options.count, Math.floor(valuePoolBytesMax / options.valueBytes)),
  );
  return Array.from({ length: size }, () => randomBytes(options.valueBytes).toString('base64'));
}
