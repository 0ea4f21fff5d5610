/**
 * The node's executor: runs each task's container through the OCI runtime with the task's secrets
 * in a tmpfs of its own at /run/secrets/<target>, and erases them when the task is gone.
 *
 * A task's life: `start` (check everything → resolve the image → check the runtime → mount the
 * tmpfs → write the files → write the bundle → `runc run`) ... `setSecrets` (add, replace by
 * atomic rename, remove; no restart) ... the container exits (reported to `onExit` once, with its
 * code) or `stop` (TERM, grace, KILL). Either way the container is deleted and its secrets erased
 * (zeroed, unlinked, unmounted, directory removed) BEFORE the exit is reported to `onExit`: a
 * secret lives here exactly as long as a running container needs it, so a container that ends on
 * its own (exit 0 or not, a signal, the OOM killer, a runtime error) takes its secrets with it at
 * once, without waiting for anyone to call `stop`. `sweep` is the safety net: it erases any task
 * directory or secrets mount under the run directory that no starting or running container owns.
 *
 * Secret values: the executor owns every `TaskSecret.data` handed to `start`/`setSecrets` and zeroes
 * it once written (also on failure); pass a copy if you still need the bytes. Values go only into
 * the tmpfs: never into config.json, the manifest, runc's arguments, logs or error messages.
 *
 * Operations on one task are serialized; different tasks proceed in parallel. After an agent
 * restart (even SIGKILL: containers outlive the agent), `reconcile` finds what the last process
 * left under the runc root and the run directory, removes what is not kept and takes over the rest.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, realpath, rm, rmdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { containersDirOf, runDirOf } from '../../io/run-dir.ts';
import { SecretdError } from '../../errors.ts';
import {
  bundleFileMounts,
  checkedTask,
  planChanges,
  stopContainer,
  writeAll,
  type TaskRun,
  type TaskSecret,
} from './_task-ops.ts';
import {
  checkTaskId,
  isTaskId,
  readManifest,
  taskPaths,
  tasksDir,
  writeManifest,
  type TaskPaths,
} from './_task-dir.ts';
import { writeBundle } from './bundle.ts';
import { ImageStore } from './images.ts';
import {
  containerStartTimeoutMs,
  execTimeoutMsDefault,
  exitPollIntervalMs,
  stopGraceMsDefault,
} from './limits.ts';
import { removeEmptyCgroupParent } from './_cgroups.ts';
import { readMounts } from './_mountinfo.ts';
import { RuncRuntime } from './runc-runtime.ts';
import type { ExecResult, Runtime } from './runtime.ts';
import { SecretMount, eraseSecretsDir, secretsTmpfsBytes } from './secret-mount.ts';
import { checkSecretRefs, type SecretFile } from './targets.ts';

export type { TaskRun, TaskSecret } from './_task-ops.ts';

export interface ExecutorOptions {
  /** The node's data directory; images live in `<dataDir>/images`. */
  readonly dataDir: string;
  /** Task directories, secrets mounts and runc state. Default `/run/secretd/<hash of dataDir>`. */
  readonly runDir?: string;
  /** Default: runc (`runtimeBinary`) with its state root at `<runDir>/runc`. */
  readonly runtime?: Runtime;
  /** The runtime binary when `runtime` is not given: a name in PATH or a path. Default 'runc'. */
  readonly runtimeBinary?: string;
  /** Between SIGTERM and SIGKILL in `stop`. Default 10 s (Docker's). */
  readonly stopGraceMs?: number;
  /** Default: the store in `<dataDir>/images`. */
  readonly images?: ImageStore;
}

export type TaskStatus = 'creating' | 'running' | 'stopped' | 'missing';

export interface TaskState {
  readonly status: TaskStatus;
  /** The exit code once stopped, when known (null after an agent restart or while running). */
  readonly exitCode: number | null;
  readonly pid: number | null;
}

export interface ExecutorStats {
  /** Secret files written since this executor was made (each atomic replace counts). */
  readonly secretFilesWritten: number;
  /** Secret files now held in tasks' tmpfs. */
  readonly secretFilesHeld: number;
  readonly tasks: number;
}

export type ExitListener = (taskId: string, exitCode: number | null) => void;

interface TaskEntry {
  readonly taskId: string;
  readonly paths: TaskPaths;
  manifest: { image: string; rootfsPath: string } | null;
  mount: SecretMount | null;
  phase: 'creating' | 'running' | 'exited' | 'stopping';
  /** The container ran (or was found running): its end is reported to onExit. */
  started: boolean;
  pid: number | null;
  exitCode: number | null;
  exitReported: boolean;
  /** Resolves when the container's first process is gone; absent for adopted containers. */
  exited: Promise<number | null> | null;
  stopPolling: (() => void) | null;
  queue: Promise<unknown>;
}

