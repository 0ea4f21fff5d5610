/**
 * `secretd oci-runtime RUNC-ARGS…`, also run as `secretd-runc` (a symlink to the executable): an
 * OCI runtime with runc's command line for docker (`--add-runtime`), docker-compose (`runtime:`)
 * and podman (`--runtime`). Every call goes through to runc (its global flags untouched) in one
 * execve, except:
 *
 *   create, run   references in the bundle's config.json (environment `SECRETD_SECRET*=SPEC`,
 *                 annotations `io.secretd.secret.*`, in `--secret` syntax) are prepared by this
 *                 node's agent (admin socket of SECRETD_DATA_DIR): a fresh tmpfs for this container;
 *                 config.json gets read-only bind mounts of it (written back by rename), then runc
 *                 runs. Any refusal fails the call before runc runs, with the reason on stderr and
 *                 in runc's --log file (which docker and podman show), and nothing mounted.
 *   delete        runc's delete, then the agent erases the container's secrets.
 *
 * A container without references costs one execve more than runc alone. Secret values never pass
 * through this process: only names, paths and versions. `secretd oci-runtime install` writes
 * `secretd-runc` as a sh script instead (_oci-shim.ts) that runs this only for the calls that need
 * it (create/run with references, delete of a container the agent holds), runc for the rest.
 *
 * Engines run this for every container they create, start and delete (docker: create, start,
 * delete, delete --force), so it loads nothing of the node's code (src/main.ts imports it alone):
 * the agent parses the `--secret` text, and the admin socket is spoken to with node:http directly.
 */
import { spawn } from 'node:child_process';
import {
  accessSync,
  constants as fsConstants,
  existsSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  appendFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { request as httpRequest } from 'node:http';
import { SecretdError } from '../errors.ts';
import { localAgentTimeoutMs, localSecretRefsMax, ociConfigBytesMax } from '../limits.ts';
import type { Io } from './_common.ts';

/** Where an administrator names the runtime to hand over to and the data dir (both optional). */
export const ociRuntimeConfigPath = '/etc/secretd/oci-runtime.json';
export const secretEnvPrefix = 'SECRETD_SECRET';
export const secretAnnotationPrefix = 'io.secretd.secret.';

/** runc's global flags that take a value (urfave/cli accepts one or two dashes). */
const globalValueFlags = new Set(['root', 'log', 'log-format', 'criu', 'rootless']);
/** `create`/`run` flags that take a value. */
const createValueFlags = new Set(['bundle', 'b', 'console-socket', 'pid-file', 'preserve-fds']);

export interface RuncCall {
  /** Global flags by name (without dashes), last one wins. */
  readonly globals: ReadonlyMap<string, string | true>;
  readonly command: string | null;
  /** The command's own flags by name. */
  readonly flags: ReadonlyMap<string, string | true>;
  /** The command's positional arguments (the container id is the first, for create/run/delete). */
  readonly positionals: readonly string[];
}

/** Reads runc's command line without changing it: global flags, command, its flags, positionals. */
export function parseRuncCall(args: readonly string[]): RuncCall {
  const globals = new Map<string, string | true>();
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  let command: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (command !== null && arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      const body = arg.replace(/^--?/, '');
      const eq = body.indexOf('=');
      const name = eq === -1 ? body : body.slice(0, eq);
      const takesValue = (command === null ? globalValueFlags : createValueFlags).has(name);
      const value = eq !== -1 ? body.slice(eq + 1) : takesValue ? (args[++i] ?? '') : true;
      (command === null ? globals : flags).set(name, value);
      continue;
    }
    if (command === null) command = arg;
    else positionals.push(arg);
  }
  return { globals, command, flags, positionals };
}

interface OciConfig {
  process?: { env?: unknown };
  annotations?: unknown;
  mounts?: unknown;
  [key: string]: unknown;
}

/**
 * One reference as the bundle gives it: its `--secret` text, and where it was found (for
 * messages). The agent parses it (src/node/store/secret-flag.ts, the CLI's parser too), so this
 * process loads no parser.
 */
export interface SecretRequestRef {
  readonly Spec: string;
  readonly Where: string;
}

