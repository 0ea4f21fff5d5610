/** `secretd cluster join-token|unlock-key|update|rotate-keys`, like `docker swarm join-token|unlock-key|update`. */
import type { CAC } from 'cac';
import { SecretdError } from '../errors.ts';
import {
  auditKeptDefault,
  auditKeptMax,
  auditKeptMin,
  auditSegmentRecords,
  nodeCertExpiryWarnBelowMs,
} from '../limits.ts';
import { checkAuditKept, checkNodeCertExpiry, nodeCertExpiryText } from '../node/index.ts';
import { lifetimeMs } from './_duration.ts';
import { parseBoolFlag, withClient, type GlobalFlags, type Io } from './_common.ts';
import { call, type ApiClient } from './client.ts';

interface SwarmJSON {
  Version: { Index: number };
  Spec: Record<string, unknown> & {
    EncryptionConfig: { AutoLockManagers: boolean };
    CAConfig?: Record<string, unknown>;
  };
  JoinTokens: { Worker: string; Manager: string };
}

export function registerCluster(cli: CAC, io: Io): void {
  cli
    .command('join-token <role>', 'Show (or rotate) the join token for workers or managers')
    .option('--rotate', 'Rotate the join token')
    .option('-q, --quiet', 'Only display the token')
    .action(async (role: string, flags: GlobalFlags & { rotate?: boolean; quiet?: boolean }) => {
      if (role !== 'worker' && role !== 'manager')
        throw new SecretdError(
          'invalid',
          `Unknown role ${JSON.stringify(role)}: expected worker or manager`,
        );
      return withClient(flags, async (client) => {
        if (flags.rotate) {
          const swarm = await inspect(client);
          const param = role === 'worker' ? 'rotateWorkerToken' : 'rotateManagerToken';
          await call(
            client,
            'POST',
            `/swarm/update?version=${swarm.Version.Index}&${param}=true`,
            swarm.Spec,
          );
          if (!flags.quiet) io.out(`Successfully rotated ${role} join token.\n`);
        }
        const swarm = await inspect(client);
        const token = role === 'worker' ? swarm.JoinTokens.Worker : swarm.JoinTokens.Manager;
        if (flags.quiet) io.out(token);
        else {
          const info = (await call(client, 'GET', '/info')) as { Swarm: { NodeAddr: string } };
          io.out(
            `To add a ${role} to this cluster, run the following command:\n\n    secretd join --token ${token} ${info.Swarm.NodeAddr}\n`,
          );
        }
        return 0;
      });
    });

  cli
    .command('unlock-key', 'Show (or rotate) the unlock key of an autolocked cluster')
    .option('--rotate', 'Rotate the unlock key')
    .option('-q, --quiet', 'Only display the key')
    .action(async (flags: GlobalFlags & { rotate?: boolean; quiet?: boolean }) => {
      return withClient(flags, async (client) => {
        if (flags.rotate) {
          const swarm = await inspect(client);
          if (!swarm.Spec.EncryptionConfig.AutoLockManagers)
            throw new SecretdError(
              'conflict',
              'Cannot rotate the unlock key: autolock is not enabled (secretd cluster update --autolock=true)',
            );
          await call(
            client,
            'POST',
            `/swarm/update?version=${swarm.Version.Index}&rotateManagerUnlockKey=true`,
            swarm.Spec,
          );
          if (!flags.quiet) io.out('Successfully rotated manager unlock key.\n');
        }
        const key = await unlockKey(client);
        if (key === '')
          throw new SecretdError(
            'conflict',
            'No unlock key is set: autolock is not enabled (secretd cluster update --autolock=true)',
          );
        io.out(flags.quiet ? key : unlockKeyMessage(key));
        return 0;
      });
    });

  cli
    .command('rotate-keys', "Rotate every manager's data encryption key (DEK)")
    .action(async (flags: GlobalFlags) =>
      withClient(flags, async (client) => {
        const answer = (await call(client, 'POST', '/secretd/rotate-keys')) as {
          Rotation: number;
          Encryption: { KeyId: number; OldestKeyIdOnDisk: number };
        };
        io.out(
          `DEK rotation ${answer.Rotation} finished on this manager: its log and snapshots are sealed with key id ${answer.Encryption.KeyId}, and no older key is on disk.\n` +
            'The other managers rotate as they apply it; `Encryption` in GET /secretd/raft/status on each shows its KeyId and OldestKeyIdOnDisk.\n',
        );
        return 0;
      }),
    );

  cli
    .command('update', 'Update the cluster settings')
    .option('--autolock <bool>', 'Require the unlock key to start a manager (true|false)')
    .option(
      '--secret-versions-kept <n>',
      'Versions kept per secret (default 10): older ones go when a new one is added, unless pinned',
    )
    .option(
      '--cert-expiry <duration>',
      'Validity of node certificates issued from now on (default 90d; s, m, h, d; at least 1m): nodes renew at 50-80% of it',
    )
    .option(
      '--audit-kept <n>',
      `Audit records kept (default ${auditKeptDefault}): the oldest go in whole segments of ${auditSegmentRecords}`,
    )
    .action(async (flags: UpdateFlags) => {
      if (
        flags.auditKept === undefined &&
        flags.autolock === undefined &&
        flags.secretVersionsKept === undefined &&
        flags.certExpiry === undefined
      )
        throw new SecretdError(
          'invalid',
          'Nothing to update: give --autolock=true|false, --secret-versions-kept N, --cert-expiry DURATION or --audit-kept N',
        );
      const kept =
        flags.secretVersionsKept === undefined ? undefined : keptCount(flags.secretVersionsKept);
      const expiryMs = flags.certExpiry === undefined ? undefined : certExpiry(flags.certExpiry);
      if (flags.auditKept !== undefined) {
        const auditKept = auditKeptCount(flags.auditKept);
        const answer = (await withClient(flags, (client) =>
          call(client, 'POST', '/secretd/audit/settings', { AuditKept: auditKept }),
        )) as { AuditKept: number };
        io.out(`Cluster updated: ${answer.AuditKept} audit records kept.`);
        if (flags.autolock === undefined && kept === undefined && expiryMs === undefined) return 0;
      }
      if (flags.autolock === undefined && expiryMs === undefined) {
        return withClient(flags, async (client) => {
          const settings = (await call(client, 'POST', '/secretd/settings', {
            SecretVersionsKept: kept,
          })) as { SecretVersionsKept: number };
          io.out(`Cluster updated: ${settings.SecretVersionsKept} versions kept per secret.`);
          return 0;
        });
      }
      const autolock =
        flags.autolock === undefined ? undefined : parseBoolFlag(flags.autolock, '--autolock');
      return withClient(flags, async (client) => {
        if (kept !== undefined)
          await call(client, 'POST', '/secretd/settings', { SecretVersionsKept: kept });
        const swarm = await inspect(client);
        const wasLocked = swarm.Spec.EncryptionConfig.AutoLockManagers;
        const spec = {
          ...swarm.Spec,
          ...(autolock === undefined ? {} : { EncryptionConfig: { AutoLockManagers: autolock } }),
          // Docker's field, in nanoseconds, as `docker swarm update --cert-expiry` sends it.
          ...(expiryMs === undefined
            ? {}
            : { CAConfig: { ...swarm.Spec.CAConfig, NodeCertExpiry: expiryMs * 1e6 } }),
        };
        await call(client, 'POST', `/swarm/update?version=${swarm.Version.Index}`, spec);
        io.out('Cluster updated.');
        if (expiryMs !== undefined && expiryMs < nodeCertExpiryWarnBelowMs)
          io.err(
            `Warning: node certificates now last ${nodeCertExpiryText(expiryMs)}, so every node renews its certificate every few minutes (Docker's minimum is 1h); use this for tests only.`,
          );
        if (autolock && !wasLocked) io.out(unlockKeyMessage(await unlockKey(client)));
        return 0;
      });
    });
}

