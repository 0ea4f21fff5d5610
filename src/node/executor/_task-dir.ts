/**
 * Where a task's files live under the executor's run directory, and its manifest: what the
 * executor needs to take a task over after an agent restart. The manifest holds secret ids,
 * targets, owners and modes, never a value.
 *
 *   <runDir>/runc/                     runc's state root (`--root`), ours alone
 *   <runDir>/tasks/<taskId>/task.json  the manifest
 *   <runDir>/tasks/<taskId>/secrets/   the tmpfs (secret-mount.ts)
 *   <runDir>/tasks/<taskId>/bundle/    config.json (bundle.ts)
 *   <runDir>/tasks/<taskId>/runtime.log  runc's own errors (not the container's output)
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SecretdError } from '../../errors.ts';
import { taskIdCharsMax } from './limits.ts';
import type { SecretFile } from './targets.ts';

export interface TaskPaths {
  readonly dir: string;
  readonly manifest: string;
  readonly secretsDir: string;
  readonly bundleDir: string;
  readonly configPath: string;
  readonly runtimeLog: string;
}

export interface TaskManifest {
  readonly taskId: string;
  readonly image: string;
  readonly rootfsPath: string;
  readonly files: readonly SecretFile[];
}

const taskIdPattern = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,${taskIdCharsMax - 1}}$`);

export function isTaskId(name: string): boolean {
  return taskIdPattern.test(name);
}

export function checkTaskId(taskId: string): void {
  if (!isTaskId(taskId))
    throw new SecretdError('invalid', `Task id '${taskId}' must match ${taskIdPattern.source}`);
}

export function tasksDir(runDir: string): string {
  return join(runDir, 'tasks');
}

export function taskPaths(runDir: string, taskId: string): TaskPaths {
  const dir = join(tasksDir(runDir), taskId);
  const bundleDir = join(dir, 'bundle');
  return {
    dir,
    manifest: join(dir, 'task.json'),
    secretsDir: join(dir, 'secrets'),
    bundleDir,
    configPath: join(bundleDir, 'config.json'),
    runtimeLog: join(dir, 'runtime.log'),
  };
}

export async function writeManifest(paths: TaskPaths, manifest: TaskManifest): Promise<void> {
  await writeFile(`${paths.manifest}.tmp`, JSON.stringify(manifest, null, 2) + '\n', {
    mode: 0o600,
  });
  await rename(`${paths.manifest}.tmp`, paths.manifest);
}

export async function readManifest(paths: TaskPaths): Promise<TaskManifest | null> {
  try {
    return JSON.parse(await readFile(paths.manifest, 'utf8')) as TaskManifest;
  } catch {
    return null;
  }
}
