/**
 * A cluster of secretd managers on loopback for end-to-end tests: real processes, the compiled
 * executable, each node on a loopback IP of its own behind the fault network (see fault-proxy.ts:
 * a node listens on a real port and advertises its proxy's port). The test client connects from
 * `clientIp`, so a partition can cut it off from a node too.
 *
 * The proxy runs in this process, so everything here is asynchronous: CLI commands run through
 * `secretdAsync` (never spawnSync while a cluster runs) and the cluster is asked through each node's
 * admin socket (not proxied) or over mTLS through the proxies.
 */
import { spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { FaultNetwork } from './fault-proxy.ts';
import {
  Daemon,
  H2Client,
  readCerts,
  secretdBin,
  type ClientCerts,
  type RunResult,
} from './process.ts';

/** Where the test client connects from. */
export const clientIp = '127.0.0.100';

export interface NodeJSON {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly Spec: { readonly Role: 'manager' | 'worker'; readonly Availability: string };
  readonly Status: { readonly State: string; readonly Addr: string };
  readonly ManagerStatus?: {
    readonly Leader: boolean;
    readonly Reachability: string;
    readonly Addr: string;
  };
}

export interface RaftStatusJSON {
  readonly id: string;
  readonly term: number;
  readonly role: 'leader' | 'follower' | 'candidate' | 'pre-candidate';
  readonly leader: string | null;
  readonly commit: number;
  readonly applied: number;
  readonly conf: { readonly voters: readonly string[]; readonly learners: readonly string[] };
}

export interface SecretJSON {
  readonly ID: string;
  readonly Version: { readonly Index: number };
  readonly Spec: { readonly Name: string; readonly Labels: Record<string, string> };
}

export interface ApiAnswer {
  readonly status: number;
  readonly text: string;
}

/** Polls `check` until it returns a value (not undefined), failing after `timeoutMs` with `what`. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined> | T | undefined,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`,
      );
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Runs a secretd client command without blocking this process's event loop (the proxy lives here). */
export function secretdAsync(
  args: readonly string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const proc = spawn(secretdBin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${options.timeoutMs ?? 20_000} ms)`;
      proc.kill('SIGKILL');
    }, options.timeoutMs ?? 20_000);
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    proc.stdin.on('error', () => {});
    proc.stdin.end(options.input ?? '');
  });
}

/** A request on a node's admin socket (plain HTTP over a Unix socket, root's view, never proxied). */
export function adminRequest(
  dataDir: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 5000,
): Promise<ApiAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = httpRequest(
      {
        socketPath: join(dataDir, 'admin.sock'),
        method,
        path,
        timeout: timeoutMs,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': payload.length }
          : {},
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(payload ?? undefined);
  });
}

/** A port free on `ip` right now (the node binds it moments later). */
async function freePortOn(ip: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, ip, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export class ClusterNode {
  daemon: Daemon | null = null;
  /** The node id, known once it has started. */
  id = '';

  constructor(
    readonly name: string,
    readonly ip: string,
    /** The port the node listens on. */
    readonly port: number,
    /** The port its proxy listens on: the port it advertises. */
    readonly proxyPort: number,
    readonly dataDir: string,
    readonly spawned: Daemon[],
  ) {}

  get listenAddr(): string {
    return `${this.ip}:${this.port}`;
  }

  get addr(): string {
    return `${this.ip}:${this.proxyPort}`;
  }

  get url(): string {
    return `https://${this.addr}`;
  }

  get running(): boolean {
    const proc = this.daemon?.proc;
    return proc !== undefined && proc.exitCode === null && proc.signalCode === null;
  }

  #spawn(args: readonly string[]): Daemon {
    if (this.running) throw new Error(`${this.name} is already running`);
    const daemon = new Daemon(args);
    this.spawned.push(daemon);
    this.daemon = daemon;
    return daemon;
  }

  async init(): Promise<void> {
    const daemon = this.#spawn([
      'init',
      '--data-dir',
      this.dataDir,
      '--listen-addr',
      this.listenAddr,
      '--advertise-addr',
      this.addr,
    ]);
    this.id = (await daemon.waitFor(/current node \((\w+)\) is now a manager/))[1]!;
    await daemon.waitFor(/Data directory:/);
    await daemon.waitFor(/serving the API on/);
  }

  /** `secretd join` through `via` (its advertised address, so through its proxy). */
  async join(via: ClusterNode, token: string): Promise<void> {
    const daemon = this.#spawn([
      'join',
      '--data-dir',
      this.dataDir,
      '--token',
      token,
      '--listen-addr',
      this.listenAddr,
      '--advertise-addr',
      this.addr,
      via.addr,
    ]);
    this.id = (
      await daemon.waitFor(/This node joined the cluster as a manager \((\w+)\)\./, 45_000)
    )[1]!;
  }

  /** `secretd run` on the existing data dir; does not wait for it to serve. */
  run(extra: readonly string[] = []): Daemon {
    return this.#spawn(['run', '--data-dir', this.dataDir, ...extra]);
  }

  /** Restarts with `secretd run` and waits until its admin socket answers (it has caught up then). */
  async restart(extra: readonly string[] = [], timeoutMs = 30_000): Promise<void> {
    const daemon = this.run(extra);
    await daemon.waitFor(/serving the API on/, timeoutMs);
    await until(`${this.name} to serve its admin socket`, timeoutMs, async () =>
      (await this.admin('GET', '/_ping', undefined, 1000)).status === 200 ? true : undefined,
    );
  }

  signal(signal: NodeJS.Signals): void {
    if (!this.running) throw new Error(`${this.name} is not running`);
    this.daemon!.proc.kill(signal);
  }

  async kill(): Promise<void> {
    await this.daemon?.kill('SIGKILL');
  }

  cli(
    args: readonly string[],
    options: { input?: string; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    return secretdAsync([...args, '--data-dir', this.dataDir], options);
  }

  admin(method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<ApiAnswer> {
    return adminRequest(this.dataDir, method, path, body, timeoutMs);
  }

  /** The node list as this manager answers it (from the leader's view), or null if it cannot. */
  async nodes(timeoutMs = 3000): Promise<NodeJSON[] | null> {
    try {
      const answer = await this.admin('GET', '/nodes', undefined, timeoutMs);
      this.lastNodesError = answer.status === 200 ? '' : `${answer.status} ${answer.text}`;
      return answer.status === 200 ? (JSON.parse(answer.text) as NodeJSON[]) : null;
    } catch (error) {
      this.lastNodesError = (error as Error).message;
      return null;
    }
  }

  /** This node's own Raft state (role, term, leader, configuration), from its admin socket. */
  async raftStatus(timeoutMs = 3000): Promise<RaftStatusJSON> {
    const answer = await this.admin('GET', '/secretd/raft/status', undefined, timeoutMs);
    if (answer.status !== 200)
      throw new Error(
        `${this.name}: GET /secretd/raft/status answered ${answer.status} ${answer.text}`,
      );
    return JSON.parse(answer.text) as RaftStatusJSON;
  }

  /** Why the last `nodes()` gave nothing, for failure messages. */
  lastNodesError = '';
}

export class Cluster implements AsyncDisposable {
  readonly net = new FaultNetwork();
  readonly nodes: ClusterNode[] = [];
  readonly #spawned: Daemon[] = [];
  #certs: ClientCerts | null = null;

  constructor(readonly dir: string) {}

  get certs(): ClientCerts {
    if (!this.#certs) throw new Error('no client certificate yet: bootstrap the cluster first');
    return this.#certs;
  }

  /** A new node (not started): the next loopback IP, a real port and a proxy in front of it. */
  async addNode(): Promise<ClusterNode> {
    const index = this.nodes.length + 1;
    const ip = `127.0.0.${10 + index}`;
    const port = await freePortOn(ip);
    const proxyPort = await this.net.proxy(ip, port);
    const node = new ClusterNode(
      `n${index}`,
      ip,
      port,
      proxyPort,
      join(this.dir, `n${index}`),
      this.#spawned,
    );
    this.nodes.push(node);
    return node;
  }

  /** `init` on a first node, a client certificate from it, then `join` for the others, one by one. */
  async bootstrap(size: number): Promise<ClusterNode[]> {
    const first = await this.addNode();
    await first.init();
    const out = join(this.dir, 'client-certs');
    const issued = await first.cli(['ca', 'issue-client', '--name', 'e2e', '--out', out]);
    if (issued.code !== 0 || issued.stderr !== '')
      throw new Error(`ca issue-client failed (${issued.code}): ${issued.stderr}`);
    this.#certs = readCerts(out);
    for (let i = 1; i < size; i++) await this.join(await this.addNode(), first);
    return this.nodes.slice(0, size);
  }

  async joinToken(via: ClusterNode): Promise<string> {
    const result = await via.cli(['cluster', 'join-token', 'manager', '-q']);
    if (result.code !== 0) throw new Error(`join-token failed (${result.code}): ${result.stderr}`);
    return result.stdout.trim();
  }

  async join(node: ClusterNode, via: ClusterNode): Promise<void> {
    await node.join(via, await this.joinToken(via));
  }

  /** A client over HTTP/2 mTLS to one node, through its proxy, from the client IP. */
  client(node: ClusterNode): H2Client {
    return new H2Client(node.url, this.certs, { localAddress: clientIp });
  }

  /**
   * Waits until every node in `among` names the same single leader, one of `among` (and not
   * `not`), with every manager listed reachable; returns it.
   */
  async waitForLeader(
    among: readonly ClusterNode[],
    options: { not?: ClusterNode; timeoutMs?: number } = {},
  ): Promise<ClusterNode> {
    const ids = new Set(among.map((n) => n.id));
    let seen = '';
    try {
      return await until(`one leader`, options.timeoutMs ?? 20_000, async () => {
        const views = await Promise.all(among.map((n) => n.nodes()));
        seen = views
          .map(
            (view, i) =>
              `${among[i]!.name}: ${view ? view.map((n) => `${n.ID.slice(0, 6)}=${n.ManagerStatus?.Leader ? 'Leader' : (n.ManagerStatus?.Reachability ?? n.Spec.Role)}`).join(' ') : `no answer (${among[i]!.lastNodesError})`}`,
          )
          .join('; ');
        let leader: string | null = null;
        for (const view of views) {
          if (!view) return undefined;
          const leaders = view.filter((n) => n.ManagerStatus?.Leader);
          if (leaders.length !== 1 || (leader !== null && leaders[0]!.ID !== leader))
            return undefined;
          if (view.some((n) => ids.has(n.ID) && n.ManagerStatus?.Reachability !== 'reachable'))
            return undefined;
          leader = leaders[0]!.ID;
        }
        const node = among.find((n) => n.id === leader);
        return node && node !== options.not ? node : undefined;
      });
    } catch (error) {
      const processes = among.map(
        (n) =>
          `${n.name}: ${n.running ? 'running' : `exited ${n.daemon?.proc.exitCode ?? n.daemon?.proc.signalCode}`}, stderr: ${n.daemon?.stderr.trim().split('\n').slice(-5).join(' | ')}`,
      );
      throw new Error(
        `${(error as Error).message} among ${among.map((n) => `${n.name}=${n.id.slice(0, 6)}`).join(', ')}${options.not ? ` other than ${options.not.name}` : ''}; last seen: ${seen}\n${processes.join('\n')}`,
      );
    }
  }

  /** Each daemon ever started here: stderr with no fatal error and no uncaught exception. */
  daemonErrors(): string[] {
    return this.#spawned
      .filter((d) => /fatal|uncaught|panic|TypeError|AssertionError/i.test(d.stderr))
      .map((d) => `${d.proc.spawnargs.slice(1, 4).join(' ')}: ${d.stderr}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.#spawned.map((d) => d.kill('SIGKILL')));
    await this.net[Symbol.asyncDispose]();
  }
}
