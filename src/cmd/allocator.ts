/**
 * What a serving node (init, join, run) adds to its environment when it lacks it, by running itself
 * again (execve: same pid) before it starts (node-process.ts). mimalloc, Bun's allocator, gives
 * back to the kernel pages freed 100 ms earlier by default; under a steady stream of large creates
 * the next request's buffers then fault the same pages in again: at 64 KiB a second's delay took a
 * create's page faults from about 100 to 53 and its CPU down by about a tenth (bench/README,
 * twelfth session). A second keeps those pages while requests keep coming and still gives them
 * back once the node is idle: RSS settles as before (bench/memory.ts). A value the user set is left
 * as it is; under Deno, which does not use mimalloc, nothing is added.
 *
 * A module of its own, importing nothing, so that bench/ceiling.ts's floor servers take the same
 * setting without loading the node.
 */
export const allocatorEnv: Readonly<Record<string, string>> = { MIMALLOC_PURGE_DELAY: '1000' };

/** The part of `allocatorEnv` this process's environment lacks (nothing under a runtime other than Bun). */
export function missingAllocatorEnv(): Record<string, string> {
  if (process.versions.bun === undefined) return {};
  return Object.fromEntries(
    Object.entries(allocatorEnv).filter(([name]) => process.env[name] === undefined),
  );
}
