/**
 * The docker CLI's `--secret` forms: `name`, or `source=name,target=path,uid=0,gid=0,mode=0444`,
 * plus secretd's: `source=name@3` pins version 3 (no `@`: follow the newest) and
 * `on-update=none|signal:SIGHUP|restart` says what a running task gets when that version changes.
 *
 * One parser for the CLI (`service create --secret`, src/cmd/_secret-spec.ts re-exports it) and
 * the node's agent, which reads the references other engines' containers name in this syntax
 * (api/routes/local-containers.ts) so that the OCI runtime sends their text as it found it. It
 * lives in the store's room with the other rules both share, which load no API server (hono).
 */
import { SecretdError } from '../../errors.ts';
import { checkVersionNumber, onUpdateText, parseOnUpdate } from './secret-rules.ts';

export interface SecretFlag {
  readonly SecretName: string;
  readonly File: {
    readonly Name: string;
    readonly UID: string;
    readonly GID: string;
    readonly Mode: number;
  };
  readonly Secretd?: { readonly Version?: number; readonly OnUpdate?: string };
}

export function parseSecretFlag(value: string): SecretFlag {
  if (value === '') throw new SecretdError('invalid', 'Invalid --secret: source is required');
  const fields: Record<string, string> = {};
  if (!value.includes('=')) fields.source = value;
  else {
    for (const part of value.split(',')) {
      const eq = part.indexOf('=');
      const key = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
      if (!['source', 'src', 'target', 'uid', 'gid', 'mode', 'on-update'].includes(key))
        throw new SecretdError(
          'invalid',
          `Invalid --secret ${JSON.stringify(value)}: unknown field ${JSON.stringify(key)}`,
        );
      fields[key === 'src' ? 'source' : key] = eq === -1 ? '' : part.slice(eq + 1);
    }
  }
  const [source = '', versionText, ...extra] = (fields.source ?? '').split('@');
  if (source === '')
    throw new SecretdError(
      'invalid',
      `Invalid --secret ${JSON.stringify(value)}: source is required`,
    );
  if (extra.length > 0)
    throw new SecretdError(
      'invalid',
      `Invalid --secret ${JSON.stringify(value)}: expected source=NAME or source=NAME@VERSION`,
    );
  const version =
    versionText === undefined
      ? undefined
      : flagPart(value, () => checkVersionNumber(versionText, 'version'));
  const onUpdate =
    fields['on-update'] === undefined
      ? undefined
      : flagPart(value, () => parseOnUpdate(fields['on-update']));
  if (version !== undefined && onUpdate !== undefined && onUpdate.kind !== 'none') {
    throw new SecretdError(
      'invalid',
      `Invalid --secret ${JSON.stringify(value)}: a pinned version never changes, so on-update ${onUpdateText(onUpdate)} would never apply`,
    );
  }
  const extension = {
    ...(version === undefined ? {} : { Version: version }),
    ...(onUpdate === undefined || onUpdate.kind === 'none'
      ? {}
      : { OnUpdate: onUpdateText(onUpdate) }),
  };
  const modeText = fields.mode ?? '0444';
  // Like Go's ParseUint with base 0: a leading 0 means octal.
  const mode = /^0[0-7]*$/.test(modeText)
    ? parseInt(modeText, 8)
    : /^[1-9][0-9]*$/.test(modeText)
      ? Number(modeText)
      : NaN;
  if (!Number.isInteger(mode) || mode > 0o777)
    throw new SecretdError(
      'invalid',
      `Invalid --secret ${JSON.stringify(value)}: invalid file mode ${JSON.stringify(modeText)}`,
    );
  return {
    SecretName: source,
    File: {
      Name: fields.target || source,
      UID: fields.uid ?? '0',
      GID: fields.gid ?? '0',
      Mode: mode,
    },
    ...(Object.keys(extension).length > 0 ? { Secretd: extension } : {}),
  };
}

/** Runs a check on part of a --secret value, naming the whole flag in its error. */
function flagPart<T>(value: string, check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new SecretdError(
      'invalid',
      `Invalid --secret ${JSON.stringify(value)}: ${(error as Error).message.replace(/^Invalid /, '')}`,
    );
  }
}
