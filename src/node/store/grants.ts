/**
 * Grants: which nodes may hold a secret outside of services (`secret grant NAME --node-constraint
 * EXPR…`). A grant is a list of node constraints that must all hold (node-constraints.ts), and
 * optionally a pinned version; a secret's grants are alternatives. The leader's dispatcher pushes a
 * granted secret to every node one of its grants matches, and withdraws it when none does any more.
 * Pure rules, applied by the store on every manager alike: records in, records out.
 *
 * A grant is identified by its set of constraints (order and spelling aside: they are stored
 * normalized): granting the same set again changes only its pinned version, and ungrant removes the
 * grant with exactly that set. A pinned version must exist, and is kept from retention and from
 * `secret rm --version` while the grant pins it; a secret with a grant cannot be removed.
 */
import { invalid, SecretdError } from '../../errors.ts';
import { grantConstraintsMax, secretGrantsMax } from '../../limits.ts';
import { normalizeNodeConstraint, nodeMatches } from './node-constraints.ts';
import type { NodeRecord, SecretRecord } from './types.ts';

export interface SecretGrant {
  /** Normalized constraint texts, all of which must hold; sorted, no duplicates. */
  readonly constraints: readonly string[];
  /** The version pushed; null: the newest. */
  readonly version: number | null;
  readonly createdAt: string;
}

/** A grant's constraints as input: 1 to grantConstraintsMax expressions, normalized, sorted, duplicates dropped. */
export function checkGrantConstraints(value: unknown, what = 'grant'): string[] {
  if (!Array.isArray(value) || value.length === 0)
    throw invalid(`Invalid ${what}: give at least one node constraint (e.g. node.labels.role==db)`);
  if (value.length > grantConstraintsMax)
    throw invalid(
      `Invalid ${what}: ${value.length} node constraints is over the limit of ${grantConstraintsMax}`,
    );
  return [...new Set(value.map((text) => normalizeNodeConstraint(text)))].sort();
}

/** `node.labels.role==db, node.role==worker`: how a grant is named in messages and records. */
export function grantText(constraints: readonly string[]): string {
  return constraints.join(', ');
}

/** Whether two constraint lists are the same strings in the same order. */
export function sameConstraints(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((text, i) => text === b[i]);
}

export interface GrantChange {
  readonly record: SecretRecord;
  readonly changed: boolean;
}

/** Adds a grant, or changes the pinned version of the grant with the same constraints. */
export function addGrant(
  secret: SecretRecord,
  constraints: readonly string[],
  version: number | null,
  stamp: { readonly at: string; readonly index: number },
): GrantChange {
  const what = `Cannot grant secret ${secret.name}`;
  if (version !== null && !secret.versions.some((v) => v.version === version))
    throw new SecretdError(
      'not_found',
      `${what}: it has no version ${version} (it has ${secret.versions.map((v) => v.version).join(', ')})`,
    );
  const grants = secret.grants ?? [];
  const same = grants.find((g) => sameConstraints(g.constraints, constraints));
  if (same !== undefined && same.version === version) return { record: secret, changed: false };
  if (same === undefined && grants.length >= secretGrantsMax)
    throw new SecretdError(
      'invalid',
      `${what}: it already has ${grants.length} grants, the limit (remove one with secret ungrant)`,
    );
  const grant: SecretGrant = { constraints: [...constraints], version, createdAt: stamp.at };
  const next =
    same === undefined ? [...grants, grant] : grants.map((g) => (g === same ? grant : g));
  return {
    record: { ...secret, grants: next, updatedAt: stamp.at, metaIndex: stamp.index },
    changed: true,
  };
}

/** Removes the grant with exactly these constraints; `not_found` naming them (and the grants there are) otherwise. */
export function removeGrant(
  secret: SecretRecord,
  constraints: readonly string[],
  stamp: { readonly at: string; readonly index: number },
): GrantChange {
  const grants = secret.grants ?? [];
  const kept = grants.filter((g) => !sameConstraints(g.constraints, constraints));
  if (kept.length === grants.length) {
    const there =
      grants.length === 0
        ? 'it has no grants'
        : `its grants: ${grants.map((g) => `[${grantText(g.constraints)}]`).join(' ')}`;
    throw new SecretdError(
      'not_found',
      `Cannot ungrant secret ${secret.name}: it has no grant with node constraints [${grantText(constraints)}] (${there})`,
    );
  }
  const { grants: _, ...rest } = secret;
  return {
    record: {
      ...rest,
      ...(kept.length > 0 ? { grants: kept } : {}),
      updatedAt: stamp.at,
      metaIndex: stamp.index,
    },
    changed: true,
  };
}

/** Who pins `version` by grant, for version retention and removal: `grant [node.labels.role==db]`. */
export function grantPins(secret: SecretRecord, version: number): string[] {
  return (secret.grants ?? [])
    .filter((g) => g.version === version)
    .map((g) => `grant [${grantText(g.constraints)}]`);
}

/** Why a secret cannot be removed while granted, or null when it has no grant. */
export function grantedRemovalRefusal(secret: SecretRecord): string | null {
  const grants = secret.grants ?? [];
  if (grants.length === 0) return null;
  return `Cannot remove secret ${secret.name}: it is granted to nodes by ${grants.length === 1 ? 'a grant' : `${grants.length} grants`} (${grants.map((g) => `[${grantText(g.constraints)}]`).join(' ')}); remove ${grants.length === 1 ? 'it' : 'them'} first with secret ungrant`;
}

/**
 * The version of `secret` a node holds by grant, or null when no grant matches it: among the grants
 * that match, the newest version any of them names (an unpinned grant names the newest).
 */
export function grantedVersion(secret: SecretRecord, node: NodeRecord): number | null {
  const newest = secret.versions.at(-1)?.version;
  let chosen: number | null = null;
  for (const grant of secret.grants ?? []) {
    if (!nodeMatches(grant.constraints, node)) continue;
    const version = grant.version ?? newest;
    if (version === undefined || !secret.versions.some((v) => v.version === version)) continue;
    if (chosen === null || version > chosen) chosen = version;
  }
  return chosen;
}
