/**
 * `secretd ca`: client certificates for curl, scripts or --host: issued for a time and a role
 * (`issue-client --expiry --role --scope`), listed (`ls`), given another role (`update`), revoked
 * (`revoke NAME|SERIAL`).
 */
import type { CAC } from 'cac';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createKeyAndCSR, keyPkcs8ToPem } from '../crypto/index.ts';
import { checkRoleAndScope } from '../node/index.ts';
import { SecretdError } from '../errors.ts';
import { caRotationPollMs, clientCertLifetimeMsMin } from '../limits.ts';
import { sleep, systemTimers } from '../io/timers.ts';
import { lifetimeMs } from './_duration.ts';
import { table, withClient, type GlobalFlags, type Io } from './_common.ts';
import { call } from './client.ts';

/** A client certificate as `GET /secretd/ca/client-certificates` lists it. */
interface ClientCertJSON {
  readonly Serial: string;
  readonly Name: string;
  readonly Role: string;
  readonly Scope: readonly string[];
  readonly IssuedAt: string;
  readonly ExpiresAt: string;
  readonly RevokedAt: string | null;
}

const path = '/secretd/ca/client-certificates';

/** `--expiry` as milliseconds (`90d`, `12h`, `30m`; at least 1 minute), or undefined when not given. */
export function parseExpiry(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const text = String(value);
  const ms = lifetimeMs(text);
  if (ms < clientCertLifetimeMsMin)
    throw new SecretdError(
      'invalid',
      `Invalid --expiry ${JSON.stringify(text)}: a client certificate must be valid at least 1 minute`,
    );
  return ms;
}

/**
 * `--role` and `--scope` (repeatable) as checked by the store (unknown role, empty or malformed
 * glob, a scope on a role that takes none: `invalid`), before anything is made or sent.
 */
export function parseRoleAndScope(
  role: unknown,
  scope: unknown,
  action: string,
): { readonly role: string; readonly scope: readonly string[] } {
  const globs = scope === undefined ? [] : (Array.isArray(scope) ? scope : [scope]).map(String);
  return checkRoleAndScope(role === undefined ? 'admin' : String(role), globs, action);
}

/**
 * The `--scope` values as typed: cac reads `--scope ''` as the number 0 (and `--scope 007` as 7),
 * so the globs are taken from the raw arguments, as strings.
 */
export function scopeArgs(rawArgs: readonly string[]): string[] | undefined {
  const globs: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === '--') break;
    if (arg === '--scope') globs.push(rawArgs[++i] ?? '');
    else if (arg.startsWith('--scope=')) globs.push(arg.slice('--scope='.length));
  }
  return globs.length === 0 ? undefined : globs;
}

type Unconfirmed = ReadonlyArray<{ NodeID: string; Addr: string; Error: string }>;

function warnUnconfirmed(io: Io, unconfirmed: Unconfirmed | undefined, what: string): void {
  for (const m of unconfirmed ?? [])
    io.err(`Warning: manager ${m.NodeID} (${m.Addr}) has not confirmed ${what} yet: ${m.Error}`);
}

const scopeText = (scope: readonly string[]): string => (scope.length > 0 ? scope.join(',') : '-');

/** Where a root CA rotation stands, as `GET /secretd/ca/rotation` answers. */
interface RotationJSON {
  readonly InProgress: boolean;
  readonly ID: string | null;
  readonly StartedAt: string | null;
  readonly Converged: number;
  readonly Total: number;
  readonly Pending: readonly string[];
}

function progressLine(status: RotationJSON): string {
  return `Root CA rotation ${status.ID}: ${status.Converged} of ${status.Total} nodes converged${status.Pending.length > 0 && status.Pending.length <= 5 ? ` (waiting for ${status.Pending.join(', ')})` : ''}`;
}

