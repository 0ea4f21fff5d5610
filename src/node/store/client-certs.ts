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
import { invalid, notFound, SecretdError } from '../../errors.ts';

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

export type ClientCertRole = 'admin';
export const clientCertRoles: readonly ClientCertRole[] = ['admin'];

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
    const keys = serials.map(normalizeSerial);
    const missing = keys.filter((s) => !this.#bySerial.has(s));
    if (missing.length > 0) throw notFound(`Client certificate ${missing.join(', ')} not found`);
    const revoked: string[] = [];
    for (const serial of keys) {
      const record = this.#bySerial.get(serial)!;
      if (record.revokedAt !== null) continue;
      this.#bySerial.set(serial, { ...record, revokedAt: at });
      revoked.push(serial);
    }
    return revoked;
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
  if (!Array.isArray(r.scope) || !r.scope.every((s) => typeof s === 'string'))
    throw wrong('scope', 'a list of strings');
  const issued = typeof r.issuedAt === 'string' ? Date.parse(r.issuedAt) : NaN;
  if (!Number.isFinite(issued)) throw wrong('issuedAt', 'a time');
  const expires = typeof r.expiresAt === 'string' ? Date.parse(r.expiresAt) : NaN;
  if (!Number.isFinite(expires) || expires <= issued)
    throw wrong('expiresAt', 'a time after issuedAt');
  if (r.revokedAt !== null) throw wrong('revokedAt', 'null when issued');
}
