import { describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../test/helpers/process.ts';
import type { Io } from './_common.ts';
import { dataDirPaths, defaultDataDir } from '../node/index.ts';
import {
  adminSocketOf,
  bundleSecretRefs,
  nodeDataDirDefault,
  ociRuntime,
  parseRuncCall,
  withSecretMounts,
} from './oci-runtime.ts';
import { parseSpawnArgs, spawnRefs } from './spawn.ts';
import { runDirOf } from '../io/run-dir.ts';
import { writeShim } from './_oci-shim.ts';
import { Executor } from '../node/executor/executor.ts';

function capture(): { io: Io; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      out: (text) => out.push(text),
      err: (text) => err.push(text),
      write: () => {},
      stdin: async () => new Uint8Array(),
      stdinIsTTY: false,
    },
  };
}

describe('parseRuncCall', () => {
  test('reads the global flags, the command, its flags and the container id as dockerd gives them', () => {
    const call = parseRuncCall([
      '--root',
      '/run/docker/runtime-secretd/moby',
      '--log',
      '/b/log.json',
      '--log-format',
      'json',
      '--systemd-cgroup',
      'create',
      '--bundle',
      '/b',
      '--pid-file',
      '/b/init.pid',
      'abc123',
    ]);
    expect(call).toEqual({
      globals: new Map<string, string | true>([
        ['root', '/run/docker/runtime-secretd/moby'],
        ['log', '/b/log.json'],
        ['log-format', 'json'],
        ['systemd-cgroup', true],
      ]),
      command: 'create',
      flags: new Map<string, string | true>([
        ['bundle', '/b'],
        ['pid-file', '/b/init.pid'],
      ]),
      positionals: ['abc123'],
    });
  });

  test('takes --flag=value, single dashes and -b as runc does', () => {
    const call = parseRuncCall(['-root=/r', 'run', '-b', '/b', '-d', 'id1']);
    expect([
      call.globals.get('root'),
      call.command,
      call.flags.get('b'),
      call.flags.get('d'),
      call.positionals,
    ]).toEqual(['/r', 'run', '/b', true, ['id1']]);
  });
});

describe('bundleSecretRefs', () => {
  test('takes SECRETD_SECRET* variables and io.secretd.secret.* annotations as they are, naming where each was found', () => {
    const refs = bundleSecretRefs({
      process: {
        env: [
          'PATH=/bin',
          'SECRETD_SECRET_DB=db_pass',
          'SECRETD_SECRET=source=tls@2,target=/etc/app/key.pem,uid=999,gid=998,mode=0400',
          'SECRETD_SECRETS_DIR=/x',
          'SECRETD_SECRET_HUP=source=api,on-update=signal:SIGHUP',
        ],
      },
      annotations: { 'io.secretd.secret.web': 'source=web;target=w/key;mode=0440', other: 'x' },
    });
    expect(refs).toEqual([
      { Where: 'environment variable SECRETD_SECRET_DB', Spec: 'db_pass' },
      {
        Where: 'environment variable SECRETD_SECRET',
        Spec: 'source=tls@2,target=/etc/app/key.pem,uid=999,gid=998,mode=0400',
      },
      {
        Where: 'environment variable SECRETD_SECRET_HUP',
        Spec: 'source=api,on-update=signal:SIGHUP',
      },
      { Where: 'annotation io.secretd.secret.web', Spec: 'source=web,target=w/key,mode=0440' },
    ]);
  });

  test('refuses more references than one container may name', () => {
    const env = Array.from({ length: 65 }, (_, i) => `SECRETD_SECRET_${i}=s${i}`);
    expect(() => bundleSecretRefs({ process: { env } })).toThrow(
      'Cannot prepare secrets: 65 references is more than the 64 allowed per container',
    );
  });

  test("withSecretMounts on a bundle prepared before replaces that container's earlier binds", () => {
    const prepared = {
      SecretsDir: '/run/s/containers/c1/secrets/run',
      FileMounts: [{ Source: '/run/s/containers/c1/secrets/abs/0a', Destination: '/etc/k' }],
    };
    const once = withSecretMounts({ mounts: [{ destination: '/proc', type: 'proc' }] }, prepared);
    expect(withSecretMounts(once, prepared)).toEqual(once);
  });

  test('withSecretMounts adds read-only binds after the engine mounts', () => {
    const config = withSecretMounts(
      { mounts: [{ destination: '/proc', type: 'proc' }], process: {} },
      {
        SecretsDir: '/run/s/c1/secrets/run',
        FileMounts: [{ Source: '/run/s/c1/secrets/abs/0a', Destination: '/etc/k' }],
      },
    );
    const options = ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'];
    expect(config.mounts).toEqual([
      { destination: '/proc', type: 'proc' },
      { destination: '/run/secrets', type: 'bind', source: '/run/s/c1/secrets/run', options },
      { destination: '/etc/k', type: 'bind', source: '/run/s/c1/secrets/abs/0a', options },
    ]);
  });
});

