/**
 * The `Runtime` port: the part of the OCI runtime command line (runc's) that the executor uses.
 * `RuncRuntime` spawns the real binary; a simulated runtime for the deterministic simulator can
 * implement the same surface.
 *
 * Why `run` and not `create` + `start`: only the foreground `runc run` stays the parent of the
 * container's first process, so only it can tell us the exit code (runc exits with it, 128 + N for
 * a signal). After `create`/`run --detach` the process is reparented to init and its status is lost.
 * The foreground runc also removes the container once the process has exited.
 */

/** runc's container statuses (`runc state`). */
export type ContainerStatus = 'creating' | 'created' | 'running' | 'pausing' | 'paused' | 'stopped';

export interface ContainerState {
  readonly id: string;
  /** 0 once stopped. */
  readonly pid: number;
  readonly status: ContainerStatus;
  readonly bundle: string;
}

export interface RunOptions {
  /** The runtime's own log (its errors, never the container's output), read for error messages. */
  readonly logPath: string;
  /** A failure if the container's process is not running by then. */
  readonly startTimeoutMs: number;
}

export interface RunningContainer {
  /** The container's first process on the host, or null if it exited before we could see it. */
  readonly pid: number | null;
  /** Resolves once the container's first process has exited: its code (128 + N for signal N), or null if unknown. */
  readonly exited: Promise<number | null>;
}

export interface ExecOptions {
  readonly timeoutMs: number;
  /** Numeric user and group to run as; the container's (0:0) when absent. */
  readonly uid?: number;
  readonly gid?: number;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Runtime {
  /** How to name the runtime in messages ('runc', or the path given). */
  readonly name: string;
  /** Resolves if the runtime can be run at all; SecretdError('unavailable') otherwise. */
  check(): Promise<void>;
  /**
   * Creates and starts the container from `bundleDir` and resolves once its process runs (or has
   * already exited without a runtime error). A runtime error (bad config, executable not found)
   * rejects with the runtime's own reason.
   */
  run(id: string, bundleDir: string, options: RunOptions): Promise<RunningContainer>;
  /** The container's state, or null if the runtime does not know it. */
  state(id: string): Promise<ContainerState | null>;
  /** Sends `signal` (e.g. 'TERM', 'KILL') to the container's first process; nothing if it is not running. */
  kill(id: string, signal: string): Promise<void>;
  /** Removes the container, killing it if needed; nothing if it does not exist. */
  delete(id: string): Promise<void>;
  /** Runs `argv` inside the running container; a non-zero exit is a result, not an error. */
  exec(id: string, argv: readonly string[], options: ExecOptions): Promise<ExecResult>;
  /** Every container this runtime instance knows (its own state root only). */
  list(): Promise<ContainerState[]>;
}
