/**
 * A tiny image for executor tests: a root filesystem tarball made from Debian's `busybox-static`
 * (`apt-get install busybox-static`), built once per test process and removed when it exits.
 *
 * Contents: /bin/busybox, one symlink to it per applet (what `busybox --install -s` makes), an
 * /etc/passwd and /etc/group naming root (0) and app (1000) so `ls -l` prints names, and the
 * usual empty directories. The links come from `busybox --list-full` rather than running
 * `--install -s` on the host, which would point them at the host path of the binary.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const busyboxCandidates = ['/bin/busybox', '/usr/bin/busybox'];

let cached: string | null = null;

/** The busybox binary if it is a static one (a dynamic busybox would not run in an empty root). */
export function staticBusybox(): string | null {
  for (const path of busyboxCandidates) {
    if (!existsSync(path)) continue;
    // A dynamic executable names its loader (PT_INTERP) near the start of the file.
    const head = readFileSync(path).subarray(0, 64 * 1024);
    if (!head.includes('ld-linux') && !head.includes('ld-musl')) return path;
  }
  return null;
}

/** Path of `rootfs.tar`, building it on the first call. */
export function busyboxRootfsTarball(): string {
  if (cached !== null) return cached;
  const busybox = staticBusybox();
  if (busybox === null)
    throw new Error('busybox-static is not installed: apt-get install -y busybox-static');
  const work = mkdtempSync(join(tmpdir(), 'secretd-busybox-'));
  process.once('exit', () => rmSync(work, { recursive: true, force: true }));
  const root = join(work, 'rootfs');
  for (const dir of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc',
    'proc',
    'dev',
    'sys',
    'tmp',
    'run',
    'root',
    'home/app',
  ])
    mkdirSync(join(root, dir), { recursive: true });
  copyFileSync(busybox, join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  const list = spawnSync(busybox, ['--list-full'], { encoding: 'utf8', timeout: 10_000 });
  if (list.status !== 0) throw new Error(`busybox --list-full failed: ${list.stderr}`);
  for (const applet of list.stdout
    .split('\n')
    .filter((line) => line !== '' && line !== 'bin/busybox')) {
    mkdirSync(dirname(join(root, applet)), { recursive: true });
    if (!existsSync(join(root, applet))) symlinkSync('/bin/busybox', join(root, applet));
  }
  writeFileSync(
    join(root, 'etc', 'passwd'),
    'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n',
  );
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\napp:x:1000:\n');
  chmodSync(join(root, 'tmp'), 0o1777);
  const tarball = join(work, 'rootfs.tar');
  const tar = spawnSync(
    'tar',
    ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tarball, '.'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`);
  cached = tarball;
  return tarball;
}
