/** Secret validation, as Docker's (name rule, case-insensitive uniqueness) but with a 1 MiB limit. */
import { invalid, SecretdError } from '../../errors.ts';
import {
  labelsBytesMax,
  secretBytesMax,
  secretNameCharsMax,
  secretVersionMax,
  secretVersionsKeptMax,
} from '../../limits.ts';
import type { Labels, OnUpdate } from './types.ts';

const namePattern = /^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$/;

export function checkSecretName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0)
    throw invalid('Invalid secret name: a name must be provided');
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
    throw new SecretdError(
      'too_large',
      `Invalid secret data: ${data.length} bytes is over the limit of ${secretBytesMax} bytes`,
    );
  }
}

export function checkLabels(labels: unknown, what: string): Labels {
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels))
    throw invalid(`Invalid ${what} labels: expected an object of strings`);
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    if (key.length === 0) throw invalid(`Invalid ${what} labels: a label key must not be empty`);
    if (typeof value !== 'string')
      throw invalid(`Invalid ${what} labels: the value of ${JSON.stringify(key)} must be a string`);
    out[key] = value;
  }
  if (JSON.stringify(out).length > labelsBytesMax)
    throw invalid(`Invalid ${what} labels: over ${labelsBytesMax} bytes`);
  return out;
}

/**
 * Signals `on-update=signal:…` may send: the ones programs use to reload or reopen, and TERM/INT
 * for those that only know how to stop. KILL and STOP are refused: they cannot be trapped, so they
 * are never a way to say "re-read your secret".
 */
export const onUpdateSignals: readonly string[] = [
  'SIGHUP',
  'SIGUSR1',
  'SIGUSR2',
  'SIGINT',
  'SIGQUIT',
  'SIGTERM',
  'SIGWINCH',
  'SIGALRM',
];

/** A version number as input: a whole number from 1. */
export function checkVersionNumber(value: unknown, what: string): number {
  const number = typeof value === 'string' && /^[0-9]{1,10}$/.test(value) ? Number(value) : value;
  if (
    typeof number !== 'number' ||
    !Number.isInteger(number) ||
    number < 1 ||
    number > secretVersionMax
  ) {
    throw invalid(
      `Invalid ${what} ${JSON.stringify(typeof value === 'string' ? value.slice(0, 40) : (value ?? null))}: a version is a whole number from 1 to ${secretVersionMax}`,
    );
  }
  return number;
}

/** `none`, `restart` or `signal:SIGNAME` (the `SIG` prefix may be left out). */
export function parseOnUpdate(text: unknown): OnUpdate {
  const shown = JSON.stringify(typeof text === 'string' ? text.slice(0, 40) : (text ?? null));
  if (text === 'none') return { kind: 'none' };
  if (text === 'restart') return { kind: 'restart' };
  if (typeof text === 'string' && text.startsWith('signal:')) {
    const name = text.slice('signal:'.length).toUpperCase();
    const signal = name.startsWith('SIG') ? name : `SIG${name}`;
    if (onUpdateSignals.includes(signal)) return { kind: 'signal', signal };
    throw invalid(
      `Invalid on-update ${shown}: the signal must be one of ${onUpdateSignals.join(', ')}`,
    );
  }
  throw invalid(
    `Invalid on-update ${shown}: expected none, restart or signal:SIGNAL (e.g. signal:SIGHUP)`,
  );
}

export function onUpdateText(onUpdate: OnUpdate | undefined): string {
  if (onUpdate === undefined) return 'none';
  return onUpdate.kind === 'signal' ? `signal:${onUpdate.signal}` : onUpdate.kind;
}

/** The version-retention setting: how many of a secret's newest versions are kept. */
export function checkVersionsKept(value: unknown): number {
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 1 ||
    value > secretVersionsKeptMax
  ) {
    throw invalid(
      `Invalid secret versions kept ${JSON.stringify(value ?? null)}: expected a whole number from 1 to ${secretVersionsKeptMax}`,
    );
  }
  return value;
}
