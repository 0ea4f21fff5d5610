/**
 * `secretd spawn [--secret SPEC]… [--env VAR=SECRET]… [--dir /run/secrets] [--user UID:GID] -- CMD ARGS…`:
 * a host process (a systemd service's ExecStart) with granted secrets and no container.
 *
 * The node's agent prepares a fresh tmpfs for this spawn (as for a container, owned by this
 * process: if it dies, even by SIGKILL, the agent's next sweep erases it). CMD runs in a private
 * mount namespace (util-linux `unshare`) where that tmpfs's files are bound read-only at --dir, so
 * updates the agent writes in place are seen at once and nothing is visible outside. Signals this
 * process gets (the agent's on-update signal, systemd's TERM) go on to CMD; CMD's exit code is
 * spawn's; then the agent erases everything.
 *
 * `--env VAR=SECRET` puts the value into CMD's environment (opt-in): it is read from the tmpfs
 * (never bound into CMD's namespace) and cannot change while CMD runs.
 */
import { spawn } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SecretdError } from '../errors.ts';
import type { Io } from './_common.ts';
import { dataDirOf } from './_common.ts';
import { eraseSecrets, prepareSecrets, type SecretRequestRef } from './oci-runtime.ts';
import { parseSecretFlag } from './_secret-spec.ts';

export interface SpawnOptions {
  readonly secrets: readonly string[];
  readonly env: readonly { readonly variable: string; readonly secret: string }[];
  readonly dir: string;
  readonly user: { readonly uid: number; readonly gid: number } | null;
  readonly dataDir: string | undefined;
  readonly command: readonly string[];
}

const usage =
  'Usage: secretd spawn [--secret SPEC]… [--env VAR=SECRET]… [--dir /run/secrets] [--user UID:GID] [--data-dir DIR] -- CMD [ARGS…]';
/** Where an --env secret lives in the tmpfs: an absolute target, so never under --dir. */
const envTargetDir = '/.secretd-env';
const forwardedSignals = [
  'SIGHUP',
  'SIGUSR1',
  'SIGUSR2',
  'SIGINT',
  'SIGTERM',
  'SIGQUIT',
  'SIGWINCH',
] as const;

export function parseSpawnArgs(args: readonly string[]): SpawnOptions {
  const secrets: string[] = [];
  const env: { variable: string; secret: string }[] = [];
  let dir = '/run/secrets';
  let user: SpawnOptions['user'] = null;
  let dataDir: string | undefined;
  let i = 0;
  const value = (flag: string): string => {
    const next = args[++i];
    if (next === undefined) throw new SecretdError('invalid', `${flag} needs a value. ${usage}`);
    return next;
  };
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') break;
    const eq = arg.indexOf('=');
    const [flag, inline] =
      arg.startsWith('--') && eq !== -1 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const take = (): string => inline ?? value(flag);
    if (flag === '--secret') secrets.push(take());
    else if (flag === '--env' || flag === '-e') {
      const text = take();
      const at = text.indexOf('=');
      const variable = at === -1 ? text : text.slice(0, at);
      const secret = at === -1 ? text : text.slice(at + 1);
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(variable) || secret === '')
        throw new SecretdError(
          'invalid',
          `Invalid --env ${JSON.stringify(text)}: expected VAR=SECRET with VAR a variable name`,
        );
      env.push({ variable, secret });
    } else if (flag === '--dir') dir = take();
    else if (flag === '--data-dir') dataDir = take();
    else if (flag === '--user' || flag === '-u') {
      const text = take();
      const match = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(text);
      if (match === null)
        throw new SecretdError(
          'invalid',
          `Invalid --user ${JSON.stringify(text)}: expected numeric UID:GID`,
        );
      user = { uid: Number(match[1]), gid: Number(match[2] ?? match[1]) };
    } else throw new SecretdError('invalid', `Unknown option ${JSON.stringify(arg)}. ${usage}`);
  }
  const command = args.slice(i + 1);
  if (i >= args.length || command.length === 0)
    throw new SecretdError('invalid', `No command given (put it after --). ${usage}`);
  if (!dir.startsWith('/') || dir.includes('\0'))
    throw new SecretdError(
      'invalid',
      `Invalid --dir ${JSON.stringify(dir)}: it must be an absolute path`,
    );
  if (secrets.length === 0 && env.length === 0)
    throw new SecretdError(
      'invalid',
      `Nothing to give: name at least one --secret or --env. ${usage}`,
    );
  return { secrets, env, dir: resolve(dir), user, dataDir, command };
}

/** The references for the agent: --secret targets stay under --dir; --env ones never reach it. */
/**
 * The references for the agent (which parses them again): --secret targets stay under --dir;
 * --env ones get a target of their own that is never bound there.
 */
