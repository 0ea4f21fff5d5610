/** A real manager (sealed WAL on real files, real Raft core) in a temp dir, for API tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemNow, systemRandom } from '../../src/io/system.ts';
import { bootstrapCluster } from '../../src/node/join/index.ts';
import { Manager, type ManagerOptions } from '../../src/node/manager/index.ts';
import { writeNodeState } from '../../src/node/data-dir/index.ts';

export interface TestManager extends AsyncDisposable {
  readonly manager: Manager;
  readonly dataDir: string;
  /** Stops this manager and opens a new one on the same data dir (an in-process restart). */
  restart(): Promise<Manager>;
}

export async function startTestManager(
  options: { autolock?: boolean; snapshotEntries?: number } = {},
): Promise<TestManager> {
  const dataDir = mkdtempSync(join(tmpdir(), 'secretd-manager-'));
  const boot = await bootstrapCluster({
    dataDir,
    listenAddr: '127.0.0.1:0',
    advertiseAddr: '127.0.0.1:4377',
    autolock: options.autolock ?? false,
    random: systemRandom,
    now: systemNow(),
  });
  const managerOptions: ManagerOptions = {
    dataDir,
    random: systemRandom,
    now: systemNow,
    tickMs: 10,
    ...(options.snapshotEntries ? { snapshotEntries: options.snapshotEntries } : {}),
    onFatal: (error: unknown) => {
      throw error;
    },
  };
  let manager = await Manager.bootstrap(
    managerOptions,
    boot.state,
    boot.firstCommand,
    boot.unlockKey,
  );
  await writeNodeState(boot.paths.nodeState, boot.state);
  return {
    get manager() {
      return manager;
    },
    dataDir,
    async restart() {
      await manager.stop();
      manager = await Manager.open(managerOptions);
      return manager;
    },
    async [Symbol.asyncDispose]() {
      await manager.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