describe('ociRuntime', () => {
  test("its copies of the node's default data dir and admin socket path agree with the node's", () => {
    expect([nodeDataDirDefault, adminSocketOf('/d')]).toEqual([
      defaultDataDir,
      dataDirPaths('/d').adminSocket,
    ]);
  });

  test('a config.json that is not JSON fails create with the reason on stderr and in the --log file as JSON, without running runc', async () => {
    using dir = tempDir('secretd-oci-unit-');
    mkdirSync(join(dir.path, 'bundle'));
    writeFileSync(join(dir.path, 'bundle', 'config.json'), '{not json');
    const log = join(dir.path, 'log.json');
    const { io, err } = capture();
    let execs = 0;
    const code = await ociRuntime(
      ['--log', log, '--log-format', 'json', 'create', '--bundle', join(dir.path, 'bundle'), 'c1'],
      io,
      {
        execve: (() => {
          execs++;
          throw new Error('no exec here');
        }) as never,
      },
    );
    expect(code).toBe(1);
    expect(execs).toBe(0);
    expect(err).toHaveLength(1);
    expect(err[0]).toStartWith(
      `secretd-runc: Cannot create container c1: cannot read ${join(dir.path, 'bundle', 'config.json')}: `,
    );
    const logged = JSON.parse(readFileSync(log, 'utf8')) as { level: string; msg: string };
    expect([logged.level, logged.msg]).toEqual(['error', err[0]!]);
  });

  test('a container naming a secret on a node where secretd does not answer fails create, naming the socket, without running runc', async () => {
    using dir = tempDir('secretd-oci-unit-');
    writeFileSync(
      join(dir.path, 'config.json'),
      JSON.stringify({ process: { env: ['SECRETD_SECRET_DB=db_pass'] } }),
    );
    const previous = process.env.SECRETD_DATA_DIR;
    process.env.SECRETD_DATA_DIR = join(dir.path, 'no-node');
    try {
      const { io, err } = capture();
      let execs = 0;
      const code = await ociRuntime(['create', '--bundle', dir.path, 'c3'], io, {
        execve: (() => {
          execs++;
          throw new Error('no exec here');
        }) as never,
      });
      expect([code, execs]).toEqual([1, 0]);
      expect(err).toEqual([
        `secretd-runc: Cannot reach this node's secretd at ${join(dir.path, 'no-node', 'admin.sock')} (ENOENT): is secretd running on this node?`,
      ]);
      expect(JSON.parse(readFileSync(join(dir.path, 'config.json'), 'utf8'))).toEqual({
        process: { env: ['SECRETD_SECRET_DB=db_pass'] },
      });
    } finally {
      if (previous === undefined) delete process.env.SECRETD_DATA_DIR;
      else process.env.SECRETD_DATA_DIR = previous;
    }
  });

  test('a runtime that is missing fails every call naming it', async () => {
    const previous = process.env.SECRETD_RUNC;
    process.env.SECRETD_RUNC = '/nonexistent/runc';
    try {
      const { io, err } = capture();
      expect(await ociRuntime(['state', 'c1'], io)).toBe(1);
      expect(err).toEqual([
        'secretd-runc: Cannot run the OCI runtime \'/nonexistent/runc\': not found or not executable (set "runtime" in /etc/secretd/oci-runtime.json or SECRETD_RUNC)',
      ]);
    } finally {
      if (previous === undefined) delete process.env.SECRETD_RUNC;
      else process.env.SECRETD_RUNC = previous;
    }
  });

  test('a container without references goes straight to runc with its arguments untouched', async () => {
    using dir = tempDir('secretd-oci-unit-');
    writeFileSync(join(dir.path, 'config.json'), JSON.stringify({ process: { env: ['A=1'] } }));
    const calls: string[][] = [];
    const { io } = capture();
    const args = ['--root', '/r', 'create', '--bundle', dir.path, 'c2'];
    await expect(
      ociRuntime(args, io, {
        execve: ((file: string, argv: string[]) => {
          calls.push([file, ...argv]);
          throw new Error('exec');
        }) as never,
      }),
    ).rejects.toThrow('exec');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.slice(2)).toEqual(args);
    expect(calls[0]![0]).toMatch(/\/runc$/);
  });

  test('--print-config prints a daemon.json for docker and a containers.conf entry for podman', async () => {
    const docker = capture();
    expect(await ociRuntime(['--print-config', 'docker'], docker.io)).toBe(0);
    expect(JSON.parse(docker.out.join('\n'))).toEqual({
      runtimes: { secretd: { path: '/usr/local/bin/secretd-runc' } },
    });
    const podman = capture();
    expect(await ociRuntime(['--print-config', 'podman'], podman.io)).toBe(0);
    expect(podman.out).toEqual(['[engine.runtimes]\nsecretd = ["/usr/local/bin/secretd-runc"]']);
    const neither = capture();
    expect(await ociRuntime(['--print-config', 'crio'], neither.io)).toBe(2);
  });
});

