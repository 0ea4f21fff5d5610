/**
 * Client certificates (people and scripts) as the store keeps them, by serial: whom each was
 * issued to, its role and scope, when it expires, and whether it was revoked. Every manager refuses
 * a revoked serial from the moment it applies the revocation until the certificate would have
 * expired; after that, and `certRecordsPruneGraceMs` more, the leader prunes the record
 * (`certRecordsToPrune`), as it prunes the records of removed nodes, so the lists do not grow
 * forever (Docker prunes its blacklist the same way, 7 days after expiry).
 *
 * Pure: the times compared are the commands' own (`at`), never a clock. Refusals are thrown as
 * SecretdError before anything changes; the store turns them into a failed write.
 */
import { conflict, invalid, notFound, SecretdError } from '../../errors.ts';
import { clientCertScopesMax, secretNameCharsMax } from '../../limits.ts';

/** What the store records of each client certificate it issued. Never a key. */
export interface ClientCertRecord {
  /** Lower-case hex without leading zeros (`normalizeSerial`). */
  readonly serial: string;
  /** The certificate's CN; names need not be unique (a name may be issued again). */
  readonly name: string;
  readonly role: ClientCertRole;
  /** What the role reaches; empty: everything the role may (issue 14 adds scopes). */
  readonly scope: readonly string[];
  readonly issuedAt: string;
  /** The certificate's notAfter. */
  readonly expiresAt: string;
  /** When it was revoked; null while it is good. */
  readonly revokedAt: string | null;
}

/**
 * What a client certificate may do (api/access.ts holds the rule table): `admin` everything,
 * `operator` workloads and nodes, `writer` the secrets its scope names, `reader` every object's
 * metadata, `auditor` the audit trail. The certificate itself says admin (its OU); the role is
 * this record's, so `ca update` changes it without reissuing.
 */
export type ClientCertRole = 'admin' | 'operator' | 'writer' | 'reader' | 'auditor';
export const clientCertRoles: readonly ClientCertRole[] = [
  'admin',
  'operator',
  'writer',
  'reader',
  'auditor',
];
/** The only role a scope narrows; any other role's scope is empty. */
export const scopedClientCertRoles: readonly ClientCertRole[] = ['writer'];

/**
 * A scope glob: secret-name characters ([a-zA-Z0-9_.-]) and the wildcards `*` (any run of
 * characters, empty too) and `?` (exactly one), starting as a secret name may ([a-zA-Z0-9]) or with
 * a wildcard, at most `secretNameCharsMax` characters.
 */
const scopeGlobPattern = new RegExp(`^[a-zA-Z0-9*?][a-zA-Z0-9_.*?-]{0,${secretNameCharsMax - 1}}$`);

/**
 * Checks a role and its scope as `ca issue-client` and `ca update` give them; throws `invalid`
 * naming the offending value (never issuing or recording anything). Returns them as recorded.
 */
export function checkRoleAndScope(
  role: unknown,
  scope: unknown,
  action: string,
): { readonly role: ClientCertRole; readonly scope: readonly string[] } {
  if (typeof role !== 'string' || !clientCertRoles.includes(role as ClientCertRole))
    throw invalid(
      `Cannot ${action}: unknown role ${JSON.stringify(String(role).slice(0, 40))} (expected one of ${clientCertRoles.join(', ')})`,
    );
  if (!Array.isArray(scope)) throw invalid(`Cannot ${action}: the scope must be a list of globs`);
  if (scope.length > 0 && !scopedClientCertRoles.includes(role as ClientCertRole))
    throw invalid(
      `Cannot ${action}: role ${role} takes no scope (only ${scopedClientCertRoles.join(', ')} does)`,
    );
  if (scope.length > clientCertScopesMax)
    throw invalid(
      `Cannot ${action}: at most ${clientCertScopesMax} scope globs, not ${scope.length}`,
    );
  for (const glob of scope) {
    if (typeof glob !== 'string' || glob === '')
      throw invalid(`Cannot ${action}: a scope glob must not be empty`);
    if (!scopeGlobPattern.test(glob))
      throw invalid(
        `Cannot ${action}: invalid scope glob ${JSON.stringify(glob.slice(0, 80))}: up to ${secretNameCharsMax} characters [a-zA-Z0-9_.-] and the wildcards * and ?, starting with a letter, a digit or a wildcard`,
      );
  }
  return { role: role as ClientCertRole, scope: [...(scope as string[])] };
}

/**
 * Whether a secret name matches a scope glob: `*` any run of characters, `?` exactly one, the
 * rest literal; without regard to case, as secret names are unique without regard to case.
 * Iterative (backtracking to the last `*` only): linear-ish time, no regular expression built
 * from input.
 */
