/** An autolocked one-manager cluster started for a test, and the unlock key it printed. */
import { Daemon, freePort } from './process.ts';

/** The unlock key as `secretd init --autolock` and `unlock-key` print it. */
export const unlockKeyPattern = /SDKEY-1-[A-Za-z0-9+/]{43}/;

/**
 * `secretd init --autolock` at `dataDir`, listening on a free loopback port, once it prints its data
 * directory; the key it printed. The caller stops the daemon (it is killed here if the start fails).
 */
export async function initAutolocked(dataDir: string): Promise<{ daemon: Daemon; key: string }> {
  const addr = `127.0.0.1:${await freePort()}`;
  const daemon = new Daemon(['init', '--data-dir', dataDir, '--listen-addr', addr, '--autolock']);
  try {
    await daemon.waitFor(/Data directory:/);
    const key = unlockKeyPattern.exec(daemon.stdout)?.[0];
    if (key === undefined)
      throw new Error(`init --autolock printed no unlock key:\n${daemon.stdout}`);
    return { daemon, key };
  } catch (error) {
    await daemon.kill('SIGKILL');
    throw error;
  }
}
