/**
 * secretd under Deno: the design card promises it runs there as well as under Bun, and this smoke
 * test keeps the promise honest. Deno is the `deno` devDependency (npm ships its binary, so
 * `npm ci` is all CI needs); it runs the sources as they are, `deno run -A src/main.ts`.
 *
 * One manager under Deno: init, secrets created, listed, inspected and removed over its admin socket
 * (the CLI under Deno too) and over HTTP/2 mutual TLS with a client certificate it issued (the
 * compiled Bun CLI with --host, and curl), then a manager from the compiled Bun executable joins it.
 *
 * Every process here closes its HTTP/2 sessions after fewer than 100 streams, or is killed: a Deno
 * server aborts inside nghttp2 when a client closes a session after more (denoland/deno#36788; see
 * the README's "Running under Deno").
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { curlTlsArgs } from '../helpers/client-certs.ts';
import { adminRequest, secretdAsync, until } from '../helpers/cluster.ts';
import {
  Daemon,
  freePort,
  repoRoot,
  requireBinary,
  tempDir,
  type RunResult,
  type TempDir,
} from '../helpers/process.ts';

beforeAll(requireBinary);
// Real processes, TLS handshakes, a Raft join, and Deno starting once per command: generous.
setDefaultTimeout(60_000);

const denoBin = join(repoRoot, 'node_modules', '.bin', 'deno');
const main = join(repoRoot, 'src', 'main.ts');
// Only what node_modules holds (deno.json: nodeModulesDir "manual"), and no update check: nothing
// but loopback is reached.
const denoEnv = { ...process.env, DENO_NO_UPDATE_CHECK: '1', DENO_NO_PROMPT: '1', NO_COLOR: '1' };
const denoArgs = (args: readonly string[]): string[] => [
  'run',
  '-A',
  '--cached-only',
  main,
  ...args,
];

/** A long-running `deno run -A src/main.ts …` (init), its output collected as it comes. */
class DenoDaemon implements AsyncDisposable {
  readonly proc: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  constructor(args: readonly string[]) {
    this.proc = spawn(denoBin, denoArgs(args), {
      cwd: repoRoot,
      env: denoEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.proc.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))),
    );
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Waits until the output matches, failing with everything printed if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    return until(`the Deno manager to print ${pattern}`, timeoutMs, () => {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (!this.running)
        throw new Error(
          `exited (${this.proc.exitCode ?? this.proc.signalCode}) before printing ${pattern}:\n${this.output}`,
        );
      return undefined;
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.running) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

/** A command run to completion: `command` with `args`, `input` on stdin. */
function run(
  command: string,
  args: readonly string[],
  options: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, {
      cwd: repoRoot,
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += '\n(killed after 30000 ms)';
      proc.kill('SIGKILL');
    }, 30_000);
    proc.on('error', reject);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    proc.stdin.on('error', () => {});
    proc.stdin.end(options.input ?? '');
  });
}

/** A secretd client command under Deno. */
const denoCli = (args: readonly string[], input?: string): Promise<RunResult> =>
  run(denoBin, denoArgs(args), { env: denoEnv, ...(input === undefined ? {} : { input }) });

/** Expects a command to have succeeded, showing what it printed when it did not. */
function ok(result: RunResult): string {
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  return result.stdout;
}

interface SecretJSON {
  readonly ID: string;
  readonly Spec: { readonly Name: string; readonly Labels: Record<string, string> };
}

