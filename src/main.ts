#!/usr/bin/env bun
/**
 * The secretd executable. Only this file calls process.exit, and only once what the command wrote
 * has left the process (output through a pipe is otherwise cut at the pipe's 64 KiB). A node that
 * meets a fatal error (a failed fsync, a broken invariant) reports it through `fatalExit`, and the
 * process exits with its code at once, whatever the command was doing.
 */
import { defaultIo, main, outputWritten } from './cmd/main.ts';
import { fatalExit } from './node/index.ts';
import { basename } from 'node:path';

// Run as `secretd-runc` (a symlink, for engines that take a runtime's path): the OCI runtime.
const args =
  basename(process.argv0) === 'secretd-runc'
    ? ['oci-runtime', ...process.argv.slice(2)]
    : process.argv.slice(2);

Promise.race([main(args), fatalExit]).then(
  async (code) => {
    await outputWritten();
    process.exit(code);
  },
  async (error: unknown) => {
    defaultIo.err(
      `secretd: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    await outputWritten();
    process.exit(70);
  },
);
