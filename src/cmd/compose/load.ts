/**
 * Compose files → a checked ComposeProject. Each file is parsed as YAML 1.1 (what the docker CLI's
 * parser reads: `mode: 0400` is octal), interpolated, checked key by key (an error names the file
 * and the key), then the files are merged in order, later ones overriding, as `docker stack deploy
 * -c a.yml -c b.yml` does. Keys Docker itself ignores get Docker's warnings; keys Docker honours
 * but secretd cannot are errors, so a stack never runs differently from what its file says.
 * Pure: the environment is passed in; no file is read here but the ones given as text.
 */
import { isAbsolute, join } from 'node:path';
import { parse as parseYAML } from 'yaml';
import { SecretdError } from '../../errors.ts';
import { durationNs } from '../_duration.ts';
import { interpolateValue, isMapping, type Lookup } from './interpolate.ts';
import type {
  ComposeProject,
  DeployDefinition,
  SecretDefinition,
  SecretUse,
  ServiceDefinition,
} from './model.ts';
import { mergeProjects } from './merge.ts';
import { splitCommand } from './shell-words.ts';

export interface ComposeFileText {
  /** The name as given on the command line (`-` for stdin), used in messages. */
  readonly name: string;
  readonly text: string;
}

export interface LoadOptions {
  /** Where relative `file:` paths start: the first compose file's directory, as Docker has it. */
  readonly workingDir: string;
  readonly env: Lookup;
}

export interface Loaded {
  readonly project: ComposeProject;
  /** Lines for stderr, in Docker's words where Docker warns too. */
  readonly warnings: readonly string[];
}

/** Docker ignores these with "Ignoring unsupported options: …" (its types.UnsupportedProperties). */
const dockerUnsupported = [
  'build',
  'cgroupns_mode',
  'cgroup_parent',
  'devices',
  'domainname',
  'external_links',
  'ipc',
  'links',
  'mac_address',
  'network_mode',
  'pid',
  'privileged',
  'restart',
  'security_opt',
  'shm_size',
  'userns_mode',
];
/** Docker ignores these with "Ignoring deprecated options: …". */
const dockerDeprecated: Record<string, string> = {
  container_name: 'Setting the container name is not supported.',
  expose:
    "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
};
/** Docker refuses these: "Compose file contains unsupported options: …". */
const dockerForbidden: Record<string, string> = {
  extends: 'Support for `extends` is not implemented yet.',
  volume_driver:
    'Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.',
  volumes_from:
    'To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.',
  cpu_quota: 'Set resource limits using deploy.resources',
  cpu_shares: 'Set resource limits using deploy.resources',
  cpuset: 'Set resource limits using deploy.resources',
  mem_limit: 'Set resource limits using deploy.resources',
  memswap_limit: 'Set resource limits using deploy.resources',
};
const noNetwork = 'secretd runs containers without a network';
const noMounts = 'secretd mounts only /run/secrets and a /tmp into containers';
/** Keys Docker honours that secretd cannot: an error, never a silent difference. */
const secretdUnsupported: Record<string, string> = {
  ports: noNetwork,
  networks: noNetwork,
  dns: noNetwork,
  dns_search: noNetwork,
  extra_hosts: noNetwork,
  hostname: noNetwork,
  volumes: noMounts,
  tmpfs: noMounts,
  configs: 'configs are not supported by secretd',
  cap_add: '',
  cap_drop: '',
  credential_spec: '',
  env_file: '',
  healthcheck: '',
  init: '',
  isolation: '',
  logging: '',
  read_only: '',
  stop_grace_period: '',
  stop_signal: '',
  sysctls: '',
  tty: '',
  stdin_open: '',
  ulimits: '',
  user: '',
  working_dir: '',
  platform: '',
  profiles: '',
};
const deployUnsupported = [
  'resources',
  'restart_policy',
  'placement',
  'endpoint_mode',
  'rollback_config',
];