describe('secretd spawn arguments', () => {
  test('reads --secret, --env, --dir and --user, and the command after --', () => {
    const options = parseSpawnArgs([
      '--secret',
      'db_pass',
      '--env',
      'API=api_key',
      '--dir=/run/app',
      '--user',
      '1000:1001',
      '--',
      'app',
      '--flag',
    ]);
    expect(options).toEqual({
      secrets: ['db_pass'],
      env: [{ variable: 'API', secret: 'api_key' }],
      dir: '/run/app',
      user: { uid: 1000, gid: 1001 },
      dataDir: undefined,
      command: ['app', '--flag'],
    });
    expect(spawnRefs(options)).toEqual([
      { Spec: 'db_pass', Where: '--secret "db_pass"' },
      { Spec: 'source=api_key,target=/.secretd-env/API,uid=0,gid=0,mode=0400', Where: '--env API' },
    ]);
  });

  test('refuses an absolute --secret target, a bad --env, no command and nothing to give', () => {
    expect(() =>
      spawnRefs(parseSpawnArgs(['--secret', 'source=a,target=/etc/x', '--', 'true'])),
    ).toThrow('spawn puts secrets under --dir, so the target must be relative');
    expect(() => parseSpawnArgs(['--env', '1A=x', '--', 'true'])).toThrow('Invalid --env "1A=x"');
    expect(() => parseSpawnArgs(['--secret', 'a'])).toThrow('No command given');
    expect(() => parseSpawnArgs(['--', 'true'])).toThrow('Nothing to give');
    expect(() => parseSpawnArgs(['--user', 'root', '--secret', 'a', '--', 'true'])).toThrow(
      'Invalid --user "root"',
    );
  });
});

