/**
 * What a serving node (init, join, run) adds to its environment when it lacks it, by running itself
 * again (execve: same pid) before it starts (node-process.ts). mimalloc, Bun's allocator, gives
 * back to the kernel pages freed 100 ms earlier by default; under a steady stream of large creates
 * the next request's buffers then fault the same pages in again: at 64 KiB a second's delay took a
 * create's page faults from about 100 to 53 and its CPU down by about a tenth (bench/README,
 * twelfth session); ten seconds (nineteenth session), after the first few thousand creates, to
 * 12-20 and its CPU by a third more (0.8-0.95 against 1.05-1.45 ms), the rate 1.38 times. Pages
 * freed are kept while requests keep coming and given back ten seconds after the node goes idle:
 * RSS settles as before, seconds later (bench/memory.ts: 1.27-1.45 against 1.25-1.27 of values
 * held over the empty node's, bar 1.5). A value the user set is left as it is; under Deno, which
 * does not use mimalloc, nothing is added.
 *
 * A module of its own, importing nothing, so that bench/ceiling.ts's floor servers take the same
 * setting without loading the node.
 */
export const allocatorEnv: Readonly<Record<string, string>> = { MIMALLOC_PURGE_DELAY: '10000' };

/** The part of `allocatorEnv` this process's environment lacks (nothing under a runtime other than Bun). */
export function missingAllocatorEnv(): Record<string, string> {
  if (process.versions.bun === undefined) return {};
  return Object.fromEntries(
    Object.entries(allocatorEnv).filter(([name]) => process.env[name] === undefined),
  );
}
