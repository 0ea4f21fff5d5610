#!/usr/bin/env bun
/** The secretd executable. Only this file calls process.exit. */
import { main } from './cmd/main.ts';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`secretd: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(70);
  },
);
