/**
 * Docker's ServiceSpec and Task shapes, read and written. Reading checks every field; secret
 * references may name a secret by SecretName alone (the manager fills in the id), as curl users
 * would expect, or carry both as the docker CLI sends them.
 *
 * secretd's extension to a secret reference is one optional field, `Secretd: {Version, OnUpdate}`:
 * a pinned version and what a running task gets when the version it follows changes. Docker
 * clients never send it and get Docker's behaviour; it is written back only when set.
 */
import { invalid } from '../../errors.ts';
import { checkSecretFiles, stopGraceMsDefault } from '../executor/index.ts';
import { canonicalKeys, refuseUnknownFields } from './request.ts';
import { serviceSpecFields } from './service-fields.ts';
import { refuseUnsupported } from './service-unsupported.ts';
import {
  checkLabels,
  checkServiceConstraints,
  checkVersionNumber,
  onUpdateText,
  parseOnUpdate,
} from '../store/index.ts';
import type {
  ContainerSpec,
  OnUpdate,
  SecretRefInput,
  SecretReference,
  ServiceRecord,
  ServiceSpec,
  ServiceSpecInput,
  TaskRecord,
} from '../store/index.ts';

export type { SecretRefInput, ServiceSpecInput } from '../store/index.ts';

// Swarmkit's rule (a DNS name component, underscores allowed as `docker stack` names services STACK_svc).
const serviceNamePattern = /^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$/;
const idPattern = /^[0-9]{1,10}$/;

/** Field names are checked once, up front (service-fields.ts): this checks only that it is an object. */
function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`Invalid service spec: ${what} must be an object`);
  return value as Record<string, unknown>;
}

function strings(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))
    throw invalid(`Invalid service spec: ${what} must be a list of strings`);
  return value as string[];
}

/**
 * A ServiceSpec body read as Docker's Go server reads it: keys matched to Docker's field names
 * ignoring case (`"Mode": {"replicated": {"Replicas": 2}}`), unknown fields refused (400), features
 * secretd lacks refused (501, service-unsupported.ts), then every field checked.
 */
export function readServiceSpec(input: Record<string, unknown>): ServiceSpecInput {
  const body = canonicalKeys(input, serviceSpecFields, 'service spec') as Record<string, unknown>;
  refuseUnknownFields(body, serviceSpecFields, 'service spec');
  refuseUnsupported(body);
  if (typeof body.Name !== 'string' || !serviceNamePattern.test(body.Name)) {
    throw invalid(
      `Invalid service name ${JSON.stringify(String(body.Name ?? '').slice(0, 80))}: 1 to 63 letters, digits, dashes and underscores, starting and ending with a letter or digit`,
    );
  }
  const template = object(body.TaskTemplate, 'TaskTemplate');
  const container = object(template.ContainerSpec, 'TaskTemplate.ContainerSpec');
  const placement =
    template.Placement === undefined || template.Placement === null
      ? {}
      : object(template.Placement, 'TaskTemplate.Placement');
  const constraints = checkServiceConstraints(placement.Constraints);
  if (typeof container.Image !== 'string' || container.Image === '')
    throw invalid('Invalid service spec: TaskTemplate.ContainerSpec.Image must be provided');
  const command = strings(container.Command, 'ContainerSpec.Command');
  const args = strings(container.Args, 'ContainerSpec.Args');
  if (command.length + args.length === 0)
    throw invalid(
      'Invalid service spec: give a command to run (secretd images are root filesystems without a default command)',
    );
  const secrets = (
    Array.isArray(container.Secrets) ? container.Secrets : container.Secrets == null ? [] : null
  )?.map(readSecretRef);
  if (!secrets) throw invalid('Invalid service spec: ContainerSpec.Secrets must be a list');
  const targets = new Map<string, string>();
  for (const ref of secrets) {
    const other = targets.get(ref.target);
    if (other !== undefined)
      throw invalid(
        `Invalid service spec: secret references '${other}' and '${ref.secretName}' have a conflicting target: '${ref.target}'`,
      );
    targets.set(ref.target, ref.secretName);
  }
  // The executor's own rule (one copy): a target it would refuse is refused here, not in a restart loop.
  checkSecretFiles('Invalid service spec', secrets);
  checkSameSecretAgrees(secrets);
  const forceUpdate = template.ForceUpdate ?? 0;
  if (typeof forceUpdate !== 'number' || !Number.isSafeInteger(forceUpdate) || forceUpdate < 0)
    throw invalid('Invalid service spec: TaskTemplate.ForceUpdate must be a counter (0 or more)');
  return {
    name: body.Name,
    labels: checkLabels(body.Labels, 'service'),
    container: {
      image: container.Image,
      command,
      args,
      env: strings(container.Env, 'ContainerSpec.Env'),
      secrets,
    },
    mode: readMode(body.Mode),
    update: readUpdateConfig(body.UpdateConfig),
    ...(forceUpdate > 0 ? { forceUpdate } : {}),
    ...(constraints.length > 0 ? { constraints } : {}),
  };
}

