/** The docker CLI's `--secret` forms: `name`, or `source=name,target=path,uid=0,gid=0,mode=0444`. */
import { SecretdError } from '../errors.ts';

export interface SecretFlag {
  readonly SecretName: string;
  readonly File: { readonly Name: string; readonly UID: string; readonly GID: string; readonly Mode: number };
}

export function parseSecretFlag(value: string): SecretFlag {
  if (value === '') throw new SecretdError('invalid', 'Invalid --secret: source is required');
  const fields: Record<string, string> = {};
  if (!value.includes('=')) fields.source = value;
  else {
    for (const part of value.split(',')) {
      const eq = part.indexOf('=');
      const key = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
      if (!['source', 'src', 'target', 'uid', 'gid', 'mode'].includes(key)) throw new SecretdError('invalid', `Invalid --secret ${JSON.stringify(value)}: unknown field ${JSON.stringify(key)}`);
      fields[key === 'src' ? 'source' : key] = eq === -1 ? '' : part.slice(eq + 1);
    }
  }
  const source = fields.source ?? '';
  if (source === '') throw new SecretdError('invalid', `Invalid --secret ${JSON.stringify(value)}: source is required`);
  const modeText = fields.mode ?? '0444';
  // Like Go's ParseUint with base 0: a leading 0 means octal.
  const mode = /^0[0-7]*$/.test(modeText) ? parseInt(modeText, 8) : /^[1-9][0-9]*$/.test(modeText) ? Number(modeText) : NaN;
  if (!Number.isInteger(mode) || mode > 0o777) throw new SecretdError('invalid', `Invalid --secret ${JSON.stringify(value)}: invalid file mode ${JSON.stringify(modeText)}`);
  return { SecretName: source, File: { Name: fields.target || source, UID: fields.uid ?? '0', GID: fields.gid ?? '0', Mode: mode } };
}

export function checkDuplicateTargets(secrets: readonly SecretFlag[]): void {
  const seen = new Set<string>();
  for (const s of secrets) {
    if (seen.has(s.File.Name)) throw new SecretdError('invalid', `Duplicate secret target for ${s.File.Name} not allowed`);
    seen.add(s.File.Name);
  }
}