describe('secretd-runc shim', () => {
  /** A shim whose runc and secretd are scripts that print which one ran and its argv. */
  function shimIn(dir: string): { path: string; dataDir: string; containers: string } {
    const fake = (name: string): string => {
      const path = join(dir, name);
      writeFileSync(path, `#!/bin/sh\nprintf '%s\\n' ${name} "$SECRETD_DATA_DIR" "$@"\n`, {
        mode: 0o755,
      });
      return path;
    };
    const dataDir = join(dir, 'data');
    const path = join(dir, 'secretd-runc');
    writeShim(path, {
      secretd: [fake('secretd')],
      runc: fake('runc'),
      grep: '/usr/bin/grep',
      dataDir,
    });
    return { path, dataDir, containers: join(runDirOf(dataDir), 'containers') };
  }
  function runShim(path: string, args: string[], cwd: string): string[] {
    const result = spawnSync(path, args, { cwd, env: {} });
    expect(result.status).toBe(0);
    return result.stdout.toString().trimEnd().split('\n');
  }
  const globals = [
    '--root',
    '/run/docker/runtime-runc/moby',
    '--log',
    '/x/log.json',
    '--log-format',
    'json',
    '--systemd-cgroup',
  ];

  test('runDirOf derives the run dir the node executor uses for the same data dir', () => {
    expect(runDirOf('/var/lib/secretd')).toBe(new Executor({ dataDir: '/var/lib/secretd' }).runDir);
    expect(runDirOf('/tmp/a/../b')).toBe(new Executor({ dataDir: '/tmp/b' }).runDir);
  });

  test('create goes to runc without a reference in config.json and to secretd with one, in every bundle flag form', () => {
    using tmp = tempDir();
    const { path, dataDir } = shimIn(tmp.path);
    const plain = join(tmp.path, 'plain');
    const refs = join(tmp.path, 'refs');
    const annotated = join(tmp.path, 'annotated');
    for (const dir of [plain, refs, annotated]) mkdirSync(dir);
    writeFileSync(join(plain, 'config.json'), '{"process":{"env":["PATH=/bin","SECRETD=1"]}}');
    writeFileSync(join(refs, 'config.json'), '{"process":{"env":["SECRETD_SECRET_DB=db_pass"]}}');
    writeFileSync(join(annotated, 'config.json'), '{"annotations":{"io.secretd.secret.x":"a"}}');
    for (const bundleArgs of [
      (b: string) => ['--bundle', b],
      (b: string) => ['-b', b],
      (b: string) => [`--bundle=${b}`],
      (b: string) => [`-bundle=${b}`],
    ]) {
      const create = (b: string): string[] => [
        ...globals,
        'create',
        ...bundleArgs(b),
        '--pid-file',
        '/x/pid',
        'c1',
      ];
      expect(runShim(path, create(plain), tmp.path)).toEqual(['runc', dataDir, ...create(plain)]);
      expect(runShim(path, create(refs), tmp.path)).toEqual([
        'secretd',
        dataDir,
        'oci-runtime',
        ...create(refs),
      ]);
      expect(runShim(path, create(annotated), tmp.path)[0]).toBe('secretd');
    }
    // No --bundle: the current directory's config.json.
    expect(runShim(path, ['create', 'c1'], plain)[0]).toBe('runc');
    expect(runShim(path, ['run', '-d', 'c1'], refs)[0]).toBe('secretd');
    // An unreadable config.json: secretd decides (and refuses).
    expect(
      runShim(path, ['create', '--bundle', join(tmp.path, 'missing'), 'c1'], tmp.path)[0],
    ).toBe('secretd');
  });

  test('delete goes to secretd only when the agent holds a directory for that container id', () => {
    using tmp = tempDir();
    const { path, containers } = shimIn(tmp.path);
    try {
      mkdirSync(join(containers, 'held'), { recursive: true });
      expect(runShim(path, [...globals, 'delete', 'held'], tmp.path).slice(0, 3)).toEqual([
        'secretd',
        expect.any(String),
        'oci-runtime',
      ]);
      expect(runShim(path, [...globals, 'delete', '--force', 'held'], tmp.path)[0]).toBe('secretd');
      expect(runShim(path, [...globals, 'delete', 'other'], tmp.path)[0]).toBe('runc');
      expect(runShim(path, [...globals, 'delete', '--force', 'other'], tmp.path)[0]).toBe('runc');
      expect(runShim(path, ['delete', '..'], tmp.path)[0]).toBe('secretd');
      expect(runShim(path, ['delete'], tmp.path)[0]).toBe('secretd');
    } finally {
      rmSync(runDirOf(join(tmp.path, 'data')), { recursive: true, force: true });
    }
  });

  test('start, state, kill and list go to runc with their arguments untouched', () => {
    using tmp = tempDir();
    const { path, dataDir } = shimIn(tmp.path);
    for (const args of [
      [...globals, 'start', 'c1'],
      ['--root=/r', '--debug', 'state', 'c1'],
      ['-root', '/r', 'kill', 'c1', 'SIGTERM'],
      ['--log-format=text', 'list', '-q'],
      ['start', 'it has spaces', "and 'quotes'"],
    ])
      expect(runShim(path, args, tmp.path)).toEqual(['runc', dataDir, ...args]);
  });

  test('an unknown global or create flag, no command or an unknown command goes through secretd', () => {
    using tmp = tempDir();
    const { path } = shimIn(tmp.path);
    mkdirSync(join(tmp.path, 'b'));
    writeFileSync(join(tmp.path, 'b', 'config.json'), '{}');
    for (const args of [
      ['--new-flag', 'x', 'create', '--bundle', join(tmp.path, 'b'), 'c1'],
      ['create', '--bundle', join(tmp.path, 'b'), '--new-flag', 'c1'],
      ['create', '--bundle', join(tmp.path, 'b'), '--', 'c1'],
      ['create', '--bundle', join(tmp.path, 'b')],
      ['--debug'],
      ['frobnicate', 'c1'],
    ])
      expect(runShim(path, args, tmp.path)[0]).toBe('secretd');
  });

  test('install writes an executable shim with this data dir and runc baked in', async () => {
    using tmp = tempDir();
    const out = capture();
    const code = await ociRuntime(
      ['install', '--dir', tmp.path, '--runc', '/usr/sbin/runc', `--data-dir=${tmp.path}/d`],
      out.io,
    );
    expect(code).toBe(0);
    expect(out.out).toEqual([join(tmp.path, 'secretd-runc')]);
    const path = join(tmp.path, 'secretd-runc');
    expect(statSync(path).mode & 0o777).toBe(0o755);
    const text = readFileSync(path, 'utf8');
    expect(text).toStartWith('#!/bin/sh\n');
    expect(text).toContain(`runc='/usr/sbin/runc'`);
    expect(text).toContain(`SECRETD_DATA_DIR='${tmp.path}/d'`);
    expect(text).toContain(`containers='${runDirOf(`${tmp.path}/d`)}/containers'`);
    const bad = capture();
    expect(await ociRuntime(['install', '--nope'], bad.io)).toBe(2);
  });
});