export function loadCompose(files: readonly ComposeFileText[], options: LoadOptions): Loaded {
  if (files.length === 0)
    throw new SecretdError('invalid', 'Please specify a Compose file (with --compose-file)');
  const unset = new Set<string>();
  const warnings: string[] = [];
  const unsupported = new Set<string>();
  const deprecated = new Map<string, string>();
  const projects = files.map((file) => {
    try {
      return readFile(file, options, { unset, unsupported, deprecated, warnings });
    } catch (error) {
      if (error instanceof SecretdError)
        throw new SecretdError('invalid', `Invalid compose file ${file.name}: ${error.message}`);
      throw error;
    }
  });
  for (const name of [...unset].sort())
    warnings.unshift(`The "${name}" variable is not set. Defaulting to a blank string.`);
  if (unsupported.size > 0)
    warnings.push(`Ignoring unsupported options: ${[...unsupported].sort().join(', ')}\n`);
  if (deprecated.size > 0)
    warnings.push(
      `Ignoring deprecated options:\n\n${[...deprecated]
        .map(([k, v]) => `${k}: ${v}`)
        .sort()
        .join('\n\n')}\n`,
    );
  return {
    project: mergeProjects(
      files.map((f) => f.name),
      projects,
    ),
    warnings,
  };
}

interface Collect {
  readonly unset: Set<string>;
  readonly unsupported: Set<string>;
  readonly deprecated: Map<string, string>;
  readonly warnings: string[];
}

/** One file's services and secrets (all fields optional: a later file may complete them). */
export interface PartialProject {
  readonly services: Map<string, PartialService>;
  readonly secrets: Map<string, SecretDefinition>;
}

export type PartialService = Partial<Omit<ServiceDefinition, 'deploy'>> & {
  readonly deploy?: Partial<DeployDefinition>;
};

