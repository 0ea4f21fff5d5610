/** `secretd service create|ls|inspect|ps|update|scale|rm`, shaped like `docker service …`. */
import type { CAC } from 'cac';
import { SecretdError } from '../errors.ts';
import {
  ago,
  filtersQuery,
  forEachRef,
  inspectEach,
  many,
  parseKeyValues,
  table,
  withClient,
  type GlobalFlags,
  type Io,
} from './_common.ts';
import { checkDuplicateTargets, parseSecretFlag } from './_secret-spec.ts';
import { call, type ApiClient } from './client.ts';
import { durationNs } from './_duration.ts';

interface ServiceJSON {
  ID: string;
  Version: { Index: number };
  Spec: {
    Name: string;
    Labels: Record<string, string>;
    TaskTemplate: {
      ContainerSpec: {
        Image: string;
        Command?: string[];
        Args?: string[];
        Env?: string[];
        Secrets: Array<{
          SecretName: string;
          SecretID: string;
          File: { Name: string };
          Secretd?: object;
        }>;
      };
    };
    Mode: { Replicated?: { Replicas: number }; Global?: object };
    UpdateConfig: { Parallelism: number; Delay: number };
  };
}

interface TaskJSON {
  ID: string;
  ServiceID: string;
  Slot?: number;
  NodeID?: string;
  DesiredState: string;
  Spec: { ContainerSpec: { Image: string } };
  Status: { State: string; Timestamp: string; Err?: string };
}

type CreateFlags = GlobalFlags & {
  name?: string;
  secret?: unknown;
  replicas?: string;
  mode?: string;
  env?: unknown;
  label?: unknown;
  constraint?: unknown;
  updateParallelism?: string;
  updateDelay?: string;
  '--'?: string[];
};

