/** `secretd node ls|inspect|promote|demote|update|rm`, shaped like `docker node …`. */
import type { CAC } from 'cac';
import { SecretdError } from '../errors.ts';
import {
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
import { call, type ApiClient } from './client.ts';

interface NodeJSON {
  ID: string;
  Version: { Index: number };
  Spec: { Labels: Record<string, string>; Role: string; Availability: string };
  Description: { Hostname: string };
  Status: { State: string };
  ManagerStatus?: { Leader: boolean; Reachability: string; Addr: string };
}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1);

export function registerNode(cli: CAC, io: Io): void {
  cli
    .command('ls', 'List nodes')
    .alias('list')
    .option('-q, --quiet', 'Only display IDs')
    .option('-f, --filter <filter>', 'Filter: id=…, name=…, role=manager|worker (repeatable)')
    .option('--format <format>', 'Output format: "table" (default) or "json"')
    .action(async (flags: GlobalFlags & { quiet?: boolean; filter?: unknown; format?: string }) => {
      const query = filtersQuery(flags.filter, ['id', 'name', 'role']);
      return withClient(flags, async (client) => {
        const nodes = (await call(client, 'GET', `/nodes${query}`)) as NodeJSON[];
        if (flags.quiet) io.out(nodes.map((n) => n.ID).join('\n'));
        else if (flags.format === 'json') io.out(nodes.map((n) => JSON.stringify(n)).join('\n'));
        else if (flags.format === undefined || flags.format === 'table') {
          const self = ((await call(client, 'GET', '/info')) as { Swarm: { NodeID: string } }).Swarm
            .NodeID;
          const managerStatus = (n: NodeJSON): string =>
            !n.ManagerStatus
              ? ''
              : n.ManagerStatus.Leader
                ? 'Leader'
                : capitalize(n.ManagerStatus.Reachability);
          io.out(
            table(
              ['ID', 'HOSTNAME', 'STATUS', 'AVAILABILITY', 'MANAGER STATUS'],
              nodes.map((n) => [
                n.ID === self ? `${n.ID} *` : n.ID,
                n.Description.Hostname,
                capitalize(n.Status.State),
                capitalize(n.Spec.Availability),
                managerStatus(n),
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
    });

  cli
    .command('inspect <node> [...more]', 'Show nodes in detail')
    .action(async (first: string, more: string[], flags: GlobalFlags) =>
      inspectEach(flags, io, 'nodes', [first, ...more]),
    );

  for (const [verb, role] of [
    ['promote', 'manager'],
    ['demote', 'worker'],
  ] as const) {
    cli
      .command(
        `${verb} <node> [...more]`,
        `${capitalize(verb)} nodes ${verb === 'promote' ? 'to' : 'from'} manager`,
      )
      .action(async (first: string, more: string[], flags: GlobalFlags) =>
        forEachRef(flags, io, [first, ...more], async (client, ref) => {
          const node = await inspect(client, ref);
          if (node.Spec.Role === role) {
            io.out(`Node ${ref} is already a ${role}.`);
            return;
          }
          await call(
            client,
            'POST',
            `/nodes/${encodeURIComponent(node.ID)}/update?version=${node.Version.Index}`,
            { ...node.Spec, Role: role },
          );
          io.out(
            `Node ${ref} ${verb}d ${verb === 'promote' ? 'to a manager in' : 'to a worker in'} the cluster.`,
          );
        }),
      );
  }

  cli
    .command('update <node>', 'Update a node')
    .option('--availability <availability>', 'active, pause or drain')
    .option('--label-add <label>', 'Add or update a node label KEY=VALUE (repeatable)')
    .option('--label-rm <key>', 'Remove a node label (repeatable)')
    .action(
      async (
        ref: string,
        flags: GlobalFlags & { availability?: string; labelAdd?: unknown; labelRm?: unknown },
      ) =>
        forEachRef(flags, io, [ref], async (client) => {
          const node = await inspect(client, ref);
          const labels = { ...node.Spec.Labels, ...parseKeyValues(many(flags.labelAdd), 'label') };
          for (const key of many(flags.labelRm)) delete labels[key];
          await call(
            client,
            'POST',
            `/nodes/${encodeURIComponent(node.ID)}/update?version=${node.Version.Index}`,
            {
              ...node.Spec,
              Labels: labels,
              ...(flags.availability ? { Availability: flags.availability } : {}),
            },
          );
          io.out(ref);
        }),
    );

  cli
    .command('rm <node> [...more]', 'Remove nodes from the cluster')
    .alias('remove')
    .option('-f, --force', 'Remove a node that is not down, or a manager that is gone for good')
    .action(async (first: string, more: string[], flags: GlobalFlags & { force?: boolean }) =>
      forEachRef(flags, io, [first, ...more], async (client, ref) => {
        await call(
          client,
          'DELETE',
          `/nodes/${encodeURIComponent(ref)}${flags.force ? '?force=true' : ''}`,
        );
        io.out(ref);
      }),
    );
}

async function inspect(client: ApiClient, ref: string): Promise<NodeJSON> {
  return (await call(client, 'GET', `/nodes/${encodeURIComponent(ref)}`)) as NodeJSON;
}