/** The references a bundle's config names, in order: environment first, then annotations. */
export function bundleSecretRefs(config: OciConfig): SecretRequestRef[] {
  const refs: SecretRequestRef[] = [];
  const env = Array.isArray(config.process?.env) ? (config.process.env as unknown[]) : [];
  for (const entry of env) {
    if (typeof entry !== 'string' || !entry.startsWith(secretEnvPrefix)) continue;
    const eq = entry.indexOf('=');
    const name = eq === -1 ? entry : entry.slice(0, eq);
    if (!/^SECRETD_SECRET(_[A-Za-z0-9_]*)?$/.test(name)) continue;
    refs.push({
      Where: `environment variable ${name}`,
      Spec: eq === -1 ? '' : entry.slice(eq + 1),
    });
  }
  const annotations =
    typeof config.annotations === 'object' && config.annotations !== null
      ? (config.annotations as Record<string, unknown>)
      : {};
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(secretAnnotationPrefix)) continue;
    // podman splits an --annotation value at its commas: fields may be separated by ';' there.
    refs.push({
      Where: `annotation ${key}`,
      Spec: typeof value === 'string' ? value.replaceAll(';', ',') : '',
    });
  }
  if (refs.length > localSecretRefsMax)
    throw new SecretdError(
      'invalid',
      `Cannot prepare secrets: ${refs.length} references is more than the ${localSecretRefsMax} allowed per container`,
    );
  return refs;
}

/** What the agent answered: where the prepared files are on the host. */
export interface PreparedMounts {
  readonly SecretsDir: string | null;
  readonly FileMounts: readonly { readonly Source: string; readonly Destination: string }[];
}

/** config.json with the prepared files bound read-only (after every mount the engine asked for). */
export function withSecretMounts(config: OciConfig, prepared: PreparedMounts): OciConfig {
  const options = ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'];
  // A create run again on the same bundle: this container's earlier binds (the same tmpfs path,
  // erased and mounted anew by the agent) go, so that none points at a path that is gone.
  const first = prepared.SecretsDir ?? prepared.FileMounts[0]?.Source ?? '';
  const cut = first.lastIndexOf('/secrets/');
  const ours = cut === -1 ? null : first.slice(0, cut + '/secrets/'.length);
  const mounts = (Array.isArray(config.mounts) ? (config.mounts as unknown[]) : []).filter(
    (mount) =>
      ours === null ||
      typeof mount !== 'object' ||
      mount === null ||
      !String((mount as { source?: unknown }).source ?? '').startsWith(ours),
  );
  if (prepared.SecretsDir !== null)
    mounts.push({
      destination: '/run/secrets',
      type: 'bind',
      source: prepared.SecretsDir,
      options,
    });
  for (const file of prepared.FileMounts)
    mounts.push({ destination: file.Destination, type: 'bind', source: file.Source, options });
  return { ...config, mounts };
}

/**
 * The node's default data dir (data-dir/layout.ts's `defaultDataDir`, which oci-runtime.test.ts
 * checks this against): a copy, so that this module loads none of the node's code.
 */
export const nodeDataDirDefault = '/var/lib/secretd';
/** Its admin socket, as data-dir/layout.ts names it (checked by the same test). */
export function adminSocketOf(dataDir: string): string {
  return join(dataDir, 'admin.sock');
}

interface RuntimeSettings {
  readonly runtime: string;
  readonly dataDir: string;
}

/**
 * The settings file: SECRETD_OCI_RUNTIME_CONFIG, else `oci-runtime.json` beside the `secretd-runc`
 * link the engine ran (podman's conmon passes no environment, so a node other than the machine's
 * default is named there), else /etc/secretd/oci-runtime.json. Environment variables win over it.
 */
function settingsPath(): string {
  if (process.env.SECRETD_OCI_RUNTIME_CONFIG) return process.env.SECRETD_OCI_RUNTIME_CONFIG;
  if (basename(process.argv0) === 'secretd-runc') {
    const beside = join(dirname(process.argv0), 'oci-runtime.json');
    if (existsSync(beside)) return beside;
  }
  return ociRuntimeConfigPath;
}