describe('secretd under Deno', () => {
  let dir: TempDir;
  let manager: DenoDaemon;
  let bunManager: Daemon | null = null;
  let dataDir = '';
  let certs = '';
  let url = '';

  beforeAll(async () => {
    dir = tempDir('secretd-deno-');
    dataDir = join(dir.path, 'deno-manager');
    certs = join(dir.path, 'certs');
    const port = await freePort();
    url = `https://127.0.0.1:${port}`;
    manager = new DenoDaemon(['init', '--data-dir', dataDir, '--listen-addr', `127.0.0.1:${port}`]);
  });

  afterAll(async () => {
    await bunManager?.[Symbol.asyncDispose]();
    await manager?.[Symbol.asyncDispose]();
    dir?.[Symbol.dispose]();
  });

  test('init under Deno creates a one-manager cluster that serves mutual TLS and its admin socket', async () => {
    const id = (await manager.waitFor(/current node \((\w+)\) is now a manager/))[1]!;
    await manager.waitFor(/Data directory:/);
    await manager.waitFor(/serving the API on https:\/\/127\.0\.0\.1:\d+ \(mutual TLS\)/);
    expect(manager.output).toContain('secretd join --token SDTKN-1-');
    const nodes = JSON.parse((await adminRequest(dataDir, 'GET', '/nodes')).text) as Array<{
      ID: string;
      ManagerStatus?: { Leader: boolean };
    }>;
    expect(nodes.map((n) => [n.ID, n.ManagerStatus?.Leader])).toEqual([[id, true]]);
  });

  test('secrets are created, listed, inspected and removed over the admin socket by the CLI under Deno', async () => {
    const id = ok(
      await denoCli(
        ['secret', 'create', 'db-pass', '-', '--label', 'env=prod', '--data-dir', dataDir],
        'hunter2',
      ),
    ).trim();
    expect(id).toMatch(/^\w{25}$/);
    ok(await denoCli(['secret', 'create', 'api-key', '-', '--data-dir', dataDir], 'k-123'));

    const listed = ok(await denoCli(['secret', 'ls', '--format', 'json', '--data-dir', dataDir]));
    const names = listed
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as SecretJSON).Spec.Name);
    expect(names.sort()).toEqual(['api-key', 'db-pass']);

    const [inspected] = JSON.parse(
      ok(await denoCli(['secret', 'inspect', 'db-pass', '--data-dir', dataDir])),
    ) as SecretJSON[];
    expect(inspected?.ID).toBe(id);
    expect(inspected?.Spec.Labels).toEqual({ env: 'prod' });
    expect(JSON.stringify(inspected)).not.toContain('hunter2');

    ok(await denoCli(['secret', 'rm', 'api-key', '--data-dir', dataDir]));
    expect(ok(await denoCli(['secret', 'ls', '-q', '--data-dir', dataDir])).trim()).toBe(id);
    const gone = await denoCli(['secret', 'inspect', 'api-key', '--data-dir', dataDir]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('api-key');
  });

  test('secrets are created, listed, inspected and removed over mutual TLS with a certificate the Deno manager issued', async () => {
    ok(
      await denoCli(['ca', 'issue-client', '--name', 'e2e', '--out', certs, '--data-dir', dataDir]),
    );
    const tls = [
      '--host',
      url,
      '--tlscacert',
      join(certs, 'ca.pem'),
      '--tlscert',
      join(certs, 'cert.pem'),
      '--tlskey',
      join(certs, 'key.pem'),
    ];
    const remote = (args: readonly string[], input?: string): Promise<RunResult> =>
      secretdAsync([...tls, ...args], input === undefined ? {} : { input });

    const id = ok(
      await remote(['secret', 'create', 'tls-token', '-', '--label', 'via=mtls'], 't0k3n'),
    ).trim();
    expect(
      ok(await remote(['secret', 'ls', '-q']))
        .trim()
        .split('\n')
        .sort(),
    ).toContain(id);
    const [inspected] = JSON.parse(
      ok(await remote(['secret', 'inspect', 'tls-token'])),
    ) as SecretJSON[];
    expect(inspected?.Spec).toEqual({ Name: 'tls-token', Labels: { via: 'mtls' } });

    // curl, over HTTP/2 and over HTTP/1.1, with the same certificate.
    const curlTls = curlTlsArgs(certs);
    for (const [flag, version] of [
      ['--http2', '2'],
      ['--http1.1', '1.1'],
    ] as const) {
      const curlArgs = [
        '-sS',
        flag,
        '--max-time',
        '20',
        ...curlTls,
        '-w',
        '\n%{http_version} %{http_code}',
        `${url}/secrets/tls-token`,
      ];
      const answer = ok(await run('curl', curlArgs));
      const [body, status] = answer.split('\n');
      expect(status).toBe(`${version} 200`);
      expect((JSON.parse(body!) as SecretJSON).ID).toBe(id);
    }

    ok(await remote(['secret', 'rm', 'tls-token']));
    expect(ok(await remote(['secret', 'ls', '-q'])).split('\n')).not.toContain(id);
    const gone = await remote(['secret', 'inspect', 'tls-token']);
    expect(gone.code).toBe(1);
  });

  test('under Deno the server closes each HTTP/2 session after 90 streams; a client goes on on a new one, and closing its sessions cannot abort the process', async () => {
    // Needs the client certificate issued by the previous test.
    const tls = {
      ca: readFileSync(join(certs, 'ca.pem'), 'utf8'),
      cert: readFileSync(join(certs, 'cert.pem'), 'utf8'),
      key: readFileSync(join(certs, 'key.pem'), 'utf8'),
    };
    const sessions: ClientHttp2Session[] = [];
    const fresh = (): ClientHttp2Session => {
      const session = connect(url, tls);
      session.on('error', () => {});
      sessions.push(session);
      return session;
    };
    const ping = (session: ClientHttp2Session): Promise<number> =>
      new Promise((resolve, reject) => {
        try {
          const stream = session.request({ ':path': '/_ping' });
          let status = 0;
          stream.on('response', (headers) => (status = Number(headers[':status'])));
          stream.on('data', () => {});
          stream.on('end', () => resolve(status));
          stream.on('error', reject);
          stream.on('close', () => status === 0 && reject(new Error('refused')));
          stream.end();
        } catch (error) {
          reject(error);
        }
      });
    let session = fresh();
    let answered = 0;
    for (let i = 0; i < 300; i++) {
      if (session.closed || session.destroyed) session = fresh();
      // As secretd's own clients do: a request refused by a closing session goes once more on a new one.
      const status = await ping(session).catch(() => ping((session = fresh())));
      if (status === 200) answered++;
    }
    for (const each of sessions) each.close();
    expect(answered).toBe(300);
    expect(sessions.length).toBeGreaterThanOrEqual(4);
    await until(
      'the Deno manager to answer after the client closed its sessions',
      10_000,
      async () =>
        (await adminRequest(dataDir, 'GET', '/_ping')).status === 200 ? true : undefined,
    );
    expect(manager.running).toBe(true);
  });

  test('a manager from the compiled Bun executable joins the Deno manager and shares its secrets', async () => {
    const token = ok(
      await denoCli(['cluster', 'join-token', 'manager', '-q', '--data-dir', dataDir]),
    ).trim();
    const bunDataDir = join(dir.path, 'bun-manager');
    const port = await freePort();
    bunManager = new Daemon([
      'join',
      '--data-dir',
      bunDataDir,
      '--token',
      token,
      '--listen-addr',
      `127.0.0.1:${port}`,
      new URL(url).host,
    ]);
    const bunId = (
      await bunManager.waitFor(/This node joined the cluster as a manager \((\w+)\)\./, 45_000)
    )[1]!;

    // The Deno manager leads; the Bun one is a reachable manager, as both of them see it.
    for (const where of [dataDir, bunDataDir]) {
      const nodes = await until(`${where} to list both managers as reachable`, 30_000, async () => {
        const answer = await adminRequest(where, 'GET', '/nodes');
        const list =
          answer.status === 200
            ? (JSON.parse(answer.text) as Array<{
                ID: string;
                ManagerStatus?: { Leader: boolean; Reachability: string };
              }>)
            : [];
        return list.length === 2 && list.every((n) => n.ManagerStatus?.Reachability === 'reachable')
          ? list
          : undefined;
      });
      expect(nodes.find((n) => n.ID === bunId)?.ManagerStatus?.Leader).toBe(false);
    }

    // What the Deno manager holds reaches the Bun one, and a write through the Bun one (forwarded to
    // the Deno leader) reaches the Deno one.
    const held = ok(await secretdAsync(['secret', 'ls', '-q', '--data-dir', bunDataDir]))
      .trim()
      .split('\n')
      .sort();
    expect(held).toEqual(
      ok(await denoCli(['secret', 'ls', '-q', '--data-dir', dataDir]))
        .trim()
        .split('\n')
        .sort(),
    );
    const id = ok(
      await secretdAsync(['secret', 'create', 'from-bun', '-', '--data-dir', bunDataDir], {
        input: 'b',
      }),
    ).trim();
    const [seen] = JSON.parse(
      ok(await denoCli(['secret', 'inspect', 'from-bun', '--data-dir', dataDir])),
    ) as SecretJSON[];
    expect(seen?.ID).toBe(id);
    expect(manager.running).toBe(true);
  });
});