export function scopeGlobMatches(glob: string, name: string): boolean {
  const g = glob.toLowerCase();
  const n = name.toLowerCase();
  let gi = 0;
  let ni = 0;
  let star = -1;
  let starNi = 0;
  while (ni < n.length) {
    if (gi < g.length && (g[gi] === '?' || g[gi] === n[ni])) {
      gi++;
      ni++;
    } else if (gi < g.length && g[gi] === '*') {
      star = gi++;
      starNi = ni;
    } else if (star !== -1) {
      gi = star + 1;
      ni = ++starNi;
    } else return false;
  }
  while (gi < g.length && g[gi] === '*') gi++;
  return gi === g.length;
}

/** Whether a secret name is in a scope: an empty scope holds every name. */
export function inScope(scope: readonly string[], name: string): boolean {
  return scope.length === 0 || scope.some((glob) => scopeGlobMatches(glob, name));
}

/** A client certificate's name: its CN, chosen by a person, so kept to a safe alphabet. */
export const clientCertNamePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
/** Serials are at most 20 bytes (RFC 5280 §4.1.2.2). */
const serialPattern = /^[0-9a-f]{1,40}$/;

/**
 * One spelling of a serial, whoever printed it: lower case, no leading zeros (node:tls, openssl and
 * @peculiar/x509 differ on both). Colons (openssl's `-serial` with separators) are dropped.
 */
export function normalizeSerial(text: string): string {
  const hex = text.toLowerCase().replaceAll(':', '');
  const trimmed = hex.replace(/^0+(?=.)/, '');
  return trimmed;
}

export function isSerial(text: string): boolean {
  return serialPattern.test(normalizeSerial(text));
}

/** The refusal a revoked certificate gets on every request, naming the revocation. */
export function revocationMessage(record: ClientCertRecord): string {
  return `Permission denied: client certificate ${record.serial} (name ${record.name}) was revoked at ${record.revokedAt}`;
}

/** The client certificates of one store. */
export class ClientCerts {
  readonly #bySerial = new Map<string, ClientCertRecord>();

  get size(): number {
    return this.#bySerial.size;
  }

  get(serial: string): ClientCertRecord | undefined {
    return this.#bySerial.get(normalizeSerial(serial));
  }

  all(): IterableIterator<ClientCertRecord> {
    return this.#bySerial.values();
  }

