/** `secretd secret create|ls|inspect|rm`, shaped like `docker secret …`. */
import type { CAC } from 'cac';
import { readFile } from 'node:fs/promises';
import { SecretdError } from '../errors.ts';
import { toBase64 } from '../node/store/store.ts';
import { ago, filtersQuery, forEachRef, inspectEach, many, parseKeyValues, stdinArg, table, withClient, type GlobalFlags, type Io } from './_common.ts';
import { call } from './client.ts';

interface SecretJSON {
  ID: string;
  Version: { Index: number };
  CreatedAt: string;
  UpdatedAt: string;
  Spec: { Name: string; Labels: Record<string, string> };
}

export function registerSecret(cli: CAC, io: Io): void {
  cli
    .command('create <name> <file>', 'Create a secret from a file or from stdin ("-")')
    .option('-l, --label <label>', 'Secret label KEY=VALUE (repeatable)')
    .action(async (name: string, file: string, flags: GlobalFlags & { label?: unknown }) => {
      const data = file === stdinArg ? await io.stdin() : await readSource(file);
      try {
        const labels = parseKeyValues(many(flags.label), 'label');
        const body = (await withClient(flags, (c) => call(c, 'POST', '/secrets/create', { Name: name, Labels: labels, Data: toBase64(data) }))) as { ID: string };
        io.out(body.ID);
      } finally {
        data.fill(0);
      }
      return 0;
    });

  cli
    .command('ls', 'List secrets')
    .alias('list')
    .option('-q, --quiet', 'Only display IDs')
    .option('-f, --filter <filter>', 'Filter: name=…, id=…, label=KEY[=VALUE] (repeatable)')
    .option('--format <format>', 'Output format: "table" (default) or "json"')
    .action(async (flags: GlobalFlags & { quiet?: boolean; filter?: unknown; format?: string }) => {
      const query = filtersQuery(flags.filter, ['name', 'id', 'label']);
      const secrets = (await withClient(flags, (c) => call(c, 'GET', `/secrets${query}`))) as SecretJSON[];
      if (flags.quiet) io.out(secrets.map((s) => s.ID).join('\n'));
      else if (flags.format === 'json') io.out(secrets.map((s) => JSON.stringify(s)).join('\n'));
      else if (flags.format === undefined || flags.format === 'table') {
        const now = new Date();
        io.out(table(['ID', 'NAME', 'DRIVER', 'CREATED', 'UPDATED'], secrets.map((s) => [s.ID, s.Spec.Name, '', ago(s.CreatedAt, now), ago(s.UpdatedAt, now)])));
      } else throw new SecretdError('invalid', `Invalid --format ${JSON.stringify(flags.format)}: expected table or json`);
      return 0;
    });

  cli
    .command('inspect <secret> [...more]', 'Show secrets in detail (never their data)')
    .action(async (first: string, more: string[], flags: GlobalFlags) => inspectEach(flags, io, 'secrets', [first, ...more]));

  cli
    .command('rm <secret> [...more]', 'Remove one or more secrets')
    .alias('remove')
    .action(async (first: string, more: string[], flags: GlobalFlags) =>
      forEachRef(flags, io, [first, ...more], async (client, ref) => {
        await call(client, 'DELETE', `/secrets/${encodeURIComponent(ref)}`);
        io.out(ref);
      }),
    );
}

async function readSource(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (error) {
    throw new SecretdError('invalid', `Cannot read secret data from ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
