/**
 * `secretd stack deploy|ls|services|rm`, shaped like `docker stack …` against a swarm: the same
 * names, labels, messages and exit codes. What differs: a secret whose content changed becomes a
 * new version of that secret (Docker fails), and a re-deploy that changes nothing updates nothing.
 * The compose work is in ./compose/ (pure); this file reads the files, calls the API and prints.
 */
import type { CAC } from 'cac';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { SecretdError } from '../errors.ts';
import { loadServiceSpecReader, toBase64 } from '../node/index.ts';
import { many, stdinArg, table, withClient, type GlobalFlags, type Io } from './_common.ts';
import { call, type ApiClient } from './client.ts';
import {
  checkStackName,
  loadCompose,
  namespaceLabel,
  sameSpec,
  translate,
  type ComposeFileText,
  type CurrentSpec,
  type StackPlan,
} from './compose/index.ts';

interface ServiceJSON {
  ID: string;
  Version: { Index: number };
  Spec: CurrentSpec & { Labels: Record<string, string> };
}

interface SecretJSON {
  ID: string;
  Version: { Index: number };
  Spec: { Name: string; Labels: Record<string, string> };
}

interface TaskJSON {
  ServiceID: string;
  Status: { State: string };
}

type DeployFlags = GlobalFlags & { composeFile?: unknown; prune?: boolean };

export function registerStack(cli: CAC, io: Io): void {
  cli
    .command('deploy <stack>', 'Deploy a new stack or update an existing stack from compose files')
    .option(
      '-c, --compose-file <file>',
      'Path to a Compose file, or "-" to read from stdin (repeatable)',
    )
    .option('--prune', 'Prune services that are no longer referenced')
    .action(async (stack: string, flags: DeployFlags) => deploy(stack, flags, io));

  cli
    .command('ls', 'List stacks')
    .alias('list')
    .option('--format <format>', 'Output format: "table" (default) or "json"')
    .action(async (flags: GlobalFlags & { format?: string }) =>
      withClient(flags, async (client) => {
        checkFormat(flags.format);
        const counts = new Map<string, number>();
        for (const service of await stackServices(client, null)) {
          const name = service.Spec.Labels[namespaceLabel]!;
          counts.set(name, (counts.get(name) ?? 0) + 1);
        }
        const rows = [...counts].sort(([a], [b]) => a.localeCompare(b));
        if (flags.format === 'json')
          io.out(
            rows
              .map(([name, services]) => JSON.stringify({ Name: name, Services: String(services) }))
              .join('\n'),
          );
        else
          io.out(
            table(
              ['NAME', 'SERVICES'],
              rows.map(([name, services]) => [name, String(services)]),
            ),
          );
        return 0;
      }),
    );

  cli
    .command('services <stack>', 'List the services in the stack')
    .option('-q, --quiet', 'Only display IDs')
    .option('--format <format>', 'Output format: "table" (default) or "json"')
    .action(async (stack: string, flags: GlobalFlags & { quiet?: boolean; format?: string }) =>
      withClient(flags, async (client) => {
        checkFormat(flags.format);
        const services = (await stackServices(client, stack)).sort((a, b) =>
          a.Spec.Name.localeCompare(b.Spec.Name, 'en', { numeric: true }),
        );
        if (services.length === 0) {
          io.err(`Nothing found in stack: ${stack}`);
          return 0;
        }
        if (flags.quiet) {
          io.out(services.map((s) => s.ID).join('\n'));
          return 0;
        }
        const tasks = (await call(
          client,
          'GET',
          `/tasks?filters=${encodeURIComponent(JSON.stringify({ 'desired-state': ['running'] }))}`,
        )) as TaskJSON[];
        const rows = services.map((s) => {
          const mine = tasks.filter((t) => t.ServiceID === s.ID);
          const global = s.Spec.Mode.Global !== undefined;
          const replicas = `${mine.filter((t) => t.Status.State === 'running').length}/${global ? mine.length : (s.Spec.Mode.Replicated?.Replicas ?? 1)}`;
          return {
            ID: s.ID.slice(0, 12),
            Name: s.Spec.Name,
            Mode: global ? 'global' : 'replicated',
            Replicas: replicas,
            Image: s.Spec.TaskTemplate.ContainerSpec.Image,
            Ports: '',
          };
        });
        if (flags.format === 'json')
          io.out(
            rows
              .map((r) =>
                JSON.stringify({
                  ID: r.ID,
                  Image: r.Image,
                  Mode: r.Mode,
                  Name: r.Name,
                  Ports: r.Ports,
                  Replicas: r.Replicas,
                }),
              )
              .join('\n'),
          );
        else
          io.out(
            table(
              ['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE', 'PORTS'],
              rows.map((r) => [r.ID, r.Name, r.Mode, r.Replicas, r.Image, r.Ports]),
            ),
          );
        return 0;
      }),
    );

  cli
    .command('rm <stack> [...more]', 'Remove one or more stacks')
    .alias('remove')
    .alias('down')
    .action(async (first: string, more: string[], flags: GlobalFlags) =>
      withClient(flags, async (client) => {
        const failed: string[] = [];
        for (const stack of [first, ...more])
          if (!(await removeStack(client, stack, io)))
            failed.push(`Failed to remove some resources from stack: ${stack}`);
        if (failed.length > 0) throw new SecretdError('conflict', failed.join('\n'));
        return 0;
      }),
    );
}

