/**
 * How a node in this process says it met a fatal error (a failed fsync, a broken invariant), and
 * secretd's version: what src/main.ts and every command read, in a module of their own so that a
 * command that only reaches a node through the client loads nothing of the node to read them.
 */
export const secretdVersion = '0.1.0';

let report: (code: number) => void = () => {};

/**
 * Resolves with the exit code (70) as soon as a node in this process meets a fatal error, whatever
 * the command is doing then: src/main.ts, the only place that exits the process, races the command
 * against it. The node's `done` resolves with 70 too.
 */
export const fatalExit: Promise<number> = new Promise((resolve) => (report = resolve));

/** Called by the node (daemon.ts) on a fatal error. */
export function reportFatal(code: number): void {
  report(code);
}
