#!/usr/bin/env bun
/**
 * The secretd executable. Only this file calls process.exit, and only once what the command wrote
 * has left the process (output through a pipe is otherwise cut at the pipe's 64 KiB). A node that
 * meets a fatal error (a failed fsync, a broken invariant) reports it through `fatalExit`, and the
 * process exits with its code at once, whatever the command was doing.
 *
 * Run as `secretd-runc` (a symlink, for engines that take a runtime's path) or as `secretd
 * oci-runtime`, it is an OCI runtime, which engines run for every container they create, start and
 * delete: that path loads only cmd/oci-runtime.ts (import() keeps the rest of the bundle
 * unevaluated), and usually ends in an execve of runc.
 */
import { basename } from 'node:path';
import { allocatorReexecEarly } from './cmd/reexec.ts';

const argv = process.argv.slice(2);
const runtimeArgs =
  basename(process.argv0) === 'secretd-runc'
    ? argv
    : argv[0] === 'oci-runtime'
      ? argv.slice(1)
      : null;

if (runtimeArgs !== null) {
  import('./cmd/oci-runtime.ts')
    .then(({ ociRuntime, runtimeIo }) => ociRuntime(runtimeArgs, runtimeIo))
    .then(
      (code) => process.exit(code),
      (error: unknown) => {
        process.stderr.write(`secretd-runc: unexpected error: ${String(error)}\n`);
        process.exit(70);
      },
    );
} else {
  allocatorReexecEarly(argv); // init and run: before the CLI and the node are loaded
  // The X.509 library is loaded later, by what needs it (crypto/_x509.ts: loadX509).
  void Promise.all([import('./cmd/main.ts'), import('./node/index.ts')]).then(
    ([{ defaultIo, main, outputWritten }, { fatalExit }]) =>
      Promise.race([main(argv), fatalExit]).then(
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
      ),
  );
}
