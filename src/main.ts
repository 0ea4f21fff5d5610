#!/usr/bin/env bun
/**
 * The secretd executable. Only this file calls process.exit, and only once what the command wrote
 * has left the process (output through a pipe is otherwise cut at the pipe's 64 KiB).
 */
import { defaultIo, main, outputWritten } from './cmd/main.ts';

main(process.argv.slice(2)).then(
  async (code) => {
    await outputWritten();
    process.exit(code);
  },
  async (error: unknown) => {
    defaultIo.err(`secretd: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await outputWritten();
    process.exit(70);
  },
);
