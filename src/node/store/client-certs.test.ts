/** The store's client certificates and removed nodes: issue, revoke, refuse, prune, snapshot. */
import { describe, expect, test } from 'bun:test';
import { certRecordsPruneGraceMs, nodeCertLifetimeMs } from '../../limits.ts';
import {
  certRecordsToPrune,
  checkRoleAndScope,
  inScope,
  normalizeSerial,
  revocationMessage,
  scopeGlobMatches,
  type ClientCertRecord,
} from './client-certs.ts';
import { SecretdError } from '../../errors.ts';
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

describe('roles and scopes', () => {
  test('scopeGlobMatches(): * is any run (empty too), ? exactly one character, the rest literal, case aside', () => {
    const cases: Array<[string, string, boolean]> = [
      ['app_*', 'app_x', true],
      ['app_*', 'app_', true],
      ['app_*', 'APP_DB', true],
      ['app_*', 'xapp_x', false],
      ['app_*', 'app', false],
      ['*_prod', 'db_prod', true],
      ['*_prod', 'db_prod2', false],
      ['a*b*c', 'abc', true],
      ['a*b*c', 'aXbYbZc', true],
      ['a*b*c', 'aXbYc_', false],
      ['ci-?', 'ci-1', true],
      ['ci-?', 'ci-', false],
      ['ci-?', 'ci-12', false],
      ['?', 'a', true],
      ['*', 'anything.at-all', true],
      ['db.pass', 'db.pass', true],
      ['db.pass', 'dbXpass', false],
      ['a**?', 'ab', true],
      ['a**?', 'a', false],
    ];
    expect(cases.map(([glob, name]) => [glob, name, scopeGlobMatches(glob, name)])).toEqual(cases);
  });

  test('scopeGlobMatches() stays fast on a pattern built to backtrack', () => {
    const glob = `${'*a'.repeat(20)}b`;
    const name = 'a'.repeat(64);
    expect(scopeGlobMatches(glob, name)).toBe(false);
  });

  test('inScope(): an empty scope holds every name; otherwise any one glob', () => {
    expect(inScope([], 'db_password')).toBe(true);
    expect(inScope(['app_*', 'ci-?'], 'ci-9')).toBe(true);
    expect(inScope(['app_*', 'ci-?'], 'db_password')).toBe(false);
  });

  test('checkRoleAndScope() takes the five roles, and scopes for writers only, as recorded', () => {
    expect(checkRoleAndScope('writer', ['app_*', 'ci-?'], 'x')).toEqual({
      role: 'writer',
      scope: ['app_*', 'ci-?'],
    });
    for (const role of ['admin', 'operator', 'writer', 'reader', 'auditor'] as const)
      expect(checkRoleAndScope(role, [], 'x')).toEqual({ role, scope: [] });
  });

  test('checkRoleAndScope() refuses an unknown role, a bad or empty glob and a scope on another role, naming them', () => {
    const refusal = (role: unknown, scope: unknown): string => {
      try {
        checkRoleAndScope(role, scope, 'issue client certificate ci');
      } catch (error) {
        if (error instanceof SecretdError && error.code === 'invalid') return error.message;
        throw error;
      }
      return 'accepted';
    };
    const glob = (text: string): string =>
      `Cannot issue client certificate ci: invalid scope glob ${JSON.stringify(text)}: up to 64 characters [a-zA-Z0-9_.-] and the wildcards * and ?, starting with a letter, a digit or a wildcard`;
    const cases: Array<[unknown, unknown, string]> = [
      [
        'root',
        [],
        'Cannot issue client certificate ci: unknown role "root" (expected one of admin, operator, writer, reader, auditor)',
      ],
      [
        'manager',
        [],
        'Cannot issue client certificate ci: unknown role "manager" (expected one of admin, operator, writer, reader, auditor)',
      ],
      ['writer', 'app_*', 'Cannot issue client certificate ci: the scope must be a list of globs'],
      ['writer', [''], 'Cannot issue client certificate ci: a scope glob must not be empty'],
      ['writer', ['app_[0-9]'], glob('app_[0-9]')],
      ['writer', ['app/*'], glob('app/*')],
      ['writer', ['_app'], glob('_app')],
      ['writer', ['a b'], glob('a b')],
      ['writer', ['a'.repeat(65)], glob('a'.repeat(65))],
      ['writer', [7], 'Cannot issue client certificate ci: a scope glob must not be empty'],
      [
        'writer',
        Array.from({ length: 33 }, (_, i) => `s${i}`),
        'Cannot issue client certificate ci: at most 32 scope globs, not 33',
      ],
      [
        'reader',
        ['app_*'],
        'Cannot issue client certificate ci: role reader takes no scope (only writer does)',
      ],
      [
        'admin',
        ['*'],
        'Cannot issue client certificate ci: role admin takes no scope (only writer does)',
      ],
    ];
    expect(cases.map(([role, scope]) => [role, scope, refusal(role, scope)])).toEqual(cases);
  });

  test('client-cert-update gives live serials a new role and scope; unknown or revoked refuses the whole command', () => {
    const f = new Fixture();
    expect(
      f.apply({
        op: 'client-cert-update',
        at,
        serials: ['a1', 'b1'],
        role: 'writer',
        scope: ['app_*'],
      }),
    ).toEqual({ ok: true });
    expect(f.store.clientCerts.get('a1')).toEqual({
      ...cert('a1', 'ci'),
      role: 'writer',
      scope: ['app_*'],
    });
    expect(f.store.clientCerts.get('a2')!.role).toBe('admin');
    expect(
      f.apply({ op: 'client-cert-update', at, serials: ['a2', 'ff'], role: 'reader', scope: [] }),
    ).toEqual({
      ok: false,
      code: 'not_found',
      message: 'Client certificate ff not found',
    });
    f.apply({ op: 'client-cert-revoke', at, serials: ['a2'] });
    expect(
      f.apply({ op: 'client-cert-update', at, serials: ['b1', 'a2'], role: 'reader', scope: [] }),
    ).toEqual({
      ok: false,
      code: 'conflict',
      message: `Cannot update client certificate a2 (name ci): it was revoked at ${at}`,
    });
    // Nothing of a refused command changed.
    expect(f.store.clientCerts.get('b1')!.role).toBe('writer');
    expect(f.store.clientCerts.get('a2')!.role).toBe('admin');
    // Kept across a snapshot.
    expect(Store.restore(f.store.snapshot()).clientCerts.get('b1')).toEqual(
      f.store.clientCerts.get('b1'),
    );
  });
});
