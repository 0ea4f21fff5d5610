/**
 * Resolving the names people use for secrets, nodes, services and tasks (Docker's rules), against
 * the store; and Docker's task filters.
 */
import { SecretdError } from '../../errors.ts';
import type { Store } from './store.ts';
import type {
  NodeRecord,
  ServiceRecord,
  ServiceSpec,
  ServiceSpecInput,
  TaskRecord,
} from './types.ts';
import { isLive } from './task-states.ts';

/**
 * Docker's resolution of a reference, for every kind of object: the object whose full id or exact
 * name is `ref` (`exact`: the caller looks those up; a list where names need not be unique, as
 * node host names, and more than one is ambiguous), else the one object whose id starts with
 * `ref`. Several prefix matches are ambiguous; name prefixes never resolve; '' resolves nothing.
 */
export function resolveByRef<T extends { readonly id: string }>(
  kind: string,
  ref: string,
  exact: T | readonly T[] | undefined,
  all: Iterable<T>,
): T {
  const named: readonly T[] = exact === undefined ? [] : isList(exact) ? exact : [exact];
  const matches =
    named.length > 0 ? named : ref === '' ? [] : [...all].filter((x) => x.id.startsWith(ref));
  if (matches.length === 1) return matches[0]!;
  if (matches.length > 1)
    throw new SecretdError(
      'invalid',
      `${kind} ${ref} is ambiguous (${matches.length} matches found)`,
    );
  throw new SecretdError('not_found', `${kind} ${ref} not found`);
}

function isList<T>(exact: T | readonly T[]): exact is readonly T[] {
  return Array.isArray(exact);
}

/** Full id, exact name, then a unique id prefix. */
export function resolveService(store: Store, ref: string): ServiceRecord {
  const services = store.workloads.services;
  return resolveByRef(
    'Service',
    ref,
    services.get(ref as ServiceRecord['id']) ?? store.workloads.serviceByName(ref),
    services.values(),
  );
}

/** Full id, exact hostname (ambiguous when several nodes share it), then a unique id prefix: Docker's order for nodes. */
export function resolveNode(store: Store, ref: string): NodeRecord {
  return resolveByRef(
    'Node',
    ref,
    store.node(ref) ?? [...store.nodes()].filter((n) => n.hostname === ref),
    store.nodes(),
  );
}

/** A task id (or unique prefix), or `service.slot` — the live task of that slot, as Docker names tasks. */
export function resolveTask(store: Store, ref: string): TaskRecord {
  const tasks = store.workloads.tasks;
  const dot = ref.lastIndexOf('.');
  if (dot > 0 && /^\d+$/.test(ref.slice(dot + 1))) {
    const service = store.workloads.serviceByName(ref.slice(0, dot));
    const slot = Number(ref.slice(dot + 1));
    if (service) {
      const candidates = [...tasks.values()].filter(
        (t) => t.serviceId === service.id && t.slot === slot,
      );
      const live = candidates.find(isLive);
      if (live) return live;
      throw new SecretdError(
        'not_found',
        `Task ${ref} not found (no running task in slot ${slot} of ${service.spec.name})`,
      );
    }
  }
  return resolveByRef('Task', ref, tasks.get(ref as TaskRecord['id']), tasks.values());
}

/** Fills in each secret reference's id from its name (or checks the pair), as the docker CLI does. */
export function resolveSpecSecrets(store: Store, spec: ServiceSpecInput): ServiceSpec {
  const missing: string[] = [];
  const secrets = spec.container.secrets.map((ref) => {
    const secret = ref.secretId ? store.secret(ref.secretId) : store.secretByName(ref.secretName);
    if (!secret || secret.name !== ref.secretName) {
      missing.push(ref.secretName);
      return { ...ref, secretId: '' };
    }
    return { ...ref, secretId: secret.id };
  });
  if (missing.length > 0)
    throw new SecretdError(
      'invalid',
      `${missing.length === 1 ? 'Secret' : 'Secrets'} not found: ${missing.join(', ')}`,
    );
  return { ...spec, container: { ...spec.container, secrets } };
}

/** Docker's task filters: service (id or name), node (id or hostname), desired-state, id, name. */
export function filterTasks(
  store: Store,
  filters: ReadonlyMap<string, readonly string[]>,
): TaskRecord[] {
  const serviceIds = (filters.get('service') ?? []).flatMap((ref) => {
    try {
      return [resolveService(store, ref).id as string];
    } catch {
      return [];
    }
  });
  const nodes = filters.get('node') ?? [];
  const desired = filters.get('desired-state') ?? [];
  const ids = filters.get('id') ?? [];
  const names = filters.get('name') ?? [];
  // Tasks carry no labels of their own: a label filter matches none, as in Docker for unlabelled tasks.
  const labelled = (filters.get('label') ?? []).length > 0;
  // Docker's internal filter (the CLI's progress display): tasks of the service's current spec.
  const upToDate = filters.get('_up-to-date') ?? [];
  return [...store.workloads.tasks.values()].filter((task) => {
    if (filters.has('service') && !serviceIds.includes(task.serviceId)) return false;
    if (
      nodes.length > 0 &&
      !nodes.some(
        (n) =>
          task.nodeId === n || (task.nodeId !== null && store.node(task.nodeId)?.hostname === n),
      )
    )
      return false;
    if (desired.length > 0 && !desired.includes(task.desiredState)) return false;
    if (ids.length > 0 && !ids.some((p) => task.id.startsWith(p))) return false;
    if (names.length > 0 && !names.some((n) => store.workloads.taskName(task).startsWith(n)))
      return false;
    if (labelled) return false;
    if (
      upToDate.length > 0 &&
      upToDate.includes('true') !==
        (task.specVersion === store.workloads.services.get(task.serviceId)?.specVersion)
    )
      return false;
    return true;
  });
}
