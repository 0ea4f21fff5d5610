/**
 * What secretd takes from compose files, once read and checked: services and secrets, nothing
 * else. Files (`path`) are absolute; values are interpolated.
 */

export type SecretSource =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'environment'; readonly variable: string }
  | { readonly kind: 'external' };

export interface SecretDefinition {
  /** `name:` — for an external secret the name to look up; for others a name used as is (not scoped to the stack), as Docker does. */
  readonly name?: string;
  readonly source: SecretSource;
  readonly labels: Readonly<Record<string, string>>;
}

/** A service's use of a secret: short syntax gives only `source`. */
export interface SecretUse {
  readonly source: string;
  readonly target?: string;
  readonly uid?: string;
  readonly gid?: string;
  readonly mode?: number;
  /** secretd's extension `x-secretd-on-update`: none, restart or signal:SIG. */
  readonly onUpdate?: string;
}

export interface DeployDefinition {
  readonly mode?: 'replicated' | 'global';
  readonly replicas?: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly parallelism?: number;
  readonly delayNs?: number;
}

export interface ServiceDefinition {
  readonly image: string;
  readonly command?: readonly string[];
  readonly entrypoint?: readonly string[];
  /** null: take the value from the deploying shell's environment, as compose does. */
  readonly environment: Readonly<Record<string, string | null>>;
  readonly secrets: readonly SecretUse[];
  readonly deploy: DeployDefinition;
}

export interface ComposeProject {
  /** The files, as given, for messages. */
  readonly files: readonly string[];
  readonly services: ReadonlyMap<string, ServiceDefinition>;
  readonly secrets: ReadonlyMap<string, SecretDefinition>;
}

export const namespaceLabel = 'com.docker.stack.namespace';
export const imageLabel = 'com.docker.stack.image';
