/**
 * Client certificates on a manager: issued for a time and recorded in the store before they are
 * handed out, listed, and revoked so that every manager refuses them (client-certs.ts in the store
 * keeps the records; api/server.ts refuses a revoked serial on every request and closes the
 * connections that present it when the revocation is applied).
 *
 * Issuing signs in memory, records the certificate through Raft, and only then returns it: a
 * certificate whose record did not commit is never handed out, so none escapes revocation. A
 * revocation returns once this manager has applied it and every other manager has confirmed it
 * (a linearizable read of the list on each, over the managers' own mTLS sessions); a manager that
 * does not answer within `revocationConfirmTimeoutMs` is reported, not waited for.
 */
import { issueCertificate, parseIdentity, type Random } from '../../crypto/index.ts';
import { conflict, invalid, SecretdError } from '../../errors.ts';
import {
  certRecordsPruneGraceMs,
  certRecordsPrunedPerCommandMax,
  clientCertLifetimeMsDefault,
  clientCertLifetimeMsMin,
  revocationConfirmTimeoutMs,
} from '../../limits.ts';
import type {
  ClientCertUpdateOutcome,
  IssuedClientCertificate,
  RevocationOutcome,
} from '../api/index.ts';
import { peerPaths, reasonOf, type PeerLink } from '../peers/index.ts';
import {
  certRecordsToPrune,
  normalizeSerial,
  revocationMessage,
  type ApplyResult,
  type ClientCertRecord,
  type ClientCertRole,
  type Command,
  type Store,
} from '../store/index.ts';

export interface ClientCertsContext {
  /** The store after a linearizable read. */
  read(): Promise<Store>;
  propose(command: Command): Promise<ApplyResult>;
  now(): Date;
  random: Random;
  selfId: string;
  peers(): PeerLink;
}

/**
 * Signs a client certificate for the CSR's key, records it with its role and scope (checked by
 * the route; the certificate itself says admin, its record decides), and returns it once every
 * other manager lists the record too, or reports those that did not confirm in time: a manager
 * that has no record of a client certificate takes it for one issued before records existed,
 * an admin.
 */
