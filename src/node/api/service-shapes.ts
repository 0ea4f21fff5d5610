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
import { stopGraceMsDefault } from '../executor/limits.ts';
import { refuseUnsupported } from './service-unsupported.ts';
import { checkLabels, checkVersionNumber, onUpdateText, parseOnUpdate } from '../store/secret-rules.ts';
import type { ContainerSpec, OnUpdate, SecretReference, ServiceRecord, ServiceSpec, TaskRecord } from '../store/types.ts';

// Swarmkit's rule (a DNS name component, underscores allowed as `docker stack` names services STACK_svc).
const serviceNamePattern = /^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$/;
const idPattern = /^[0-9]{1,10}$/;

export type ServiceSpecInput = Omit<ServiceSpec, 'container'> & { container: Omit<ServiceSpec['container'], 'secrets'> & { secrets: SecretRefInput[] } };
export interface SecretRefInput {
  readonly secretId: string | null;
  readonly secretName: string;
  readonly target: string;
  readonly uid: string;
  readonly gid: string;
  readonly mode: number;
  readonly version?: number;
  readonly onUpdate?: OnUpdate;
}

function object(value: unknown, what: string, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`Invalid service spec: ${what} must be an object`);
  for (const key of Object.keys(value)) if (!allowed.includes(key)) throw invalid(`Invalid service spec: unknown field ${what}.${key.slice(0, 64)}`);
  return value as Record<string, unknown>;
}

function strings(value: unknown, what: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw invalid(`Invalid service spec: ${what} must be a list of strings`);
  return value as string[];
}

export function readServiceSpec(body: Record<string, unknown>): ServiceSpecInput {
  refuseUnsupported(body);
  if (typeof body.Name !== 'string' || !serviceNamePattern.test(body.Name)) {
    throw invalid(`Invalid service name ${JSON.stringify(String(body.Name ?? '').slice(0, 80))}: 1 to 63 letters, digits, dashes and underscores, starting and ending with a letter or digit`);
  }
  const template = object(body.TaskTemplate, 'TaskTemplate', ['ContainerSpec', 'RestartPolicy', 'Resources', 'Placement', 'ForceUpdate', 'Runtime', 'Networks', 'LogDriver']);
  const container = object(template.ContainerSpec, 'TaskTemplate.ContainerSpec', ['Image', 'Command', 'Args', 'Env', 'Secrets', 'Labels', 'Init', 'Isolation', 'StopGracePeriod', 'Hostname', 'Dir', 'User', 'TTY', 'OpenStdin', 'Mounts', 'Configs', 'Privileges', 'DNSConfig', 'Hosts', 'StopSignal', 'Healthcheck', 'Groups', 'ReadOnly', 'Sysctls', 'CapabilityAdd', 'CapabilityDrop', 'Ulimits', 'Duration']);
  if (typeof container.Image !== 'string' || container.Image === '') throw invalid('Invalid service spec: TaskTemplate.ContainerSpec.Image must be provided');
  const command = strings(container.Command, 'ContainerSpec.Command');
  const args = strings(container.Args, 'ContainerSpec.Args');
  if (command.length + args.length === 0) throw invalid('Invalid service spec: give a command to run (secretd images are root filesystems without a default command)');
  const secrets = (Array.isArray(container.Secrets) ? container.Secrets : container.Secrets == null ? [] : null)?.map(readSecretRef);
  if (!secrets) throw invalid('Invalid service spec: ContainerSpec.Secrets must be a list');
  const targets = new Map<string, string>();
  for (const ref of secrets) {
    const other = targets.get(ref.target);
    if (other !== undefined) throw invalid(`Invalid service spec: secret references '${other}' and '${ref.secretName}' have a conflicting target: '${ref.target}'`);
    targets.set(ref.target, ref.secretName);
  }
  checkSameSecretAgrees(secrets);
  const forceUpdate = template.ForceUpdate ?? 0;
  if (typeof forceUpdate !== 'number' || !Number.isSafeInteger(forceUpdate) || forceUpdate < 0) throw invalid('Invalid service spec: TaskTemplate.ForceUpdate must be a counter (0 or more)');
  return {
    name: body.Name,
    labels: checkLabels(body.Labels, 'service'),
    container: { image: container.Image, command, args, env: strings(container.Env, 'ContainerSpec.Env'), secrets },
    mode: readMode(body.Mode),
    update: readUpdateConfig(body.UpdateConfig),
    ...(forceUpdate > 0 ? { forceUpdate } : {}),
  };
}

function readSecretRef(value: unknown): SecretRefInput {
  const ref = object(value, 'secret reference', ['File', 'SecretID', 'SecretName', 'Secretd']);
  if (typeof ref.SecretName !== 'string' || ref.SecretName === '') throw invalid('Invalid service spec: malformed secret reference (SecretName is required)');
  const file = object(ref.File ?? { Name: ref.SecretName }, 'secret reference File', ['Name', 'UID', 'GID', 'Mode']);
  const target = typeof file.Name === 'string' ? file.Name : '';
  if (target === '' || target.includes('\0') || (!target.startsWith('/') && target.split('/').includes('..'))) throw invalid(`Invalid service spec: malformed file secret reference, invalid target file name ${JSON.stringify(target.slice(0, 80))}`);
  const uid = file.UID === undefined ? '0' : String(file.UID);
  const gid = file.GID === undefined ? '0' : String(file.GID);
  if (!idPattern.test(uid) || !idPattern.test(gid)) throw invalid(`Invalid service spec: secret ${ref.SecretName} needs numeric UID and GID`);
  const mode = file.Mode === undefined ? 0o444 : file.Mode;
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o777) throw invalid(`Invalid service spec: secret ${ref.SecretName} has an invalid file mode (expected 0 to 0777)`);
  const base = { secretId: typeof ref.SecretID === 'string' && ref.SecretID !== '' ? ref.SecretID : null, secretName: ref.SecretName, target, uid, gid, mode };
  return { ...base, ...readExtension(ref.Secretd, ref.SecretName, target) };
}