function readSecretRef(value: unknown): SecretRefInput {
  const ref = object(value, 'secret reference');
  if (typeof ref.SecretName !== 'string' || ref.SecretName === '')
    throw invalid('Invalid service spec: malformed secret reference (SecretName is required)');
  const file = object(ref.File ?? { Name: ref.SecretName }, 'secret reference File');
  const target = typeof file.Name === 'string' ? file.Name : '';
  if (target === '')
    throw invalid(
      `Invalid service spec: malformed file secret reference, invalid target file name ""`,
    );
  const uid = file.UID === undefined ? '0' : String(file.UID);
  const gid = file.GID === undefined ? '0' : String(file.GID);
  if (!idPattern.test(uid) || !idPattern.test(gid))
    throw invalid(`Invalid service spec: secret ${ref.SecretName} needs numeric UID and GID`);
  const mode = file.Mode === undefined ? 0o444 : file.Mode;
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o777)
    throw invalid(
      `Invalid service spec: secret ${ref.SecretName} has an invalid file mode (expected 0 to 0777)`,
    );
  const base = {
    secretId: typeof ref.SecretID === 'string' && ref.SecretID !== '' ? ref.SecretID : null,
    secretName: ref.SecretName,
    target,
    uid,
    gid,
    mode,
  };
  return { ...base, ...readExtension(ref.Secretd, ref.SecretName, target) };
}

function readExtension(
  value: unknown,
  name: string,
  target: string,
): { version?: number; onUpdate?: OnUpdate } {
  if (value === undefined || value === null) return {};
  const extension = object(value, `secret reference ${name.slice(0, 64)}: Secretd`);
  const version =
    extension.Version === undefined || extension.Version === null
      ? undefined
      : checkVersionNumber(extension.Version, `version of secret ${name.slice(0, 64)}`);
  const onUpdate =
    extension.OnUpdate === undefined || extension.OnUpdate === null
      ? undefined
      : parseOnUpdate(extension.OnUpdate);
  if (onUpdate !== undefined && onUpdate.kind !== 'none' && version !== undefined) {
    throw invalid(
      `Invalid service spec: secret ${name.slice(0, 64)} is pinned to version ${version}, so on-update ${onUpdateText(onUpdate)} would never apply`,
    );
  }
  if (onUpdate?.kind === 'signal' && target.startsWith('/')) {
    throw invalid(
      `Invalid service spec: secret ${name.slice(0, 64)} has the absolute target ${JSON.stringify(target.slice(0, 80))}, which cannot change under a running container: use on-update restart`,
    );
  }
  return {
    ...(version === undefined ? {} : { version }),
    ...(onUpdate === undefined || onUpdate.kind === 'none' ? {} : { onUpdate }),
  };
}