/**
 * The cgroup parent of the executor of `runDir` (under the cgroup root): one per executor instance
 * (its run dir), so nodes sharing a machine never collide.
 */
export function cgroupParentOf(runDir: string): string {
  return `/secretd/${sha256Hex(runDir).slice(0, 12)}`;
}

export class Executor {
  readonly runDir: string;
  readonly images: ImageStore;
  readonly runtime: Runtime;
  private readonly stopGraceMs: number;
  private readonly cgroupParent: string;
  private readonly tasks = new Map<string, TaskEntry>();
  private readonly listeners: ExitListener[] = [];
  private secretWritesOfGoneMounts = 0;
  private dirsReady: Promise<void> | null = null;

  constructor(options: ExecutorOptions) {
    const dataDir = resolve(options.dataDir);
    this.runDir = resolve(options.runDir ?? runDirOf(dataDir));
    this.images = options.images ?? new ImageStore(dataDir);
    this.runtime =
      options.runtime ??
      new RuncRuntime({
        rootDir: join(this.runDir, 'runc'),
        ...(options.runtimeBinary === undefined ? {} : { binary: options.runtimeBinary }),
      });
    this.stopGraceMs = options.stopGraceMs ?? stopGraceMsDefault;
    this.cgroupParent = cgroupParentOf(this.runDir);
  }

  /** Paths of a task's files on the host (for tests and diagnostics; none holds a value outside the tmpfs). */
  paths(taskId: string): TaskPaths {
    checkTaskId(taskId);
    return taskPaths(this.runDir, taskId);
  }

  onExit(listener: ExitListener): void {
    this.listeners.push(listener);
  }

  async start(task: TaskRun): Promise<void> {
    try {
      const context = `Cannot start task '${task.taskId}'`;
      const { files } = checkedTask(context, task);
      if (this.tasks.has(task.taskId))
        throw new SecretdError('conflict', `${context}: it is already on this node`);
      const entry = this.newEntry(task.taskId, 'creating');
      this.tasks.set(task.taskId, entry);
      await this.serial(entry, () => this.create(entry, task, files)).catch((error: unknown) => {
        this.tasks.delete(task.taskId);
        throw error;
      });
    } finally {
      for (const secret of task.secrets) secret.data.fill(0);
    }
  }

  async stop(taskId: string): Promise<void> {
    checkTaskId(taskId);
    const entry = this.tasks.get(taskId);
    if (entry === undefined) {
      // Not ours in memory (e.g. left by an earlier process): still make sure nothing remains.
      await this.destroy(taskId, null);
      return;
    }
    await this.serial(entry, () => this.destroy(taskId, entry));
  }

  async setSecrets(taskId: string, secrets: readonly TaskSecret[]): Promise<void> {
    try {
      const entry = this.entry(taskId, `Cannot update secrets of task '${taskId}'`);
      await this.serial(entry, () => this.replaceSecrets(entry, secrets));
    } finally {
      for (const secret of secrets) secret.data.fill(0);
    }
  }

  async signal(taskId: string, signal: string): Promise<void> {
    const context = `Cannot signal task '${taskId}'`;
    if (!/^(SIG)?[A-Z0-9+-]{1,16}$|^\d{1,2}$/.test(signal))
      throw new SecretdError('invalid', `${context}: '${signal}' is not a signal name or number`);
    const entry = this.runningEntry(taskId, context);
    await this.serial(entry, () => this.runtime.kill(taskId, signal));
  }

  async exec(
    taskId: string,
    argv: readonly string[],
    options: { timeoutMs?: number; uid?: number; gid?: number } = {},
  ): Promise<ExecResult> {
    const context = `Cannot exec in task '${taskId}'`;
    if (argv.length === 0 || argv.some((arg) => arg.includes('\0')))
      throw new SecretdError(
        'invalid',
        `${context}: the command must be non-empty and contain no NUL`,
      );
    this.runningEntry(taskId, context);
    const { timeoutMs = execTimeoutMsDefault, uid, gid } = options;
    return this.runtime.exec(taskId, argv, {
      timeoutMs,
      ...(uid === undefined ? {} : { uid }),
      ...(gid === undefined ? {} : { gid }),
    });
  }

