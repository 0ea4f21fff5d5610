/**
 * `secretd systemd-unit [--manager|--worker] [--data-dir DIR] [--exec PATH]`: prints a hardened
 * systemd unit for this node. A manager's unit hands secretd its unlock key as an encrypted
 * credential (`LoadCredentialEncrypted=`, made with `systemd-creds encrypt --with-key=tpm2`, so it
 * opens only on this machine's TPM), which `secretd run` reads from `$CREDENTIALS_DIRECTORY`.
 *
 * Hardening that runc allows: the file system read-only but for the data dir and /run/secretd
 * (task tmpfs mounts and runc's state), /tmp private, /home hidden, no new privileges (tasks get
 * no_new_privs from their bundle anyway), cgroups delegated for runc. Not set, because runc needs
 * them: PrivateDevices, ProtectKernelTunables, ProtectControlGroups, a capability bounding set.
 * The allocator's setting (`allocatorEnv`) is in the unit, so a restart starts one process, not two.
 */
import type { CAC } from 'cac';
import { SecretdError } from '../errors.ts';
import { dataDirOf, type GlobalFlags, type Io } from './_common.ts';
import { runningCompiled } from './reexec.ts';
import { unlockCredentialName } from './_key-files.ts';
import { allocatorEnv } from './allocator.ts';

interface UnitFlags extends GlobalFlags {
  manager?: boolean;
  worker?: boolean;
  exec?: string;
}

/** Where the credential lives on the machine (the README's setup writes it there). */
export const unlockCredentialPath = '/etc/secretd/unlock-key.cred';

export function registerSystemdUnit(cli: CAC, io: Io): void {
  cli
    .command('systemd-unit', 'Print a hardened systemd unit for this node')
    .option('--manager', 'A manager (the default): reads its unlock key from a systemd credential')
    .option('--worker', 'A worker')
    .option('--exec <path>', 'The secretd executable (default: this one)')
    .action((flags: UnitFlags) => {
      if (flags.manager && flags.worker)
        throw new SecretdError('invalid', 'Give --manager or --worker, not both');
      io.write(
        'out',
        systemdUnit({
          role: flags.worker ? 'worker' : 'manager',
          dataDir: dataDirOf(flags),
          exec: typeof flags.exec === 'string' ? flags.exec : selfPath(),
        }),
      );
      return 0;
    });
}

export function systemdUnit(options: {
  readonly role: 'manager' | 'worker';
  readonly dataDir: string;
  readonly exec: string;
}): string {
  for (const [what, value] of [
    ['--data-dir', options.dataDir],
    ['--exec', options.exec],
  ] as const) {
    if (!value.startsWith('/') || /[\s"'\\%$;]/.test(value))
      throw new SecretdError(
        'invalid',
        `Invalid ${what} ${JSON.stringify(value)}: a unit needs an absolute path without spaces, quotes, %, $ or ;`,
      );
  }
  const manager = options.role === 'manager';
  return [
    '[Unit]',
    `Description=secretd ${options.role}`,
    'Wants=network-online.target',
    'After=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${options.exec} run --data-dir ${options.dataDir}`,
    "# Bun's allocator keeps freed pages longer than its 100 ms (secretd would otherwise run itself again to set it)",
    ...Object.entries(allocatorEnv).map(([name, value]) => `Environment=${name}=${value}`),
    ...(manager
      ? [
          `# The unlock key, sealed to this machine: systemd-creds encrypt --with-key=tpm2 --name=${unlockCredentialName} key.txt ${unlockCredentialPath}`,
          `LoadCredentialEncrypted=${unlockCredentialName}:${unlockCredentialPath}`,
        ]
      : []),
    'Restart=on-failure',
    'RestartSec=2s',
    'TimeoutStopSec=30s',
    'KillSignal=SIGTERM',
    'Delegate=yes',
    'LimitNOFILE=1048576',
    'UMask=0077',
    'ProtectSystem=strict',
    'RuntimeDirectory=secretd',
    'RuntimeDirectoryPreserve=yes',
    `ReadWritePaths=${options.dataDir} /run/secretd`,
    'PrivateTmp=true',
    'ProtectHome=true',
    'NoNewPrivileges=true',
    'LockPersonality=true',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

/** This executable when compiled; otherwise where `npm start` links it. */
function selfPath(): string {
  return runningCompiled() ? process.execPath : '/usr/local/bin/secretd';
}
