/**
 * `secretd ca`: client certificates (role admin) for curl, scripts or --host: issued for a time
 * (`issue-client --expiry`), listed (`ls`), revoked (`revoke NAME|SERIAL`).
 */
import type { CAC } from 'cac';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createKeyAndCSR, keyPkcs8ToPem } from '../crypto/index.ts';
import { SecretdError } from '../errors.ts';
import { clientCertLifetimeMsMin } from '../limits.ts';
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

export function registerCa(cli: CAC, io: Io): void {
  cli
    .command('issue-client', 'Issue a client certificate: writes ca.pem, cert.pem and key.pem')
    .option('--name <name>', 'Who the certificate is for (its CN)')
    .option('--out <dir>', 'Directory to write into (created if missing)')
    .option('--expiry <duration>', 'How long it is valid: 90d (default), 12h, 30m (at least 1m)')
    .action(async (flags: GlobalFlags & { name?: string; out?: string; expiry?: unknown }) => {
      if (!flags.name || typeof flags.name !== 'string')
        throw new SecretdError('invalid', 'Missing --name: who the certificate is for');
      if (!flags.out || typeof flags.out !== 'string')
        throw new SecretdError(
          'invalid',
          'Missing --out: the directory to write ca.pem, cert.pem and key.pem into',
        );
      const expiryMs = parseExpiry(flags.expiry);
      // The private key is made here and never leaves this machine; only the CSR is sent.
      const { keyPkcs8, csrPem } = await createKeyAndCSR({ commonName: flags.name });
      const issued = (await withClient(flags, (c) =>
        call(c, 'POST', path, {
          Name: flags.name,
          CSR: csrPem,
          // Docker's API carries durations in nanoseconds.
          ...(expiryMs === undefined ? {} : { Expiry: expiryMs * 1e6 }),
        }),
      )) as { Certificate: string; CA: string } & ClientCertJSON;
      await mkdir(flags.out, { recursive: true, mode: 0o700 });
      await writeFile(join(flags.out, 'ca.pem'), issued.CA, { mode: 0o644 });
      await writeFile(join(flags.out, 'cert.pem'), issued.Certificate, { mode: 0o644 });
      await writeFile(join(flags.out, 'key.pem'), keyPkcs8ToPem(keyPkcs8), { mode: 0o600 });
      keyPkcs8.fill(0);
      io.out(
        `Wrote ${join(flags.out, 'ca.pem')}, cert.pem and key.pem (client certificate for ${flags.name}, role admin, serial ${issued.Serial}, expires ${issued.ExpiresAt})`,
      );
      return 0;
    });

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
            ['SERIAL', 'NAME', 'ROLE', 'ISSUED', 'EXPIRES', 'REVOKED'],
            certs.map((c) => [
              c.Serial,
              c.Name,
              c.Role,
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
      for (const m of outcome.Unconfirmed)
        io.err(
          `Warning: manager ${m.NodeID} (${m.Addr}) has not confirmed the revocation yet: ${m.Error}`,
        );
      return 0;
    });
}
