/** `secretd init`, `secretd run` (both serve in the foreground) and `secretd unlock`. */
import type { CAC } from 'cac';
import { readFile, stat } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { parseJoinToken } from '../crypto/index.ts';
import { SecretdError } from '../errors.ts';
import { splitHostPort } from '../node/index.ts';
import { initDaemon, joinDaemon, runDaemon, type Daemon } from '../node/index.ts';
import { dataDirOf, stdinArg, withClient, type GlobalFlags, type Io } from './_common.ts';
import { call } from './client.ts';
import { unlockKeyMessage } from './cluster.ts';
import { missingAllocatorEnv } from './allocator.ts';
import { withAllocatorEnv } from './reexec.ts';
import { unlockCredentialName, unlockFromFile } from './_key-files.ts';

const defaultListenAddr = '0.0.0.0:4377';

/** Where a join token may come from besides the command line; read once, then taken out of this process's environment. */
export const joinTokenEnv = 'SECRETD_JOIN_TOKEN';
/** A token file larger than this is not a token file (a token is under 100 bytes). */
const tokenFileBytesMax = 4096;

interface JoinTokenFlags {
  token?: string;
  tokenFile?: string;
}

/** `argv`: the command line as `main` got it, to run again (with `allocatorEnv`, or without the token). */
export function registerNodeProcess(cli: CAC, io: Io, argv: readonly string[]): void {
  cli
    .command('init', 'Create a new cluster with this machine as its first manager, then serve')
    .option('--listen-addr <addr>', `Address to serve mutual TLS on (default ${defaultListenAddr})`)
    .option(
      '--advertise-addr <addr>',
      'Address other nodes and clients use to reach this manager (default: derived from --listen-addr)',
    )
    .option('--autolock', "Wrap this manager's keys with an unlock key, required at every restart")
    .option('--runtime <path>', "OCI runtime binary with runc's command line (default runc)")
    .action(
      async (
        flags: GlobalFlags & {
          listenAddr?: string;
          advertiseAddr?: string;
          autolock?: boolean;
          runtime?: string;
        },
      ) => {
        withAllocatorEnv(argv, io.reexec);
        const dataDir = dataDirOf(flags);
        const listenAddr = flags.listenAddr ?? defaultListenAddr;
        const advertiseAddr = flags.advertiseAddr ?? defaultAdvertise(listenAddr);
        splitHostPort(advertiseAddr);
        const daemon = await initDaemon(
          { dataDir, listenAddr, advertiseAddr, autolock: flags.autolock === true },
          {
            log: io.err,
            runtime: flags.runtime,
            onReady: async (manager) => {
              const swarm = (await manager.cluster()).joinTokens;
              io.out(
                `Cluster initialized: current node (${manager.state.nodeId}) is now a manager.\n`,
              );
              io.out(
                `To add a worker to this cluster, run the following command:\n\n    secretd join --token ${swarm.worker} ${advertiseAddr}\n`,
              );
              io.out(
                "To add a manager to this cluster, run 'secretd cluster join-token manager' and follow the instructions.\n",
              );
              if (flags.autolock) io.out(`${unlockKeyMessage(await manager.unlockKey())}\n`);
              io.out(
                `Data directory: ${dataDir}  (client commands use ${manager.paths.adminSocket})`,
              );
            },
          },
        );
        return waitForStop(daemon);
      },
    );

  cli
    .command('join <manager>', 'Join a cluster through one of its managers (HOST:PORT), then serve')
    .option(
      '--token <token>',
      `The join token (secretd cluster join-token manager); - reads it from stdin. Given here, it leaves the process arguments at once (env ${joinTokenEnv} is the other way in)`,
    )
    .option('--token-file <path>', 'Read the join token from this file')
    .option('--listen-addr <addr>', `Address to serve mutual TLS on (default ${defaultListenAddr})`)
    .option(
      '--advertise-addr <addr>',
      'Address other nodes and clients use to reach this node (default: derived from --listen-addr)',
    )
    .option('--runtime <path>', "OCI runtime binary with runc's command line (default runc)")
    .action(
      async (
        remote: string,
        flags: GlobalFlags &
          JoinTokenFlags & { listenAddr?: string; advertiseAddr?: string; runtime?: string },
      ) => {
        // A token given on the command line is handed over by joinToken's own run again, which
        // adds the allocator's setting too: one execve, not two.
        if (flags.token === undefined || flags.token === stdinArg)
          withAllocatorEnv(argv, io.reexec);
        const token = await joinToken(flags, io, argv);
        splitHostPort(remote);
        const dataDir = dataDirOf(flags);
        const listenAddr = flags.listenAddr ?? defaultListenAddr;
        const advertiseAddr = flags.advertiseAddr ?? defaultAdvertise(listenAddr);
        splitHostPort(advertiseAddr);
        const daemon = await joinDaemon(
          { dataDir, token, remote, listenAddr, advertiseAddr },
          {
            log: io.err,
            runtime: flags.runtime,
            onReady: (manager) =>
              io.out(`This node joined the cluster as a manager (${manager.state.nodeId}).`),
            onWorkerReady: (worker) =>
              io.out(`This node joined the cluster as a worker (${worker.state.nodeId}).`),
          },
        );
        return waitForStop(daemon);
      },
    );

  cli
    .command('run', 'Restart a node from its data directory and serve')
    .option(
      '--force-new-cluster',
      'Recover from a lost quorum: restart this manager alone with all committed data; the others must join again',
    )
    .option('--runtime <path>', "OCI runtime binary with runc's command line (default runc)")
    .option(
      '--unlock-key-file <file>',
      `Unlock an autolocked manager with the key in this file (root's, mode 0600 or 0400); default: $CREDENTIALS_DIRECTORY/${unlockCredentialName} when systemd gives one`,
    )
    .action(
      async (
        flags: GlobalFlags & {
          forceNewCluster?: boolean;
          runtime?: string;
          unlockKeyFile?: string;
        },
      ) => {
        withAllocatorEnv(argv, io.reexec);
        const daemon = await runDaemon(
          dataDirOf(flags),
          { log: io.err, runtime: flags.runtime },
          { forceNewCluster: flags.forceNewCluster === true },
        );
        const file = typeof flags.unlockKeyFile === 'string' ? flags.unlockKeyFile : undefined;
        await unlockFromFile(daemon.manager, file, process.env.CREDENTIALS_DIRECTORY, io.err);
        return waitForStop(daemon);
      },
    );

  cli
    .command('unlock', 'Unlock a locked manager (reads the unlock key from stdin, or asks for it)')
    .action(async (flags: GlobalFlags) => {
      const key = await readUnlockKey(io);
      if (key === null) return 130; // Ctrl-C at the prompt, as a shell reports SIGINT
      await withClient(flags, (c) => call(c, 'POST', '/swarm/unlock', { UnlockKey: key }));
      return 0;
    });
}

