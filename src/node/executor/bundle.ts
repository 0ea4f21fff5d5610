/**
 * The OCI bundle of one task: `<taskDir>/bundle/config.json`. `ociConfig` is pure; it takes host
 * paths of the secrets tmpfs, never secret bytes, so config.json cannot carry a value.
 *
 * Decisions (runc `spec`'s defaults unless said):
 * - Root: the image's root filesystem directory itself (`root.path` absolute, `readonly: true`),
 *   shared by every task of that image and never written: writable scratch space is a tmpfs at
 *   /tmp. runc still creates missing mount points (e.g. /etc/app/key.pem for an absolute target)
 *   in that directory before it remounts the root read-only: empty stubs, never content.
 * - Process: args/env/cwd from the task, user 0:0, no terminal, runc's default capabilities
 *   (AUDIT_WRITE, KILL, NET_BIND_SERVICE; notably no DAC_OVERRIDE, so root in the container
 *   cannot read a 0400 secret owned by another uid), no new privileges, RLIMIT_NOFILE 1024.
 * - Namespaces: pid, ipc, uts, mount and a new, empty network namespace (loopback only).
 * - Cgroups: `/secretd/<instance>/<taskId>` under every controller: a parent owned by secretd, one
 *   level per executor instance so two nodes on one machine (tests, simulations) never collide.
 * - Secrets: `run/` of the tmpfs bound read-only (and nodev, nosuid, noexec) at /run/secrets, each
 *   absolute target's file bound the same way at its path, after every other mount.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { secretsDirInContainer } from './targets.ts';

export interface BundleOptions {
  readonly taskId: string;
  /** The image's root filesystem (absolute). */
  readonly rootfsPath: string;
  readonly args: readonly string[];
  readonly env: readonly string[];
  /** Working directory in the container; default '/'. */
  readonly cwd?: string;
  /** Host directory bound at /run/secrets, or null when the task has no relative target. */
  readonly secretsDir: string | null;
  /** Host file → absolute container path, one bind each. */
  readonly fileMounts: ReadonlyArray<{ readonly hostPath: string; readonly target: string }>;
  /** e.g. `/secretd/<instance>/<taskId>`. */
  readonly cgroupsPath: string;
}

interface Mount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const defaultCapabilities = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
const secretBindOptions = ['rbind', 'ro', 'nosuid', 'nodev', 'noexec', 'rprivate'];

function standardMounts(): Mount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    {
      destination: '/dev/mqueue',
      type: 'mqueue',
      source: 'mqueue',
      options: ['nosuid', 'noexec', 'nodev'],
    },
    {
      destination: '/sys',
      type: 'sysfs',
      source: 'sysfs',
      options: ['nosuid', 'noexec', 'nodev', 'ro'],
    },
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
    {
      destination: '/tmp',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'nodev', 'mode=1777', 'size=65536k'],
    },
  ];
}

export function ociConfig(options: BundleOptions): Record<string, unknown> {
  const env = options.env.some((entry) => entry.startsWith('PATH='))
    ? [...options.env]
    : [defaultPath, ...options.env];
  const mounts = standardMounts();
  if (options.secretsDir !== null)
    mounts.push({
      destination: secretsDirInContainer,
      type: 'bind',
      source: options.secretsDir,
      options: secretBindOptions,
    });
  // Parents before children, so a deeper target is not hidden by a shallower one.
  const files = [...options.fileMounts].sort(
    (a, b) =>
      a.target.split('/').length - b.target.split('/').length || a.target.localeCompare(b.target),
  );
  for (const file of files)
    mounts.push({
      destination: file.target,
      type: 'bind',
      source: file.hostPath,
      options: secretBindOptions,
    });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [...options.args],
      env,
      cwd: options.cwd ?? '/',
      capabilities: {
        bounding: defaultCapabilities,
        effective: defaultCapabilities,
        permitted: defaultCapabilities,
        ambient: defaultCapabilities,
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: options.rootfsPath, readonly: true },
    // Host names are at most 64 characters; a task id prefix is enough to tell containers apart.
    hostname: options.taskId.slice(0, 12),
    mounts,
    linux: {
      cgroupsPath: options.cgroupsPath,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [
        { type: 'pid' },
        { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
      ],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** Writes `<bundleDir>/config.json` (through a temp file and a rename: runc never reads half of it). */
export async function writeBundle(bundleDir: string, options: BundleOptions): Promise<void> {
  await mkdir(bundleDir, { recursive: true, mode: 0o700 });
  const path = join(bundleDir, 'config.json');
  await writeFile(`${path}.tmp`, JSON.stringify(ociConfig(options), null, 2) + '\n', {
    mode: 0o600,
  });
  await rename(`${path}.tmp`, path);
}
