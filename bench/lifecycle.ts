/**
 * What every benchmark entry point does around its measurements: stop what it started, newest
 * first, on normal exit and on Ctrl-C alike. The first Ctrl-C (or SIGTERM) aborts `interrupted`,
 * so a measurement stops sending and partial results are printed; a second one skips to stopping
 * what was started. Import it from the entry point only: importing installs the signal handlers.
 */
import { errorReason } from './create-outcome.ts';

export const interrupted = new AbortController();

const cleanups: (() => Promise<void>)[] = [];

/** Registers what undoes a start (stop a cluster, remove a temp dir); run newest first. */
export function deferCleanup(cleanup: () => Promise<void>): void {
  cleanups.push(cleanup);
}

export async function runCleanups(): Promise<void> {
  for (let cleanup = cleanups.pop(); cleanup !== undefined; cleanup = cleanups.pop()) {
    await cleanup().catch((error: unknown) =>
      console.error(`Cleanup failed: ${errorReason(error)}`),
    );
  }
}

/**
 * An entry point's end: runs `main` with the command line, says in one line why it failed (an
 * interruption as one), stops what was started and exits with main's code (1 on a failure, 130
 * when interrupted).
 */
export async function runEntryPoint(
  name: string,
  main: (argv: readonly string[]) => Promise<number>,
): Promise<never> {
  let exitCode: number;
  try {
    exitCode = await main(process.argv.slice(2));
  } catch (error) {
    if (interrupted.signal.aborted) {
      console.error(`${name}: interrupted`);
      exitCode = 130;
    } else {
      console.error(`${name} failed: ${errorReason(error)}`);
      exitCode = 1;
    }
  }
  await runCleanups();
  process.exit(exitCode);
}

function onSignal(signal: NodeJS.Signals): void {
  if (!interrupted.signal.aborted) {
    console.error(
      `\n${signal}: finishing requests in flight, then cleaning up (again to skip to cleanup)`,
    );
    interrupted.abort();
    return;
  }
  console.error(`\n${signal}: stopping what was started…`);
  void runCleanups().finally(() => process.exit(130));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
