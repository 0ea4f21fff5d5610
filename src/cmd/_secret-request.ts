/**
 * A `--secret` reference (the CLI's parser, _secret-spec.ts) in the shape the agent's
 * /secretd/local/containers route takes: for `secretd oci-runtime` (which loads this only for a
 * container that names a secret) and `secretd spawn`.
 */
import { SecretdError } from '../errors.ts';
import { parseSecretFlag } from './_secret-spec.ts';

/** One reference as the agent's route takes it. */
export interface SecretRequestRef {
  readonly Secret: string;
  readonly Version?: number;
  readonly Target: string;
  readonly UID: string;
  readonly GID: string;
  readonly Mode: number;
  readonly OnUpdate: string;
}

/** `--secret` syntax → the route's shape; `where` names the reference in messages (the variable or annotation). */
export function secretRequestRef(where: string, spec: string): SecretRequestRef {
  let flag;
  try {
    flag = parseSecretFlag(spec);
  } catch (error) {
    throw new SecretdError(
      'invalid',
      `Cannot prepare secrets: ${where} is not a valid reference: ${(error as Error).message.replace(/^Invalid --secret:? ?/, '')}`,
    );
  }
  return {
    Secret: flag.SecretName,
    ...(flag.Secretd?.Version === undefined ? {} : { Version: flag.Secretd.Version }),
    Target: flag.File.Name,
    UID: flag.File.UID,
    GID: flag.File.GID,
    Mode: flag.File.Mode,
    OnUpdate: flag.Secretd?.OnUpdate ?? 'none',
  };
}
