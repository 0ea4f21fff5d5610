/**
 * Where a node's executor keeps its task bundles, each task's secrets tmpfs and runc's state: one
 * directory per data dir under /run/secretd (a tmpfs: nothing there survives a reboot). The OCI
 * runtime shim, the tests and the benchmarks find a node's directory with the same rule; it lives
 * here, not in src/node/executor/, because the shim's path must not load src/node (src/main.ts).
 */
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';

export const runDirRoot = '/run/secretd';

export function runDirOf(dataDir: string): string {
  return join(runDirRoot, createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16));
}

/** Under a run directory: other engines' containers, one directory each (the shim writes, the agent reads). */
export function containersDirOf(runDir: string): string {
  return join(runDir, 'containers');
}
