/**
 * The executor on the real thing: runc, tmpfs mounts, a busybox image. Needs root and runc
 * (CI: `apt-get install -y runc busybox-static`); skipped with a message otherwise.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'bun:test';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { busyboxRootfsTarball, staticBusybox } from '../../../test/helpers/busybox-image.ts';
import { SecretdError } from '../../errors.ts';
import { mountAt, readMounts } from './_mountinfo.ts';
import { Executor, type TaskSecret } from './executor.ts';
import { rejection } from '../../../test/helpers/errors.ts';

const isRoot = process.getuid?.() === 0;
const hasRunc = spawnSync('runc', ['--version'], { timeout: 10_000 }).status === 0;
const canRun = isRoot && hasRunc && staticBusybox() !== null;
if (!canRun)
  console.warn(
    `executor tests skipped: they need root, runc and busybox-static (root: ${isRoot}, runc: ${hasRunc}); CI installs them`,
  );

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
/** A process that ends on SIGTERM (a shell as PID 1 ignores signals it does not trap). */
const idle = ['sh', '-c', 'trap "exit 0" TERM; sleep 1000 & wait'];

/** A busybox task that idles until stopped, with one secret `s` at `target`. */
function idleTask(taskId: string, target: string, value: string) {
  return {
    taskId,
    image: 'busybox',
    command: idle,
    env: [],
    secrets: [secret('s', target, value)],
  };
}

function secret(
  secretId: string,
  target: string,
  value: string | Uint8Array,
  extra: Partial<TaskSecret> = {},
): TaskSecret {
  return {
    secretId,
    target,
    uid: '0',
    gid: '0',
    mode: 0o444,
    data: typeof value === 'string' ? enc(value) : value,
    ...extra,
  };
}

/** Every regular file under `dir` (not following links, not entering `skip`). */
function filesUnder(dir: string, skip: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (skip.has(path)) continue;
    const stats = lstatSync(path);
    if (stats.isDirectory()) out.push(...filesUnder(path, skip));
    else if (stats.isFile()) out.push(path);
  }
  return out;
}

/** `ls -l` lines as [mode, owner, group, size, name], without link counts and dates. */
function listing(stdout: string): string[][] {
  return stdout
    .split('\n')
    .filter((line) => /^[-dl]/.test(line))
    .map((line) => {
      const fields = line.trim().split(/\s+/);
      return [fields[0]!, fields[2]!, fields[3]!, fields[4]!, fields[fields.length - 1]!];
    });
}