function settings(): RuntimeSettings {
  let file: { runtime?: unknown; dataDir?: unknown } = {};
  const path = settingsPath();
  try {
    file = JSON.parse(readFileSync(path, 'utf8')) as typeof file;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new SecretdError('invalid', `Cannot read ${path}: ${(error as Error).message}`);
  }
  return {
    runtime: process.env.SECRETD_RUNC ?? (typeof file.runtime === 'string' ? file.runtime : 'runc'),
    dataDir:
      process.env.SECRETD_DATA_DIR ??
      (typeof file.dataDir === 'string' ? file.dataDir : nodeDataDirDefault),
  };
}

/** The runtime as a path (execve does not search PATH). */
export function resolveRuntime(name: string): string {
  const candidates = name.includes('/')
    ? [name]
    : [
        ...(
          process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
        ).split(':'),
        '/usr/sbin',
        '/usr/bin',
      ]
        .filter((dir) => dir !== '')
        .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return resolve(candidate);
    } catch {
      // not here
    }
  }
  throw new SecretdError(
    'unavailable',
    `Cannot run the OCI runtime '${name}': not found or not executable (set "runtime" in ${ociRuntimeConfigPath} or SECRETD_RUNC)`,
  );
}

/** Writes a failure where the engine looks for it: runc's --log file, in its --log-format. */
function logFailure(call: RuncCall, message: string): void {
  const log = call.globals.get('log');
  if (typeof log !== 'string' || log === '') return;
  const time = new Date().toISOString();
  const line =
    call.globals.get('log-format') === 'json'
      ? JSON.stringify({ level: 'error', msg: message, time })
      : `time="${time}" level=error msg=${JSON.stringify(message)}`;
  try {
    appendFileSync(log, line + '\n');
  } catch {
    // stderr still says it
  }
}