export function registerService(cli: CAC, io: Io): void {
  cli
    .command(
      'create <image>',
      'Create a service: secretd service create --name NAME [--secret SPEC]… IMAGE [COMMAND] [ARG…]',
    )
    .option('--name <name>', 'Service name')
    .option(
      '--secret <spec>',
      'Secret to expose: NAME or source=NAME[@VERSION],target=PATH,uid=0,gid=0,mode=0444,on-update=none|signal:SIGHUP|restart (repeatable)',
    )
    .option('--replicas <n>', 'Number of tasks (default 1)')
    .option('--mode <mode>', 'replicated (default) or global')
    .option('-e, --env <var>', 'Environment variable KEY=VALUE (repeatable)')
    .option('-l, --label <label>', 'Service label KEY=VALUE (repeatable)')
    .option(
      '--constraint <expr>',
      'Placement constraint, e.g. node.labels.zone==a or node.role!=manager (repeatable; all must hold)',
    )
    .option(
      '--update-parallelism <n>',
      'Tasks replaced at once during an update (default 1, 0 = all)',
    )
    .option('--update-delay <duration>', 'Pause between update batches, e.g. 2s (default 0s)')
    .action(async (image: string, flags: CreateFlags) => {
      if (!flags.name)
        throw new SecretdError('invalid', 'Missing --name: the service needs a name');
      const secrets = many(flags.secret).map(parseSecretFlag);
      checkDuplicateTargets(secrets);
      const spec = {
        Name: flags.name,
        Labels: parseKeyValues(many(flags.label), 'label'),
        TaskTemplate: {
          ContainerSpec: {
            Image: image,
            Args: flags['--'] ?? [],
            Env: many(flags.env),
            Secrets: secrets,
          },
          Placement: { Constraints: many(flags.constraint) },
        },
        Mode: modeOf(flags),
        UpdateConfig: {
          Parallelism:
            flags.updateParallelism === undefined
              ? 1
              : count(flags.updateParallelism, '--update-parallelism'),
          Delay: durationNs(flags.updateDelay ?? '0s'),
        },
      };
      const created = (await withClient(flags, (c) =>
        call(c, 'POST', '/services/create', spec),
      )) as { ID: string };
      io.out(created.ID);
      return 0;
    });

  cli
    .command('ls', 'List services')
    .alias('list')
    .option('-q, --quiet', 'Only display IDs')
    .option('-f, --filter <filter>', 'Filter: id=…, name=… (prefixes; repeatable)')
    .option('--format <format>', 'Output format: "table" (default) or "json"')
    .action(async (flags: GlobalFlags & { quiet?: boolean; filter?: unknown; format?: string }) =>
      withClient(flags, async (client) => {
        if (flags.format !== undefined && flags.format !== 'table' && flags.format !== 'json')
          throw new SecretdError(
            'invalid',
            `Invalid --format ${JSON.stringify(flags.format)}: expected table or json`,
          );
        const services = (await call(
          client,
          'GET',
          `/services${filtersQuery(flags.filter, ['id', 'name'])}`,
        )) as ServiceJSON[];
        if (flags.quiet) io.out(services.map((s) => s.ID).join('\n'));
        else if (flags.format === 'json') io.out(services.map((s) => JSON.stringify(s)).join('\n'));
        else {
          const tasks = (await call(
            client,
            'GET',
            `/tasks?filters=${encodeURIComponent(JSON.stringify({ 'desired-state': ['running'] }))}`,
          )) as TaskJSON[];
          const running = (id: string): number =>
            tasks.filter((t) => t.ServiceID === id && t.Status.State === 'running').length;
          io.out(
            table(
              ['ID', 'NAME', 'MODE', 'REPLICAS', 'IMAGE'],
              services.map((s) => [
                s.ID.slice(0, 12),
                s.Spec.Name,
                s.Spec.Mode.Global ? 'global' : 'replicated',
                `${running(s.ID)}/${s.Spec.Mode.Global ? tasks.filter((t) => t.ServiceID === s.ID).length : (s.Spec.Mode.Replicated?.Replicas ?? 1)}`,
                s.Spec.TaskTemplate.ContainerSpec.Image,
              ]),
            ),
          );
        }
        return 0;
      }),
    );

  cli
    .command('inspect <service> [...more]', 'Show services in detail')
    .action(async (first: string, more: string[], flags: GlobalFlags) =>
      inspectEach(flags, io, 'services', [first, ...more]),
    );

  cli
    .command('ps <service>', "List a service's tasks")
    .option('-q, --quiet', 'Only display task IDs')
    .action(async (ref: string, flags: GlobalFlags & { quiet?: boolean }) =>
      withClient(flags, async (client) => {
        const service = await inspect(client, ref);
        const tasks = (
          (await call(
            client,
            'GET',
            `/tasks?filters=${encodeURIComponent(JSON.stringify({ service: [service.ID] }))}`,
          )) as TaskJSON[]
        ).sort(
          (a, b) =>
            (a.Slot ?? 0) - (b.Slot ?? 0) || b.Status.Timestamp.localeCompare(a.Status.Timestamp),
        );
        if (flags.quiet) {
          io.out(tasks.map((t) => t.ID).join('\n'));
          return 0;
        }
        const nodes = (await call(client, 'GET', '/nodes')) as Array<{
          ID: string;
          Description: { Hostname: string };
        }>;
        const hostname = (id?: string): string =>
          nodes.find((n) => n.ID === id)?.Description.Hostname ?? '';
        const now = new Date();
        io.out(
          table(
            ['ID', 'NAME', 'IMAGE', 'NODE', 'DESIRED STATE', 'CURRENT STATE', 'ERROR'],
            tasks.map((t) => [
              t.ID.slice(0, 12),
              `${service.Spec.Name}.${t.Slot ?? t.NodeID ?? ''}`,
              t.Spec.ContainerSpec.Image,
              hostname(t.NodeID),
              cap(t.DesiredState),
              `${cap(t.Status.State)} ${ago(t.Status.Timestamp, now).toLowerCase()}`,
              t.Status.Err ? `"${t.Status.Err}"` : '',
            ]),
          ),
        );
        return 0;
      }),
    );

  cli
    .command('update <service>', 'Update a service')
    .option(
      '--secret-add <spec>',
      'Add or update a secret reference, same form as --secret of create (repeatable)',
    )
    .option('--secret-rm <name>', 'Remove a secret reference by secret name (repeatable)')
    .option('--replicas <n>', 'Number of tasks')
    .option('--image <image>', 'Image to run')
    .option('--env-add <var>', 'Add or update an environment variable (repeatable)')
    .option('--update-parallelism <n>', 'Tasks replaced at once during an update')
    .option('--update-delay <duration>', 'Pause between update batches')
    .action(
      async (
        ref: string,
        flags: GlobalFlags & {
          secretAdd?: unknown;
          secretRm?: unknown;
          replicas?: string;
          image?: string;
          envAdd?: unknown;
          updateParallelism?: string;
          updateDelay?: string;
        },
      ) =>
        withClient(flags, async (client) => {
          const service = await inspect(client, ref);
          const spec = structuredClone(service.Spec);
          const container = spec.TaskTemplate.ContainerSpec;
          const removed = new Set(many(flags.secretRm));
          const added = many(flags.secretAdd).map(parseSecretFlag);
          checkDuplicateTargets(added);
          const kept = container.Secrets.filter(
            (s) => !removed.has(s.SecretName) && !added.some((a) => a.File.Name === s.File.Name),
          );
          container.Secrets = [...kept, ...added.map((a) => ({ ...a, SecretID: '' }))];
          checkDuplicateTargets(container.Secrets as never);
          if (flags.image) container.Image = flags.image;
          const envAdd = many(flags.envAdd);
          if (envAdd.length > 0) {
            const keys = new Set(envAdd.map((e) => e.split('=')[0]));
            container.Env = [
              ...(container.Env ?? []).filter((e) => !keys.has(e.split('=')[0])),
              ...envAdd,
            ];
          }
          if (flags.replicas !== undefined) {
            if (spec.Mode.Global)
              throw new SecretdError(
                'invalid',
                '--replicas can only be used with replicated services',
              );
            spec.Mode = { Replicated: { Replicas: count(flags.replicas, '--replicas') } };
          }
          if (flags.updateParallelism !== undefined)
            spec.UpdateConfig.Parallelism = count(flags.updateParallelism, '--update-parallelism');
          if (flags.updateDelay !== undefined)
            spec.UpdateConfig.Delay = durationNs(flags.updateDelay);
          await call(
            client,
            'POST',
            `/services/${service.ID}/update?version=${service.Version.Index}`,
            withoutEmptySecretIds(spec),
          );
          io.out(service.Spec.Name);
          return 0;
        }),
    );

  cli
    .command('scale <service=replicas> [...more]', 'Scale replicated services')
    .action(async (first: string, more: string[], flags: GlobalFlags) =>
      forEachRef(flags, io, [first, ...more], async (client, pair) => {
        const eq = pair.indexOf('=');
        if (eq <= 0)
          throw new SecretdError(
            'invalid',
            `Invalid scale ${JSON.stringify(pair)}: expected SERVICE=REPLICAS`,
          );
        const service = await inspect(client, pair.slice(0, eq));
        if (service.Spec.Mode.Global)
          throw new SecretdError(
            'invalid',
            `${service.Spec.Name}: scale can only be used with replicated services`,
          );
        const spec = {
          ...service.Spec,
          Mode: { Replicated: { Replicas: count(pair.slice(eq + 1), 'replicas') } },
        };
        await call(
          client,
          'POST',
          `/services/${service.ID}/update?version=${service.Version.Index}`,
          spec,
        );
        io.out(`${service.Spec.Name} scaled to ${pair.slice(eq + 1)}`);
      }),
    );

  cli
    .command('rm <service> [...more]', 'Remove services')
    .alias('remove')
    .action(async (first: string, more: string[], flags: GlobalFlags) =>
      forEachRef(flags, io, [first, ...more], async (client, ref) => {
        await call(client, 'DELETE', `/services/${encodeURIComponent(ref)}`);
        io.out(ref);
      }),
    );
}

