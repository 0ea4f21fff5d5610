/** Autolock on real processes: locked after restart, wrong keys refused, rotation, on and off. */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import { initAutolocked, unlockKeyPattern } from '../helpers/autolock.ts';
import {
  Daemon,
  freePort,
  requireBinary,
  secretd,
  tempDir,
  type TempDir,
} from '../helpers/process.ts';

beforeAll(requireBinary);
// Real processes, fsync and TLS handshakes: generous, since CI machines vary.
setDefaultTimeout(60_000);

const keyPattern = unlockKeyPattern;

async function restart(dataDir: string): Promise<Daemon> {
  const daemon = new Daemon(['run', '--data-dir', dataDir]);
  await daemon.waitFor(/locked|admin socket ready/);
  return daemon;
}

describe('autolock', () => {
  let dir: TempDir;
  beforeAll(() => (dir = tempDir()));
  afterAll(() => dir[Symbol.dispose]());

  test('a restarted manager answers 503 until unlocked; a wrong key is refused and changes nothing', async () => {
    const dataDir = join(dir.path, 'a');
    const started = await initAutolocked(dataDir);
    // Stopped however the test ends (killed again at the end: nothing if it was already).
    await using first = started.daemon;
    const key = started.key;
    expect(
      secretd(['secret', 'create', 'locked_one', '-', '--data-dir', dataDir], {
        input: 'top secret',
      }).code,
    ).toBe(0);
    const printed = secretd(['cluster', 'unlock-key', '-q', '--data-dir', dataDir]);
    expect(printed.stdout.trim()).toBe(key);
    await first.kill('SIGKILL');

    await using locked = await restart(dataDir);
    await locked.waitFor(/this manager is locked/); // printed right after the admin socket line, maybe in a later chunk
    const ls = secretd(['secret', 'ls', '--data-dir', dataDir]);
    expect(ls.code).toBe(1);
    expect(ls.stderr).toContain('This manager is locked');

    const wrongKey = `SDKEY-1-${Buffer.alloc(32, 7).toString('base64').replace(/=+$/, '')}`;
    const wrong = secretd(['unlock', '--data-dir', dataDir], { input: wrongKey });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('Invalid unlock key');
    expect(wrong.stderr).not.toContain(wrongKey);
    const garbage = secretd(['unlock', '--data-dir', dataDir], { input: 'not-a-key' });
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toContain('Invalid unlock key');
    expect(secretd(['secret', 'ls', '--data-dir', dataDir]).code).toBe(1);

    const right = secretd(['unlock', '--data-dir', dataDir], { input: `${key}\n` });
    expect(right.stderr).toBe('');
    expect(right.code).toBe(0);
    const after = secretd(['secret', 'ls', '--format', 'json', '--data-dir', dataDir]);
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout.trim()).Spec.Name).toBe('locked_one');
    expect(secretd(['unlock', '--data-dir', dataDir], { input: key }).stderr).toContain(
      'not locked',
    );
  });

  test('rotating the unlock key makes the old key useless at the next restart', async () => {
    const dataDir = join(dir.path, 'b');
    const started = await initAutolocked(dataDir);
    await using first = started.daemon;
    const oldKey = started.key;
    const rotated = secretd(['cluster', 'unlock-key', '--rotate', '-q', '--data-dir', dataDir]);
    expect(rotated.code).toBe(0);
    const newKey = rotated.stdout.trim();
    expect(newKey).toMatch(keyPattern);
    expect(newKey).not.toBe(oldKey);
    await first.kill('SIGKILL');

    await using second = await restart(dataDir);
    expect(secretd(['unlock', '--data-dir', dataDir], { input: oldKey }).stderr).toContain(
      'Invalid unlock key',
    );
    expect(secretd(['unlock', '--data-dir', dataDir], { input: newKey }).code).toBe(0);
  });

  test('autolock can be turned on and off on a running cluster', async () => {
    const dataDir = join(dir.path, 'c');
    const port = await freePort();
    await using first = new Daemon([
      'init',
      '--data-dir',
      dataDir,
      '--listen-addr',
      `127.0.0.1:${port}`,
    ]);
    await first.waitFor(/Data directory:/);
    expect(secretd(['cluster', 'unlock-key', '--data-dir', dataDir]).stderr).toContain(
      'autolock is not enabled',
    );
    const on = secretd(['cluster', 'update', '--autolock=true', '--data-dir', dataDir]);
    expect(on.code).toBe(0);
    const key = keyPattern.exec(on.stdout)![0];
    await first.kill('SIGKILL');

    await using second = await restart(dataDir);
    // Printed right after the admin socket line, maybe in a later chunk (as in the first test).
    await second.waitFor(/this manager is locked/);
    expect(secretd(['unlock', '--data-dir', dataDir], { input: key }).code).toBe(0);
    const off = secretd(['cluster', 'update', '--autolock=false', '--data-dir', dataDir]);
    expect(off.code).toBe(0);
    await second.kill('SIGKILL');

    await using third = await restart(dataDir);
    expect(third.stderr).not.toContain('locked');
    expect(secretd(['secret', 'ls', '--data-dir', dataDir]).code).toBe(0);
    expect(
      secretd(['cluster', 'update', '--autolock=maybe', '--data-dir', dataDir]).stderr,
    ).toContain('expected true or false');
  });
});