/** One JSON request on the node's admin socket (node:http: the CLI's client would load the node's code). */
function agentRequest(
  dataDir: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
  return new Promise((resolveAnswer, reject) => {
    const req = httpRequest(
      {
        socketPath: adminSocketOf(dataDir),
        method,
        path,
        timeout: localAgentTimeoutMs,
        headers: payload
          ? { 'content-type': 'application/json', 'content-length': payload.length }
          : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text === '' ? null : JSON.parse(text);
          } catch {
            // not JSON: kept as text
          }
          resolveAnswer({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new SecretdError(
          'unavailable',
          `the node's agent did not answer within ${localAgentTimeoutMs} ms`,
        ),
      ),
    );
    req.on('error', (error: NodeJS.ErrnoException) =>
      reject(
        error instanceof SecretdError
          ? error
          : new SecretdError(
              'unavailable',
              `Cannot reach this node's secretd at ${adminSocketOf(dataDir)} (${error.code ?? error.message}): is secretd running on this node?`,
            ),
      ),
    );
    req.end(payload ?? undefined);
  });
}

function messageOf(answer: { status: number; body: unknown }): string {
  return typeof answer.body === 'object' && answer.body !== null && 'message' in answer.body
    ? String((answer.body as { message: unknown }).message)
    : `the agent answered HTTP ${answer.status}`;
}

/** Asks the node's agent to prepare; throws a SecretdError with the agent's reason. */
export async function prepareSecrets(
  dataDir: string,
  request: { Id: string; Owner: unknown; Secrets: readonly SecretRequestRef[] },
): Promise<PreparedMounts> {
  const answer = await agentRequest(dataDir, 'POST', '/secretd/local/containers', request);
  if (answer.status === 201) return answer.body as PreparedMounts;
  throw new SecretdError('invalid', messageOf(answer));
}

/** Asks the agent to erase a container's secrets: null when done, else why not. */
export async function eraseSecrets(dataDir: string, id: string): Promise<string | null> {
  try {
    const answer = await agentRequest(
      dataDir,
      'DELETE',
      `/secretd/local/containers/${encodeURIComponent(id)}`,
    );
    return answer.status === 200 ? null : messageOf(answer);
  } catch (error) {
    return (error as Error).message;
  }
}

type Execve = (file: string, args: string[], env: Record<string, string | undefined>) => never;

export interface OciRuntimeDeps {
  /** Replaces this process (default: process.execve). */
  readonly execve?: Execve;
}

/** `secretd oci-runtime ARGS…`: returns an exit code, or never returns (runc took over). */
export async function ociRuntime(
  args: readonly string[],
  io: Io,
  deps: OciRuntimeDeps = {},
): Promise<number> {
  if (args[0] === '--print-config') return printConfig(args[1], io);
  if (args[0] === 'install') return install(args.slice(1), io);
  const call = parseRuncCall(args);
  const fail = (message: string): number => {
    io.err(`secretd-runc: ${message}`);
    logFailure(call, `secretd-runc: ${message}`);
    return 1;
  };
  let runtime: string;
  let dataDir: string;
  try {
    const found = settings();
    dataDir = found.dataDir;
    runtime = resolveRuntime(found.runtime);
  } catch (error) {
    return fail((error as Error).message);
  }
  const handOver = (): never => {
    const execve =
      deps.execve ?? ((process as { execve?: Execve }).execve?.bind(process) as Execve | undefined);
    if (execve === undefined)
      throw new Error('secretd-runc needs a runtime with process.execve (Bun 1.2+, Node 23+)');
    return execve(runtime, [runtime, ...args], { ...process.env });
  };
  const id = call.positionals[0];
  if ((call.command === 'create' || call.command === 'run') && id !== undefined) {
    try {
      await prepareFor(call, id, dataDir);
    } catch (error) {
      return fail((error as Error).message);
    }
    return handOver();
  }
  if (call.command === 'delete' && id !== undefined) {
    // The erase goes beside runc's delete (the container is stopped, or being killed by --force):
    // even when runc fails because the container is already gone.
    const erased = eraseSecrets(dataDir, id);
    const code = await new Promise<number>((resolveCode) => {
      const child = spawn(runtime, [...args], { stdio: 'inherit' });
      child.once('error', () => resolveCode(127));
      child.once('exit', (status) => resolveCode(status ?? 1));
    });
    const why = await erased;
    // No secretd on this node (or it is down): nothing to say; its sweep erases what is left once it runs.
    if (why !== null && !/Cannot reach this node's secretd/.test(why))
      io.err(`secretd-runc: cannot erase the secrets of container ${id}: ${why}`);
    return code;
  }
  return handOver();
}

async function prepareFor(call: RuncCall, id: string, dataDir: string): Promise<void> {
  const bundleFlag = call.flags.get('bundle') ?? call.flags.get('b');
  const bundle = resolve(typeof bundleFlag === 'string' && bundleFlag !== '' ? bundleFlag : '.');
  const configPath = join(bundle, 'config.json');
  let config: OciConfig;
  try {
    if (statSync(configPath).size > ociConfigBytesMax)
      throw new Error(`it is larger than ${ociConfigBytesMax} bytes`);
    const parsed: unknown = JSON.parse(readFileSync(configPath, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('it is not a JSON object');
    config = parsed as OciConfig;
  } catch (error) {
    throw new SecretdError(
      'invalid',
      `Cannot create container ${id}: cannot read ${configPath}: ${(error as Error).message}`,
    );
  }
  const refs = bundleSecretRefs(config);
  if (refs.length === 0) return;
  const root = call.globals.get('root');
  const prepared = await prepareSecrets(dataDir, {
    Id: id,
    Owner: {
      Kind: 'runc',
      Root: typeof root === 'string' && root !== '' ? resolve(root) : null,
      Binary: resolveRuntime(settings().runtime),
    },
    Secrets: refs,
  });
  const updated = withSecretMounts(config, prepared);
  const temp = `${configPath}.secretd-${process.pid}`;
  try {
    writeFileSync(temp, JSON.stringify(updated), { mode: statSync(configPath).mode & 0o777 });
    renameSync(temp, configPath);
  } catch (error) {
    await eraseSecrets(dataDir, id);
    throw new SecretdError(
      'internal',
      `Cannot create container ${id}: cannot write ${configPath}: ${(error as Error).message}`,
    );
  }
}

/**
 * Standard output and error written synchronously: the runtime's messages must be out before it
 * exits or execs, and it carries none of the CLI's output plumbing (src/main.ts runs it alone).
 */
export const runtimeIo: Io = {
  out: (text) => writeSync(1, `${text}\n`),
  err: (text) => writeSync(2, `${text}\n`),
  write: (stream, data) => writeSync(stream === 'out' ? 1 : 2, data),
  stdin: async () => new Uint8Array(),
  stdinIsTTY: false,
};

/** The secretd command the shim runs: this executable, or bun and main.ts when run from source. */
function selfCommand(): string[] {
  const exe = resolve(process.execPath);
  const script = process.argv[1];
  if (/^bun(-|$)/.test(basename(exe)) && script !== undefined && !script.startsWith('/$bunfs'))
    return [exe, resolve(script)];
  return [exe];
}

/**
 * `secretd oci-runtime install [--dir DIR] [--runc PATH] [--data-dir DIR]`: writes DIR/secretd-runc
 * (default /usr/local/bin), the sh script of _oci-shim.ts, with this executable, runc and the data
 * dir baked in (defaults: the settings file and environment, as the runtime reads them).
 */
export async function install(args: readonly string[], io: Io): Promise<number> {
  const options = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg : arg.slice(0, eq);
    if (!['--dir', '--runc', '--data-dir'].includes(name)) {
      io.err(`Error: unknown option '${name}' for oci-runtime install (--dir, --runc, --data-dir)`);
      return 2;
    }
    const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
    if (value === undefined || value === '') {
      io.err(`Error: option '${name}' of oci-runtime install needs a value`);
      return 2;
    }
    options.set(name, value);
  }
  try {
    const found = settings();
    const { writeShim } = await import('./_oci-shim.ts');
    const path = join(resolve(options.get('--dir') ?? '/usr/local/bin'), 'secretd-runc');
    const runc = resolveRuntime(options.get('--runc') ?? found.runtime);
    const dataDir = resolve(options.get('--data-dir') ?? found.dataDir);
    writeShim(path, { secretd: selfCommand(), runc, grep: resolveRuntime('grep'), dataDir });
    io.out(path);
    io.err(
      `# ${path} runs ${runc} for containers without references, and this secretd (data dir ${dataDir}) for the rest.`,
    );
    return 0;
  } catch (error) {
    io.err(`secretd-runc: cannot install: ${(error as Error).message}`);
    return 1;
  }
}

/** The setup for each engine, exactly as the README gives it. */
export function printConfig(engine: string | undefined, io: Io): number {
  const self = process.env.SECRETD_RUNC_PATH ?? '/usr/local/bin/secretd-runc';
  if (engine === 'docker') {
    io.out(JSON.stringify({ runtimes: { secretd: { path: self } } }, null, 2));
    io.err(
      [
        `# Merge the above into /etc/docker/daemon.json (or start dockerd with --add-runtime secretd=${self}), restart dockerd, then:`,
        '#   docker run --runtime secretd -e SECRETD_SECRET_DB=db_pass IMAGE …',
        '#   docker-compose: `runtime: secretd` and SECRETD_SECRET_* under `environment:`',
        `# Write ${self} first: secretd oci-runtime install --dir ${dirname(self)} [--runc PATH] [--data-dir DIR]`,
        '# (a sh script: containers without references go straight to runc, the rest through secretd).',
      ].join('\n'),
    );
    return 0;
  }
  if (engine === 'podman') {
    io.out(`[engine.runtimes]\nsecretd = ["${self}"]`);
    io.err(
      [
        `# Write ${self} first: secretd oci-runtime install --dir ${dirname(self)} [--runc PATH] [--data-dir DIR]`,
        '# Add the above to /etc/containers/containers.conf, then:',
        '#   podman run --runtime secretd -e SECRETD_SECRET_DB=db_pass IMAGE …',
        `#   podman run --runtime ${self} --annotation io.secretd.secret.db=db_pass IMAGE …`,
      ].join('\n'),
    );
    return 0;
  }
  io.err("Error: --print-config takes 'docker' or 'podman'");
  return 2;
}
