/**
 * A checked ComposeProject and a stack name → what to ask the API for, named and labelled as
 * `docker stack deploy` names and labels them: secrets `STACK_key` (an explicit `name:` as is;
 * external ones looked up, never created), services `STACK_key`, the label
 * `com.docker.stack.namespace=STACK` on both and `com.docker.stack.image` on services;
 * `entrypoint` becomes ContainerSpec.Command and `command` its Args; Env sorted; secret
 * references sorted by name (so the same file always gives the same spec). Every service spec is
 * checked here with the API's own reader, so a spec the manager would refuse fails before anything
 * is created. Pure: files and the environment come through `options`.
 */
import { SecretdError } from '../../errors.ts';
import { checkSecretData, checkSecretName } from '../../node/index.ts';
import type { Lookup } from './interpolate.ts';
import {
  imageLabel,
  namespaceLabel,
  type ComposeProject,
  type SecretDefinition,
  type ServiceDefinition,
} from './model.ts';

export interface TranslateOptions {
  readonly env: Lookup;
  /** Reads a secret's file; throws an error with a `code` (ENOENT…) when it cannot. */
  readonly readFile: (path: string) => Uint8Array;
  /**
   * The API's own reader of a service spec (throws `invalid` naming the field): each service is
   * checked as the API would check it, before anything is sent. loadServiceSpecReader() gives it.
   */
  readonly readServiceSpec: (spec: Record<string, unknown>) => unknown;
}

export interface SecretPlan {
  readonly key: string;
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly data: Uint8Array;
}

export interface SecretRefBody {
  readonly SecretName: string;
  readonly File: {
    readonly Name: string;
    readonly UID: string;
    readonly GID: string;
    readonly Mode: number;
  };
  readonly Secretd?: { readonly OnUpdate: string };
}

/** The ServiceSpec sent to `POST /services/create` and `/services/{id}/update`. */
export interface ServiceSpecBody {
  readonly Name: string;
  readonly Labels: Record<string, string>;
  readonly TaskTemplate: {
    readonly ContainerSpec: {
      readonly Image: string;
      readonly Command?: string[];
      readonly Args?: string[];
      readonly Env?: string[];
      readonly Secrets: SecretRefBody[];
    };
  };
  readonly Mode:
    | { readonly Replicated: { readonly Replicas: number } }
    | { readonly Global: Record<string, never> };
  readonly UpdateConfig: { readonly Parallelism: number; readonly Delay: number };
}

export interface StackPlan {
  readonly stack: string;
  /** Secrets to create or to give a new version, sorted by name. */
  readonly secrets: readonly SecretPlan[];
  /** Names of the external secrets the services use: they must exist already. */
  readonly external: readonly string[];
  /** Sorted by name. */
  readonly services: readonly ServiceSpecBody[];
}

export function checkStackName(stack: string): string {
  if (stack.trim() === '')
    throw new SecretdError('invalid', `invalid stack name: ${JSON.stringify(stack)}`);
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(stack))
    throw new SecretdError(
      'invalid',
      `Invalid stack name ${JSON.stringify(stack.slice(0, 80))}: letters, digits, '_', '.' and '-', starting with a letter or digit`,
    );
  return stack;
}

