/**
 * What a proposed command's record says it did: the action's name and the object it acted on.
 * Pure; the store passes lookups for names that only it knows (a secret's name from its id).
 */
/** Commands the cluster's own loops propose (orchestrator, scheduler, dispatcher, pruning): no request made them. */
const internalOps = new Set([
  'tasks-put',
  'task-status',
  'tasks-remove',
  'node-status',
  'cert-records-prune',
  'audit-append',
]);

/** Whether a command proposed within a request carries its audit record (every op a request can make). */
export function auditedOps(op: string): boolean {
  return !internalOps.has(op);
}

const actionNames: Readonly<Record<string, string>> = {
  'cluster-init': 'cluster-init',
  'cluster-update': 'cluster-update',
  'secret-create': 'secret-create',
  'secret-update': 'secret-label',
  'secret-version-add': 'secret-update',
  'secret-rollback': 'secret-rollback',
  'secret-version-remove': 'secret-version-rm',
  'secret-grant': 'secret-grant',
  'secret-ungrant': 'secret-ungrant',
  'secret-remove': 'secret-rm',
  'service-create': 'service-create',
  'service-update': 'service-update',
  'service-remove': 'service-rm',
  'node-add': 'node-join',
  'node-update': 'node-update',
  'node-remove': 'node-rm',
  'dek-rotate': 'cluster-rotate-keys',
  'client-cert-issue': 'ca-issue-client',
  'client-cert-revoke': 'ca-revoke',
  'client-cert-update': 'ca-update',
};

export interface AuditLookups {
  readonly secretName: (id: string) => string | undefined;
  readonly serviceName: (id: string) => string | undefined;
  /** A node's record as it is before the change (to name only the fields a node update changes). */
  readonly node?: (id: string) => Readonly<Record<string, unknown>> | undefined;
}

export interface AuditSubject {
  readonly action: string;
  readonly object?: { readonly id?: string; readonly name?: string };
  readonly detail?: string;
}

type Fields = Readonly<Record<string, unknown>>;

/** The action and object of a command (read before it is applied: a removal still has its name). */
export function auditSubject(
  command: Fields & { readonly op: string },
  lookups: AuditLookups,
): AuditSubject {
  const action = actionNames[command.op] ?? command.op;
  const str = (value: unknown): string | undefined =>
    typeof value === 'string' ? value : undefined;
  const ids = Array.isArray(command.ids) ? (command.ids as string[]) : undefined;
  switch (command.op) {
    case 'secret-create':
      return { action, object: { id: str(command.id)!, name: str(command.name)! } };
    case 'secret-update':
    case 'secret-version-add':
    case 'secret-rollback':
    case 'secret-version-remove':
      return { action, object: named(str(command.id), lookups.secretName) };
    case 'secret-grant':
    case 'secret-ungrant': {
      // The grant's node constraints (names and label values, never secret material).
      const constraints = Array.isArray(command.constraints)
        ? (command.constraints as unknown[]).filter((c) => typeof c === 'string')
        : [];
      return withDetail(
        { action, object: named(str(command.id), lookups.secretName) },
        `node constraints ${constraints.join(', ')}`.slice(0, 256),
      );
    }
    case 'secret-remove':
      return {
        action,
        object: named(ids?.join(','), () =>
          ids?.map((id) => lookups.secretName(id) ?? id).join(','),
        ),
      };
    case 'service-create':
      return {
        action,
        object: {
          id: str(command.id)!,
          name: str((command.spec as Fields | undefined)?.name) ?? '',
        },
      };
    case 'service-update':
    case 'service-remove':
      return { action, object: named(str(command.id), lookups.serviceName) };
    case 'node-add':
      return { action, object: { id: str((command.node as Fields | undefined)?.id) ?? '' } };
    case 'node-update': {
      // Docker's clients send the whole spec: name only what differs from the node's record.
      const before = lookups.node?.(str(command.id) ?? '');
      const fields = ['role', 'availability', 'labels', 'addr'].filter(
        (f) => before === undefined || JSON.stringify(command[f]) !== JSON.stringify(before[f]),
      );
      return withDetail(
        { action, object: { id: str(command.id) ?? '' } },
        changed(command, fields),
      );
    }
    case 'node-remove':
      return { action, object: { id: ids?.join(',') ?? '' } };
    case 'cluster-update':
      // Field names only: a join token or an unlock key never goes into a record.
      return withDetail(
        { action },
        changed(
          command,
          Object.keys(command).filter(
            (k) => !['op', 'at', 'expectedIndex', 'requestId', 'audit'].includes(k),
          ),
        ),
      );
    case 'client-cert-issue': {
      const cert = command.cert as Fields | undefined;
      return { action, object: { id: str(cert?.serial) ?? '', name: str(cert?.name) ?? '' } };
    }
    case 'client-cert-update': {
      const scope = Array.isArray(command.scope) ? (command.scope as string[]) : [];
      return withDetail(
        { action, object: { id: (command.serials as string[] | undefined)?.join(',') ?? '' } },
        `role ${str(command.role) ?? ''}${scope.length > 0 ? `, scope ${scope.join(',')}` : ''}`.slice(
          0,
          256,
        ),
      );
    }
    case 'client-cert-revoke':
      return { action, object: { id: (command.serials as string[] | undefined)?.join(',') ?? '' } };
    default: {
      const id = str(command.id) ?? str(command.serial);
      return id === undefined ? { action } : { action, object: { id } };
    }
  }
}

function named(
  id: string | undefined,
  name: (id: string) => string | undefined,
): { id?: string; name?: string } {
  if (id === undefined) return {};
  const found = name(id);
  return found === undefined ? { id } : { id, name: found };
}

function withDetail(subject: AuditSubject, detail: string | undefined): AuditSubject {
  return detail === undefined ? subject : { ...subject, detail };
}

function changed(command: Fields, fields: readonly string[]): string | undefined {
  const present = fields.filter((f) => command[f] !== undefined);
  return present.length === 0 ? undefined : `changed: ${present.join(', ')}`;
}