async function waitForStop(daemon: Daemon): Promise<number> {
  return daemon.done;
}

async function readUnlockKey(io: Io): Promise<string | null> {
  if (!io.stdinIsTTY) return new TextDecoder().decode(await io.stdin()).trim();
  io.write('err', 'Enter unlock key: ');
  const key = await new Promise<string | null>((resolve) => {
    const stdin = process.stdin;
    stdin.setRawMode(true);
    let text = '';
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          stdin.setRawMode(false);
          stdin.off('data', onData);
          stdin.pause();
          io.write('err', '\n');
          resolve(text);
          return;
        }
        if (ch === '\u0003') {
          stdin.setRawMode(false);
          stdin.off('data', onData);
          stdin.pause();
          io.write('err', '\n');
          resolve(null);
          return;
        }
        text = ch === '\u007f' ? text.slice(0, -1) : text + ch;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
  if (key === null) return null;
  if (key.trim() === '') throw new SecretdError('invalid', 'No unlock key given');
  return key.trim();
}

/**
 * The join token, from exactly one place: `--token -` (stdin), `--token-file PATH`, `--token T`, or
 * the environment. Given as `--token T`, it would stay readable by every local user in
 * /proc/PID/cmdline for the node's whole life: this process runs itself again at once without it,
 * handing it over in its environment (readable only by the same user and root) and taking it out
 * of the environment as soon as it is read, so no child process inherits it.
 */
async function joinToken(flags: JoinTokenFlags, io: Io, argv: readonly string[]): Promise<string> {
  const given = flags.token;
  const fromEnv = process.env[joinTokenEnv];
  delete process.env[joinTokenEnv];
  if (Array.isArray(given) || Array.isArray(flags.tokenFile))
    throw new SecretdError('invalid', 'Give the join token once');
  if (given !== undefined && flags.tokenFile !== undefined)
    throw new SecretdError(
      'invalid',
      'Give the join token once: --token or --token-file, not both',
    );
  if (given !== undefined && typeof given !== 'string')
    throw new SecretdError(
      'invalid',
      'Missing value for --token: the join token, or - to read it from stdin',
    );
  let token: string;
  let from: string;
  if (given === stdinArg) {
    token = new TextDecoder().decode(await io.stdin()).trim();
    from = 'standard input';
    if (token === '') throw new SecretdError('invalid', 'No join token on standard input');
  } else if (given !== undefined) {
    if (io.reexec)
      io.reexec(argsWithoutToken(argv), { ...missingAllocatorEnv(), [joinTokenEnv]: given });
    io.err(
      `Warning: the join token stays visible in this process's arguments; use --token-file, --token - or ${joinTokenEnv}`,
    );
    token = given.trim();
    from = '--token';
  } else if (flags.tokenFile !== undefined) {
    token = await readTokenFile(String(flags.tokenFile));
    from = `--token-file ${flags.tokenFile}`;
  } else if (fromEnv !== undefined) {
    token = fromEnv.trim();
    from = joinTokenEnv;
    if (token === '') throw new SecretdError('invalid', `${joinTokenEnv} is empty`);
  } else {
    throw new SecretdError(
      'invalid',
      `Missing join token: give --token-file PATH, --token - (stdin), ${joinTokenEnv} or --token TOKEN (from \`secretd cluster join-token manager|worker\`)`,
    );
  }
  try {
    parseJoinToken(token);
  } catch (error) {
    if (error instanceof SecretdError)
      throw new SecretdError('invalid', `${error.message} (read from ${from})`);
    throw error;
  }
  return token;
}

/** The command line without `--token T` / `--token=T` (up to a `--`, after which nothing is an option). */
export function argsWithoutToken(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (arg === '--token') i++;
    else if (!arg.startsWith('--token=')) out.push(arg);
  }
  return out;
}

async function readTokenFile(path: string): Promise<string> {
  let bytes: Buffer;
  try {
    const info = await stat(path);
    if (info.isDirectory())
      throw new SecretdError(
        'invalid',
        `Cannot read the join token from ${path}: it is a directory`,
      );
    if (info.size > tokenFileBytesMax)
      throw new SecretdError(
        'invalid',
        `Cannot read the join token from ${path}: ${info.size} bytes is no token file (at most ${tokenFileBytesMax})`,
      );
    bytes = await readFile(path);
  } catch (error) {
    if (error instanceof SecretdError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : (error as Error).message;
    throw new SecretdError('invalid', `Cannot read the join token from ${path}: ${reason}`);
  }
  const token = bytes.toString('utf8').trim();
  bytes.fill(0);
  if (token === '') throw new SecretdError('invalid', `The join token file ${path} is empty`);
  return token;
}

export function defaultAdvertise(listenAddr: string): string {
  const { host, port } = splitHostPort(listenAddr);
  if (host && host !== '0.0.0.0' && host !== '::') return listenAddr;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return `${address.address}:${port}`;
    }
  }
  return `127.0.0.1:${port}`;
}
