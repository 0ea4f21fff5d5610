import { afterEach, describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, type TempDir } from '../../../test/helpers/process.ts';
import { rejection } from '../../../test/helpers/errors.ts';
import { GrantedSecrets } from './granted.ts';
import { LocalContainers, processStartTime, type LocalSecretRef } from './local-containers.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot)
  console.warn('local-containers tests skipped: mounting a tmpfs needs root (CI runs as root)');

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const ref = (secret: string, extra: Partial<LocalSecretRef> = {}): LocalSecretRef => ({
  secret,
  target: secret,
  uid: '0',
  gid: '0',
  mode: 0o444,
  onUpdate: 'none',
  ...extra,
});
const me = {
  kind: 'process' as const,
  pid: process.pid,
  startTime: processStartTime(process.pid)!,
};

function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point.startsWith(dir + '/'));
}

/** Waits for a condition the service reaches asynchronously (a grant change is applied in its queue). */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe.if(isRoot)('LocalContainers', () => {
  let dir: TempDir;
  let service: LocalContainers;
  let granted: GrantedSecrets;
  const signals: string[] = [];
  const logs: string[] = [];

  function make(nowMs = () => Date.now()): LocalContainers {
    granted = new GrantedSecrets();
    dir = tempDir('secretd-local-');
    service = new LocalContainers({
      runDir: dir.path,
      granted,
      log: (line) => logs.push(line),
      ready: () => true,
      nowMs,
      killProcess: (pid, signal) => signals.push(`${pid}:${signal}`),
    });
    return service;
  }

  afterEach(async () => {
    for (const row of service.list()) await service.erase(row.containerId);
    service.close();
    expect(mountsUnder(dir.path)).toEqual([]);
    dir[Symbol.dispose]();
    signals.length = 0;
    logs.length = 0;
  });

  test('prepare() writes each granted secret on a fresh tmpfs with its mode and owner, and erase() unmounts it', async () => {
    make();
    granted.hold('s1', 'db_pass', 3, enc('hunter2'));
    const prepared = await service.prepare({
      containerId: 'c1',
      owner: me,
      refs: [ref('db_pass', { target: 'db', uid: '999', gid: '998', mode: 0o400 })],
    });
    expect(prepared).toEqual({
      secretsDir: join(dir.path, 'containers/c1/secrets/run'),
      fileMounts: [],
    });
    const file = join(prepared.secretsDir!, 'db');
    expect(readFileSync(file, 'utf8')).toBe('hunter2');
    const stats = statSync(file);
    expect([stats.uid, stats.gid, stats.mode & 0o777]).toEqual([999, 998, 0o400]);
    expect(mountsUnder(dir.path)).toEqual([join(dir.path, 'containers/c1/secrets')]);
    expect(service.list()).toEqual([
      {
        containerId: 'c1',
        owner: 'process',
        secrets: [{ secretId: 's1', name: 'db_pass', version: 3, target: 'db' }],
      },
    ]);
    expect(readFileSync(join(dir.path, 'containers/c1/container.json'), 'utf8')).not.toContain(
      'hunter2',
    );
    expect(await service.erase('c1')).toBe(true);
    expect(mountsUnder(dir.path)).toEqual([]);
    expect(existsSync(join(dir.path, 'containers/c1'))).toBe(false);
    expect(service.counts()).toEqual({ containers: 0, filesHeld: 0, filesWritten: 1 });
  });

  test('prepare() refuses a secret not granted, on-update=restart, a pinned version not held, a target with .. and duplicate targets, mounting nothing', async () => {
    make();
    granted.hold('s1', 'db_pass', 3, enc('x'));
    const cases: [LocalSecretRef[], RegExp][] = [
      [[ref('other')], /secret 'other' is not granted to this node/],
      [[ref('db_pass', { onUpdate: 'restart' })], /secret 'db_pass' asks for on-update=restart/],
      [
        [ref('db_pass', { version: 2 })],
        /secret 'db_pass' version 2 is not granted to this node \(it holds version 3\)/,
      ],
      [
        [ref('db_pass', { target: '../etc/passwd' })],
        /secret target '..\/etc\/passwd' must not contain '.' or '..'/,
      ],
      [
        [ref('db_pass', { target: 'a' }), ref('db_pass', { target: '/run/secrets/a' })],
        /secret target '\/run\/secrets\/a' is used twice/,
      ],
    ];
    for (const [refs, message] of cases) {
      const error = await rejection(service.prepare({ containerId: 'c2', owner: me, refs }));
      expect(error.message).toMatch(message);
      expect(error.message).toStartWith("Cannot give secrets to container 'c2'");
    }
    expect(mountsUnder(dir.path)).toEqual([]);
    expect(service.list()).toEqual([]);
  });

  test('prepare() says the node has no session yet when the agent has not had its first set from a manager', async () => {
    make();
    service.close();
    service = new LocalContainers({ runDir: dir.path, granted, log: () => {}, ready: () => false });
    const error = await rejection(
      service.prepare({ containerId: 'c0', owner: me, refs: [ref('db_pass')] }),
    );
    expect([error.code, error.message]).toEqual([
      'unavailable',
      "Cannot give secrets to container 'c0': secret 'db_pass' cannot be given yet: this node's agent has no session with a manager (is the cluster down, or the manager locked?)",
    ]);
    expect(mountsUnder(dir.path)).toEqual([]);
  });

  test('a new version replaces the file in place and sends the on-update signal; a withdrawn secret disappears from the mount', async () => {
    make();
    granted.hold('s1', 'db_pass', 1, enc('one'));
    granted.hold('s2', 'api_key', 1, enc('key'));
    const prepared = await service.prepare({
      containerId: 'c3',
      owner: me,
      refs: [ref('db_pass', { onUpdate: 'signal:SIGHUP' }), ref('api_key')],
    });
    const file = join(prepared.secretsDir!, 'db_pass');
    const inode = statSync(prepared.secretsDir!).ino;
    granted.hold('s1', 'db_pass', 2, enc('two'));
    await until('version 2 in place', () => service.list()[0]?.secrets[0]?.version === 2);
    expect(readFileSync(file, 'utf8')).toBe('two');
    expect(statSync(prepared.secretsDir!).ino).toBe(inode);
    await until('the signal', () => signals.length === 1);
    expect(signals).toEqual([`${process.pid}:SIGHUP`]);
    granted.withdraw('s2');
    await until('api_key withdrawn', () => service.list()[0]?.secrets.length === 1);
    expect(readdirSync(prepared.secretsDir!)).toEqual(['db_pass']);
    expect(signals).toEqual([`${process.pid}:SIGHUP`]);
  });

  test('sweep() erases a spawn whose process is gone and a runc container its root does not list, and keeps a live one', async () => {
    let now = 1_000_000;
    make(() => now);
    granted.hold('s1', 'db_pass', 1, enc('one'));
    const gone = spawnSync('true').pid!;
    await service.prepare({
      containerId: 'gone-process',
      owner: { kind: 'process', pid: gone, startTime: 'an-earlier-process' },
      refs: [ref('db_pass')],
    });
    await service.prepare({ containerId: 'live', owner: me, refs: [ref('db_pass')] });
    await service.prepare({
      containerId: 'runc-missing',
      owner: { kind: 'runc', root: join(dir.path, 'no-runc-root'), binary: 'runc' },
      refs: [ref('db_pass')],
    });
    // Just prepared: its `runc create` may still be running.
    expect(await service.sweep()).toEqual(['gone-process']);
    now += 60_000;
    expect(await service.sweep()).toEqual(['runc-missing']);
    expect(service.list().map((row) => row.containerId)).toEqual(['live']);
    expect(mountsUnder(dir.path)).toEqual([join(dir.path, 'containers/live/secrets')]);
  });

  test('a new service on the same run directory takes over what an earlier one left (an agent restart)', async () => {
    make();
    granted.hold('s1', 'db_pass', 1, enc('one'));
    await service.prepare({ containerId: 'kept', owner: me, refs: [ref('db_pass')] });
    service.close();
    const again = new LocalContainers({
      runDir: dir.path,
      granted,
      log: () => {},
      ready: () => true,
    });
    expect(await again.sweep()).toEqual([]);
    expect(again.list().map((row) => row.containerId)).toEqual(['kept']);
    expect(await again.erase('kept')).toBe(true);
    again.close();
    service = again;
  });
});
