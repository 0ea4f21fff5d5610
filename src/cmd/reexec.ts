/**
 * Running secretd again in this process (execve: same pid, same parent, same standard streams),
 * and the one use of it that comes before anything else is loaded. It imports only allocator.ts,
 * so that src/main.ts can use it before it loads the CLI and the node (about 30 ms of a start).
 */
import { missingAllocatorEnv } from './allocator.ts';

/**
 * Whether this process is the compiled executable (its script inside the binary's /$bunfs) rather
 * than a runtime running src/main.ts.
 */
export function runningCompiled(): boolean {
  const script = process.argv[1];
  return script === undefined || script.startsWith('/$bunfs/') || script === process.execPath;
}

type Execve = (file: string, args: string[], env: Record<string, string | undefined>) => never;
export type Reexec = (args: readonly string[], env: Readonly<Record<string, string>>) => never;

const execve = (process as { execve?: Execve }).execve;

/**
 * Runs secretd again with `args` and `env` added to its environment, as the compiled executable
 * or as `bun src/main.ts` (with the runtime's own flags, e.g. `bun --inspect`, kept); never
 * returns. Undefined where the runtime has no execve (Deno).
 */
export const reexec: Reexec | undefined =
  typeof execve === 'function'
    ? (args, env) => {
        const runtimeArgs = runningCompiled() ? [] : [...process.execArgv, process.argv[1]!];
        return execve.call(process, process.execPath, [process.argv0, ...runtimeArgs, ...args], {
          ...process.env,
          ...env,
        });
      }
    : undefined;

/**
 * `secretd init …` and `secretd run …` (the command first) lacking the allocator's setting are run
 * again with it at once, before the CLI and the node are loaded: a restart answers that much
 * sooner (bench/README.md, thirteenth session). Anything else goes on (the commands then add it
 * themselves, node-process.ts: `join` takes a token off its command line in that same run); so
 * does a request for help.
 */
export function allocatorReexecEarly(argv: readonly string[], again = reexec): void {
  if (argv[0] !== 'init' && argv[0] !== 'run') return;
  if (argv.includes('--help') || argv.includes('-h')) return;
  withAllocatorEnv(argv, again);
}

/**
 * Runs `argv` again through `again` with the part of `allocatorEnv` this process lacks, if any;
 * else returns (and when `again` is undefined: a runtime that cannot, or an Io without it).
 */
export function withAllocatorEnv(argv: readonly string[], again: Reexec | undefined): void {
  const missing = missingAllocatorEnv();
  if (again !== undefined && Object.keys(missing).length > 0) again(argv, missing);
}
