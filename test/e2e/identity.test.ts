/**
 * Who a client believes is a manager, and what a join leaves readable, on real processes (the
 * compiled executable, one manager and workers on loopback):
 * - a server presenting a real worker's certificate gets nothing from the CLI (`--host`), from a
 *   joiner holding the manager token, from a node's peer client, or from curl;
 * - `secretd join` keeps its token out of every process's command line, and takes it from stdin,
 *   a file or the environment;
 * - the CLI's output reaches a pipe whole, far past the pipe's 64 KiB, with the right exit code.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { allocatorEnv } from '../../src/cmd/allocator.ts';
import { keyPkcs8ToPem } from '../../src/crypto/index.ts';
import { PeerClient } from '../../src/node/peers/index.ts';
import { curlTlsArgs, issueClientCert } from '../helpers/client-certs.ts';
import { adminRequest } from '../helpers/cluster.ts';
import { serveImpostor } from '../helpers/impostor.ts';
import {
  argumentsOf,
  Daemon,
  environOf,
  freePort,
  requireBinary,
  secretd,
  secretdBin,
  tempDir,
  type TempDir,
} from '../helpers/process.ts';

beforeAll(requireBinary);
setDefaultTimeout(120_000);

/** A `secretd join` with its standard input and environment chosen by the test. */
class Joiner implements AsyncDisposable {
  readonly proc: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  constructor(
    args: readonly string[],
    options: { input?: string; env?: Record<string, string> } = {},
  ) {
    this.proc = spawn(secretdBin, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    this.proc.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.proc.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.proc.stdin!.end(options.input ?? '');
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))),
    );
  }

  async joined(): Promise<string> {
    const deadline = Date.now() + 30_000;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const match = /joined the cluster as a (worker|manager) \(([0-9a-z]{25})\)/.exec(this.output);
      if (match) return match[2]!;
      if (exited || Date.now() > deadline)
        throw new Error(`secretd join did not join:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    await this.exited;
  }
}

/**
 * Runs a command to completion without blocking this process: the impostor servers live here,
 * and spawnSync would stop them from answering.
 */
function run(
  command: string,
  args: readonly string[],
  options: { input?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.on('close', (code) => resolve({ code, stdout, stderr }));
    proc.stdin.end(options.input ?? '');
  });
}

/** Every process on this machine whose command line contains `text`, as "pid: argv". */
function commandLinesWith(text: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.includes(text)) found.push(`${pid}: ${cmdline.split('\0').join(' ')}`);
  }
  return found;
}

let dir: TempDir;
let manager: Daemon;
let managerDir: string;
let managerAddr: string;
let certs: string;
let workerToken: string;
let managerToken: string;
const joiners: Joiner[] = [];

beforeAll(async () => {
  dir = tempDir('secretd-identity-');
  managerDir = join(dir.path, 'manager');
  certs = join(dir.path, 'certs');
  const port = await freePort();
  managerAddr = `127.0.0.1:${port}`;
  manager = new Daemon(['init', '--data-dir', managerDir, '--listen-addr', managerAddr]);
  await manager.waitFor(/Data directory:/);
  issueClientCert(managerDir, certs, { name: 'e2e' });
  workerToken = secretd([
    'cluster',
    'join-token',
    'worker',
    '-q',
    '--data-dir',
    managerDir,
  ]).stdout.trim();
  managerToken = secretd([
    'cluster',
    'join-token',
    'manager',
    '-q',
    '--data-dir',
    managerDir,
  ]).stdout.trim();
  expect([workerToken, managerToken]).toEqual([
    expect.stringMatching(/^SDTKN-1-/),
    expect.stringMatching(/^SDTKN-1-/),
  ]);
});

afterAll(async () => {
  for (const joiner of joiners) await joiner[Symbol.asyncDispose]();
  manager.proc.kill('SIGTERM');
  await manager.exited;
  dir[Symbol.dispose]();
});

let nodes = 0;
/** `advertiseHost`: what the joiner claims as its address (the first worker claims the manager name, as an attacker would). */
function joinArgs(
  extra: readonly string[],
  advertiseHost = '127.0.0.1',
): { dataDir: string; args: string[] } {
  const dataDir = join(dir.path, `node-${++nodes}`);
  const port = 20000 + nodes;
  return {
    dataDir,
    args: [
      'join',
      '--data-dir',
      dataDir,
      '--listen-addr',
      `127.0.0.1:${port}`,
      '--advertise-addr',
      `${advertiseHost}:${port}`,
      ...extra,
      managerAddr,
    ],
  };
}

function startJoiner(
  extra: readonly string[],
  options: { input?: string; env?: Record<string, string>; advertiseHost?: string } = {},
): { joiner: Joiner; dataDir: string; args: string[] } {
  const { dataDir, args } = joinArgs(extra, options.advertiseHost);
  const joiner = new Joiner(args, options);
  joiners.push(joiner);
  return { joiner, dataDir, args };
}

/** The data dir of a worker that joined claiming `secretd-manager` as its address. */
let workerDir: string;

describe('the join token', () => {
  test('secretd join --token T: once joined, no process on the machine has the token in its command line', async () => {
    const { joiner, dataDir, args } = startJoiner(['--token', workerToken], {
      advertiseHost: 'secretd-manager',
    });
    workerDir = dataDir;
    await joiner.joined();
    expect(commandLinesWith(workerToken)).toEqual([]);
    // The node runs on as the same process (same pid), its arguments without the token, with
    // the allocator's setting added by the same execve.
    expect(argumentsOf(joiner.proc.pid!)).toEqual(
      args.filter((arg) => arg !== '--token' && arg !== workerToken),
    );
    expect(environOf(joiner.proc.pid!)).toMatchObject(allocatorEnv);
    expect(joiner.proc.exitCode).toBe(null);
  });

  test('secretd join reads the token from stdin (--token -), from --token-file and from SECRETD_JOIN_TOKEN', async () => {
    const tokenFile = join(dir.path, 'worker-token');
    writeFileSync(tokenFile, `${workerToken}\n`, { mode: 0o600 });
    const fromStdin = startJoiner(['--token', '-'], { input: `${workerToken}\n` });
    const fromFile = startJoiner(['--token-file', tokenFile]);
    const fromEnv = startJoiner([], { env: { SECRETD_JOIN_TOKEN: workerToken } });
    const ids = await Promise.all(
      [fromStdin, fromFile, fromEnv].map(({ joiner }) => joiner.joined()),
    );
    const listed = secretd(['node', 'ls', '-q', '--data-dir', managerDir]);
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim().split('\n')).toEqual(expect.arrayContaining(ids));
    expect(commandLinesWith(workerToken)).toEqual([]);
    // Each ran itself again for the allocator's setting first; stdin and the environment variable
    // were still there for the run that read the token.
    for (const { joiner } of [fromStdin, fromFile, fromEnv])
      expect(environOf(joiner.proc.pid!)).toMatchObject(allocatorEnv);
  });

  test('secretd join refuses a token file that is missing, empty or not a token, naming the file, and creates nothing', () => {
    const empty = join(dir.path, 'empty-token');
    const garbage = join(dir.path, 'garbage-token');
    writeFileSync(empty, '\n');
    writeFileSync(garbage, 'hello\n');
    const missing = join(dir.path, 'no-such-token');
    const cases: [string[], string][] = [
      [
        ['--token-file', missing],
        `Error: Cannot read the join token from ${missing}: no such file\n`,
      ],
      [['--token-file', empty], `Error: The join token file ${empty} is empty\n`],
      [
        ['--token-file', garbage],
        `Error: Invalid join token: it must start with SDTKN-1- (read from --token-file ${garbage})\n`,
      ],
      [
        ['--token-file', dir.path],
        `Error: Cannot read the join token from ${dir.path}: it is a directory\n`,
      ],
      [
        ['--token-file', garbage, '--token', workerToken],
        'Error: Give the join token once: --token or --token-file, not both\n',
      ],
    ];
    for (const [extra, stderr] of cases) {
      const { dataDir, args } = joinArgs(extra);
      expect(secretd(args, { env: { SECRETD_JOIN_TOKEN: '' } })).toEqual({
        code: 1,
        stdout: '',
        stderr,
      });
      expect(existsSync(dataDir)).toBe(false);
    }
    const { args } = joinArgs([]);
    const none = secretd(args);
    expect([none.code, none.stdout]).toEqual([1, '']);
    expect(none.stderr).toStartWith(
      'Error: Missing join token: give --token-file PATH, --token - (stdin), SECRETD_JOIN_TOKEN or --token TOKEN',
    );
  });
});

describe("a server presenting a real worker's certificate (one that joined claiming secretd-manager as its address)", () => {
  async function workerImpostor() {
    const keys = JSON.parse(
      readFileSync(join(workerDir, 'certificates', 'node-keys.json'), 'utf8'),
    ) as { autolock: boolean; tlsKey: string };
    expect(keys.autolock).toBe(false);
    const cert = readFileSync(join(workerDir, 'certificates', 'node.pem'), 'utf8');
    const ca = readFileSync(join(workerDir, 'certificates', 'ca.pem'), 'utf8');
    // It serves the real CA on the join route, as anyone could: the CA is public.
    return serveImpostor(
      { cert, key: keyPkcs8ToPem(Buffer.from(keys.tlsKey, 'base64')), ca },
      (request) =>
        request.path === '/secretd/join/ca'
          ? { status: 200, body: JSON.stringify({ CA: ca }) }
          : { status: 201, body: '{"ID":"fake"}' },
    );
  }

  test('gets no secret from the CLI (--host)', async () => {
    await using impostor = await workerImpostor();
    const result = await run(
      secretdBin,
      [
        '--host',
        impostor.url,
        '--tlscacert',
        join(certs, 'ca.pem'),
        '--tlscert',
        join(certs, 'cert.pem'),
        '--tlskey',
        join(certs, 'key.pem'),
        'secret',
        'create',
        'db_pass',
        '-',
      ],
      { input: 'TOP-SECRET-admin-password' },
    );
    expect([result.code, result.stdout]).toEqual([1, '']);
    expect(result.stderr).toStartWith(`Error: Cannot reach secretd at ${impostor.url}: `);
    expect(impostor.seen).toEqual([]);
  });

  test('gets no manager token from secretd join, and the joiner writes nothing', async () => {
    await using impostor = await workerImpostor();
    const { dataDir, args } = joinArgs(['--token', managerToken]);
    const result = await run(secretdBin, [...args.slice(0, -1), `127.0.0.1:${impostor.port}`]);
    expect([result.code, result.stdout]).toEqual([1, '']);
    expect(result.stderr).toStartWith(
      `Error: Cannot reach the manager at 127.0.0.1:${impostor.port}: `,
    );
    expect(impostor.seen.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /secretd/join/ca']);
    expect(existsSync(dataDir)).toBe(false);
  });

  test("gets nothing from a node's peer client (the manager's own certificate dialling it)", async () => {
    await using impostor = await workerImpostor();
    const keys = JSON.parse(
      readFileSync(join(managerDir, 'certificates', 'node-keys.json'), 'utf8'),
    ) as { tlsKey: string };
    const client = new PeerClient({
      ca: readFileSync(join(managerDir, 'certificates', 'ca.pem'), 'utf8'),
      cert: readFileSync(join(managerDir, 'certificates', 'node.pem'), 'utf8'),
      key: keyPkcs8ToPem(Buffer.from(keys.tlsKey, 'base64')),
    });
    try {
      const refused = await client
        .request(
          `127.0.0.1:${impostor.port}`,
          'POST',
          '/secretd/raft/propose',
          new TextEncoder().encode('{}'),
          { timeoutMs: 20_000 },
        )
        .then(
          () => 'answered',
          (error: Error) => error.message,
        );
      expect(refused).toStartWith(`Cannot reach manager at 127.0.0.1:${impostor.port}: `);
    } finally {
      client.closeAll();
    }
    expect(impostor.seen).toEqual([]);
  });

  test('is refused by curl, which checks names only, where the real manager is accepted', async () => {
    await using impostor = await workerImpostor();
    const curl = (url: string, extra: string[] = []) =>
      run('curl', ['-sS', '--http2', '--max-time', '20', ...curlTlsArgs(certs), ...extra, url]);
    const port = impostor.port;
    for (const [url, extra] of [
      [`https://127.0.0.1:${port}/_ping`, []],
      [`https://localhost:${port}/_ping`, []],
      [`https://secretd-manager:${port}/_ping`, ['--resolve', `secretd-manager:${port}:127.0.0.1`]],
    ] as const) {
      const result = await curl(url, [...extra]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/SSL|certificate|subject name/i);
    }
    expect(impostor.seen).toEqual([]);
    const real = await curl(`https://${managerAddr}/_ping`);
    expect([real.code, real.stdout]).toEqual([0, 'OK']);
  });
});