async function inspect(client: ApiClient, ref: string): Promise<ServiceJSON> {
  return (await call(client, 'GET', `/services/${encodeURIComponent(ref)}`)) as ServiceJSON;
}

function withoutEmptySecretIds(spec: ServiceJSON['Spec']): object {
  const secrets = spec.TaskTemplate.ContainerSpec.Secrets.map((s) =>
    s.SecretID
      ? s
      : { SecretName: s.SecretName, File: s.File, ...(s.Secretd ? { Secretd: s.Secretd } : {}) },
  );
  return {
    ...spec,
    TaskTemplate: {
      ...spec.TaskTemplate,
      ContainerSpec: { ...spec.TaskTemplate.ContainerSpec, Secrets: secrets },
    },
  };
}

function modeOf(flags: CreateFlags): object {
  if (flags.mode === 'global') {
    if (flags.replicas !== undefined)
      throw new SecretdError('invalid', '--replicas can only be used with replicated mode');
    return { Global: {} };
  }
  if (flags.mode !== undefined && flags.mode !== 'replicated')
    throw new SecretdError(
      'invalid',
      `Invalid --mode ${JSON.stringify(flags.mode)}: expected replicated or global`,
    );
  return {
    Replicated: {
      Replicas: flags.replicas === undefined ? 1 : count(flags.replicas, '--replicas'),
    },
  };
}

function count(text: string | number, flag: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(String(text)) || value > 1000)
    throw new SecretdError(
      'invalid',
      `Invalid ${flag} ${JSON.stringify(String(text))}: expected a whole number from 0 to 1000`,
    );
  return value;
}

function cap(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