  async state(taskId: string): Promise<TaskState> {
    checkTaskId(taskId);
    const entry = this.tasks.get(taskId);
    if (entry?.phase === 'creating') return { status: 'creating', exitCode: null, pid: null };
    if (entry !== undefined && entry.phase === 'exited')
      return { status: 'stopped', exitCode: entry.exitCode, pid: null };
    const container = await this.runtime.state(taskId);
    if (container === null || container.status === 'stopped') {
      if (entry === undefined)
        return { status: container === null ? 'missing' : 'stopped', exitCode: null, pid: null };
      return { status: 'stopped', exitCode: entry.exitCode, pid: null };
    }
    if (container.status === 'creating' || container.status === 'created')
      return { status: 'creating', exitCode: null, pid: null };
    return { status: 'running', exitCode: null, pid: container.pid };
  }

  /** Mount points of every secrets tmpfs under this executor's run directory (never their contents). */
  async secretsMounted(): Promise<string[]> {
    // The kernel reports real paths; the run directory may be reached through a symlink.
    const prefix = (await realpath(tasksDir(this.runDir)).catch(() => tasksDir(this.runDir))) + '/';
    return (await readMounts())
      .filter((m) => m.fsType === 'tmpfs' && m.mountPoint.startsWith(prefix))
      .map((m) => m.mountPoint)
      .sort();
  }

  stats(): ExecutorStats {
    let written = this.secretWritesOfGoneMounts;
    let held = 0;
    for (const entry of this.tasks.values()) {
      written += entry.mount?.filesWritten ?? 0;
      held += entry.mount?.list().length ?? 0;
    }
    return { secretFilesWritten: written, secretFilesHeld: held, tasks: this.tasks.size };
  }

  /**
   * The safety net behind the rule that a secret lives only as long as a running container needs
   * it: erases every task directory and secrets mount under the run directory that belongs to no
   * task of this executor (left by a crash between steps, or by an erase that failed before).
   * Tasks this executor holds are left to their own exit or stop. Returns the task ids it erased.
   */
  async sweep(): Promise<string[]> {
    await this.ensureDirs();
    const candidates = new Set<string>();
    for (const name of await readdir(tasksDir(this.runDir)).catch(() => [])) candidates.add(name);
    const realTasksDir = await realpath(tasksDir(this.runDir));
    for (const mountPoint of await this.secretsMounted())
      candidates.add(mountPoint.slice(realTasksDir.length + 1).split('/')[0]!);
    const erased: string[] = [];
    for (const taskId of [...candidates].filter(isTaskId)) {
      const entry = this.tasks.get(taskId);
      // A task of ours is left to its own end: a container this executor started reports its exit
      // through its runc child, an adopted one through its poll; asking runc about every running
      // task here every few seconds would cost a process per task.
      if (entry !== undefined) continue;
      erased.push(taskId);
      await this.destroy(taskId, null);
    }
    return erased.sort();
  }

  /** Stops watching containers; leaves them (and their secrets) running, as a crashed agent would. */
  close(): void {
    for (const entry of this.tasks.values()) entry.stopPolling?.();
  }

  /**
   * After a restart: stops, deletes and erases every container, task directory and secrets mount
   * under this executor's roots whose task is not in `keep`; takes over the kept ones (an exit that
   * happened while no agent watched is reported to `onExit` with a null code).
   */
  async reconcile(keep: ReadonlySet<string>): Promise<{ removed: string[] }> {
    await this.ensureDirs();
    const candidates = new Set<string>();
    for (const container of await this.runtime.list()) candidates.add(container.id);
    for (const name of await readdir(tasksDir(this.runDir)).catch(() => [])) candidates.add(name);
    const realTasksDir = await realpath(tasksDir(this.runDir));
    for (const mountPoint of await this.secretsMounted())
      candidates.add(mountPoint.slice(realTasksDir.length + 1).split('/')[0]!);
    for (const taskId of this.tasks.keys()) candidates.add(taskId);
    const removed: string[] = [];
    await Promise.all(
      // Only names we could have made: anything else in our directories was not put there by us.
      [...candidates].filter(isTaskId).map(async (taskId) => {
        if (keep.has(taskId)) return this.adopt(taskId);
        removed.push(taskId);
        const entry = this.tasks.get(taskId);
        await (entry === undefined
          ? this.destroy(taskId, null)
          : this.serial(entry, () => this.destroy(taskId, entry)));
      }),
    );
    return { removed: removed.sort() };
  }