/** A task holds one version of each secret, so every reference to one secret must agree on which. */
function checkSameSecretAgrees(secrets: readonly SecretRefInput[]): void {
  const first = new Map<string, SecretRefInput>();
  for (const ref of secrets) {
    const other = first.get(ref.secretName);
    if (other === undefined) first.set(ref.secretName, ref);
    else if (
      other.version !== ref.version ||
      onUpdateText(other.onUpdate) !== onUpdateText(ref.onUpdate)
    ) {
      throw invalid(
        `Invalid service spec: the references to secret ${ref.secretName} must use the same version and on-update`,
      );
    }
  }
}

function secretRefJSON(ref: SecretReference): object {
  const extension = {
    ...(ref.version === undefined ? {} : { Version: ref.version }),
    ...(ref.onUpdate === undefined ? {} : { OnUpdate: onUpdateText(ref.onUpdate) }),
  };
  return {
    File: { Name: ref.target, UID: ref.uid, GID: ref.gid, Mode: ref.mode },
    SecretID: ref.secretId,
    SecretName: ref.secretName,
    ...(Object.keys(extension).length > 0 ? { Secretd: extension } : {}),
  };
}

function readMode(value: unknown): ServiceSpec['mode'] {
  if (value === undefined || value === null) return { kind: 'replicated', replicas: 1 };
  const mode = object(value, 'Mode');
  if (mode.Global !== undefined && mode.Global !== null) return { kind: 'global' };
  const replicated = object(mode.Replicated ?? {}, 'Mode.Replicated');
  const replicas = replicated.Replicas ?? 1;
  if (
    typeof replicas !== 'number' ||
    !Number.isInteger(replicas) ||
    replicas < 0 ||
    replicas > 1000
  )
    throw invalid('Invalid service spec: Mode.Replicated.Replicas must be 0 to 1000');
  return { kind: 'replicated', replicas };
}

/** Docker's time.Duration: whole nanoseconds (Go refuses a fraction), 0 or more. */
function nanoseconds(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw invalid(`Invalid service spec: ${what} must be a whole number of nanoseconds, 0 or more`);
  return value;
}

/** Docker's UpdateConfig: Delay is kept exactly as sent; what secretd lacks was refused before (501). */
function readUpdateConfig(value: unknown): ServiceSpec['update'] {
  if (value === undefined || value === null) return { parallelism: 1, delayMs: 0 };
  const config = object(value, 'UpdateConfig');
  const parallelism = config.Parallelism ?? 1;
  if (typeof parallelism !== 'number' || !Number.isSafeInteger(parallelism) || parallelism < 0)
    throw invalid('Invalid service spec: UpdateConfig.Parallelism must be 0 or more');
  const delayNs = nanoseconds(config.Delay ?? 0, 'UpdateConfig.Delay');
  const failureAction = config.FailureAction ?? '';
  if (failureAction !== '' && failureAction !== 'pause' && failureAction !== 'continue') {
    throw invalid(
      `Invalid service spec: UpdateConfig.FailureAction ${JSON.stringify(String(failureAction).slice(0, 32))} is not one of pause, continue or rollback`,
    );
  }
  return {
    parallelism,
    delayMs: Math.ceil(delayNs / 1e6),
    ...(delayNs % 1e6 === 0 ? {} : { delayNs }),
    ...(failureAction === 'continue' ? { failureAction } : {}),
  };
}

function containerSpecJSON(container: ContainerSpec): object {
  return {
    Image: container.image,
    ...(container.command.length ? { Command: container.command } : {}),
    ...(container.args.length ? { Args: container.args } : {}),
    ...(container.env.length ? { Env: container.env } : {}),
    Secrets: container.secrets.map(secretRefJSON),
    // Docker's defaults, which are what secretd does: no init process, 10 s to stop, no DNS settings.
    Init: false,
    StopGracePeriod: stopGraceMsDefault * 1e6,
    DNSConfig: {},
    Isolation: 'default',
  };
}

