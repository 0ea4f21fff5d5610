/**
 * `secretd secret create|ls|inspect|rm`, shaped like `docker secret …`, and secretd's versions:
 * `update` (a new version), `versions`, `rollback`, `rm --version`; and grants: `grant`, `ungrant`.
 */
import type { CAC } from 'cac';
import { readFile } from 'node:fs/promises';
import { SecretdError } from '../errors.ts';
import { checkVersionNumber } from '../node/index.ts';
import { toBase64 } from '../node/index.ts';
import {
  ago,
  filtersQuery,
  forEachRef,
  inspectEach,
  many,
  parseKeyValues,
  stdinArg,
  table,
  withClient,
  type GlobalFlags,
  type Io,
} from './_common.ts';
import { call } from './client.ts';

interface VersionsJSON {
  ID: string;
  Name: string;
  Versions: Array<{
    Version: number;
    CreatedAt: string;
    InUseBy: { Services: Array<{ Name: string; Pinned: boolean }>; Tasks: Array<{ Name: string }> };
  }>;
}

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
        const body = (await withClient(flags, (c) =>
          call(c, 'POST', '/secrets/create', { Name: name, Labels: labels, Data: toBase64(data) }),
        )) as { ID: string };
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
      const secrets = (await withClient(flags, (c) =>
        call(c, 'GET', `/secrets${query}`),
      )) as SecretJSON[];
      if (flags.quiet) io.out(secrets.map((s) => s.ID).join('\n'));
      else if (flags.format === 'json') io.out(secrets.map((s) => JSON.stringify(s)).join('\n'));
      else if (flags.format === undefined || flags.format === 'table') {
        const now = new Date();
        io.out(
          table(
            ['ID', 'NAME', 'DRIVER', 'CREATED', 'UPDATED'],
            secrets.map((s) => [
              s.ID,
              s.Spec.Name,
              '',
              ago(s.CreatedAt, now),
              ago(s.UpdatedAt, now),
            ]),
          ),
        );
      } else
        throw new SecretdError(
          'invalid',
          `Invalid --format ${JSON.stringify(flags.format)}: expected table or json`,
        );
      return 0;
    });

  cli
    .command('inspect <secret> [...more]', 'Show secrets in detail (never their data)')
    .action(async (first: string, more: string[], flags: GlobalFlags) =>
      inspectEach(flags, io, 'secrets', [first, ...more]),
    );

  cli
    .command(
      'rm <secret> [...more]',
      'Remove one or more secrets, or with --version one old version of a secret',
    )
    .alias('remove')
    .option(
      '--version <n>',
      'Remove only this version (refused for the newest and while a pinned reference uses it)',
    )
    .action(async (first: string, more: string[], flags: GlobalFlags & { version?: unknown }) => {
      if (flags.version !== undefined) {
        if (more.length > 0)
          throw new SecretdError(
            'invalid',
            '--version removes a version of one secret: give one secret',
          );
        const version = checkVersionNumber(String(flags.version), '--version');
        await withClient(flags, (c) =>
          call(c, 'DELETE', `/secretd/secrets/${encodeURIComponent(first)}/versions/${version}`),
        );
        io.out(`${first}: version ${version} removed`);
        return 0;
      }
      return forEachRef(flags, io, [first, ...more], async (client, ref) => {
        await call(client, 'DELETE', `/secrets/${encodeURIComponent(ref)}`);
        io.out(ref);
      });
    });

  cli
    .command(
      'update <secret> <file>',
      'Add a new version of a secret from a file or from stdin ("-"); equal data changes nothing',
    )
    .option(
      '--if-version <n>',
      'Only if the newest version is N now (compare-and-set); otherwise fail and change nothing',
    )
    .action(async (ref: string, file: string, flags: GlobalFlags & { ifVersion?: unknown }) => {
      const ifVersion =
        flags.ifVersion === undefined
          ? undefined
          : checkVersionNumber(String(flags.ifVersion), '--if-version');
      const data = file === stdinArg ? await io.stdin() : await readSource(file);
      try {
        const body = {
          Data: toBase64(data),
          ...(ifVersion === undefined ? {} : { IfVersion: ifVersion }),
        };
        const outcome = (await withClient(flags, (c) =>
          call(c, 'POST', `/secretd/secrets/${encodeURIComponent(ref)}/versions`, body),
        )) as { Version: number; Changed: boolean };
        io.out(
          outcome.Changed
            ? `${ref}: version ${outcome.Version}`
            : `${ref}: unchanged (version ${outcome.Version} holds the same data)`,
        );
      } finally {
        data.fill(0);
      }
      return 0;
    });

  cli
    .command(
      'versions <secret>',
      'List the versions of a secret and who uses each (never the data)',
    )
    .option('--format <format>', 'Output format: "table" (default) or "json"')
    .action(async (ref: string, flags: GlobalFlags & { format?: string }) => {
      if (flags.format !== undefined && flags.format !== 'table' && flags.format !== 'json')
        throw new SecretdError(
          'invalid',
          `Invalid --format ${JSON.stringify(flags.format)}: expected table or json`,
        );
      const answer = (await withClient(flags, (c) =>
        call(c, 'GET', `/secretd/secrets/${encodeURIComponent(ref)}/versions`),
      )) as VersionsJSON;
      if (flags.format === 'json') {
        io.out(JSON.stringify(answer, null, 4));
        return 0;
      }
      const now = new Date();
      const rows = [...answer.Versions]
        .reverse()
        .map((v) => [String(v.Version), ago(v.CreatedAt, now), inUseBy(v.InUseBy)]);
      io.out(table(['VERSION', 'CREATED', 'IN USE BY'], rows));
      return 0;
    });

  cli
    .command(
      'rollback <secret>',
      "Make an old version's data the newest version again (a new version number)",
    )
    .option('--to <n>', 'The version whose data comes back')
    .option('--if-version <n>', 'Only if the newest version is N now (compare-and-set)')
    .action(async (ref: string, flags: GlobalFlags & { to?: unknown; ifVersion?: unknown }) => {
      if (flags.to === undefined)
        throw new SecretdError('invalid', 'Missing --to: say which version to roll back to');
      const to = checkVersionNumber(String(flags.to), '--to');
      const ifVersion =
        flags.ifVersion === undefined
          ? undefined
          : checkVersionNumber(String(flags.ifVersion), '--if-version');
      const body = { To: to, ...(ifVersion === undefined ? {} : { IfVersion: ifVersion }) };
      const outcome = (await withClient(flags, (c) =>
        call(c, 'POST', `/secretd/secrets/${encodeURIComponent(ref)}/rollback`, body),
      )) as { Version: number; Changed: boolean };
      io.out(
        outcome.Changed
          ? `${ref}: version ${outcome.Version} (the data of version ${to})`
          : `${ref}: unchanged (version ${outcome.Version} already holds the data of version ${to})`,
      );
      return 0;
    });

  registerGrants(cli, io);
}