export function spawnRefs(options: SpawnOptions): SecretRequestRef[] {
  const refs = options.secrets.map((spec): SecretRequestRef => {
    if (parseSecretFlag(spec).File.Name.startsWith('/'))
      throw new SecretdError(
        'invalid',
        `Invalid --secret ${JSON.stringify(spec)}: spawn puts secrets under --dir, so the target must be relative`,
      );
    return { Spec: spec, Where: `--secret ${JSON.stringify(spec)}` };
  });
  for (const { variable, secret } of options.env) {
    // A name (or NAME@VERSION), nothing more: its fields are spawn's.
    if (secret.includes(',') || secret.includes('=') || parseSecretFlag(secret).SecretName === '')
      throw new SecretdError(
        'invalid',
        `Invalid --env ${variable}=${secret}: expected VAR=SECRET or VAR=SECRET@VERSION`,
      );
    refs.push({
      Spec: `source=${secret},target=${envTargetDir}/${variable},uid=0,gid=0,mode=0400`,
      Where: `--env ${variable}`,
    });
  }
  return refs;
}

export async function spawnCommand(args: readonly string[], io: Io): Promise<number> {
  let options: SpawnOptions;
  let refs: SecretRequestRef[];
  try {
    options = parseSpawnArgs(args);
    refs = spawnRefs(options);
  } catch (error) {
    io.err(`Error: ${(error as Error).message}`);
    return 2;
  }
  const dataDir = dataDirOf({
    ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
  });
  const id = `spawn-${process.pid}-${randomBytes(6).toString('hex')}`;
  let prepared;
  try {
    prepared = await prepareSecrets(dataDir, {
      Id: id,
      Owner: { Kind: 'process', Pid: process.pid },
      Secrets: refs,
    });
  } catch (error) {
    io.err(`Error: ${(error as Error).message}`);
    return 1;
  }
  try {
    const env: Record<string, string> = { ...(process.env as Record<string, string>) };
    for (const { variable } of options.env) {
      const file = prepared.FileMounts.find((m) => m.Destination === `${envTargetDir}/${variable}`);
      if (file === undefined)
        throw new SecretdError('internal', `The agent prepared no value for --env ${variable}`);
      const bytes = readFileSync(file.Source);
      env[variable] = bytes.toString('utf8');
      bytes.fill(0);
    }
    return await runInNamespace(options, prepared.SecretsDir, env);
  } catch (error) {
    io.err(`Error: ${(error as Error).message}`);
    return 1;
  } finally {
    const why = await eraseSecrets(dataDir, id);
    if (why !== null) io.err(`secretd spawn: cannot erase the secrets of ${id}: ${why}`);
  }
}

/**
 * CMD in a new mount namespace, with the tmpfs's `run/` bound read-only at --dir; resolves with its
 * exit code (128 + N when killed by signal N).
 */
function runInNamespace(
  options: SpawnOptions,
  secretsDir: string | null,
  env: Record<string, string>,
): Promise<number> {
  // setpriv sets the parent-death signal after the credential change (which would clear it): if
  // spawn itself is killed, the command dies with it instead of running on without its secrets.
  const drop = [
    'setpriv',
    ...(options.user === null
      ? []
      : [`--reuid=${options.user.uid}`, `--regid=${options.user.gid}`, '--clear-groups']),
    '--pdeathsig',
    'KILL',
    '--',
  ];
  // $1: the tmpfs's run/, $2: --dir; then the command. mount(8) applies ro,nosuid,nodev,noexec by a remount of the bind.
  const script =
    secretsDir === null
      ? 'shift 2; exec "$@"'
      : 'mkdir -p "$2" && mount --bind "$1" "$2" && mount -o remount,bind,ro,nosuid,nodev,noexec "$2" || exit 125; shift 2; exec "$@"';
  const child = spawn(
    'unshare',
    [
      '--mount',
      '--propagation',
      'private',
      '--',
      'sh',
      '-c',
      script,
      'sh',
      secretsDir ?? '-',
      options.dir,
      ...drop,
      ...options.command,
    ],
    { stdio: 'inherit', env },
  );
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  for (const signal of forwardedSignals) process.on(signal, forward);
  return new Promise((resolveCode, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      for (const signal of forwardedSignals) process.off(signal, forward);
      reject(
        new SecretdError(
          'unavailable',
          `Cannot run unshare (util-linux): ${error.code ?? error.message}`,
        ),
      );
    });
    child.once('exit', (code, signal) => {
      for (const signal of forwardedSignals) process.off(signal, forward);
      resolveCode(code ?? 128 + (signal === null ? 0 : (osConstants.signals[signal] ?? 0)));
    });
  });
}
