/**
 * Roles narrower than admin on a real manager (the compiled executable, real runc containers): each
 * client certificate does what its role in the store allows and is refused the rest with 403 naming
 * its role and what it lacks, through secretd's CLI over mutual TLS and through the docker CLI:
 * a writer scoped to `app_*`, a reader, an operator running a service with a secret it cannot read,
 * an auditor; `ca update` changes a certificate's role without reissuing it.
 *
 * Needs root, runc and busybox-static (CI installs them); the docker CLI for its test.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable } from '../../bench/docker-swarm.ts';
import { accessRules } from '../../src/node/api/access.ts';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { asClient, issueClientCert } from '../helpers/client-certs.ts';
import {
  H2Client,
  readCerts,
  requireBinary,
  tempDir,
  type RunResult,
  type TempDir,
} from '../helpers/process.ts';
import { expectRun, idleCommand, ServiceCluster } from '../helpers/services.ts';

setDefaultTimeout(120_000);

let dir: TempDir;
let cluster: ServiceCluster;

beforeAll(async () => {
  requireBinary();
  dir = tempDir('secretd-roles-');
  cluster = await ServiceCluster.init(dir.path);
  expectRun(cluster.manager.cli(['secret', 'create', 'db_password', '-'], 'hunter2-db\n'), {
    stdout: /^\w{25}\n$/,
  });
});

afterAll(async () => {
  await cluster?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

/** A client certificate issued (through the admin socket) with a role and scope; its directory. */
function issue(name: string, role: string, scope: readonly string[] = []): string {
  return issueClientCert(cluster.manager.dataDir, join(dir.path, name), { name, role, scope });
}

/** secretd's CLI over mutual TLS with the certificate in `certs`. */
function as(certs: string, args: readonly string[], input?: string): RunResult {
  return asClient(cluster.managerAddr, certs, args, input);
}

/** A refused command: exit code 1, nothing on stdout, the 403's message on stderr. */
function refused(result: RunResult, message: string): void {
  expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
    code: 1,
    stdout: '',
    stderr: `Error: ${message}\n`,
  });
}

const names = (result: RunResult): string[] =>
  result.stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[1]!)
    .sort();