async function deploy(stack: string, flags: DeployFlags, io: Io): Promise<number> {
  checkStackName(stack);
  const paths = many(flags.composeFile);
  const files = await readComposeFiles(paths, io);
  const env = (name: string): string | undefined => process.env[name];
  const workingDir =
    paths.length === 0 || paths[0] === stdinArg ? process.cwd() : dirname(resolve(paths[0]!));
  const loaded = loadCompose(files, { workingDir, env });
  for (const warning of loaded.warnings) io.err(warning);
  const plan = translate(loaded.project, stack, {
    env,
    readFile: (path) => new Uint8Array(readFileSync(path)),
    readServiceSpec: await loadServiceSpecReader(),
  });
  try {
    return await withClient(flags, async (client) => {
      // Every check that can fail comes before the first change.
      for (const name of plan.external)
        if ((await findSecret(client, name)) === null)
          throw new SecretdError('not_found', `secret not found: ${name}`);
      const existing = await stackServices(client, stack);
      if (flags.prune) await prune(client, existing, plan, io);
      await deploySecrets(client, plan, io);
      await deployServices(client, existing, plan, io);
      return 0;
    });
  } finally {
    for (const secret of plan.secrets) secret.data.fill(0);
  }
}

async function readComposeFiles(paths: readonly string[], io: Io): Promise<ComposeFileText[]> {
  if (paths.length === 0)
    throw new SecretdError('invalid', 'Please specify a Compose file (with --compose-file)');
  const files: ComposeFileText[] = [];
  for (const path of paths) {
    if (path === stdinArg) {
      if (paths.length > 1)
        throw new SecretdError(
          'invalid',
          'Reading a Compose file from stdin ("-") works only as the only file',
        );
      files.push({ name: '-', text: new TextDecoder().decode(await io.stdin()) });
      continue;
    }
    try {
      files.push({ name: path, text: readFileSync(path, 'utf8') });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new SecretdError(
        'invalid',
        `Cannot read compose file ${path}${code === 'ENOENT' ? ': no such file or directory' : code ? ` (${code})` : ''}`,
      );
    }
  }
  return files;
}

/** The stack's services (or every stack's, for `null`), by the namespace label. */
async function stackServices(client: ApiClient, stack: string | null): Promise<ServiceJSON[]> {
  const label = stack === null ? namespaceLabel : `${namespaceLabel}=${stack}`;
  const services = (await call(
    client,
    'GET',
    `/services?filters=${encodeURIComponent(JSON.stringify({ label: [label] }))}`,
  )) as ServiceJSON[];
  // The manager filters already; checking again costs nothing and keeps a stack from touching another's services.
  return services.filter((s) =>
    stack === null
      ? s.Spec.Labels?.[namespaceLabel] !== undefined
      : s.Spec.Labels?.[namespaceLabel] === stack,
  );
}

async function stackSecrets(client: ApiClient, stack: string): Promise<SecretJSON[]> {
  const secrets = (await call(
    client,
    'GET',
    `/secrets?filters=${encodeURIComponent(JSON.stringify({ label: [`${namespaceLabel}=${stack}`] }))}`,
  )) as SecretJSON[];
  return secrets.filter((s) => s.Spec.Labels?.[namespaceLabel] === stack);
}

/** The secret named exactly `name`, or null (`GET /secrets/{ref}` also resolves id prefixes: those do not count). */
async function findSecret(client: ApiClient, name: string): Promise<SecretJSON | null> {
  try {
    const secret = (await call(
      client,
      'GET',
      `/secrets/${encodeURIComponent(name)}`,
    )) as SecretJSON;
    return secret.Spec.Name === name ? secret : null;
  } catch (error) {
    if (error instanceof SecretdError && error.code === 'not_found') return null;
    throw error;
  }
}

