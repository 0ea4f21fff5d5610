/** `secretd ca issue-client`: a client certificate (role admin) for curl, scripts or --host. */
import type { CAC } from 'cac';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createKeyAndCSR, keyPkcs8ToPem } from '../crypto/index.ts';
import { SecretdError } from '../errors.ts';
import { withClient, type GlobalFlags, type Io } from './_common.ts';
import { call } from './client.ts';

export function registerCa(cli: CAC, io: Io): void {
  cli
    .command('issue-client', 'Issue a client certificate: writes ca.pem, cert.pem and key.pem')
    .option('--name <name>', 'Who the certificate is for (its CN)')
    .option('--out <dir>', 'Directory to write into (created if missing)')
    .action(async (flags: GlobalFlags & { name?: string; out?: string }) => {
      if (!flags.name || typeof flags.name !== 'string')
        throw new SecretdError('invalid', 'Missing --name: who the certificate is for');
      if (!flags.out || typeof flags.out !== 'string')
        throw new SecretdError(
          'invalid',
          'Missing --out: the directory to write ca.pem, cert.pem and key.pem into',
        );
      // The private key is made here and never leaves this machine; only the CSR is sent.
      const { keyPkcs8, csrPem } = await createKeyAndCSR({ commonName: flags.name });
      const issued = (await withClient(flags, (c) =>
        call(c, 'POST', '/secretd/ca/client-certificates', { Name: flags.name, CSR: csrPem }),
      )) as { Certificate: string; CA: string };
      await mkdir(flags.out, { recursive: true, mode: 0o700 });
      await writeFile(join(flags.out, 'ca.pem'), issued.CA, { mode: 0o644 });
      await writeFile(join(flags.out, 'cert.pem'), issued.Certificate, { mode: 0o644 });
      await writeFile(join(flags.out, 'key.pem'), keyPkcs8ToPem(keyPkcs8), { mode: 0o600 });
      keyPkcs8.fill(0);
      io.out(
        `Wrote ${join(flags.out, 'ca.pem')}, cert.pem and key.pem (client certificate for ${flags.name}, role admin)`,
      );
      return 0;
    });
}
