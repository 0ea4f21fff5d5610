/** The store's client certificates and removed nodes: issue, revoke, refuse, prune, snapshot. */
import { describe, expect, test } from 'bun:test';
import { certRecordsPruneGraceMs, nodeCertLifetimeMs } from '../../limits.ts';
import {
  certRecordsToPrune,
  normalizeSerial,
  revocationMessage,
  type ClientCertRecord,
} from './client-certs.ts';
import type { Command } from './commands.ts';
import { Store, type StoreEvent } from './store.ts';

const day = 24 * 3600 * 1000;
const t0 = Date.parse('2026-11-28T00:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const at = iso(t0);

function cert(serial: string, name: string, expiresInMs = 30 * day): ClientCertRecord {
  return {
    serial,
    name,
    role: 'admin',
    scope: [],
    issuedAt: at,
    expiresAt: iso(t0 + expiresInMs),
    revokedAt: null,
  };
}

/** A store with three certificates: two named `ci` (serials a1, a2), one `ops` (b1). */
class Fixture {
  readonly store = new Store();
  readonly events: StoreEvent[] = [];
  index = 0;
  constructor() {
    this.store.onEvent((event) => this.events.push(event));
    this.apply({ op: 'client-cert-issue', at, cert: cert('a1', 'ci') });
    this.apply({ op: 'client-cert-issue', at, cert: cert('a2', 'ci', 60 * day) });
    this.apply({ op: 'client-cert-issue', at, cert: cert('b1', 'ops') });
  }
  apply(command: Command): ReturnType<Store['apply']> {
    return this.store.apply(++this.index, command);
  }
  revokedAt(): Record<string, string | null> {
    return Object.fromEntries(
      [...this.store.clientCerts.all()].map((c) => [c.serial, c.revokedAt]),
    );
  }
}

describe('client certificates in the store', () => {
  test('client-cert-issue records the certificate by serial, as issued and not revoked', () => {
    const f = new Fixture();
    expect(f.store.clientCerts.get('a1')).toEqual(cert('a1', 'ci'));
    expect([...f.store.clientCerts.all()].map((c) => c.serial)).toEqual(['a1', 'a2', 'b1']);
  });

  test('client-cert-issue refuses a serial already recorded, changing nothing', () => {
    const f = new Fixture();
    expect(f.apply({ op: 'client-cert-issue', at, cert: cert('00a1', 'other') })).toEqual({
      ok: false,
      code: 'conflict',
      message: 'Client certificate serial a1 is already in use',
    });
    expect(f.store.clientCerts.get('a1')!.name).toBe('ci');
  });

  test('serials are looked up whatever their spelling: case, leading zeros, colons', () => {
    const f = new Fixture();
    expect(normalizeSerial('00:A1')).toBe('a1');
    expect(f.store.clientCerts.get('00A1')!.serial).toBe('a1');
    expect(f.store.clientCerts.get('0')).toBeUndefined();
  });

  test('resolve() takes a serial first, else every certificate of a name; unknown is not_found naming it', () => {
    const f = new Fixture();
    expect(f.store.clientCerts.resolve('A2').map((c) => c.serial)).toEqual(['a2']);
    expect(f.store.clientCerts.resolve('ci').map((c) => c.serial)).toEqual(['a1', 'a2']);
    expect(() => f.store.clientCerts.resolve('nobody')).toThrow(
      'Client certificate "nobody" not found',
    );
  });

  test('client-cert-revoke by the serials of a name revokes each at the command time and announces them', () => {
    const f = new Fixture();
    const later = iso(t0 + 1000);
    expect(f.apply({ op: 'client-cert-revoke', at: later, serials: ['a1', 'a2'] })).toEqual({
      ok: true,
    });
    expect(f.revokedAt()).toEqual({ a1: later, a2: later, b1: null });
    expect(f.events).toEqual([{ kind: 'client-certs-revoked', serials: ['a1', 'a2'] }]);
    expect(revocationMessage(f.store.clientCerts.get('a1')!)).toBe(
      `Permission denied: client certificate a1 (name ci) was revoked at ${later}`,
    );
  });

  test('client-cert-revoke by one serial leaves the others of the same name alone', () => {
    const f = new Fixture();
    f.apply({ op: 'client-cert-revoke', at, serials: ['A2'] });
    expect(f.revokedAt()).toEqual({ a1: null, a2: at, b1: null });
  });

  test('client-cert-revoke again changes nothing: the first revocation time stays, no event', () => {
    const f = new Fixture();
    f.apply({ op: 'client-cert-revoke', at, serials: ['b1'] });
    f.events.length = 0;
    expect(f.apply({ op: 'client-cert-revoke', at: iso(t0 + 5000), serials: ['b1'] })).toEqual({
      ok: true,
    });
    expect(f.revokedAt()).toEqual({ a1: null, a2: null, b1: at });
    expect(f.events).toEqual([]);
  });

  test('client-cert-revoke of an unknown serial is not_found and revokes none of the others listed', () => {
    const f = new Fixture();
    expect(f.apply({ op: 'client-cert-revoke', at, serials: ['a1', 'ff'] })).toEqual({
      ok: false,
      code: 'not_found',
      message: 'Client certificate ff not found',
    });
    expect(f.revokedAt()).toEqual({ a1: null, a2: null, b1: null });
  });

  test('cert-records-prune drops only records whose certificate expired the grace period ago', () => {
    const f = new Fixture();
    // a1 and b1 expire at t0+30d, a2 at t0+60d.
    const pruneAt = iso(t0 + 30 * day + certRecordsPruneGraceMs);
    const early = iso(t0 + 30 * day + certRecordsPruneGraceMs - 1);
    f.apply({ op: 'cert-records-prune', at: early, clientCerts: ['a1'], removedNodes: [] });
    expect(f.store.clientCerts.get('a1')).toBeDefined();
    f.apply({
      op: 'cert-records-prune',
      at: pruneAt,
      clientCerts: ['a1', 'a2', 'b1', 'ff'],
      removedNodes: [],
    });
    expect([...f.store.clientCerts.all()].map((c) => c.serial)).toEqual(['a2']);
  });

  test('certRecordsToPrune() picks the records whose certificates expired the grace period before now', () => {
    const f = new Fixture();
    const removed = [
      { id: 'n-old', certsExpireAt: iso(t0) },
      { id: 'n-new', certsExpireAt: iso(t0 + 90 * day) },
      { id: 'n-unknown', certsExpireAt: null },
    ];
    expect(
      certRecordsToPrune(
        f.store.clientCerts.all(),
        removed,
        t0 + 30 * day + certRecordsPruneGraceMs,
        certRecordsPruneGraceMs,
      ),
    ).toEqual({ clientCerts: ['a1', 'b1'], removedNodes: ['n-old'] });
  });

  test('snapshot() and restore() keep the client certificates, revocations included', () => {
    const f = new Fixture();
    f.apply({ op: 'client-cert-revoke', at, serials: ['a1'] });
    const restored = Store.restore(f.store.snapshot());
    expect([...restored.clientCerts.all()]).toEqual([...f.store.clientCerts.all()]);
    expect(restored.clientCerts.get('a1')!.revokedAt).toBe(at);
  });
});

describe('removed nodes in the store', () => {
  const node = (id: string): Command => ({
    op: 'node-add',
    at,
    node: { id, role: 'worker', hostname: id, addr: '' },
  });

  test('a removed node stays refused until its certificates would have expired, then the prune drops it', () => {
    const store = new Store();
    store.apply(1, node('n1'));
    store.apply(2, { op: 'node-remove', at, ids: ['n1'] });
    expect(store.isRemovedNode('n1')).toBe(true);
    expect([...store.removedNodes()]).toEqual([
      { id: 'n1', certsExpireAt: iso(t0 + nodeCertLifetimeMs) },
    ]);
    const tooEarly = iso(t0 + nodeCertLifetimeMs + certRecordsPruneGraceMs - 1);
    store.apply(3, {
      op: 'cert-records-prune',
      at: tooEarly,
      clientCerts: [],
      removedNodes: ['n1'],
    });
    expect(store.isRemovedNode('n1')).toBe(true);
    const due = iso(t0 + nodeCertLifetimeMs + certRecordsPruneGraceMs);
    store.apply(4, { op: 'cert-records-prune', at: due, clientCerts: [], removedNodes: ['n1'] });
    expect(store.isRemovedNode('n1')).toBe(false);
  });

  test('a removed node keeps its certificate expiry across a snapshot; one from an older snapshot is never pruned', () => {
    const store = new Store();
    store.apply(1, node('n1'));
    store.apply(2, { op: 'node-remove', at, ids: ['n1'] });
    expect([...Store.restore(store.snapshot()).removedNodes()]).toEqual([...store.removedNodes()]);
    const body = JSON.parse(new TextDecoder().decode(store.snapshot())) as Record<string, unknown>;
    delete body.removedNodesCertsExpireAt;
    const old = Store.restore(new TextEncoder().encode(JSON.stringify(body)));
    expect([...old.removedNodes()]).toEqual([{ id: 'n1', certsExpireAt: null }]);
    old.apply(3, {
      op: 'cert-records-prune',
      at: iso(t0 + 10 * 365 * day),
      clientCerts: [],
      removedNodes: ['n1'],
    });
    expect(old.isRemovedNode('n1')).toBe(true);
  });
});
