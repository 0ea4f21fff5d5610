/**
 * Services and tasks in the replicated store: the deterministic part of "run this container with
 * these secrets on N nodes". The orchestrator and scheduler (on the leader) decide; these rules
 * only check and record, identically on every manager.
 */
import { SecretdError } from '../../errors.ts';
import type { TaskPut, TaskStatusUpdate } from './commands.ts';
import type {
  ContainerSpec,
  SecretRecord,
  ServiceId,
  ServiceRecord,
  ServiceSpec,
  TaskId,
  TaskRecord,
  TaskState,
} from './types.ts';
import { isDead, taskStateRank } from './task-states.ts';

export class Workloads {
  readonly services = new Map<ServiceId, ServiceRecord>();
  readonly tasks = new Map<TaskId, TaskRecord>();

  serviceByName(name: string): ServiceRecord | undefined {
    for (const service of this.services.values()) if (service.spec.name === name) return service;
    return undefined;
  }

  /** Services whose spec references the secret (Docker refuses to remove a secret in use). */
  servicesUsing(secretId: string): ServiceRecord[] {
    return [...this.services.values()].filter((s) =>
      s.spec.container.secrets.some((r) => r.secretId === secretId),
    );
  }

  /**
   * Who pins a version of a secret: services whose reference names it (`@N`), and live tasks whose
   * copy of the spec holds it fixed (pinned, on-update restart, absolute target).
   */
  pinnedUsers(secretId: string, version: number): string[] {
    const users: string[] = [];
    for (const service of this.services.values()) {
      if (
        service.spec.container.secrets.some((r) => r.secretId === secretId && r.version === version)
      )
        users.push(`service ${service.spec.name}`);
    }
    for (const task of this.tasks.values()) {
      if (isDead(task)) continue;
      if (task.container.secrets.some((r) => r.secretId === secretId && r.version === version))
        users.push(`task ${this.taskName(task)}`);
    }
    return users;
  }

  /**
   * Docker's task name, the one rule for it (lookups, filters, messages): `service.slot`, or
   * `service.node` for a global service's task (`service.taskId` while it has no node).
   */
  taskName(task: TaskRecord): string {
    const service = this.services.get(task.serviceId)?.spec.name ?? task.serviceId;
    return `${service}.${task.slot > 0 ? task.slot : (task.nodeId ?? task.id)}`;
  }

  /**
   * A secret has a new newest version: services that follow it with on-update restart get a new
   * spec version, so the orchestrator replaces their tasks under their update settings; each new
   * task's copy pins the version that is newest when it is created.
   */
  secretVersionAdded(index: number, at: string, secretId: string): void {
    for (const service of this.services.values()) {
      const restarts = service.spec.container.secrets.some(
        (r) => r.secretId === secretId && r.version === undefined && r.onUpdate?.kind === 'restart',
      );
      if (restarts)
        this.services.set(service.id, {
          ...service,
          specVersion: service.specVersion + 1,
          updatedAt: at,
          metaIndex: index,
        });
    }
  }

  createService(
    index: number,
    at: string,
    id: string,
    spec: ServiceSpec,
    secret: (id: string) => SecretRecord | undefined,
  ): void {
    if (this.serviceByName(spec.name))
      throw new SecretdError('conflict', `Service ${spec.name} already exists`);
    if (this.services.has(id as ServiceId))
      throw new SecretdError('conflict', `Service id ${id} is already in use`);
    checkSecretsExist(spec, secret);
    this.services.set(id as ServiceId, {
      id: id as ServiceId,
      spec,
      specVersion: 1,
      createdAt: at,
      updatedAt: at,
      metaIndex: index,
    });
  }

  updateService(
    index: number,
    at: string,
    id: string,
    expectedIndex: number,
    spec: ServiceSpec,
    secret: (id: string) => SecretRecord | undefined,
  ): void {
    const service = this.services.get(id as ServiceId);
    if (!service) throw new SecretdError('not_found', `Service ${id} not found`);
    if (service.metaIndex !== expectedIndex) {
      throw new SecretdError(
        'conflict',
        `Cannot update service ${service.spec.name}: version ${expectedIndex} is out of date (current version is ${service.metaIndex})`,
      );
    }
    if (spec.name !== service.spec.name)
      throw new SecretdError(
        'invalid',
        `Cannot update service ${service.spec.name}: renaming a service is not supported`,
      );
    const other = this.serviceByName(spec.name);
    if (other && other.id !== service.id)
      throw new SecretdError('conflict', `Service ${spec.name} already exists`);
    checkSecretsExist(spec, secret);
    // Only a change to what tasks run, or a forced update, rolls them; replicas and labels do not.
    const rolled =
      JSON.stringify(spec.container) !== JSON.stringify(service.spec.container) ||
      (spec.forceUpdate ?? 0) !== (service.spec.forceUpdate ?? 0);
    this.services.set(service.id, {
      ...service,
      spec,
      specVersion: service.specVersion + (rolled ? 1 : 0),
      updatedAt: at,
      metaIndex: index,
    });
  }