function readFile(file: ComposeFileText, options: LoadOptions, collect: Collect): PartialProject {
  let parsed: unknown;
  try {
    parsed = parseYAML(file.text, {
      version: '1.1',
      merge: true,
      uniqueKeys: true,
      prettyErrors: true,
    });
  } catch (error) {
    throw new SecretdError(
      'invalid',
      `cannot parse YAML: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  if (!isMapping(parsed)) throw new SecretdError('invalid', 'top-level object must be a mapping');
  const forbidden = Object.entries(isMapping(parsed.services) ? parsed.services : {}).flatMap(
    ([, s]) => (isMapping(s) ? Object.keys(s).filter((k) => k in dockerForbidden) : []),
  );
  if (forbidden.length > 0)
    throw new SecretdError(
      'invalid',
      `Compose file contains unsupported options:\n\n${[...new Set(forbidden)]
        .map((k) => `${k}: ${dockerForbidden[k]}`)
        .sort()
        .join('\n\n')}\n`,
    );
  const top = interpolateTop(parsed, options.env, collect.unset);
  checkKeys(top, '', ['version', 'name', 'services', 'secrets', 'networks', 'volumes', 'configs']);
  if (
    top.version !== undefined &&
    !(typeof top.version === 'string' && /^3(\.\d+)?$/.test(top.version))
  )
    throw new SecretdError('invalid', `unsupported Compose file version: ${String(top.version)}`);
  if (top.name !== undefined && typeof top.name !== 'string') throw typeError('name', 'a string');
  for (const key of ['networks', 'volumes', 'configs']) {
    if (
      top[key] !== undefined &&
      top[key] !== null &&
      !(isMapping(top[key]) && Object.keys(top[key]).length === 0)
    ) {
      throw new SecretdError(
        'invalid',
        `${key} is not supported by secretd (${key === 'networks' ? noNetwork : key === 'volumes' ? noMounts : 'configs are not supported by secretd'})`,
      );
    }
  }
  const services = new Map<string, PartialService>();
  for (const [name, value] of Object.entries(mapping(top.services ?? {}, 'services')))
    services.set(name, readService(value, `services.${name}`, collect));
  const secrets = new Map<string, SecretDefinition>();
  for (const [name, value] of Object.entries(mapping(top.secrets ?? {}, 'secrets')))
    secrets.set(name, readSecret(value, `secrets.${name}`, options));
  return { services, secrets };
}

/** Interpolates the sections Docker interpolates (not top-level `x-` extensions). */
function interpolateTop(
  parsed: Record<string, unknown>,
  lookup: Lookup,
  unset: Set<string>,
): Record<string, unknown> {
  const context = { lookup, unset };
  return Object.fromEntries(
    Object.entries(parsed).map(([key, value]) => [
      key,
      key.startsWith('x-') ? value : interpolateValue(value, key, context),
    ]),
  );
}

function readService(value: unknown, path: string, collect: Collect): PartialService {
  const service = mapping(value ?? {}, path);
  const supported = [
    'image',
    'command',
    'entrypoint',
    'environment',
    'secrets',
    'deploy',
    'labels',
    'depends_on',
  ];
  for (const key of Object.keys(service)) {
    if (key.startsWith('x-') || supported.includes(key)) continue;
    if (dockerUnsupported.includes(key)) collect.unsupported.add(key);
    else if (key in dockerDeprecated) collect.deprecated.set(key, dockerDeprecated[key]!);
    else if (key in secretdUnsupported)
      throw new SecretdError(
        'invalid',
        `${path}.${key} is not supported by secretd${secretdUnsupported[key] ? ` (${secretdUnsupported[key]})` : ''}`,
      );
    else throw unknownKey(path, key);
  }
  if (service.labels !== undefined)
    collect.warnings.push(
      `${path}.labels: secretd keeps no container labels; ignoring them (deploy.labels label the service)`,
    );
  return {
    ...(service.image === undefined ? {} : { image: string(service.image, `${path}.image`) }),
    ...(service.command === undefined
      ? {}
      : { command: command(service.command, `${path}.command`) }),
    ...(service.entrypoint === undefined
      ? {}
      : { entrypoint: command(service.entrypoint, `${path}.entrypoint`) }),
    ...(service.environment === undefined
      ? {}
      : { environment: environment(service.environment, `${path}.environment`) }),
    ...(service.secrets === undefined
      ? {}
      : {
          secrets: list(service.secrets, `${path}.secrets`).map((item, i) =>
            secretUse(item, `${path}.secrets[${i}]`),
          ),
        }),
    ...(service.deploy === undefined ? {} : { deploy: deploy(service.deploy, `${path}.deploy`) }),
  };
}

function readSecret(value: unknown, path: string, options: LoadOptions): SecretDefinition {
  const secret = mapping(value ?? {}, path);
  checkKeys(secret, path, [
    'file',
    'environment',
    'external',
    'name',
    'labels',
    'driver',
    'driver_opts',
    'template_driver',
  ]);
  for (const key of ['driver', 'driver_opts', 'template_driver'])
    if (secret[key] !== undefined)
      throw new SecretdError(
        'invalid',
        `${path}.${key} is not supported by secretd (secret drivers and templates)`,
      );
  let name = secret.name === undefined ? undefined : string(secret.name, `${path}.name`);
  const labels = secret.labels === undefined ? {} : stringMap(secret.labels, `${path}.labels`);
  const external =
    secret.external === undefined
      ? false
      : isMapping(secret.external)
        ? true
        : bool(secret.external, `${path}.external`);
  if (isMapping(secret.external)) {
    checkKeys(secret.external, `${path}.external`, ['name']);
    if (secret.external.name !== undefined) {
      if (name !== undefined)
        throw new SecretdError(
          'invalid',
          `${path}: external.name and name conflict; only use name`,
        );
      name = string(secret.external.name, `${path}.external.name`);
    }
  }
  const given = (['file', 'environment'] as const).filter((k) => secret[k] !== undefined);
  if (external && given.length > 0)
    throw new SecretdError(
      'invalid',
      `${path}: conflicting parameters "external" and "${given[0]}" specified`,
    );
  if (given.length > 1)
    throw new SecretdError(
      'invalid',
      `${path}: conflicting parameters "file" and "environment" specified`,
    );
  const base = { ...(name === undefined ? {} : { name }), labels };
  if (external) return { ...base, source: { kind: 'external' } };
  if (secret.file !== undefined) {
    const file = string(secret.file, `${path}.file`);
    return {
      ...base,
      source: { kind: 'file', path: isAbsolute(file) ? file : join(options.workingDir, file) },
    };
  }
  if (secret.environment !== undefined)
    return {
      ...base,
      source: { kind: 'environment', variable: string(secret.environment, `${path}.environment`) },
    };
  throw new SecretdError('invalid', `${path}: give file, environment or external`);
}

function secretUse(value: unknown, path: string): SecretUse {
  if (typeof value === 'string') return { source: value };
  const use = mapping(value, path);
  checkKeys(use, path, ['source', 'target', 'uid', 'gid', 'mode', 'x-secretd-on-update']);
  if (use.source === undefined) throw new SecretdError('invalid', `${path}.source is required`);
  return {
    source: string(use.source, `${path}.source`),
    ...(use.target === undefined ? {} : { target: string(use.target, `${path}.target`) }),
    ...(use.uid === undefined ? {} : { uid: numericId(use.uid, `${path}.uid`) }),
    ...(use.gid === undefined ? {} : { gid: numericId(use.gid, `${path}.gid`) }),
    ...(use.mode === undefined ? {} : { mode: fileMode(use.mode, `${path}.mode`) }),
    ...(use['x-secretd-on-update'] === undefined
      ? {}
      : { onUpdate: string(use['x-secretd-on-update'], `${path}.x-secretd-on-update`) }),
  };
}

function deploy(value: unknown, path: string): Partial<DeployDefinition> {
  const section = mapping(value ?? {}, path);
  for (const key of Object.keys(section))
    if (deployUnsupported.includes(key))
      throw new SecretdError('invalid', `${path}.${key} is not supported by secretd`);
  checkKeys(section, path, ['mode', 'replicas', 'labels', 'update_config']);
  let mode: DeployDefinition['mode'];
  if (section.mode !== undefined) {
    if (section.mode !== 'replicated' && section.mode !== 'global')
      throw new SecretdError(
        'invalid',
        `${path}.mode must be replicated or global (got ${JSON.stringify(section.mode)})`,
      );
    mode = section.mode;
  }
  const update =
    section.update_config === undefined
      ? {}
      : updateConfig(section.update_config, `${path}.update_config`);
  return {
    ...(mode === undefined ? {} : { mode }),
    ...(section.replicas === undefined
      ? {}
      : { replicas: wholeNumber(section.replicas, `${path}.replicas`) }),
    ...(section.labels === undefined
      ? {}
      : { labels: stringMap(section.labels, `${path}.labels`) }),
    ...update,
  };
}

function updateConfig(value: unknown, path: string): { parallelism?: number; delayNs?: number } {
  const config = mapping(value ?? {}, path);
  checkKeys(config, path, [
    'parallelism',
    'delay',
    'failure_action',
    'order',
    'monitor',
    'max_failure_ratio',
  ]);
  // What secretd does is fixed: stop-first, pause on failure. Say so rather than ignore another choice.
  if (config.order !== undefined && config.order !== 'stop-first')
    throw new SecretdError('invalid', `${path}.order: secretd updates stop-first only`);
  if (config.failure_action !== undefined && config.failure_action !== 'pause')
    throw new SecretdError('invalid', `${path}.failure_action: secretd pauses on failure only`);
  for (const key of ['monitor', 'max_failure_ratio'])
    if (config[key] !== undefined)
      throw new SecretdError('invalid', `${path}.${key} is not supported by secretd`);
  let delayNs: number | undefined;
  if (config.delay !== undefined) {
    const text = string(
      typeof config.delay === 'number' ? `${config.delay}s` : config.delay,
      `${path}.delay`,
    );
    try {
      delayNs = durationNs(text);
    } catch {
      throw new SecretdError(
        'invalid',
        `${path}.delay must be a duration such as 10s or 1m30s (got ${JSON.stringify(text)})`,
      );
    }
  }
  return {
    ...(config.parallelism === undefined
      ? {}
      : { parallelism: wholeNumber(config.parallelism, `${path}.parallelism`) }),
    ...(delayNs === undefined ? {} : { delayNs }),
  };
}

function environment(value: unknown, path: string): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      const entry = string(item, `${path}[${i}]`);
      const eq = entry.indexOf('=');
      if (eq === 0 || entry === '')
        throw new SecretdError(
          'invalid',
          `${path}[${i}] must be KEY=VALUE or KEY (got ${JSON.stringify(entry)})`,
        );
      out[eq === -1 ? entry : entry.slice(0, eq)] = eq === -1 ? null : entry.slice(eq + 1);
    });
    return out;
  }
  for (const [key, item] of Object.entries(mapping(value, path)))
    out[key] = item === null ? null : scalarText(item, `${path}.${key}`);
  return out;
}

function command(value: unknown, path: string): string[] {
  if (typeof value === 'string') {
    try {
      return splitCommand(value);
    } catch (error) {
      throw new SecretdError('invalid', `${path}: ${(error as Error).message}`);
    }
  }
  return list(value, path).map((item, i) => scalarText(item, `${path}[${i}]`));
}

function checkKeys(value: Record<string, unknown>, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(value))
    if (!key.startsWith('x-') && !allowed.includes(key)) throw unknownKey(path, key);
}

function unknownKey(path: string, key: string): SecretdError {
  return new SecretdError(
    'invalid',
    `${path === '' ? '(root)' : path}: additional property ${JSON.stringify(key)} is not allowed`,
  );
}

function typeError(path: string, expected: string, value?: unknown): SecretdError {
  return new SecretdError(
    'invalid',
    `${path} must be ${expected}${value === undefined ? '' : ` (got ${describe(value)})`}`,
  );
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (isMapping(value)) return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`.slice(0, 80);
}

function mapping(value: unknown, path: string): Record<string, unknown> {
  if (!isMapping(value)) throw typeError(path, 'a mapping', value);
  return value;
}

function list(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw typeError(path, 'a list', value);
  return value;
}

function string(value: unknown, path: string): string {
  if (typeof value !== 'string') throw typeError(path, 'a string', value);
  return value;
}

function bool(value: unknown, path: string): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === 'false') return value === 'true';
  throw typeError(path, 'a boolean', value);
}