type UpdateFlags = GlobalFlags & {
  auditKept?: unknown;
  autolock?: unknown;
  secretVersionsKept?: unknown;
  certExpiry?: unknown;
};

/** `--cert-expiry`: a duration (`90d`, `2h`, `30m`, `1d12h`), at least 1 minute; checked before anything is sent. */
function certExpiry(value: unknown): number {
  const text = String(value);
  let ms: number;
  try {
    ms = lifetimeMs(text);
  } catch {
    throw new SecretdError(
      'invalid',
      `Invalid --cert-expiry ${JSON.stringify(text.slice(0, 40))}: expected a duration such as 90d, 12h, 30m or 1d12h`,
    );
  }
  try {
    return checkNodeCertExpiry(ms);
  } catch (error) {
    throw new SecretdError(
      'invalid',
      `Invalid --cert-expiry ${JSON.stringify(text.slice(0, 40))}: ${(error as Error).message.replace(/^Invalid certificate expiry [^:]*: /, '')}`,
    );
  }
}

/** `--audit-kept`: a whole number of records, checked as the store checks it before anything is sent. */
function auditKeptCount(value: unknown): number {
  const text = String(value);
  if (!/^[0-9]{1,12}$/.test(text))
    throw new SecretdError(
      'invalid',
      `Invalid --audit-kept ${JSON.stringify(text.slice(0, 20))}: expected a whole number of records from ${auditKeptMin} to ${auditKeptMax}`,
    );
  try {
    return checkAuditKept(Number(text));
  } catch (error) {
    throw new SecretdError(
      'invalid',
      `Invalid --audit-kept ${text}: ${(error as Error).message.replace(/^Invalid audit retention [0-9]+: /, '')}`,
    );
  }
}

function keptCount(value: unknown): number {
  const text = String(value);
  if (!/^[0-9]{1,4}$/.test(text))
    throw new SecretdError(
      'invalid',
      `Invalid --secret-versions-kept ${JSON.stringify(text.slice(0, 20))}: expected a whole number from 1`,
    );
  return Number(text);
}

async function inspect(client: ApiClient): Promise<SwarmJSON> {
  return (await call(client, 'GET', '/swarm')) as SwarmJSON;
}

async function unlockKey(client: ApiClient): Promise<string> {
  return ((await call(client, 'GET', '/swarm/unlockkey')) as { UnlockKey: string }).UnlockKey;
}

export function unlockKeyMessage(key: string): string {
  return [
    'To unlock a cluster manager after it restarts, run `secretd unlock` and provide the following key:',
    '',
    `    ${key}`,
    '',
    'Remember to store this key in a password manager: without it, a restarted manager cannot read its data.',
  ].join('\n');
}