export interface ServiceJSONOptions {
  /**
   * `?insertDefaults=true`: also the defaults Docker fills in that describe what secretd does (the
   * restart policy: any exit, no limit on attempts). Default false. Docker's `UpdateConfig.Monitor`
   * and `RollbackConfig` are not filled in: secretd has neither (the README says so).
   */
  readonly insertDefaults?: boolean;
  /** `GET /services?status=true`: Docker's ServiceStatus, computed by the route. Default: none. */
  readonly status?: ServiceStatus;
}

/** Docker's ServiceStatus (API 1.41): tasks running, tasks wanted, and tasks of jobs completed. */
export interface ServiceStatus {
  readonly RunningTasks: number;
  readonly DesiredTasks: number;
  readonly CompletedTasks: number;
}

export function serviceSpecJSON(spec: ServiceSpec, options: ServiceJSONOptions = {}): object {
  const delayNs = spec.update.delayNs ?? spec.update.delayMs * 1e6;
  return {
    Name: spec.name,
    Labels: spec.labels,
    TaskTemplate: {
      ContainerSpec: containerSpecJSON(spec.container),
      Resources: { Limits: {}, Reservations: {} },
      ...(options.insertDefaults ? { RestartPolicy: { Condition: 'any', MaxAttempts: 0 } } : {}),
      Placement: spec.constraints?.length ? { Constraints: spec.constraints } : {},
      ForceUpdate: spec.forceUpdate ?? 0,
      Runtime: 'container',
    },
    Mode:
      spec.mode.kind === 'global'
        ? { Global: {} }
        : { Replicated: { Replicas: spec.mode.replicas } },
    UpdateConfig: {
      Parallelism: spec.update.parallelism,
      ...(delayNs > 0 ? { Delay: delayNs } : {}),
      FailureAction: spec.update.failureAction ?? 'pause',
      MaxFailureRatio: 0,
      Order: 'stop-first',
    },
    EndpointSpec: { Mode: 'vip' },
  };
}

export function serviceJSON(service: ServiceRecord, options: ServiceJSONOptions = {}): object {
  return {
    ID: service.id,
    Version: { Index: service.metaIndex },
    CreatedAt: service.createdAt,
    UpdatedAt: service.updatedAt,
    Spec: serviceSpecJSON(service.spec, options),
    Endpoint: { Spec: {} },
    ...(options.status ? { ServiceStatus: options.status } : {}),
  };
}

/**
 * Docker's ServiceStatus from a service's tasks, counted as swarmkit's ListServiceStatuses counts
 * them: tasks whose state is running; a replicated service wants its replicas, a global one as many
 * tasks as are desired running. secretd has no jobs, so none is ever completed.
 */
export function serviceStatus(service: ServiceRecord, tasks: readonly TaskRecord[]): ServiceStatus {
  const own = tasks.filter((t) => t.serviceId === service.id);
  return {
    RunningTasks: own.filter((t) => t.status.state === 'running').length,
    DesiredTasks:
      service.spec.mode.kind === 'replicated'
        ? service.spec.mode.replicas
        : own.filter((t) => t.desiredState === 'running').length,
    CompletedTasks: 0,
  };
}

export function taskJSON(task: TaskRecord): object {
  return {
    ID: task.id,
    Version: { Index: task.metaIndex },
    CreatedAt: task.createdAt,
    UpdatedAt: task.status.at,
    Spec: { ContainerSpec: containerSpecJSON(task.container) },
    ServiceID: task.serviceId,
    ...(task.slot > 0 ? { Slot: task.slot } : {}),
    ...(task.nodeId ? { NodeID: task.nodeId } : {}),
    Status: {
      Timestamp: task.status.at,
      State: task.status.state,
      Message: task.status.message,
      ...(task.status.error ? { Err: task.status.error } : {}),
      ...(task.status.exitCode !== null
        ? { ContainerStatus: { ExitCode: task.status.exitCode } }
        : {}),
      SecretVersions: task.status.secretVersions,
    },
    DesiredState: task.desiredState,
  };
}