  /**
   * The certificates `ref` names: the one whose serial it is, else every one issued under that
   * name. Throws `not_found` naming `ref` when there is none.
   */
  resolve(ref: string): ClientCertRecord[] {
    const bySerial = isSerial(ref) ? this.get(ref) : undefined;
    if (bySerial) return [bySerial];
    const named = [...this.#bySerial.values()].filter((c) => c.name === ref);
    if (named.length === 0)
      throw notFound(`Client certificate ${JSON.stringify(ref.slice(0, 80))} not found`);
    return named;
  }

  /** Records a certificate just signed; a serial already recorded is refused (`conflict`). */
  issue(record: ClientCertRecord): void {
    const serial = normalizeSerial(record.serial);
    if (this.#bySerial.has(serial))
      throw new SecretdError('conflict', `Client certificate serial ${serial} is already in use`);
    this.#bySerial.set(serial, { ...record, serial, scope: [...record.scope] });
  }

  /**
   * Revokes every serial listed, at `at`; one already revoked keeps its first revocation time, so
   * revoking again changes nothing. An unknown serial refuses the whole command (`not_found`).
   * Returns the serials revoked by this call.
   */
  revoke(at: string, serials: readonly string[]): string[] {
    const keys = this.#known(serials);
    const revoked: string[] = [];
    for (const serial of keys) {
      const record = this.#bySerial.get(serial)!;
      if (record.revokedAt !== null) continue;
      this.#bySerial.set(serial, { ...record, revokedAt: at });
      revoked.push(serial);
    }
    return revoked;
  }

  /**
   * Gives the serials listed a new role and scope (`ca update`), from the next request on. An
   * unknown serial refuses the whole command (`not_found`), and so does a revoked one (`conflict`):
   * a revoked certificate stays as it was revoked.
   */
  update(serials: readonly string[], role: ClientCertRole, scope: readonly string[]): void {
    const keys = this.#known(serials);
    for (const serial of keys) {
      const record = this.#bySerial.get(serial)!;
      if (record.revokedAt !== null)
        throw conflict(
          `Cannot update client certificate ${serial} (name ${record.name}): it was revoked at ${record.revokedAt}`,
        );
    }
    for (const serial of keys)
      this.#bySerial.set(serial, { ...this.#bySerial.get(serial)!, role, scope: [...scope] });
  }

  /** The serials listed, normalized; an unknown one refuses the whole command (`not_found`). */
  #known(serials: readonly string[]): string[] {
    const keys = serials.map(normalizeSerial);
    const missing = keys.filter((s) => !this.#bySerial.has(s));
    if (missing.length > 0) throw notFound(`Client certificate ${missing.join(', ')} not found`);
    return keys;
  }

  /** Drops the records listed whose certificate expired at least `graceMs` before `at`; others stay. */
  prune(at: string, serials: readonly string[], graceMs: number): void {
    const atMs = Date.parse(at);
    for (const serial of serials.map(normalizeSerial)) {
      const record = this.#bySerial.get(serial);
      if (record && expiredBefore(record.expiresAt, atMs, graceMs)) this.#bySerial.delete(serial);
    }
  }

  snapshot(): ClientCertRecord[] {
    return [...this.#bySerial.values()];
  }

  restore(records: readonly ClientCertRecord[]): void {
    for (const record of records) this.#bySerial.set(normalizeSerial(record.serial), record);
  }
}

/** A removed node's record: its id stays refused until every certificate it held has expired. */
export interface RemovedNodeRecord {
  readonly id: string;
  /** The latest its certificates can expire; null when unknown (never pruned). */
  readonly certsExpireAt: string | null;
}

/** Whether `expiresAt` is at least `graceMs` before `atMs` (an unreadable time never is). */
export function expiredBefore(expiresAt: string | null, atMs: number, graceMs: number): boolean {
  if (expiresAt === null) return false;
  const expiresMs = Date.parse(expiresAt);
  return Number.isFinite(expiresMs) && Number.isFinite(atMs) && expiresMs + graceMs <= atMs;
}

/** What a prune at `atMs` would drop: records whose certificates expired `graceMs` ago or more. */
export function certRecordsToPrune(
  clientCerts: Iterable<ClientCertRecord>,
  removedNodes: Iterable<RemovedNodeRecord>,
  atMs: number,
  graceMs: number,
): { readonly clientCerts: string[]; readonly removedNodes: string[] } {
  return {
    clientCerts: [...clientCerts]
      .filter((c) => expiredBefore(c.expiresAt, atMs, graceMs))
      .map((c) => c.serial),
    removedNodes: [...removedNodes]
      .filter((n) => expiredBefore(n.certsExpireAt, atMs, graceMs))
      .map((n) => n.id),
  };
}

/** The command schema's check of one record (parseCommand), naming the field, never a value. */
export function checkClientCertRecord(value: unknown, path: string): void {
  const wrong = (field: string, expected: string): SecretdError =>
    invalid(`Invalid command: ${path}.${field} must be ${expected}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(`Invalid command: ${path} must be an object`);
  const r = value as Record<string, unknown>;
  if (typeof r.serial !== 'string' || !serialPattern.test(r.serial))
    throw wrong('serial', 'lower-case hex of at most 40 digits');
  if (typeof r.name !== 'string' || !clientCertNamePattern.test(r.name))
    throw wrong('name', '1 to 64 characters [a-zA-Z0-9_.-] starting with a letter or digit');
  if (!clientCertRoles.includes(r.role as ClientCertRole))
    throw wrong('role', `one of ${clientCertRoles.join(', ')}`);
  checkRecordedScope(r.role, r.scope, path);
  const issued = typeof r.issuedAt === 'string' ? Date.parse(r.issuedAt) : NaN;
  if (!Number.isFinite(issued)) throw wrong('issuedAt', 'a time');
  const expires = typeof r.expiresAt === 'string' ? Date.parse(r.expiresAt) : NaN;
  if (!Number.isFinite(expires) || expires <= issued)
    throw wrong('expiresAt', 'a time after issuedAt');
  if (r.revokedAt !== null) throw wrong('revokedAt', 'null when issued');
}

/** The command schema's check of a role and scope (parseCommand), naming the field, never a value. */
export function checkRecordedScope(role: unknown, scope: unknown, path: string): void {
  if (!clientCertRoles.includes(role as ClientCertRole))
    throw invalid(`Invalid command: ${path}.role must be one of ${clientCertRoles.join(', ')}`);
  try {
    checkRoleAndScope(role, scope, 'record the certificate');
  } catch {
    throw invalid(
      `Invalid command: ${path}.scope must be at most ${clientCertScopesMax} scope globs, and only for role ${scopedClientCertRoles.join(', ')}`,
    );
  }
}