/** A string, number or boolean as text (environment values, command words). */
function scalarText(value: unknown, path: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw typeError(path, 'a string, number or boolean', value);
}

function stringMap(value: unknown, path: string): Record<string, string> {
  if (Array.isArray(value)) return environmentToLabels(environment(value, path));
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(mapping(value, path)))
    out[key] = item === null ? '' : scalarText(item, `${path}.${key}`);
  return out;
}

function environmentToLabels(env: Record<string, string | null>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v ?? '']));
}

/** Whole numbers may come interpolated, as strings of digits (Docker casts them the same way). */
function wholeNumber(value: unknown, path: string): number {
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 0)
    throw typeError(path, 'a whole number', value);
  return number;
}

function numericId(value: unknown, path: string): string {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string' || !/^\d{1,10}$/.test(text))
    throw typeError(path, 'a numeric id', value);
  return text;
}

/** A number (YAML 1.1 reads `0400` as octal, as Docker's parser does) or a string of octal digits ("0400", "0o400"). */
function fileMode(value: unknown, path: string): number {
  const mode =
    typeof value === 'string' && /^(0o?)?[0-7]{1,4}$/.test(value)
      ? parseInt(value.replace(/^0o/, ''), 8)
      : value;
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o777)
    throw typeError(path, 'a file mode from 0 to 0777 (octal)', value);
  return mode;
}