interface GrantsJSON {
  ID: string;
  Name: string;
  Grants: Array<{ Constraints: string[]; Version: number | null }>;
}

/** `secret grant` and `secret ungrant`: which nodes may hold a secret outside of services. */
function registerGrants(cli: CAC, io: Io): void {
  cli
    .command(
      'grant <secret>',
      'Let the nodes matching every --node-constraint hold the secret (pushed to them; several grants are alternatives)',
    )
    .option(
      '--node-constraint <expr>',
      "Docker's placement syntax: node.labels.KEY==V, node.role==worker, node.id!=ID, node.hostname==H (repeatable: all must hold)",
    )
    .option('--version <n>', 'Push this version (default: the newest, following updates)')
    .action(
      async (ref: string, flags: GlobalFlags & { nodeConstraint?: unknown; version?: unknown }) => {
        const constraints = requiredConstraints(flags.nodeConstraint, 'grant');
        const version =
          flags.version === undefined
            ? null
            : checkVersionNumber(String(flags.version), '--version');
        const answer = (await withClient(flags, (c) =>
          call(c, 'POST', `/secretd/secrets/${encodeURIComponent(ref)}/grants`, {
            Constraints: constraints,
            ...(version === null ? {} : { Version: version }),
          }),
        )) as GrantsJSON;
        io.out(
          `${answer.Name}: granted to nodes where ${constraints.join(' and ')} (${version === null ? 'the newest version' : `version ${version}`})`,
        );
        return 0;
      },
    );

  cli
    .command(
      'ungrant <secret>',
      'Remove the grant with exactly these node constraints (its nodes erase the secret)',
    )
    .option(
      '--node-constraint <expr>',
      "The grant's constraints, as given to secret grant (repeatable)",
    )
    .action(async (ref: string, flags: GlobalFlags & { nodeConstraint?: unknown }) => {
      const constraints = requiredConstraints(flags.nodeConstraint, 'ungrant');
      const query = constraints.map((c) => `constraint=${encodeURIComponent(c)}`).join('&');
      const answer = (await withClient(flags, (c) =>
        call(c, 'DELETE', `/secretd/secrets/${encodeURIComponent(ref)}/grants?${query}`),
      )) as GrantsJSON;
      io.out(`${answer.Name}: grant removed (${answer.Grants.length} left)`);
      return 0;
    });
}

function requiredConstraints(value: unknown, command: string): string[] {
  const constraints = many(value);
  if (constraints.length === 0)
    throw new SecretdError(
      'invalid',
      `Missing --node-constraint: say which nodes the ${command} is for (e.g. --node-constraint node.labels.role==db)`,
    );
  return constraints;
}

/** `web (pinned), api; tasks: web.1, api.2` — names only. */
function inUseBy(use: VersionsJSON['Versions'][number]['InUseBy']): string {
  const services = use.Services.map((s) => (s.Pinned ? `${s.Name} (pinned)` : s.Name));
  const parts = [
    ...(services.length > 0 ? [`services: ${services.join(', ')}`] : []),
    ...(use.Tasks.length > 0 ? [`tasks: ${use.Tasks.map((t) => t.Name).join(', ')}`] : []),
  ];
  return parts.join('; ');
}

async function readSource(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(file));
  } catch (error) {
    throw new SecretdError(
      'invalid',
      `Cannot read secret data from ${file}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
}
