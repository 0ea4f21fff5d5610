/** Secret validation, as Docker's (name rule, case-insensitive uniqueness) but with a 1 MiB limit. */
import { invalid, SecretdError } from '../../errors.ts';
import { labelsBytesMax, secretBytesMax, secretNameCharsMax } from '../../limits.ts';
import type { Labels } from './types.ts';

const namePattern = /^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$/;

export function checkSecretName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0) throw invalid('Invalid secret name: a name must be provided');
  if (name.length > secretNameCharsMax || !namePattern.test(name)) {
    throw invalid(
      `Invalid secret name ${JSON.stringify(name.slice(0, 80))}: only ${secretNameCharsMax} [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]`,
    );
  }
  return name;
}

export function checkSecretData(data: Uint8Array): void {
  if (data.length === 0) throw invalid('Invalid secret data: it must be at least 1 byte');
  if (data.length > secretBytesMax) {
    throw new SecretdError('too_large', `Invalid secret data: ${data.length} bytes is over the limit of ${secretBytesMax} bytes`);
  }
}

export function checkLabels(labels: unknown, what: string): Labels {
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels)) throw invalid(`Invalid ${what} labels: expected an object of strings`);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    if (key.length === 0) throw invalid(`Invalid ${what} labels: a label key must not be empty`);
    if (typeof value !== 'string') throw invalid(`Invalid ${what} labels: the value of ${JSON.stringify(key)} must be a string`);
    out[key] = value;
  }
  if (JSON.stringify(out).length > labelsBytesMax) throw invalid(`Invalid ${what} labels: over ${labelsBytesMax} bytes`);
  return out;
}