function readExtension(value: unknown, name: string, target: string): { version?: number; onUpdate?: OnUpdate } {
  if (value === undefined || value === null) return {};
  const extension = object(value, `secret reference ${name.slice(0, 64)}: Secretd`, ['Version', 'OnUpdate']);
  const version = extension.Version === undefined || extension.Version === null ? undefined : checkVersionNumber(extension.Version, `version of secret ${name.slice(0, 64)}`);
  const onUpdate = extension.OnUpdate === undefined || extension.OnUpdate === null ? undefined : parseOnUpdate(extension.OnUpdate);
  if (onUpdate !== undefined && onUpdate.kind !== 'none' && version !== undefined) {
    throw invalid(`Invalid service spec: secret ${name.slice(0, 64)} is pinned to version ${version}, so on-update ${onUpdateText(onUpdate)} would never apply`);
  }
  if (onUpdate?.kind === 'signal' && target.startsWith('/')) {
    throw invalid(`Invalid service spec: secret ${name.slice(0, 64)} has the absolute target ${JSON.stringify(target.slice(0, 80))}, which cannot change under a running container: use on-update restart`);
  }
  return { ...(version === undefined ? {} : { version }), ...(onUpdate === undefined || onUpdate.kind === 'none' ? {} : { onUpdate }) };
}

/** A task holds one version of each secret, so every reference to one secret must agree on which. */
function checkSameSecretAgrees(secrets: readonly SecretRefInput[]): void {
  const first = new Map<string, SecretRefInput>();
  for (const ref of secrets) {
    const other = first.get(ref.secretName);
    if (other === undefined) first.set(ref.secretName, ref);
    else if (other.version !== ref.version || onUpdateText(other.onUpdate) !== onUpdateText(ref.onUpdate)) {
      throw invalid(`Invalid service spec: the references to secret ${ref.secretName} must use the same version and on-update`);
    }
  }
}

function secretRefJSON(ref: SecretReference): object {
  const extension = { ...(ref.version === undefined ? {} : { Version: ref.version }), ...(ref.onUpdate === undefined ? {} : { OnUpdate: onUpdateText(ref.onUpdate) }) };
  return {
    File: { Name: ref.target, UID: ref.uid, GID: ref.gid, Mode: ref.mode },
    SecretID: ref.secretId,
    SecretName: ref.secretName,
    ...(Object.keys(extension).length > 0 ? { Secretd: extension } : {}),
  };
}

function readMode(value: unknown): ServiceSpec['mode'] {
  if (value === undefined || value === null) return { kind: 'replicated', replicas: 1 };
  const mode = object(value, 'Mode', ['Replicated', 'Global']);
  if (mode.Global !== undefined) return { kind: 'global' };
  const replicated = object(mode.Replicated ?? {}, 'Mode.Replicated', ['Replicas']);
  const replicas = replicated.Replicas ?? 1;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0 || replicas > 1000) throw invalid('Invalid service spec: Mode.Replicated.Replicas must be 0 to 1000');
  return { kind: 'replicated', replicas };
}

function readUpdateConfig(value: unknown): ServiceSpec['update'] {
  if (value === undefined || value === null) return { parallelism: 1, delayMs: 0 };
  const config = object(value, 'UpdateConfig', ['Parallelism', 'Delay', 'FailureAction', 'Monitor', 'MaxFailureRatio', 'Order']);
  const parallelism = config.Parallelism ?? 1;
  const delayNs = config.Delay ?? 0;
  if (typeof parallelism !== 'number' || !Number.isInteger(parallelism) || parallelism < 0) throw invalid('Invalid service spec: UpdateConfig.Parallelism must be 0 or more');
  if (typeof delayNs !== 'number' || delayNs < 0) throw invalid('Invalid service spec: UpdateConfig.Delay must be 0 or more nanoseconds');
  return { parallelism, delayMs: Math.round(delayNs / 1e6) };
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

export function serviceSpecJSON(spec: ServiceSpec): object {
  return {
    Name: spec.name,
    Labels: spec.labels,
    TaskTemplate: {
      ContainerSpec: containerSpecJSON(spec.container),
      Resources: { Limits: {}, Reservations: {} },
      Placement: {},
      ForceUpdate: spec.forceUpdate ?? 0,
      Runtime: 'container',
    },
    Mode: spec.mode.kind === 'global' ? { Global: {} } : { Replicated: { Replicas: spec.mode.replicas } },
    UpdateConfig: { Parallelism: spec.update.parallelism, ...(spec.update.delayMs > 0 ? { Delay: spec.update.delayMs * 1e6 } : {}), FailureAction: 'pause', MaxFailureRatio: 0, Order: 'stop-first' },
    EndpointSpec: { Mode: 'vip' },
  };
}

export function serviceJSON(service: ServiceRecord): object {
  return { ID: service.id, Version: { Index: service.metaIndex }, CreatedAt: service.createdAt, UpdatedAt: service.updatedAt, Spec: serviceSpecJSON(service.spec), Endpoint: { Spec: {} } };
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
      ...(task.status.exitCode !== null ? { ContainerStatus: { ExitCode: task.status.exitCode } } : {}),
      SecretVersions: task.status.secretVersions,
    },
    DesiredState: task.desiredState,
  };
}
