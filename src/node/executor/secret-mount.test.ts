import { describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readSync,
  readdirSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { tempDir } from '../../../test/helpers/process.ts';
import { SecretdError } from '../../errors.ts';
import { mountAt, readMounts } from './_mountinfo.ts';
import { SecretMount, secretsTmpfsBytes } from './secret-mount.ts';
import { checkSecretRefs, type SecretRef } from './targets.ts';
import { rejection } from '../../../test/helpers/errors.ts';

const isRoot = process.getuid?.() === 0;
if (!isRoot)
  console.warn('secret-mount tests skipped: mounting a tmpfs needs root (CI runs as root)');

const [major = 0, minor = 0] = release().split('.').map(Number);
const kernelHasNoswap = major > 6 || (major === 6 && minor >= 4);

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const file = (target: string, extra: Partial<SecretRef> = {}) =>
  checkSecretRefs('test', [
    { secretId: 'sec1', target, uid: '0', gid: '0', mode: 0o444, ...extra },
  ])[0]!;

/** Reads a file through an fd opened earlier: what a process holding it open would see. */
function readFd(fd: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  readSync(fd, buffer, 0, length, 0);
  return buffer;
}

describe('secretsTmpfsBytes', () => {
  test('is at least 1 MiB and leaves room to replace the largest file by rename', () => {
    expect(secretsTmpfsBytes([])).toBe(1024 * 1024);
    expect(secretsTmpfsBytes([17, 12])).toBe(1024 * 1024);
    expect(secretsTmpfsBytes([1024 * 1024])).toBe(5 * 1024 * 1024);
  });
});

describe.skipIf(!isRoot)('SecretMount', () => {
  test('create() mounts a private tmpfs (nodev, nosuid, noexec, noswap, mode 0700, size cap)', async () => {
    using dir = tempDir('secretd-mount-');
    const mount = await SecretMount.create(join(dir.path, 'secrets'), 1024 * 1024);
    try {
      const entry = mountAt(await readMounts(), mount.path)!;
      expect(entry.fsType).toBe('tmpfs');
      expect(['nodev', 'nosuid', 'noexec'].every((option) => entry.mountOptions.has(option))).toBe(
        true,
      );
      expect(entry.superOptions.has('size=1024k')).toBe(true);
      expect(entry.superOptions.has('mode=700')).toBe(true);
      expect(entry.superOptions.has('noswap')).toBe(kernelHasNoswap);
      expect(readdirSync(mount.path).sort()).toEqual(['abs', 'run', 'tmp']);
      expect((statSync(mount.path).mode & 0o777).toString(8)).toBe('700');
      expect((statSync(mount.relativeDir).mode & 0o777).toString(8)).toBe('755');
    } finally {
      await mount.destroy();
    }
  });

  test('writeFile() sets owner and mode, creates subdirectories, and zeroes the buffer it was given', async () => {
    using dir = tempDir('secretd-mount-');
    const mount = await SecretMount.create(join(dir.path, 'secrets'), 1024 * 1024);
    try {
      const data = enc('value-one');
      await mount.writeFile(file('app/db_pass', { uid: '1000', gid: '1001', mode: 0o400 }), data);
      expect(data).toEqual(new Uint8Array(9));
      const path = join(mount.path, 'run', 'app', 'db_pass');
      const stats = statSync(path);
      expect([
        stats.uid,
        stats.gid,
        (stats.mode & 0o7777).toString(8),
        readFileSync(path, 'utf8'),
      ]).toEqual([1000, 1001, '400', 'value-one']);
      expect(readdirSync(join(mount.path, 'tmp'))).toEqual([]);
      expect(mount.filesWritten).toBe(1);
    } finally {
      await mount.destroy();
    }
  });

  test('updateFile() replaces the file by rename: a reader holding the old file keeps whole old bytes', async () => {
    using dir = tempDir('secretd-mount-');
    const mount = await SecretMount.create(join(dir.path, 'secrets'), 1024 * 1024);
    try {
      const target = file('token');
      await mount.writeFile(target, enc('old-value'));
      const path = mount.hostPath(target);
      const before = statSync(path).ino;
      const fd = openSync(path, 'r');
      await mount.updateFile('token', enc('new-value!'));
      expect([
        readFileSync(path, 'utf8'),
        statSync(path).ino === before,
        readFd(fd, 9).toString(),
      ]).toEqual(['new-value!', false, 'old-value']);
      closeSync(fd);
      expect((await rejection(mount.updateFile('nope', enc('x')))).code).toBe('not_found');
    } finally {
      await mount.destroy();
    }
  });

  test('removeFile() and destroy() overwrite the bytes with zeros before unlinking, then unmount', async () => {
    using dir = tempDir('secretd-mount-');
    const mount = await SecretMount.create(join(dir.path, 'secrets'), 1024 * 1024);
    await mount.writeFile(file('a/removed'), enc('removed-value'));
    await mount.writeFile(file('/etc/kept.pem'), enc('kept-value'));
    const removedFd = openSync(join(mount.path, 'run', 'a', 'removed'), 'r');
    const keptFd = openSync(mount.hostPath(file('/etc/kept.pem')), 'r');
    await mount.removeFile('a/removed');
    expect(readFd(removedFd, 13)).toEqual(Buffer.alloc(13));
    expect(readdirSync(mount.relativeDir)).toEqual([]);
    closeSync(removedFd);
    await mount.destroy();
    expect(readFd(keptFd, 10)).toEqual(Buffer.alloc(10));
    closeSync(keptFd);
    expect(mountAt(await readMounts(), mount.path)).toBeNull();
    expect(existsSync(mount.path)).toBe(false);
  });

  test('writeFile() refuses once the directory is no longer a tmpfs, and writes nothing to disk', async () => {
    using dir = tempDir('secretd-mount-');
    const mount = await SecretMount.create(join(dir.path, 'secrets'), 1024 * 1024);
    expect(spawnSync('umount', [mount.path], { timeout: 10_000 }).status).toBe(0);
    mkdirSync(join(mount.path, 'run'));
    const data = enc('must-not-land-on-disk');
    const error = await rejection(mount.writeFile(file('x'), data));
    expect([error.code, error.message]).toEqual([
      'internal',
      `Refusing to write secrets at ${mount.path}: nothing is mounted there`,
    ]);
    expect(readdirSync(join(mount.path, 'run'))).toEqual([]);
    expect(data).toEqual(new Uint8Array(data.length));
    await mount.destroy();
  });

  test('open() refuses a directory that is not a tmpfs mount', async () => {
    using dir = tempDir('secretd-mount-');
    const error = await rejection(SecretMount.open(dir.path, []));
    expect(error.message).toBe(
      `Refusing to write secrets at ${dir.path}: nothing is mounted there`,
    );
  });

  test('ensureSize() grows the cap so a larger secret fits', async () => {
    using dir = tempDir('secretd-mount-');
    const mount = await SecretMount.create(join(dir.path, 'secrets'), 1024 * 1024);
    try {
      const big = (): Uint8Array => new Uint8Array(1536 * 1024).fill(7);
      const full = await rejection(mount.writeFile(file('big'), big()));
      expect(full.message).toBe(
        "Cannot write the secret file for target 'big' (secret sec1): the secrets tmpfs is full",
      );
      expect(readdirSync(join(mount.path, 'tmp'))).toEqual([]);
      await mount.ensureSize(secretsTmpfsBytes([1536 * 1024]));
      await mount.writeFile(file('big'), big());
      expect(statSync(join(mount.relativeDir, 'big')).size).toBe(1536 * 1024);
    } finally {
      await mount.destroy();
    }
  });
});
