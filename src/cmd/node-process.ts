/** `secretd init`, `secretd run` (both serve in the foreground) and `secretd unlock`. */
import type { CAC } from 'cac';
import { networkInterfaces } from 'node:os';
import { SecretdError } from '../errors.ts';
import { splitHostPort } from '../node/bootstrap.ts';
import { initDaemon, joinDaemon, runDaemon, type Daemon } from '../node/daemon.ts';
import { dataDirOf, withClient, type GlobalFlags, type Io } from './_common.ts';
import { call } from './client.ts';
import { unlockKeyMessage } from './cluster.ts';

const defaultListenAddr = '0.0.0.0:4377';

export function registerNodeProcess(cli: CAC, io: Io): void {
  cli
    .command('init', 'Create a new cluster with this machine as its first manager, then serve')
    .option('--listen-addr <addr>', `Address to serve mutual TLS on (default ${defaultListenAddr})`)
    .option('--advertise-addr <addr>', 'Address other nodes and clients use to reach this manager (default: derived from --listen-addr)')
    .option('--autolock', 'Wrap this manager\'s keys with an unlock key, required at every restart')
    .option('--runtime <path>', 'OCI runtime binary with runc\'s command line (default runc)')
    .action(async (flags: GlobalFlags & { listenAddr?: string; advertiseAddr?: string; autolock?: boolean; runtime?: string }) => {
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
            io.out(`Cluster initialized: current node (${manager.state.nodeId}) is now a manager.\n`);
            io.out(`To add a worker to this cluster, run the following command:\n\n    secretd join --token ${swarm.worker} ${advertiseAddr}\n`);
            io.out("To add a manager to this cluster, run 'secretd cluster join-token manager' and follow the instructions.\n");
            if (flags.autolock) io.out(`${unlockKeyMessage(await manager.unlockKey())}\n`);
            io.out(`Data directory: ${dataDir}  (client commands use ${manager.paths.adminSocket})`);
          },
        },
      );
      return waitForStop(daemon);
    });

  cli
    .command('join <manager>', 'Join a cluster through one of its managers (HOST:PORT), then serve')
    .option('--token <token>', 'The join token (secretd cluster join-token manager)')
    .option('--listen-addr <addr>', `Address to serve mutual TLS on (default ${defaultListenAddr})`)
    .option('--advertise-addr <addr>', 'Address other nodes and clients use to reach this node (default: derived from --listen-addr)')
    .option('--runtime <path>', 'OCI runtime binary with runc\'s command line (default runc)')
    .action(async (remote: string, flags: GlobalFlags & { token?: string; listenAddr?: string; advertiseAddr?: string; runtime?: string }) => {
      if (!flags.token || typeof flags.token !== 'string') throw new SecretdError('invalid', 'Missing --token: the join token from `secretd cluster join-token manager`');
      splitHostPort(remote);
      const dataDir = dataDirOf(flags);
      const listenAddr = flags.listenAddr ?? defaultListenAddr;
      const advertiseAddr = flags.advertiseAddr ?? defaultAdvertise(listenAddr);
      splitHostPort(advertiseAddr);
      const daemon = await joinDaemon(
        { dataDir, token: flags.token, remote, listenAddr, advertiseAddr },
        {
          log: io.err,
          runtime: flags.runtime,
          onReady: (manager) => io.out(`This node joined the cluster as a manager (${manager.state.nodeId}).`),
          onWorkerReady: (worker) => io.out(`This node joined the cluster as a worker (${worker.state.nodeId}).`),
        },
      );
      return waitForStop(daemon);
    });

  cli
    .command('run', 'Restart a node from its data directory and serve')
    .option('--force-new-cluster', 'Recover from a lost quorum: restart this manager alone with all committed data; the others must join again')
    .option('--runtime <path>', 'OCI runtime binary with runc\'s command line (default runc)')
    .action(async (flags: GlobalFlags & { forceNewCluster?: boolean; runtime?: string }) => {
      return waitForStop(await runDaemon(dataDirOf(flags), { log: io.err, runtime: flags.runtime }, { forceNewCluster: flags.forceNewCluster === true }));
    });

  cli
    .command('unlock', 'Unlock a locked manager (reads the unlock key from stdin, or asks for it)')
    .action(async (flags: GlobalFlags) => {
      const key = await readUnlockKey(io);
      await withClient(flags, (c) => call(c, 'POST', '/swarm/unlock', { UnlockKey: key }));
      return 0;
    });
}

async function waitForStop(daemon: Daemon): Promise<number> {
  return daemon.done;
}

async function readUnlockKey(io: Io): Promise<string> {
  if (!io.stdinIsTTY) return new TextDecoder().decode(await io.stdin()).trim();
  process.stderr.write('Enter unlock key: ');
  const key = await new Promise<string>((resolve) => {
    const stdin = process.stdin;
    stdin.setRawMode(true);
    let text = '';
    const onData = (chunk: Buffer): void => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          stdin.setRawMode(false);
          stdin.off('data', onData);
          stdin.pause();
          process.stderr.write('\n');
          resolve(text);
          return;
        }
        if (ch === '\u0003') process.exit(130);
        text = ch === '\u007f' ? text.slice(0, -1) : text + ch;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
  if (key.trim() === '') throw new SecretdError('invalid', 'No unlock key given');
  return key.trim();
}

function defaultAdvertise(listenAddr: string): string {
  const { host, port } = splitHostPort(listenAddr);
  if (host && host !== '0.0.0.0' && host !== '::') return listenAddr;
  for (const addresses of Object.values(networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return `${address.address}:${port}`;
    }
  }
  return `127.0.0.1:${port}`;
}