export function translate(
  project: ComposeProject,
  stack: string,
  options: TranslateOptions,
): StackPlan {
  checkStackName(stack);
  const scope = (key: string): string => `${stack}_${key}`;
  const secretName = (key: string, definition: SecretDefinition): string =>
    definition.name ?? (definition.source.kind === 'external' ? key : scope(key));
  const secrets: SecretPlan[] = [];
  const external = new Set<string>();
  const used = new Set(
    [...project.services.values()].flatMap((s) => s.secrets.map((u) => u.source)),
  );
  try {
    for (const [key, definition] of project.secrets) {
      const name = secretName(key, definition);
      if (definition.source.kind === 'external') {
        if (used.has(key)) external.add(name);
        continue;
      }
      checkNamed(() => checkSecretName(name), `secret ${key}`);
      const data = secretData(key, definition, options);
      checkNamed(() => checkSecretData(data), `secret ${key}`);
      secrets.push({ key, name, labels: { ...definition.labels, [namespaceLabel]: stack }, data });
    }
    secrets.sort((a, b) => a.name.localeCompare(b.name));
    const services = [...project.services].map(([key, service]) =>
      serviceSpec(
        scope(key),
        key,
        service,
        stack,
        (k) => secretName(k, project.secrets.get(k)!),
        options,
      ),
    );
    return {
      stack,
      secrets,
      external: [...external].sort(),
      services: services.sort((a, b) => a.Name.localeCompare(b.Name)),
    };
  } catch (error) {
    for (const secret of secrets) secret.data.fill(0);
    throw error;
  }
}

function secretData(
  key: string,
  definition: SecretDefinition,
  options: TranslateOptions,
): Uint8Array {
  const source = definition.source;
  switch (source.kind) {
    case 'file':
      try {
        return options.readFile(source.path);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new SecretdError(
          'invalid',
          `secret ${key}: cannot read file ${source.path}${code === 'ENOENT' ? ': no such file or directory' : code ? ` (${code})` : ''}`,
        );
      }
    case 'environment': {
      const value = options.env(source.variable);
      if (value === undefined)
        throw new SecretdError(
          'invalid',
          `secret ${key}: environment variable ${source.variable} is not set`,
        );
      return new TextEncoder().encode(value);
    }
    case 'external':
      throw new SecretdError('internal', `secret ${key} is external: it has no data here`);
  }
}

function serviceSpec(
  name: string,
  key: string,
  service: ServiceDefinition,
  stack: string,
  secretName: (key: string) => string,
  options: TranslateOptions,
): ServiceSpecBody {
  const env = options.env;
  const environment = Object.entries(service.environment).flatMap(([k, v]) => {
    // Compose takes an unset or empty value from the deploying shell when that has the variable.
    const value = v === null || v === '' ? (env(k) ?? v) : v;
    return value === null ? [] : [`${k}=${value}`];
  });
  const secrets = service.secrets.map((use) => ({
    SecretName: secretName(use.source),
    File: {
      Name: use.target ?? use.source,
      UID: use.uid ?? '0',
      GID: use.gid ?? '0',
      Mode: use.mode ?? 0o444,
    },
    ...(use.onUpdate === undefined || use.onUpdate === 'none'
      ? {}
      : { Secretd: { OnUpdate: use.onUpdate } }),
  }));
  secrets.sort((a, b) => a.SecretName.localeCompare(b.SecretName));
  const deploy = service.deploy;
  const spec: ServiceSpecBody = {
    Name: name,
    Labels: { ...deploy.labels, [namespaceLabel]: stack, [imageLabel]: service.image },
    TaskTemplate: {
      ContainerSpec: {
        Image: service.image,
        ...(service.entrypoint?.length ? { Command: [...service.entrypoint] } : {}),
        ...(service.command?.length ? { Args: [...service.command] } : {}),
        ...(environment.length ? { Env: environment.sort() } : {}),
        Secrets: secrets,
      },
    },
    Mode:
      deploy.mode === 'global'
        ? { Global: {} }
        : { Replicated: { Replicas: deploy.replicas ?? 1 } },
    UpdateConfig: { Parallelism: deploy.parallelism ?? 1, Delay: deploy.delayNs ?? 0 },
  };
  checkNamed(
    () => options.readServiceSpec(spec as unknown as Record<string, unknown>),
    `service ${key}`,
  );
  return spec;
}

function checkNamed(check: () => unknown, what: string): void {
  try {
    check();
  } catch (error) {
    if (error instanceof SecretdError)
      throw new SecretdError(
        'invalid',
        `${what}: ${error.message.replace(/^Invalid service spec: /, '')}`,
      );
    throw error;
  }
}