async function prune(
  client: ApiClient,
  existing: readonly ServiceJSON[],
  plan: StackPlan,
  io: Io,
): Promise<void> {
  const wanted = new Set(plan.services.map((s) => s.Name));
  await removeObjects(
    client,
    'service',
    existing.filter((s) => !wanted.has(s.Spec.Name)),
    io,
  );
}

/**
 * Docker creates a missing secret and otherwise sends the spec as an update (which fails when the
 * content changed). secretd adds a new version instead: equal content is a no-op on the manager,
 * so an unchanged file changes nothing and a changed one reaches the running tasks in place.
 */
async function deploySecrets(client: ApiClient, plan: StackPlan, io: Io): Promise<void> {
  for (const secret of plan.secrets) {
    const current = await findSecret(client, secret.name);
    if (current === null) {
      io.out(`Creating secret ${secret.name}`);
      await failWith(`failed to create secret ${secret.name}`, () =>
        call(client, 'POST', '/secrets/create', {
          Name: secret.name,
          Labels: secret.labels,
          Data: toBase64(secret.data),
        }),
      );
      continue;
    }
    if (!sameLabels(current.Spec.Labels ?? {}, secret.labels)) {
      await failWith(`failed to update secret ${secret.name}`, () =>
        call(client, 'POST', `/secrets/${current.ID}/update?version=${current.Version.Index}`, {
          Name: secret.name,
          Labels: secret.labels,
        }),
      );
    }
    const outcome = (await failWith(`failed to update secret ${secret.name}`, () =>
      call(client, 'POST', `/secretd/secrets/${current.ID}/versions`, {
        Data: toBase64(secret.data),
      }),
    )) as { Version: number; Changed: boolean };
    if (outcome.Changed) io.out(`Updating secret ${secret.name} (new version ${outcome.Version})`);
  }
}

async function deployServices(
  client: ApiClient,
  existing: readonly ServiceJSON[],
  plan: StackPlan,
  io: Io,
): Promise<void> {
  const byName = new Map(existing.map((s) => [s.Spec.Name, s]));
  for (const spec of plan.services) {
    const current = byName.get(spec.Name);
    if (current === undefined) {
      io.out(`Creating service ${spec.Name}`);
      await failWith(`failed to create service ${spec.Name}`, () =>
        call(client, 'POST', '/services/create', spec),
      );
      continue;
    }
    io.out(`Updating service ${spec.Name} (id: ${current.ID})`);
    // Unlike Docker, an unchanged spec is not sent at all: nothing to roll, no new spec version.
    if (sameSpec(current.Spec, spec)) continue;
    await failWith(`failed to update service ${spec.Name}`, () =>
      call(client, 'POST', `/services/${current.ID}/update?version=${current.Version.Index}`, spec),
    );
  }
}

/** Removes a stack's services, then its secrets (external ones carry no namespace label, so stay); false if anything failed. */
async function removeStack(client: ApiClient, stack: string, io: Io): Promise<boolean> {
  const services = await stackServices(client, stack);
  const secrets = await stackSecrets(client, stack);
  if (services.length + secrets.length === 0) {
    io.err(`Nothing found in stack: ${stack}`);
    return true;
  }
  const servicesGone = await removeObjects(client, 'service', services, io);
  return (await removeObjects(client, 'secret', secrets, io)) && servicesGone;
}

/** Docker's order and messages: by name, one line each, going on past a failure. */
async function removeObjects(
  client: ApiClient,
  kind: 'service' | 'secret',
  objects: readonly { ID: string; Spec: { Name: string } }[],
  io: Io,
): Promise<boolean> {
  let ok = true;
  for (const object of [...objects].sort((a, b) => a.Spec.Name.localeCompare(b.Spec.Name))) {
    io.out(`Removing ${kind} ${object.Spec.Name}`);
    try {
      await call(client, 'DELETE', `/${kind}s/${object.ID}`);
    } catch (error) {
      io.err(`Failed to remove ${kind} ${object.ID}: ${(error as Error).message}`);
      ok = false;
    }
  }
  return ok;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => b[k] === a[k]);
}

async function failWith<T>(what: string, act: () => Promise<T>): Promise<T> {
  try {
    return await act();
  } catch (error) {
    if (error instanceof SecretdError)
      throw new SecretdError(error.code, `${what}: ${error.message}`);
    throw error;
  }
}

function checkFormat(format: string | undefined): void {
  if (format !== undefined && format !== 'table' && format !== 'json')
    throw new SecretdError(
      'invalid',
      `Invalid --format ${JSON.stringify(format)}: expected table or json`,
    );
}