  removeService(at: string, id: string, index: number): void {
    const service = this.services.get(id as ServiceId);
    if (!service) throw new SecretdError('not_found', `Service ${id} not found`);
    this.services.delete(service.id);
    for (const task of this.tasks.values()) {
      if (task.serviceId === service.id && task.desiredState !== 'shutdown')
        this.tasks.set(task.id, { ...task, desiredState: 'shutdown', metaIndex: index });
    }
  }

  /**
   * `newest`: a secret's newest version, to pin a new task's references that cannot change in place.
   *
   * The leader's loop builds its puts from a view that can be older than what the API applied in
   * between (a `service rm` right after a `service create`), so two rules hold here, where every
   * manager applies them alike: no task is created for a service that no longer exists, and a
   * desired state never goes back from shutdown to running (as in Docker, it only moves forward).
   * Without them a removed service's task could be revived, assigned, and wait for ever.
   */
  putTasks(
    index: number,
    at: string,
    puts: readonly TaskPut[],
    newest: (secretId: string) => number | undefined = () => undefined,
  ): void {
    for (const put of puts) {
      const existing = this.tasks.get(put.id as TaskId);
      if (existing === undefined && !this.services.has(put.serviceId as ServiceId)) continue;
      const desiredState = existing?.desiredState === 'shutdown' ? 'shutdown' : put.desiredState;
      const status = existing?.status ?? {
        state: 'new' as TaskState,
        message: 'created',
        error: '',
        exitCode: null,
        at,
        secretVersions: {},
      };
      const nextStatus =
        put.state &&
        (!existing ||
          taskStateRank[put.state] >= taskStateRank[status.state] ||
          put.state === 'orphaned')
          ? { ...status, state: put.state, message: put.message ?? status.message, at }
          : status;
      this.tasks.set(put.id as TaskId, {
        id: put.id as TaskId,
        serviceId: put.serviceId as ServiceId,
        slot: put.slot,
        nodeId: put.nodeId,
        specVersion: put.specVersion,
        // A task's spec never changes once it exists; a new one's is pinned where it must be.
        container: existing?.container ?? pinForTask(put.container, newest),
        desiredState,
        status: nextStatus,
        createdAt: existing?.createdAt ?? at,
        metaIndex: index,
      });
    }
  }

  /** An agent reports on its own tasks only; a report never moves a task backwards. */
  reportStatus(
    index: number,
    at: string,
    nodeId: string,
    updates: readonly TaskStatusUpdate[],
  ): void {
    for (const update of updates) {
      const task = this.tasks.get(update.id as TaskId);
      if (!task || task.nodeId !== nodeId) continue;
      if (isDead(task) || taskStateRank[update.state] < taskStateRank[task.status.state]) continue;
      this.tasks.set(task.id, {
        ...task,
        status: {
          state: update.state,
          message: update.message,
          error: update.error,
          exitCode: update.exitCode,
          at,
          secretVersions: update.secretVersions,
        },
        metaIndex: index,
      });
    }
  }

  removeTasks(ids: readonly string[]): void {
    for (const id of ids) this.tasks.delete(id as TaskId);
  }

  snapshot(): { services: ServiceRecord[]; tasks: TaskRecord[] } {
    return { services: [...this.services.values()], tasks: [...this.tasks.values()] };
  }

  restore(body: { services?: ServiceRecord[]; tasks?: TaskRecord[] }): void {
    for (const service of body.services ?? []) this.services.set(service.id, service);
    for (const task of body.tasks ?? []) this.tasks.set(task.id, task);
  }
}

function checkSecretsExist(
  spec: ServiceSpec,
  secret: (id: string) => SecretRecord | undefined,
): void {
  const missing = spec.container.secrets
    .filter((ref) => secret(ref.secretId)?.name !== ref.secretName)
    .map((ref) => ref.secretName);
  if (missing.length > 0)
    throw new SecretdError(
      'invalid',
      `${missing.length === 1 ? 'Secret' : 'Secrets'} not found: ${missing.join(', ')}`,
    );
  for (const ref of spec.container.secrets) {
    if (
      ref.version !== undefined &&
      !secret(ref.secretId)!.versions.some((v) => v.version === ref.version)
    ) {
      throw new SecretdError('invalid', `Secret ${ref.secretName} has no version ${ref.version}`);
    }
  }
}

/**
 * A new task's copy of the spec: references that cannot change under a running task are pinned to
 * the newest version now. On-update restart replaces the task instead; an absolute target is bound
 * into the container file by file, so a rename beside it would never reach the container.
 */
function pinForTask(
  container: ContainerSpec,
  newest: (secretId: string) => number | undefined,
): ContainerSpec {
  const secrets = container.secrets.map((ref) => {
    if (
      ref.version !== undefined ||
      (ref.onUpdate?.kind !== 'restart' && !ref.target.startsWith('/'))
    )
      return ref;
    const version = newest(ref.secretId);
    return version === undefined ? ref : { ...ref, version };
  });
  return { ...container, secrets };
}
