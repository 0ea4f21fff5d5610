/**
 * The rules of secret versions, applied by the store on every manager alike: a new version, a
 * rollback (old data as a new version), removing one version, and retention. Pure: records and
 * the usage the workloads report in, new records out.
 *
 * Version numbers only grow (a removed number is never reused), so "version 4" names one value for
 * the life of the secret. Equal data is detected by a constant-time comparison against the stored
 * value; no hash of a value is ever kept (a hash of a short password is a way to guess it).
 */
import { constantTimeEqual } from '../../crypto/index.ts';
import { SecretdError } from '../../errors.ts';
import { secretVersionsKeptDefault } from '../../limits.ts';
import type { SecretRecord, SecretVersion } from './types.ts';

export interface VersionChange {
  readonly record: SecretRecord;
  /** The newest version after the change. */
  readonly version: number;
  /** False when the data equalled the newest version's: nothing was written. */
  readonly changed: boolean;
  /** Versions retention dropped (their bytes are zeroed by the caller once nothing refers to them). */
  readonly dropped: readonly SecretVersion[];
}

export interface VersionContext {
  readonly index: number;
  readonly at: string;
  /** How many of the newest versions to keep (the cluster setting). */
  readonly kept: number | undefined;
  /** Who pins each version (services and live tasks), by version number. */
  readonly pinnedBy: (version: number) => readonly string[];
}

export function newestVersion(secret: SecretRecord): SecretVersion {
  const newest = secret.versions.at(-1);
  if (newest === undefined) throw new SecretdError('corrupt', `Secret ${secret.id} has no version`);
  return newest;
}

function checkIfVersion(secret: SecretRecord, ifVersion: number | null): void {
  const newest = newestVersion(secret).version;
  if (ifVersion !== null && ifVersion !== newest) {
    throw new SecretdError(
      'conflict',
      `Cannot update secret ${secret.name}: --if-version ${ifVersion} is out of date (the newest version is ${newest})`,
    );
  }
}

/** Adds `data` as the newest version, unless it equals the newest already. Takes ownership of `data`. */
export function addVersion(
  secret: SecretRecord,
  data: Uint8Array,
  ifVersion: number | null,
  context: VersionContext,
): VersionChange {
  checkIfVersion(secret, ifVersion);
  const newest = newestVersion(secret);
  if (constantTimeEqual(data, newest.data)) {
    data.fill(0);
    return { record: secret, version: newest.version, changed: false, dropped: [] };
  }
  const version = newest.version + 1;
  const versions = [...secret.versions, { version, data, createdAt: context.at }];
  const { kept, dropped } = retain(versions, context);
  return {
    record: { ...secret, versions: kept, updatedAt: context.at, metaIndex: context.index },
    version,
    changed: true,
    dropped,
  };
}

/** Version `to`'s data, copied, becomes the newest version. */
export function rollBack(
  secret: SecretRecord,
  to: number,
  ifVersion: number | null,
  context: VersionContext,
): VersionChange {
  checkIfVersion(secret, ifVersion);
  const source = secret.versions.find((v) => v.version === to);
  if (source === undefined)
    throw new SecretdError(
      'not_found',
      `Cannot roll back secret ${secret.name}: it has no version ${to} (${versionList(secret)})`,
    );
  return addVersion(secret, source.data.slice(), null, context);
}

/** Removes one version that is neither the newest nor pinned. */
export function removeVersion(
  secret: SecretRecord,
  version: number,
  context: VersionContext,
): VersionChange {
  const what = `Cannot remove version ${version} of secret ${secret.name}`;
  const target = secret.versions.find((v) => v.version === version);
  if (target === undefined)
    throw new SecretdError('not_found', `${what}: no such version (${versionList(secret)})`);
  const newest = newestVersion(secret).version;
  if (version === newest)
    throw new SecretdError(
      'conflict',
      `${what}: it is the newest version (add a new one or roll back first)`,
    );
  const users = context.pinnedBy(version);
  if (users.length > 0)
    throw new SecretdError('conflict', `${what}: it is pinned by ${users.join(', ')}`);
  return {
    record: {
      ...secret,
      versions: secret.versions.filter((v) => v !== target),
      updatedAt: context.at,
      metaIndex: context.index,
    },
    version: newest,
    changed: true,
    dropped: [target],
  };
}

/** The newest `kept` versions stay, and so does any older one a pinned reference uses. */
function retain(
  versions: readonly SecretVersion[],
  context: VersionContext,
): { kept: SecretVersion[]; dropped: SecretVersion[] } {
  const limit = context.kept ?? secretVersionsKeptDefault;
  const kept: SecretVersion[] = [];
  const dropped: SecretVersion[] = [];
  versions.forEach((v, i) => {
    if (i >= versions.length - limit || context.pinnedBy(v.version).length > 0) kept.push(v);
    else dropped.push(v);
  });
  return { kept, dropped };
}

function versionList(secret: SecretRecord): string {
  return `it has ${secret.versions.map((v) => v.version).join(', ')}`;
}