  private async create(
    entry: TaskEntry,
    task: TaskRun,
    files: readonly SecretFile[],
  ): Promise<void> {
    const paths = entry.paths;
    // Everything that can fail without side effects first: nothing is mounted for a bad image or runtime.
    const rootfsPath = await this.images.resolveImage(task.image);
    await this.runtime.check();
    await this.ensureDirs();
    try {
      await mkdir(paths.dir, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST')
        throw new SecretdError(
          'conflict',
          `Cannot start task '${task.taskId}': ${paths.dir} exists (left by an earlier agent? reconcile first)`,
        );
      throw error;
    }
    try {
      const mount = await SecretMount.create(
        paths.secretsDir,
        secretsTmpfsBytes(task.secrets.map((s) => s.data.length)),
      );
      entry.mount = mount;
      await writeAll(mount, files, task.secrets);
      entry.manifest = { image: task.image, rootfsPath };
      await writeManifest(paths, {
        taskId: task.taskId,
        image: task.image,
        rootfsPath,
        files: mount.list(),
      });
      const relative = files.some((file) => file.placement.kind === 'relative');
      await writeBundle(paths.bundleDir, {
        taskId: task.taskId,
        rootfsPath,
        args: task.command,
        env: task.env,
        secretsDir: relative ? mount.relativeDir : null,
        fileMounts: bundleFileMounts(mount, files),
        cgroupsPath: `${this.cgroupParent}/${task.taskId}`,
      });
      const container = await this.runtime.run(task.taskId, paths.bundleDir, {
        logPath: paths.runtimeLog,
        startTimeoutMs: containerStartTimeoutMs,
      });
      entry.phase = 'running';
      entry.started = true;
      entry.pid = container.pid;
      entry.exited = container.exited;
      void container.exited.then((code) => this.exited(entry, code));
    } catch (error) {
      await this.destroy(task.taskId, entry).catch(() => undefined);
      throw error;
    }
  }

  private async replaceSecrets(entry: TaskEntry, secrets: readonly TaskSecret[]): Promise<void> {
    const context = `Cannot update secrets of task '${entry.taskId}'`;
    const mount = entry.mount;
    if (mount === null || entry.phase === 'stopping')
      throw new SecretdError('conflict', `${context}: it is stopping`);
    const files = checkSecretRefs(context, secrets);
    const wanted = new Map(
      files.map((file, index) => [file.target, { file, data: secrets[index]!.data }]),
    );
    const changes = await planChanges(mount, wanted);
    // Absolute targets are single-file binds fixed at start: a rename would not reach the container.
    for (const file of [...changes.write.map((w) => w.file), ...changes.remove]) {
      if (file.placement.kind === 'absolute')
        throw new SecretdError(
          'conflict',
          `${context}: secret target '${file.target}' is bound file by file into the container, so it cannot change without a restart`,
        );
    }
    await mount.ensureSize(secretsTmpfsBytes(secrets.map((s) => s.data.length)));
    await writeAll(
      mount,
      changes.write.map((w) => w.file),
      changes.write.map((w) => ({ data: w.data })),
    );
    for (const file of changes.remove) await mount.removeFile(file.target);
    if (entry.manifest !== null)
      await writeManifest(entry.paths, {
        taskId: entry.taskId,
        ...entry.manifest,
        files: mount.list(),
      });
  }

  /**
   * Stops (TERM, grace, KILL), deletes, erases the secrets, removes the task directory. The secrets
   * are erased even if the container would not stop: revoking them matters more than tidiness.
   */
  private async destroy(taskId: string, entry: TaskEntry | null): Promise<void> {
    const paths = taskPaths(this.runDir, taskId);
    if (entry !== null) {
      entry.phase = 'stopping';
      entry.stopPolling?.();
    }
    let failure: unknown = null;
    let code: number | null | undefined;
    try {
      code = await stopContainer(this.runtime, taskId, entry?.exited ?? null, this.stopGraceMs);
    } catch (error) {
      failure = error;
    }
    await this.runtime.delete(taskId).catch((error: unknown) => (failure ??= error));
    if (entry !== null) {
      this.secretWritesOfGoneMounts += entry.mount?.filesWritten ?? 0;
      entry.mount = null;
      if (code !== undefined && code !== null) entry.exitCode = code;
    }
    try {
      await eraseSecretsDir(paths.secretsDir);
      await rm(paths.dir, { recursive: true, force: true });
    } finally {
      // Only now, with the secrets gone (or their erasure failed loudly), is the end reported.
      if (entry !== null) {
        if (this.tasks.get(taskId) === entry) this.tasks.delete(taskId);
        this.reportExit(entry);
      }
    }
    if (this.tasks.size === 0) await removeEmptyCgroupParent(this.cgroupParent);
    if (failure !== null) throw failure;
  }

  private async adopt(taskId: string): Promise<void> {
    if (this.tasks.has(taskId)) return;
    const paths = taskPaths(this.runDir, taskId);
    const manifest = await readManifest(paths);
    const entry = this.newEntry(taskId, 'running');
    if (manifest !== null) {
      entry.manifest = { image: manifest.image, rootfsPath: manifest.rootfsPath };
      entry.mount = await SecretMount.open(paths.secretsDir, manifest.files).catch(() => null);
    }
    this.tasks.set(taskId, entry);
    const container = await this.runtime.state(taskId);
    if (container === null || container.status === 'stopped') return this.exited(entry, null);
    entry.pid = container.pid;
    // No runc child to wait on: poll at a modest rate; the exit code is lost with the old agent.
    const timer = setInterval(() => {
      void this.runtime.state(taskId).then(
        (state) => {
          if (state === null || state.status === 'stopped') this.exited(entry, null);
        },
        () => undefined,
      );
    }, exitPollIntervalMs);
    timer.unref?.();
    entry.stopPolling = () => clearInterval(timer);
  }

  /**
   * The container's first process is gone. Unless a stop is already erasing it, the container is
   * deleted and its secrets erased now, and only then is the exit reported (by `destroy`).
   */
  private exited(entry: TaskEntry, code: number | null): void {
    entry.stopPolling?.();
    entry.stopPolling = null;
    entry.exitCode = code;
    entry.pid = null;
    if (entry.phase !== 'running') return;
    entry.phase = 'exited';
    void this.serial(entry, () => this.destroy(entry.taskId, entry)).catch(() => {
      // destroy reported the exit in any case; what failed is logged by the caller of stop/sweep
      // and retried by the next sweep (the directory or mount is still there to find).
    });
  }

  /** Once per container that ran; a task whose start failed never ran, so it has no exit. */
  private reportExit(entry: TaskEntry): void {
    if (entry.exitReported || !entry.started) return;
    entry.exitReported = true;
    for (const listener of this.listeners) listener(entry.taskId, entry.exitCode);
  }

  private newEntry(taskId: string, phase: TaskEntry['phase']): TaskEntry {
    return {
      taskId,
      paths: taskPaths(this.runDir, taskId),
      manifest: null,
      mount: null,
      phase,
      started: phase !== 'creating',
      pid: null,
      exitCode: null,
      exitReported: false,
      exited: null,
      stopPolling: null,
      queue: Promise.resolve(),
    };
  }

  private entry(taskId: string, context: string): TaskEntry {
    checkTaskId(taskId);
    const entry = this.tasks.get(taskId);
    if (entry === undefined)
      throw new SecretdError('not_found', `${context}: no such task on this node`);
    return entry;
  }

  private runningEntry(taskId: string, context: string): TaskEntry {
    const entry = this.entry(taskId, context);
    if (entry.phase !== 'running')
      throw new SecretdError(
        'conflict',
        `${context}: it is ${entry.phase === 'exited' ? 'not running (exited)' : entry.phase}`,
      );
    return entry;
  }

  private serial<T>(entry: TaskEntry, fn: () => Promise<T>): Promise<T> {
    const result = entry.queue.then(fn, fn);
    entry.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * On the node's clean stop: with no task left on this executor, its run directory goes (the
   * tasks, runc and containers directories, then itself), so a stopped node leaves nothing under /run/secretd.
   * Only empty directories are removed: one that still holds anything (a container that outlives
   * this process, runc's state of it) stays for the next start to find.
   */
  async removeRunDirIfIdle(): Promise<void> {
    if (this.tasks.size > 0) return;
    const runDir = this.runDir;
    // Other engines' containers (task-dispatch/local-containers.ts): empty once none runs.
    const dirs = [tasksDir(runDir), join(runDir, 'runc'), containersDirOf(runDir), runDir];
    for (const dir of dirs) {
      try {
        await rmdir(dir);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue;
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EBUSY') return;
        throw error;
      }
    }
    this.dirsReady = null;
  }

  private ensureDirs(): Promise<void> {
    this.dirsReady ??= (async () => {
      await mkdir(join(this.runDir, 'runc'), { recursive: true, mode: 0o700 });
      await mkdir(tasksDir(this.runDir), { recursive: true, mode: 0o700 });
    })();
    return this.dirsReady;
  }
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