describe('CLI output through a pipe', () => {
  const count = 6000;
  let ids: string[];

  beforeAll(async () => {
    ids = [];
    let next = 0;
    const create = async (): Promise<void> => {
      while (next < count) {
        const i = next++;
        const answer = await adminRequest(
          managerDir,
          'POST',
          '/secrets/create',
          {
            Name: `pipe-${String(i).padStart(5, '0')}`,
            Labels: { filler: 'x'.repeat(200) },
            Data: Buffer.from(`v${i}`).toString('base64'),
          },
          20_000,
        );
        if (answer.status !== 201) throw new Error(`create ${i}: ${answer.status} ${answer.text}`);
        ids.push((JSON.parse(answer.text) as { ID: string }).ID);
      }
    };
    await Promise.all(Array.from({ length: 16 }, create));
  });

  test('secretd secret ls | wc -l counts every secret, far past the 64 KiB a pipe holds', () => {
    const result = spawnSync(
      'bash',
      ['-c', 'set -o pipefail; "$0" secret ls --data-dir "$1" | wc -l', secretdBin, managerDir],
      { timeout: 60_000 },
    );
    expect([
      result.status,
      result.stderr.toString(),
      Number(result.stdout.toString().trim()),
    ]).toEqual([0, '', count + 1]);
  });

  test('secretd secret ls --format json through a pipe: every secret arrives, exit code 0', () => {
    const result = spawnSync(
      secretdBin,
      ['secret', 'ls', '--format', 'json', '--data-dir', managerDir],
      { timeout: 60_000, maxBuffer: 64 * 1024 * 1024 },
    );
    expect([result.status, result.stderr.toString()]).toEqual([0, '']);
    expect(result.stdout.length).toBeGreaterThan(10 * 64 * 1024);
    const listed = result.stdout
      .toString()
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { ID: string }).ID);
    expect(listed.sort()).toEqual([...ids].sort());
  });

  test('secretd secret inspect of thousands of secrets and one missing: the whole JSON arrives, exit code 1', () => {
    const refs = [...ids.slice(0, 3000), 'no-such-secret'];
    const result = spawnSync(secretdBin, ['secret', 'inspect', '--data-dir', managerDir, ...refs], {
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    expect(result.status).toBe(1);
    expect(result.stderr.toString()).toBe('Error: Secret no-such-secret not found\n');
    const inspected = JSON.parse(result.stdout.toString()) as Array<{ ID: string }>;
    expect(result.stdout.length).toBeGreaterThan(10 * 64 * 1024);
    expect(inspected.map((s) => s.ID)).toEqual(ids.slice(0, 3000));
  });
});