/** Waits for a condition (bounded), never for a fixed time. */
async function until(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe.skipIf(!canRun)('Executor', () => {
  const work = canRun ? mkdtempSync(join(tmpdir(), 'secretd-executor-')) : '';
  const dataDir = join(work, 'data');
  const runDir = join(work, 'run');
  let executor: Executor;
  const exits: Array<[string, number | null]> = [];
  const exitWaiters = new Map<string, (code: number | null) => void>();
  const exitOf = (taskId: string): Promise<number | null> =>
    new Promise((resolve) => exitWaiters.set(taskId, resolve));

  beforeAll(async () => {
    executor = new Executor({ dataDir, runDir, stopGraceMs: 3000 });
    executor.onExit((taskId, code) => {
      exits.push([taskId, code]);
      exitWaiters.get(taskId)?.(code);
    });
    await executor.images.importImage('busybox', busyboxRootfsTarball());
  });

  // A failed test leaves nothing for the next one.
  afterEach(async () => {
    await executor.reconcile(new Set());
  });

  afterAll(async () => {
    if (!canRun) return;
    await executor.reconcile(new Set());
    rmSync(work, { recursive: true, force: true });
  });

  test('start() delivers relative and absolute secrets with owner and mode; nothing of them outside the tmpfs', async () => {
    const values = { shared: 's3cr3t-value-0017', db: 'db-password!', key: '-----KEY-----' };
    const secrets = [
      secret('sec1', 'my_secret_data', values.shared),
      secret('sec2', 'db_pass', values.db, { uid: '1000', gid: '1000', mode: 0o400 }),
      secret('sec3', '/etc/app/key.pem', values.key, { mode: 0o440 }),
    ];
    const started = performance.now();
    await executor.start({
      taskId: 'deliver',
      image: 'busybox',
      command: idle,
      env: ['APP=1'],
      secrets,
    });
    const read = await executor.exec('deliver', ['cat', '/run/secrets/my_secret_data']);
    console.log(
      `start() → secret readable in the container: ${(performance.now() - started).toFixed(0)} ms`,
    );
    expect(read).toEqual({ code: 0, stdout: values.shared, stderr: '' });
    // The executor owns the buffers: zeroed once written.
    expect(secrets.every((s) => s.data.every((byte) => byte === 0))).toBe(true);

    const ls = await executor.exec('deliver', ['ls', '-l', '/run/secrets']);
    expect(listing(ls.stdout)).toEqual([
      ['-r--------', 'app', 'app', '12', 'db_pass'],
      ['-r--r--r--', 'root', 'root', '17', 'my_secret_data'],
    ]);
    expect(
      listing((await executor.exec('deliver', ['ls', '-l', '/etc/app/key.pem'])).stdout),
    ).toEqual([['-r--r-----', 'root', 'root', '13', '/etc/app/key.pem']]);
    expect(await executor.exec('deliver', ['cat', '/etc/app/key.pem'])).toEqual({
      code: 0,
      stdout: values.key,
      stderr: '',
    });
    expect(
      await executor.exec('deliver', ['cat', '/run/secrets/db_pass'], { uid: 1000, gid: 1000 }),
    ).toEqual({ code: 0, stdout: values.db, stderr: '' });
    // Root in the container has no CAP_DAC_OVERRIDE: a 0400 secret of uid 1000 is not its to read.
    expect(await executor.exec('deliver', ['cat', '/run/secrets/db_pass'])).toEqual({
      code: 1,
      stdout: '',
      stderr: "cat: can't open '/run/secrets/db_pass': Permission denied\n",
    });
    // Read-only in the container, even for root.
    const write = await executor.exec('deliver', ['sh', '-c', 'echo x > /run/secrets/new']);
    expect([write.code, write.stderr]).toEqual([
      1,
      "sh: can't create /run/secrets/new: Read-only file system\n",
    ]);

    const paths = executor.paths('deliver');
    expect(await executor.secretsMounted()).toEqual([paths.secretsDir]);
    const entry = mountAt(await readMounts(), paths.secretsDir)!;
    expect([
      entry.fsType,
      ['nodev', 'nosuid', 'noexec'].every((option) => entry.mountOptions.has(option)),
    ]).toEqual(['tmpfs', true]);

    // No secret byte in config.json, the manifest, runc's log, the image or anything else on disk.
    const config = readFileSync(paths.configPath, 'utf8');
    expect(config).toContain(`"destination": "/run/secrets"`);
    const onDisk = filesUnder(work, new Set([paths.secretsDir]));
    expect(onDisk).toContain(paths.configPath);
    for (const path of onDisk) {
      const bytes = readFileSync(path);
      for (const value of Object.values(values))
        expect({ path, leaks: bytes.includes(value) }).toEqual({ path, leaks: false });
    }
    expect(executor.stats()).toEqual({ secretFilesWritten: 3, secretFilesHeld: 3, tasks: 1 });

    const stopping = performance.now();
    await executor.stop('deliver');
    console.log(
      `stop() → container, mount and files gone: ${(performance.now() - stopping).toFixed(0)} ms`,
    );
    expect(await executor.state('deliver')).toEqual({
      status: 'missing',
      exitCode: null,
      pid: null,
    });
    expect(await executor.runtime.list()).toEqual([]);
    expect(await executor.secretsMounted()).toEqual([]);
    expect(existsSync(paths.dir)).toBe(false);
    expect(exits).toContainEqual(['deliver', 0]);
  });

  test('setSecrets() removes and adds files in the running container without restarting it', async () => {
    await executor.start({
      taskId: 'live',
      image: 'busybox',
      command: idle,
      env: [],
      secrets: [secret('sa', 'a', 'value-a'), secret('sb', 'b', 'value-b')],
    });
    const before = await executor.state('live');
    expect(before.status).toBe('running');
    await executor.setSecrets('live', [
      secret('sa', 'a', 'value-a'),
      secret('sc', 'nested/c', 'value-c'),
    ]);
    expect(await executor.exec('live', ['sh', '-c', 'find /run/secrets -type f | sort'])).toEqual({
      code: 0,
      stdout: '/run/secrets/a\n/run/secrets/nested/c\n',
      stderr: '',
    });
    expect(await executor.exec('live', ['cat', '/run/secrets/nested/c'])).toEqual({
      code: 0,
      stdout: 'value-c',
      stderr: '',
    });
    expect(await executor.state('live')).toEqual(before);
    await executor.stop('live');
  });

  test('setSecrets() replaces a value by atomic rename: a reader loop never sees it empty or partial', async () => {
    const value = (version: number): Uint8Array => new Uint8Array(256 * 1024).fill(0x61 + version);
    const md5 = (bytes: Uint8Array): string => createHash('md5').update(bytes).digest('hex');
    const known = new Set(Array.from({ length: 26 }, (_, version) => md5(value(version))));
    await executor.start({
      taskId: 'rotate',
      image: 'busybox',
      command: idle,
      env: [],
      secrets: [secret('rot', 'rotating', value(0), { version: 0 })],
    });
    const { pid } = await executor.state('rotate');
    const reader = executor.exec(
      'rotate',
      [
        'sh',
        '-c',
        'i=0; while [ $i -lt 400 ]; do md5sum < /run/secrets/rotating; i=$((i+1)); done',
      ],
      { timeoutMs: 30_000 },
    );
    let done = false;
    void reader.finally(() => (done = true));
    // Keep replacing (cycling through 26 values) for as long as the reader reads.
    for (let version = 1; !done; version++)
      await executor.setSecrets('rotate', [
        secret('rot', 'rotating', value(version % 26), { version }),
      ]);
    const result = await reader;
    const seen = result.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(' ')[0]!);
    expect([result.code, seen.length, seen.filter((hash) => !known.has(hash))]).toEqual([
      0,
      400,
      [],
    ]);
    // The reads overlapped the updates.
    expect(new Set(seen).size).toBeGreaterThan(1);
    expect((await executor.state('rotate')).pid).toBe(pid);
    await executor.stop('rotate');
  });

  test('setSecrets() keeps an unchanged absolute target but refuses to change one, changing nothing', async () => {
    await executor.start({
      taskId: 'fixed',
      image: 'busybox',
      command: idle,
      env: [],
      secrets: [secret('k', '/etc/key', 'key-1'), secret('r', 'rel', 'rel-1')],
    });
    const error = await rejection(
      executor.setSecrets('fixed', [secret('k', '/etc/key', 'key-2'), secret('r', 'rel', 'rel-2')]),
    );
    expect([error.code, error.message]).toEqual([
      'conflict',
      "Cannot update secrets of task 'fixed': secret target '/etc/key' is bound file by file into the container, so it cannot change without a restart",
    ]);
    expect((await executor.exec('fixed', ['cat', '/etc/key', '/run/secrets/rel'])).stdout).toBe(
      'key-1rel-1',
    );
    // Same bytes (compared with the tmpfs copy, no version given): not a change.
    const written = executor.stats().secretFilesWritten;
    await executor.setSecrets('fixed', [
      secret('k', '/etc/key', 'key-1'),
      secret('r', 'rel', 'rel-2'),
    ]);
    expect((await executor.exec('fixed', ['cat', '/etc/key', '/run/secrets/rel'])).stdout).toBe(
      'key-1rel-2',
    );
    expect(executor.stats().secretFilesWritten).toBe(written + 1);
    await executor.stop('fixed');
  });

  test('exec() gives up after its timeout even when the command ignores SIGTERM and holds its output open', async () => {
    await executor.start({
      taskId: 'stuck',
      image: 'busybox',
      command: idle,
      env: [],
      secrets: [],
    });
    const began = performance.now();
    const error = await rejection(
      executor.exec('stuck', ['sh', '-c', 'trap "" TERM; sleep 30'], { timeoutMs: 300 }),
    );
    expect([error.code, error.message]).toEqual([
      'unavailable',
      "Command in container 'stuck' did not finish within 300 ms",
    ]);
    expect(performance.now() - began).toBeLessThan(5000);
    await executor.stop('stuck');
  });

  /** Where a value could be left on the host once its container is gone: the mount table and the run dir. */
  function leftovers(taskId: string, value: string): string[] {
    const found: string[] = [];
    if (readFileSync('/proc/mounts', 'utf8').includes(`/tasks/${taskId}/`))
      found.push(`a mount of ${taskId}`);
    if (existsSync(executor.paths(taskId).dir)) found.push(`the directory of ${taskId}`);
    for (const file of filesUnder(runDir, new Set()))
      if (readFileSync(file).includes(value)) found.push(file);
    return found;
  }

  test('a container that ends on its own takes its secrets with it before its exit is reported: exit 0, exit 1, SIGKILL from the host', async () => {
    const cases = [
      { taskId: 'exit0', command: ['sh', '-c', 'cat /run/secrets/x >/dev/null; exit 0'], code: 0 },
      { taskId: 'exit1', command: ['sh', '-c', 'cat /run/secrets/x >/dev/null; exit 1'], code: 1 },
      { taskId: 'hostkill', command: ['sleep', '1000'], code: 137 },
    ];
    for (const { taskId, command, code } of cases) {
      const value = `value-of-${taskId}-${crypto.randomUUID()}`;
      // What the listener sees at the moment of the exit: nothing may be left by then.
      const seen = new Promise<{ code: number | null; left: string[] }>((resolve) =>
        exitWaiters.set(taskId, (exitCode) =>
          resolve({ code: exitCode, left: leftovers(taskId, value) }),
        ),
      );
      await executor.start({
        taskId,
        image: 'busybox',
        command,
        env: [],
        secrets: [secret('s', 'x', value)],
      });
      if (taskId === 'hostkill') {
        // As an operator (or the OOM killer) would: the signal comes from outside secretd.
        const { pid } = await executor.state(taskId);
        process.kill(pid!, 'SIGKILL');
      }
      expect(await seen).toEqual({ code, left: [] });
      expect(await executor.state(taskId)).toEqual({
        status: 'missing',
        exitCode: null,
        pid: null,
      });
      expect(leftovers(taskId, value)).toEqual([]);
      // Stopping what already ended is harmless and reports nothing twice.
      await executor.stop(taskId);
    }
    expect(await executor.secretsMounted()).toEqual([]);
    expect(exits.filter(([id]) => cases.some((c) => c.taskId === id))).toEqual(
      cases.map((c) => [c.taskId, c.code]),
    );
  });

  test('a container killed through the runtime is erased and reported once with its code', async () => {
    const killed = exitOf('killed');
    await executor.start({
      taskId: 'killed',
      image: 'busybox',
      command: ['sleep', '1000'],
      env: [],
      secrets: [secret('s', 'x', 'killed-value')],
    });
    await executor.signal('killed', 'KILL');
    expect(await killed).toBe(137);
    expect(leftovers('killed', 'killed-value')).toEqual([]);
    await executor.stop('killed');
    expect(exits.filter(([id]) => id === 'killed')).toEqual([['killed', 137]]);
  });

  test('a command that does not exist fails the start and leaves no mount, directory or value', async () => {
    const value = `no-such-command-${crypto.randomUUID()}`;
    const failed = await executor
      .start({
        taskId: 'nocmd',
        image: 'busybox',
        command: ['/no/such/command'],
        env: [],
        secrets: [secret('s', 'x', value)],
      })
      .then(
        () => null,
        (error: unknown) => error as Error,
      );
    // runc either refuses to start it or the container exits at once with 127: both end in nothing left.
    if (failed === null)
      await until(async () => (await executor.state('nocmd')).status === 'missing');
    expect(leftovers('nocmd', value)).toEqual([]);
    expect(await executor.secretsMounted()).toEqual([]);
  });

  test('sweep() erases a secrets mount and directory that no container owns, and leaves running tasks alone', async () => {
    const sweepRunDir = join(work, 'run-sweep');
    const left = new Executor({ dataDir, runDir: sweepRunDir, stopGraceMs: 3000 });
    await left.start(idleTask('orphan', 'x', 'orphan-value'));
    await left.start(idleTask('alive', 'x', 'alive-value'));
    left.close();
    const sweeper = new Executor({ dataDir, runDir: sweepRunDir, stopGraceMs: 3000 });
    // 'alive' is taken over; 'orphan' belongs to nobody (its container was removed behind our back).
    await sweeper.reconcile(new Set(['alive', 'orphan']));
    spawnSync('runc', ['--root', join(sweepRunDir, 'runc'), 'kill', 'orphan', 'KILL']);
    // The sweep or the exit watcher (it was taken over) erases it: the mount goes first, then the
    // directory, so both are waited for (a CI run once looked between the two).
    await until(async () => {
      await sweeper.sweep();
      const mounted = await sweeper.secretsMounted();
      return mounted.length === 1 && readdirSync(join(sweepRunDir, 'tasks')).length === 1;
    });
    expect(await sweeper.secretsMounted()).toEqual([sweeper.paths('alive').secretsDir]);
    expect(readdirSync(join(sweepRunDir, 'tasks'))).toEqual(['alive']);
    // A directory with a tmpfs that no task of this executor knows (a crash between mount and manifest).
    const stray = join(sweepRunDir, 'tasks', 'stray', 'secrets');
    spawnSync('mkdir', ['-p', stray]);
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', stray]).status).toBe(0);
    expect(await sweeper.sweep()).toEqual(['stray']);
    expect(await sweeper.secretsMounted()).toEqual([sweeper.paths('alive').secretsDir]);
    expect(await sweeper.sweep()).toEqual([]);
    expect((await sweeper.exec('alive', ['cat', '/run/secrets/x'])).stdout).toBe('alive-value');
    await sweeper.reconcile(new Set());
    expect(await sweeper.secretsMounted()).toEqual([]);
  });

  test('reconcile() after a crashed agent removes every container, mount and file not kept, and takes over the rest', async () => {
    const crashRunDir = join(work, 'run-crash');
    const first = new Executor({ dataDir, runDir: crashRunDir, stopGraceMs: 3000 });
    for (const taskId of ['drop1', 'drop2', 'keep'])
      await first.start({
        taskId,
        image: 'busybox',
        command: idle,
        env: [],
        secrets: [secret('s', 'token', `value-${taskId}`)],
      });
    // The agent dies without stopping anything: its containers and mounts stay.
    first.close();
    const second = new Executor({ dataDir, runDir: crashRunDir, stopGraceMs: 3000 });
    expect((await second.runtime.list()).map((c) => [c.id, c.status]).sort()).toEqual([
      ['drop1', 'running'],
      ['drop2', 'running'],
      ['keep', 'running'],
    ]);
    expect(await second.reconcile(new Set(['keep']))).toEqual({ removed: ['drop1', 'drop2'] });
    expect((await second.runtime.list()).map((c) => c.id)).toEqual(['keep']);
    expect(await second.secretsMounted()).toEqual([second.paths('keep').secretsDir]);
    expect(readdirSync(join(crashRunDir, 'tasks'))).toEqual(['keep']);
    // The kept task is fully ours again: exec, secret updates, stop.
    expect((await second.exec('keep', ['cat', '/run/secrets/token'])).stdout).toBe('value-keep');
    await second.setSecrets('keep', [secret('s', 'token', 'value-rotated')]);
    expect((await second.exec('keep', ['cat', '/run/secrets/token'])).stdout).toBe('value-rotated');
    expect(await second.reconcile(new Set())).toEqual({ removed: ['keep'] });
    expect(await second.runtime.list()).toEqual([]);
    expect(await second.secretsMounted()).toEqual([]);
    expect(readdirSync(join(crashRunDir, 'tasks'))).toEqual([]);
  });

  test('removeRunDirIfIdle() removes the run directory once no task is left, never while one is', async () => {
    const idleRunDir = join(work, 'run-idle');
    const node = new Executor({ dataDir, runDir: idleRunDir, stopGraceMs: 3000 });
    await node.start(idleTask('stays', 'token', 'value-stays'));
    await node.removeRunDirIfIdle();
    expect(readdirSync(join(idleRunDir, 'tasks'))).toEqual(['stays']);
    // A task the process no longer tracks (it outlived an agent) keeps the directory as well.
    node.close();
    const next = new Executor({ dataDir, runDir: idleRunDir, stopGraceMs: 3000 });
    await next.removeRunDirIfIdle();
    expect(readdirSync(join(idleRunDir, 'tasks'))).toEqual(['stays']);
    expect(await next.reconcile(new Set())).toEqual({ removed: ['stays'] });
    await next.removeRunDirIfIdle();
    expect(existsSync(idleRunDir)).toBe(false);
    await next.removeRunDirIfIdle(); // already gone: nothing to do
  });

  test('reconcile() cleans up after an agent killed with SIGKILL while its containers run', async () => {
    const crashRunDir = join(work, 'run-sigkill');
    // A separate agent process: its runc children must outlive it, as they would in production.
    const script = `
      const { Executor } = await import(${JSON.stringify(join(import.meta.dir, 'executor.ts'))});
      const executor = new Executor({ dataDir: ${JSON.stringify(dataDir)}, runDir: ${JSON.stringify(crashRunDir)} });
      for (const taskId of ['k1', 'k2']) {
        const data = new TextEncoder().encode('value-' + taskId);
        await executor.start({ taskId, image: 'busybox', command: ${JSON.stringify(idle)}, env: [], secrets: [{ secretId: 's', target: 'token', uid: '0', gid: '0', mode: 0o444, data }] });
      }
      console.log('started');
      setInterval(() => {}, 1000);
    `;
    const agent = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    agent.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    agent.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<[number | null, string | null]>((resolve) =>
      agent.once('exit', (code, signal) => resolve([code, signal])),
    );
    const ready = await Promise.race([
      new Promise<boolean>((resolve) =>
        agent.stdout.on('data', () => stdout.includes('started') && resolve(true)),
      ),
      exited.then(() => false),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20_000)),
    ]);
    agent.kill('SIGKILL');
    expect([ready, await exited, stdout, stderr]).toEqual([
      true,
      [null, 'SIGKILL'],
      'started\n',
      '',
    ]);

    const next = new Executor({ dataDir, runDir: crashRunDir, stopGraceMs: 3000 });
    expect((await next.runtime.list()).map((c) => [c.id, c.status]).sort()).toEqual([
      ['k1', 'running'],
      ['k2', 'running'],
    ]);
    expect(await next.secretsMounted()).toEqual([
      next.paths('k1').secretsDir,
      next.paths('k2').secretsDir,
    ]);
    expect(await next.reconcile(new Set())).toEqual({ removed: ['k1', 'k2'] });
    expect([
      await next.runtime.list(),
      await next.secretsMounted(),
      readdirSync(join(crashRunDir, 'tasks')),
    ]).toEqual([[], [], []]);
  });

  test('start() fails clearly and mounts nothing for an unknown image, a missing runtime, a bad command or bad targets', async () => {
    const data = enc('never-written');
    const noImage = await rejection(
      executor.start({
        taskId: 'noimage',
        image: 'nope',
        command: idle,
        env: [],
        secrets: [secret('s', 'x', data)],
      }),
    );
    expect([noImage.code, noImage.message]).toEqual([
      'not_found',
      "Image 'nope' not found on this node: import it with `secretd image import nope ROOTFS.tar`",
    ]);
    expect(data.every((byte) => byte === 0)).toBe(true);

    const noRuntime = new Executor({
      dataDir,
      runDir: join(work, 'run-noruntime'),
      runtimeBinary: 'runc-not-installed',
    });
    const missing = await rejection(
      noRuntime.start({
        taskId: 'noruntime',
        image: 'busybox',
        command: idle,
        env: [],
        secrets: [secret('s', 'x', 'v')],
      }),
    );
    expect([missing.code, missing.message]).toEqual([
      'unavailable',
      "OCI runtime 'runc-not-installed' not found: install runc or pass --runtime PATH",
    ]);
    expect(await noRuntime.secretsMounted()).toEqual([]);

    const badCommand = await rejection(
      executor.start({
        taskId: 'badcmd',
        image: 'busybox',
        command: ['/no/such/program'],
        env: [],
        secrets: [secret('s', 'x', 'v')],
      }),
    );
    expect(badCommand.message).toBe(
      "OCI runtime 'runc' could not start container 'badcmd': runc run failed: unable to start container process: exec: \"/no/such/program\": stat /no/such/program: no such file or directory",
    );

    for (const [targets, message] of [
      [['../x'], "secret target '../x' must not contain '.' or '..' components"],
      [[''], "secret target '' must not be empty"],
      [['dup', 'dup'], "secret target '/run/secrets/dup' is used twice"],
    ] as const) {
      const bad = await rejection(
        executor.start({
          taskId: 'badtarget',
          image: 'busybox',
          command: idle,
          env: [],
          secrets: targets.map((t) => secret('s', t, 'v')),
        }),
      );
      expect([bad.code, bad.message]).toEqual([
        'invalid',
        `Cannot start task 'badtarget': ${message}`,
      ]);
    }
    expect(await executor.secretsMounted()).toEqual([]);
    expect(readdirSync(join(runDir, 'tasks'))).toEqual([]);
    expect(await executor.runtime.list()).toEqual([]);
    expect(exits.some(([id]) => id === 'badcmd')).toBe(false);
  });
});
