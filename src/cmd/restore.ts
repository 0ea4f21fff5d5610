/**
 * `secretd restore --from FILE [--key-file F] [--listen-addr …] [--advertise-addr …] [--autolock]`:
 * a new one-manager cluster from a backup (node/backup/restore.ts), then serves as `init` does.
 * The backup key comes from `--key-file` or standard input, never from the command line.
 */
import type { CAC } from 'cac';
import { encodeUnlockKey } from '../crypto/index.ts';
import { SecretdError } from '../errors.ts';
import { systemNow, systemRandom } from '../io/system.ts';
import { parseBackupKey, restoreCluster, runDaemon, splitHostPort } from '../node/index.ts';
import { dataDirOf, type GlobalFlags, type Io } from './_common.ts';
import { readSmallKeyFile } from './_key-files.ts';
import { unlockKeyMessage } from './cluster.ts';
import { defaultAdvertise } from './node-process.ts';

const defaultListenAddr = '0.0.0.0:4377';

interface RestoreFlags extends GlobalFlags {
  from?: string;
  keyFile?: string;
  listenAddr?: string;
  advertiseAddr?: string;
  autolock?: boolean;
  runtime?: string;
}

export function registerRestore(cli: CAC, io: Io): void {
  cli
    .command(
      'restore',
      'Create a new one-manager cluster from a backup (the backup key on stdin or --key-file), then serve',
    )
    .option('--from <file>', 'The backup file (secretd backup --out)')
    .option('--key-file <file>', 'Read the backup key from this file (default: standard input)')
    .option('--listen-addr <addr>', `Address to serve mutual TLS on (default ${defaultListenAddr})`)
    .option(
      '--advertise-addr <addr>',
      'Address other nodes and clients use to reach this manager (default: derived from --listen-addr)',
    )
    .option('--autolock', 'Turn autolock on with a new unlock key (printed once)')
    .option('--runtime <path>', "OCI runtime binary with runc's command line (default runc)")
    .action(async (flags: RestoreFlags) => restore(flags, io));
}

async function restore(flags: RestoreFlags, io: Io): Promise<number> {
  if (typeof flags.from !== 'string' || flags.from === '')
    throw new SecretdError('invalid', 'Missing --from FILE: the backup to restore');
  const dataDir = dataDirOf(flags);
  const listenAddr = flags.listenAddr ?? defaultListenAddr;
  const advertiseAddr = flags.advertiseAddr ?? defaultAdvertise(listenAddr);
  splitHostPort(listenAddr);
  splitHostPort(advertiseAddr);
  const keyText =
    typeof flags.keyFile === 'string'
      ? await readSmallKeyFile(flags.keyFile, 'backup key')
      : new TextDecoder().decode(await io.stdin()).trim();
  if (keyText === '')
    throw new SecretdError(
      'invalid',
      'No backup key: give --key-file FILE or the key on standard input',
    );
  const key = parseBackupKey(keyText);
  let restored;
  try {
    restored = await restoreCluster({
      dataDir,
      from: flags.from,
      key,
      listenAddr,
      advertiseAddr,
      autolock: flags.autolock === true,
      random: systemRandom,
      now: systemNow(),
    });
  } finally {
    key.fill(0);
  }
  const { header } = restored;
  io.out(
    `Cluster ${header.clusterId} restored from ${flags.from} (index ${header.index}, taken at ${header.createdAt}): ${header.counts.secrets} secrets, ${header.counts.services} services.`,
  );
  io.out(
    `This node (${restored.nodeId}) is its only manager. Old managers removed: ${restored.removedManagers.length}; old workers marked down: ${restored.downWorkers.length} (their tasks move to workers that join).`,
  );
  const daemon = await runDaemon(dataDir, { log: io.err, runtime: flags.runtime });
  const manager = daemon.manager!;
  if (restored.unlockKey) {
    await manager.unlock(encodeUnlockKey(restored.unlockKey));
    restored.unlockKey.fill(0);
  }
  const tokens = (await manager.cluster()).joinTokens;
  io.out(
    `To add a worker (an old worker too, with its data dir emptied first), run:\n\n    secretd join --token ${tokens.worker} ${advertiseAddr}\n`,
  );
  io.out(
    "To add a manager to this cluster, run 'secretd cluster join-token manager' and follow the instructions.",
  );
  if (flags.autolock) io.out(`${unlockKeyMessage(await manager.unlockKey())}\n`);
  io.out(`Data directory: ${dataDir}  (client commands use ${manager.paths.adminSocket})`);
  return daemon.done;
}