describe('roles', () => {
  test('a writer scoped to app_* creates and updates app_x, sees only its scope, and is refused db_x', () => {
    const writer = issue('ci-writer', 'writer', ['app_*']);
    expectRun(as(writer, ['secret', 'create', 'app_x', '-'], 'one'), { stdout: /^\w{25}\n$/ });
    expectRun(as(writer, ['secret', 'update', 'app_x', '-'], 'two'), { stdout: /version 2/ });
    refused(
      as(writer, ['secret', 'create', 'db_x', '-'], 'no'),
      'Permission denied: role writer (scope app_*) may not create secret db_x',
    );
    refused(
      as(writer, ['secret', 'update', 'db_password', '-'], 'no'),
      'Permission denied: role writer (scope app_*) may not update secret db_password',
    );
    // As `docker secret inspect`: what it found (nothing), and why not on stderr.
    const inspect = as(writer, ['secret', 'inspect', 'db_password']);
    expect({ code: inspect.code, stdout: inspect.stdout, stderr: inspect.stderr }).toEqual({
      code: 1,
      stdout: '[]\n',
      stderr:
        'Error: Permission denied: role writer (scope app_*) may not inspect secret db_password\n',
    });
    expect(names(expectRun(as(writer, ['secret', 'ls']), {}))).toEqual(['app_x']);
    refused(
      as(writer, ['service', 'ls']),
      'Permission denied: role writer (scope app_*) may not list services',
    );
    // Nothing of the refused writes happened.
    expect(names(expectRun(cluster.manager.cli(['secret', 'ls']), {}))).toEqual([
      'app_x',
      'db_password',
    ]);
  });

  test('a reader lists and inspects every secret, and is refused create, rm and exec', () => {
    const reader = issue('auditor-of-things', 'reader');
    expect(names(expectRun(as(reader, ['secret', 'ls']), {}))).toEqual(['app_x', 'db_password']);
    const inspected = JSON.parse(
      expectRun(as(reader, ['secret', 'inspect', 'db_password']), {}).stdout,
    );
    expect(inspected[0].Spec.Name).toBe('db_password');
    expect(JSON.stringify(inspected)).not.toContain('hunter2');
    refused(
      as(reader, ['secret', 'create', 'r_x', '-'], 'no'),
      'Permission denied: role reader may not create secrets',
    );
    refused(
      as(reader, ['secret', 'rm', 'db_password']),
      'Permission denied: role reader may not remove secrets',
    );
    refused(
      as(reader, ['exec', 'any.1', 'cat', '/run/secrets/db_password']),
      'Permission denied: role reader may not run commands in tasks',
    );
    refused(
      as(reader, ['cluster', 'unlock-key']),
      'Permission denied: role reader may not read the unlock key',
    );
  });

  test('an operator runs a service using a secret but cannot read it through exec, nor create a secret', async () => {
    cluster.importImage('busybox', busyboxRootfsTarball());
    const operator = issue('deployer', 'operator');
    expectRun(
      as(operator, [
        'service',
        'create',
        '--name',
        'web',
        '--secret',
        'db_password',
        'busybox',
        ...idleCommand,
      ]),
      { stdout: /^\w{25}\n$/ },
    );
    await cluster.runningTasks('web', 1);
    refused(
      as(operator, ['exec', 'web.1', 'cat', '/run/secrets/db_password']),
      'Permission denied: role operator may not run commands in tasks',
    );
    refused(
      as(operator, ['secret', 'create', 'op_x', '-'], 'no'),
      'Permission denied: role operator may not create secrets',
    );
    // The secret is there, for an admin: the refusal was the role's, not a missing task.
    expectRun(cluster.manager.cli(['exec', 'web.1', 'cat', '/run/secrets/db_password']), {
      stdout: 'hunter2-db\n',
    });
    expectRun(as(operator, ['service', 'rm', 'web']), { stdout: 'web\n' });
  });

  test('an auditor is refused every route but the audit trail', async () => {
    const auditor = issue('soc', 'auditor');
    using client = new H2Client(`https://${cluster.managerAddr}`, readCerts(auditor));
    const got: Record<string, string> = {};
    const want: Record<string, string> = {};
    for (const [key, rule] of Object.entries(accessRules)) {
      const [method, path] = key.split(' ') as [string, string];
      if (rule.roles.includes('anonymous') || path.includes('/raft/stream')) continue;
      const concrete = path
        .replace(':id', 'db_password')
        .replace(':version', '1')
        .replace(':ref', 'soc');
      const answer = await client.request(method, concrete, method === 'POST' ? {} : undefined);
      got[key] =
        answer.status === 403
          ? answer.json<{ message: string }>().message
          : method === 'HEAD'
            ? String(answer.status)
            : 'admitted';
      want[key] = rule.roles.includes('auditor')
        ? 'admitted'
        : rule.sessions
          ? 'Permission denied: only nodes hold dispatcher sessions'
          : `Permission denied: role auditor may not ${rule.what}`;
    }
    expect(got).toEqual(want);
    refused(as(auditor, ['secret', 'ls']), 'Permission denied: role auditor may not list secrets');
  });

  test('ca update gives a certificate another role, from its next request, without reissue; bad input changes nothing', () => {
    const bot = issue('bot', 'reader');
    refused(
      as(bot, ['secret', 'create', 'app_bot', '-'], 'v'),
      'Permission denied: role reader may not create secrets',
    );
    expectRun(
      cluster.manager.cli(['ca', 'update', 'bot', '--role', 'writer', '--scope', 'app_*']),
      { stdout: /^Updated client certificate \w+ \(name bot\): role writer, scope app_\*\n$/ },
    );
    expectRun(as(bot, ['secret', 'create', 'app_bot', '-'], 'v'), { stdout: /^\w{25}\n$/ });
    const listed = expectRun(cluster.manager.cli(['ca', 'ls']), {}).stdout;
    expect(listed.split('\n')[0]).toMatch(
      /^SERIAL\s+NAME\s+ROLE\s+SCOPE\s+ISSUED\s+EXPIRES\s+REVOKED$/,
    );
    expect(listed).toMatch(/\sbot\s+writer\s+app_\*\s/);

    const before = expectRun(cluster.manager.cli(['ca', 'ls', '--format', 'json']), {}).stdout;
    const bad: Array<[string[], string]> = [
      [
        ['ca', 'update', 'nobody', '--role', 'reader'],
        'Error: Client certificate "nobody" not found\n',
      ],
      [
        ['ca', 'update', 'bot', '--role', 'reader', '--scope', 'app_*'],
        'Error: Cannot update client certificate bot: role reader takes no scope (only writer does)\n',
      ],
      [
        ['ca', 'update', 'bot', '--role', 'root'],
        'Error: Cannot update client certificate bot: unknown role "root" (expected one of admin, operator, writer, reader, auditor)\n',
      ],
      [
        [
          'ca',
          'issue-client',
          '--name',
          'x',
          '--out',
          join(dir.path, 'x'),
          '--role',
          'writer',
          '--scope',
          'app[1]',
        ],
        'Error: Cannot issue client certificate x: invalid scope glob "app[1]": up to 64 characters [a-zA-Z0-9_.-] and the wildcards * and ?, starting with a letter, a digit or a wildcard\n',
      ],
    ];
    for (const [args, stderr] of bad) {
      const result = cluster.manager.cli(args);
      expect({ args, code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
        args,
        code: 1,
        stdout: '',
        stderr,
      });
    }
    expect(expectRun(cluster.manager.cli(['ca', 'ls', '--format', 'json']), {}).stdout).toBe(
      before,
    );
  });

  test('the docker CLI with a reader certificate prints the 403 message', () => {
    if (!findExecutable('docker'))
      throw new Error('The docker CLI is needed: apt-get install -y docker.io');
    const reader = issue('docker-reader', 'reader');
    const config = join(dir.path, 'docker-config');
    mkdirSync(config, { recursive: true });
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir.path,
      DOCKER_CONFIG: config,
      DOCKER_HOST: `tcp://${cluster.managerAddr}`,
      DOCKER_TLS_VERIFY: '1',
      DOCKER_CERT_PATH: reader,
    };
    const docker = (args: string[], input = ''): RunResult => {
      const result = Bun.spawnSync(['docker', ...args], { env, stdin: Buffer.from(input) });
      return {
        code: result.exitCode,
        stdout: result.stdout.toString(),
        stderr: result.stderr.toString(),
      };
    };
    const ls = docker(['secret', 'inspect', '--format', '{{.Spec.Name}}', 'db_password']);
    expect({ code: ls.code, stdout: ls.stdout, stderr: ls.stderr }).toEqual({
      code: 0,
      stdout: 'db_password\n',
      stderr: '',
    });
    const create = docker(['secret', 'create', 'from_docker', '-'], 'v');
    expect({ code: create.code, stdout: create.stdout, stderr: create.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr: 'Error response from daemon: Permission denied: role reader may not create secrets\n',
    });
  });
});
