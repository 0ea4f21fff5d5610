import { describe, expect, test } from 'bun:test';
import { ociConfig, type BundleOptions } from './bundle.ts';

const secretsDir = '/run/secretd/x/tasks/task0123456789abcdef/secrets/run';
const options: BundleOptions = {
  taskId: 'task0123456789abcdef',
  rootfsPath: '/var/lib/secretd/images/busybox%3Alatest/rootfs',
  args: ['sh', '-c', 'exec app'],
  env: ['MODE=prod'],
  secretsDir,
  fileMounts: [
    {
      hostPath: '/run/secretd/x/tasks/t/secrets/abs/2222222222222222',
      target: '/etc/app/deeper/key.pem',
    },
    { hostPath: '/run/secretd/x/tasks/t/secrets/abs/1111111111111111', target: '/etc/cert.pem' },
  ],
  cgroupsPath: '/secretd/abcdef012345/task0123456789abcdef',
};

type Config = {
  process: {
    terminal: boolean;
    user: unknown;
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[] };
    noNewPrivileges: boolean;
  };
  root: unknown;
  hostname: string;
  mounts: Array<{ destination: string; type: string; source: string; options: string[] }>;
  linux: { cgroupsPath: string; namespaces: Array<{ type: string }> };
};

describe('ociConfig', () => {
  test('uses the image root read-only, the task process as root without a terminal, and runc default capabilities', () => {
    const config = ociConfig(options) as unknown as Config;
    expect(config.root).toEqual({ path: options.rootfsPath, readonly: true });
    expect(config.process.terminal).toBe(false);
    expect(config.process.user).toEqual({ uid: 0, gid: 0 });
    expect(config.process.args).toEqual(['sh', '-c', 'exec app']);
    expect(config.process.env).toEqual([
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'MODE=prod',
    ]);
    expect(config.process.cwd).toBe('/');
    expect(config.process.capabilities.bounding).toEqual([
      'CAP_AUDIT_WRITE',
      'CAP_KILL',
      'CAP_NET_BIND_SERVICE',
    ]);
    expect(config.process.noNewPrivileges).toBe(true);
    expect(config.hostname).toBe('task01234567');
  });

  test('isolates pid, ipc, uts, mount and network, under a cgroup parent of its own', () => {
    const config = ociConfig(options) as unknown as Config;
    expect(config.linux.namespaces.map((n) => n.type).sort()).toEqual([
      'ipc',
      'mount',
      'network',
      'pid',
      'uts',
    ]);
    expect(config.linux.cgroupsPath).toBe('/secretd/abcdef012345/task0123456789abcdef');
  });

  test('binds the secrets read-only after every other mount, shallower absolute targets first', () => {
    const config = ociConfig(options) as unknown as Config;
    expect(config.mounts.map((m) => m.destination)).toEqual([
      '/proc',
      '/dev',
      '/dev/pts',
      '/dev/shm',
      '/dev/mqueue',
      '/sys',
      '/sys/fs/cgroup',
      '/tmp',
      '/run/secrets',
      '/etc/cert.pem',
      '/etc/app/deeper/key.pem',
    ]);
    const secretMounts = config.mounts.slice(-3);
    expect(secretMounts.map((m) => [m.type, m.source, m.options])).toEqual([
      ['bind', secretsDir, ['rbind', 'ro', 'nosuid', 'nodev', 'noexec', 'rprivate']],
      [
        'bind',
        '/run/secretd/x/tasks/t/secrets/abs/1111111111111111',
        ['rbind', 'ro', 'nosuid', 'nodev', 'noexec', 'rprivate'],
      ],
      [
        'bind',
        '/run/secretd/x/tasks/t/secrets/abs/2222222222222222',
        ['rbind', 'ro', 'nosuid', 'nodev', 'noexec', 'rprivate'],
      ],
    ]);
  });

  test('has no /run/secrets mount when the task has no relative target, and keeps a given PATH', () => {
    const config = ociConfig({
      ...options,
      secretsDir: null,
      fileMounts: [],
      env: ['PATH=/bin'],
    }) as unknown as Config;
    expect(config.mounts.some((m) => m.destination === '/run/secrets')).toBe(false);
    expect(config.process.env).toEqual(['PATH=/bin']);
  });
});