export async function issueClientCertificate(
  context: ClientCertsContext,
  request: {
    readonly name: string;
    readonly csrPem: string;
    readonly lifetimeMs?: number;
    readonly role?: ClientCertRole;
    readonly scope?: readonly string[];
  },
): Promise<IssuedClientCertificate> {
  const lifetimeMs = request.lifetimeMs ?? clientCertLifetimeMsDefault;
  if (!Number.isFinite(lifetimeMs) || lifetimeMs < clientCertLifetimeMsMin)
    throw invalid(
      `Cannot issue client certificate ${request.name}: its expiry must be at least ${clientCertLifetimeMsMin / 60_000} minute, not ${lifetimeMs} ms`,
    );
  const store = await context.read();
  const cluster = store.cluster;
  if (!cluster)
    throw new SecretdError('unavailable', 'This manager has not caught up with the cluster yet');
  // Certificates carry whole seconds: from a whole second, the record's times are the certificate's.
  const now = new Date(Math.floor(context.now().getTime() / 1000) * 1000);
  const serial = context.random(16);
  // Never a leading zero and always positive: one spelling of the serial for every tool.
  serial[0] = (serial[0]! & 0x3f) | 0x40;
  const certPem = await issueCertificate(
    { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
    request.csrPem,
    {
      nodeId: request.name,
      role: 'admin',
      clusterId: cluster.id,
      now,
      lifetimeMs,
      serial,
    },
  );
  const issued = parseIdentity(certPem);
  // The CA caps a certificate at its own expiry: one asked to outlive the CA is refused instead.
  if (issued.notAfter.getTime() < Math.floor((now.getTime() + lifetimeMs) / 1000) * 1000)
    throw invalid(
      `Cannot issue client certificate ${request.name}: its expiry goes beyond the CA certificate's, ${issued.notAfter.toISOString()}`,
    );
  const record: ClientCertRecord = {
    serial: normalizeSerial(issued.serialHex),
    name: request.name,
    role: request.role ?? 'admin',
    scope: [...(request.scope ?? [])],
    issuedAt: now.toISOString(),
    expiresAt: issued.notAfter.toISOString(),
    revokedAt: null,
  };
  await context.propose({ op: 'client-cert-issue', at: now.toISOString(), cert: record });
  const unconfirmed = await confirmOnManagers(
    context,
    await context.read(),
    listsWithAccess([record]),
  );
  return { certPem, caPem: cluster.caCertPem, record, unconfirmed };
}

/**
 * `ca update`: a new role and scope for the certificate whose serial is `ref`, or every live one
 * issued under the name `ref`; returns once every other manager lists them so (or reports those that
 * did not confirm in time). Unknown: `not_found`; revoked (every one named): `conflict`.
 */
export async function updateClientCertificate(
  context: ClientCertsContext,
  ref: string,
  update: { readonly role: ClientCertRole; readonly scope: readonly string[] },
): Promise<ClientCertUpdateOutcome> {
  const targets = (await context.read()).clientCerts.resolve(ref);
  const live = targets.filter((c) => c.revokedAt === null);
  if (live.length === 0)
    throw conflict(
      `Cannot update client certificate ${ref.slice(0, 80)}: it was revoked at ${targets[0]!.revokedAt}`,
    );
  await context.propose({
    op: 'client-cert-update',
    at: context.now().toISOString(),
    serials: live.map((c) => c.serial),
    role: update.role,
    scope: update.scope,
  });
  const store = await context.read();
  const certificates = live.map((c) => store.clientCerts.get(c.serial)!);
  return {
    certificates,
    unconfirmed: await confirmOnManagers(context, store, listsWithAccess(certificates)),
  };
}

/** A manager's list confirms `records` when it lists each with the same role and scope. */
function listsWithAccess(records: readonly ClientCertRecord[]): ListCheck {
  return (listed) => {
    const bySerial = new Map(listed.map((c) => [c.Serial, c]));
    const missing = records.filter((r) => {
      const c = bySerial.get(r.serial);
      return c?.Role !== r.role || JSON.stringify(c.Scope) !== JSON.stringify(r.scope);
    });
    return missing.length === 0
      ? null
      : `it does not list ${missing.map((r) => r.serial).join(', ')} as role ${missing[0]!.role} yet`;
  };
}

/** A client certificate as another manager lists it (GET …/client-certificates). */
interface ListedCert {
  readonly Serial?: unknown;
  readonly Role?: unknown;
  readonly Scope?: unknown;
  readonly RevokedAt?: unknown;
}

/** Why a manager's list does not confirm what was done, or null when it does. */
type ListCheck = (listed: readonly ListedCert[]) => string | null;

/**
 * Revokes the certificate whose serial is `ref`, or every one issued under the name `ref`; those
 * already revoked stay as they were. Unknown: `not_found` naming it.
 */
export async function revokeClientCertificates(
  context: ClientCertsContext,
  ref: string,
): Promise<RevocationOutcome> {
  const targets = (await context.read()).clientCerts.resolve(ref);
  const live = targets.filter((c) => c.revokedAt === null).map((c) => c.serial);
  if (live.length > 0)
    await context.propose({
      op: 'client-cert-revoke',
      at: context.now().toISOString(),
      serials: live,
    });
  // Applied here (the read waits for it), then confirmed by every other manager.
  const store = await context.read();
  const serials = targets.map((c) => c.serial);
  const certificates = serials.map((s) => store.clientCerts.get(s)!);
  return {
    certificates,
    unconfirmed: await confirmOnManagers(context, store, (listed) => {
      const revoked = new Set(
        listed.filter((c) => typeof c.RevokedAt === 'string').map((c) => c.Serial),
      );
      const missing = serials.filter((s) => !revoked.has(s));
      return missing.length === 0 ? null : `it does not list ${missing.join(', ')} as revoked`;
    }),
  };
}

/** The managers other than this one whose list of client certificates did not confirm `check` within the limit. */
async function confirmOnManagers(
  context: ClientCertsContext,
  store: Store,
  check: ListCheck,
): Promise<RevocationOutcome['unconfirmed']> {
  const others = [...store.nodes()].filter((n) => n.role === 'manager' && n.id !== context.selfId);
  const answers = await Promise.all(
    others.map(async (node) => {
      try {
        const response = await context
          .peers()
          .request(node.addr, 'GET', peerPaths.clientCertificates, null, {
            timeoutMs: revocationConfirmTimeoutMs,
          });
        if (response.status !== 200)
          return `it answered ${response.status}: ${new TextDecoder().decode(response.body).slice(0, 200)}`;
        return check(JSON.parse(new TextDecoder().decode(response.body)) as ListedCert[]);
      } catch (error) {
        return reasonOf(error);
      }
    }),
  );
  return others.flatMap((node, i) =>
    answers[i] === null ? [] : [{ nodeId: node.id, addr: node.addr, reason: answers[i]! }],
  );
}

/** A client certificate's record by serial on this manager now (no read: called on every request). */
export function clientCertificateRecord(
  store: Store | null,
  serial: string,
): ClientCertRecord | undefined {
  return store?.clientCerts.get(serial);
}

/** Why a client certificate serial is refused now (it was revoked), or null. */
export function clientCertificateRefusal(store: Store | null, serial: string): string | null {
  const record = store?.clientCerts.get(serial);
  return record?.revokedAt ? revocationMessage(record) : null;
}

/** The leader's prune duty: one command for the records whose certificates expired long enough ago. */
export async function pruneCertRecords(context: ClientCertsContext, store: Store): Promise<void> {
  const now = context.now();
  const due = certRecordsToPrune(
    store.clientCerts.all(),
    store.removedNodes(),
    now.getTime(),
    certRecordsPruneGraceMs,
  );
  if (due.clientCerts.length === 0 && due.removedNodes.length === 0) return;
  await context.propose({
    op: 'cert-records-prune',
    at: now.toISOString(),
    clientCerts: due.clientCerts.slice(0, certRecordsPrunedPerCommandMax),
    removedNodes: due.removedNodes.slice(0, certRecordsPrunedPerCommandMax),
  });
}