export function registerCa(cli: CAC, io: Io): void {
  cli
    .command(
      'rotate',
      'Rotate the root CA: a new root, cross-signed by the current one; waits until every node has converged',
    )
    .option('-d, --detach', 'Return once the rotation has started, without waiting')
    .action(async (flags: GlobalFlags & { detach?: boolean }) => {
      await withClient(flags, async (c) => {
        let status = (await call(c, 'POST', '/secretd/ca/rotate')) as RotationJSON;
        const id = status.ID;
        io.out(progressLine(status));
        if (flags.detach) return;
        let shown = progressLine(status);
        // Polled until the rotation ends; it goes on in the cluster if this command is stopped.
        while (status.InProgress && status.ID === id) {
          await sleep(systemTimers, caRotationPollMs);
          status = (await call(c, 'GET', '/secretd/ca/rotation')) as RotationJSON;
          const line = progressLine(status);
          if (status.InProgress && line !== shown) io.out((shown = line));
        }
        io.out(
          `Root CA rotation ${id} finished: every node has a certificate from the new root, the old root is no longer trusted, and both join tokens changed`,
        );
        io.out(
          'Client certificates issued before the rotation are refused from now on: issue new ones (secretd ca issue-client), whose ca.pem is the new root',
        );
      });
      return 0;
    });

  cli
    .command('issue-client', 'Issue a client certificate: writes ca.pem, cert.pem and key.pem')
    .option('--name <name>', 'Who the certificate is for (its CN)')
    .option('--out <dir>', 'Directory to write into (created if missing)')
    .option('--expiry <duration>', 'How long it is valid: 90d (default), 12h, 30m (at least 1m)')
    .option('--role <role>', 'admin (default), operator, writer, reader or auditor')
    .option('--scope <glob>', "A writer's secret names (* and ?), repeatable; none: every name")
    .action(
      async (
        flags: GlobalFlags & {
          name?: string;
          out?: string;
          expiry?: unknown;
          role?: unknown;
          scope?: unknown;
        },
      ) => {
        if (!flags.name || typeof flags.name !== 'string')
          throw new SecretdError('invalid', 'Missing --name: who the certificate is for');
        if (!flags.out || typeof flags.out !== 'string')
          throw new SecretdError(
            'invalid',
            'Missing --out: the directory to write ca.pem, cert.pem and key.pem into',
          );
        const expiryMs = parseExpiry(flags.expiry);
        const access = parseRoleAndScope(
          flags.role,
          scopeArgs(cli.rawArgs) ?? flags.scope,
          `issue client certificate ${flags.name}`,
        );
        // The private key is made here and never leaves this machine; only the CSR is sent.
        const { keyPkcs8, csrPem } = await createKeyAndCSR({ commonName: flags.name });
        const issued = (await withClient(flags, (c) =>
          call(c, 'POST', path, {
            Name: flags.name,
            CSR: csrPem,
            Role: access.role,
            Scope: access.scope,
            // Docker's API carries durations in nanoseconds.
            ...(expiryMs === undefined ? {} : { Expiry: expiryMs * 1e6 }),
          }),
        )) as { Certificate: string; CA: string; Unconfirmed?: Unconfirmed } & ClientCertJSON;
        await mkdir(flags.out, { recursive: true, mode: 0o700 });
        await writeFile(join(flags.out, 'ca.pem'), issued.CA, { mode: 0o644 });
        await writeFile(join(flags.out, 'cert.pem'), issued.Certificate, { mode: 0o644 });
        await writeFile(join(flags.out, 'key.pem'), keyPkcs8ToPem(keyPkcs8), { mode: 0o600 });
        keyPkcs8.fill(0);
        const scope = issued.Scope.length > 0 ? `, scope ${issued.Scope.join(',')}` : '';
        io.out(
          `Wrote ${join(flags.out, 'ca.pem')}, cert.pem and key.pem (client certificate for ${flags.name}, role ${issued.Role}${scope}, serial ${issued.Serial}, expires ${issued.ExpiresAt})`,
        );
        warnUnconfirmed(io, issued.Unconfirmed, 'its record');
        return 0;
      },
    );

  cli
    .command(
      'update <name-or-serial>',
      'Give a client certificate (by serial, or every live one under a name) another role and scope',
    )
    .option('--role <role>', 'admin, operator, writer, reader or auditor')
    .option('--scope <glob>', "A writer's secret names (* and ?), repeatable; none: every name")
    .action(
      async (ref: string | number, flags: GlobalFlags & { role?: unknown; scope?: unknown }) => {
        // cac reads a serial of digits only as a number; it is hex text.
        const text = String(ref);
        if (flags.role === undefined)
          throw new SecretdError('invalid', 'Missing --role: the role to give the certificate');
        const access = parseRoleAndScope(
          flags.role,
          scopeArgs(cli.rawArgs) ?? flags.scope,
          `update client certificate ${text}`,
        );
        const outcome = (await withClient(flags, (c) =>
          call(c, 'POST', `${path}/${encodeURIComponent(text)}/update`, {
            Role: access.role,
            Scope: access.scope,
          }),
        )) as { Updated: ClientCertJSON[]; Unconfirmed: Unconfirmed };
        for (const c of outcome.Updated)
          io.out(
            `Updated client certificate ${c.Serial} (name ${c.Name}): role ${c.Role}, scope ${scopeText(c.Scope)}`,
          );
        warnUnconfirmed(io, outcome.Unconfirmed, 'the update');
        return 0;
      },
    );

  cli
    .command('ls', 'List the client certificates issued (never a key)')
    .alias('list')
    .option('-q, --quiet', 'Only display serials')
    .option('--format <format>', 'Output format: "table" (default) or "json"')
    .action(async (flags: GlobalFlags & { quiet?: boolean; format?: string }) => {
      if (flags.format !== undefined && flags.format !== 'table' && flags.format !== 'json')
        throw new SecretdError(
          'invalid',
          `Invalid --format ${JSON.stringify(flags.format)}: expected table or json`,
        );
      const certs = (await withClient(flags, (c) => call(c, 'GET', path))) as ClientCertJSON[];
      if (flags.quiet) io.out(certs.map((c) => c.Serial).join('\n'));
      else if (flags.format === 'json') io.out(certs.map((c) => JSON.stringify(c)).join('\n'));
      else
        io.out(
          table(
            ['SERIAL', 'NAME', 'ROLE', 'SCOPE', 'ISSUED', 'EXPIRES', 'REVOKED'],
            certs.map((c) => [
              c.Serial,
              c.Name,
              c.Role,
              scopeText(c.Scope),
              c.IssuedAt,
              c.ExpiresAt,
              c.RevokedAt ?? '-',
            ]),
          ),
        );
      return 0;
    });

  cli
    .command(
      'revoke <name-or-serial>',
      'Revoke a client certificate by serial, or every one issued under a name',
    )
    .action(async (ref: string | number, flags: GlobalFlags) => {
      // cac reads a serial of digits only as a number; it is hex text.
      const text = String(ref);
      const outcome = (await withClient(flags, (c) =>
        call(c, 'DELETE', `${path}/${encodeURIComponent(text)}`),
      )) as {
        Revoked: ClientCertJSON[];
        Unconfirmed: Array<{ NodeID: string; Addr: string; Error: string }>;
      };
      for (const c of outcome.Revoked)
        io.out(`Revoked client certificate ${c.Serial} (name ${c.Name}) at ${c.RevokedAt ?? '?'}`);
      // Committed either way: a manager that did not confirm refuses it once it catches up.
      warnUnconfirmed(io, outcome.Unconfirmed, 'the revocation');
      return 0;
    });
}
