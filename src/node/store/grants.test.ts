import { describe, expect, test } from 'bun:test';
import { errorOf } from '../../../test/helpers/errors.ts';
import { OneSecretStore } from '../../../test/helpers/store-fixture.ts';
import { grantConstraintsMax, secretGrantsMax } from '../../limits.ts';
import { toBase64, type Command } from './commands.ts';
import { checkGrantConstraints, grantedVersion } from './grants.ts';
import { nodeMatches, normalizeNodeConstraint, parseNodeConstraint } from './node-constraints.ts';
import { Store } from './store.ts';
import type { NodeRecord, ServiceSpec } from './types.ts';

const at = '2026-12-06T00:00:00.000Z';
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

const node = (over: Partial<NodeRecord> = {}): NodeRecord =>
  ({
    id: 'n1',
    role: 'worker',
    hostname: 'db-host',
    addr: '127.0.0.1:4377',
    availability: 'active',
    labels: { role: 'db', Zone: 'East' },
    status: 'ready',
    createdAt: at,
    updatedAt: at,
    metaIndex: 1,
    ...over,
  }) as NodeRecord;

/** A store with one secret `db` (version 1), and its grants. */
class Fixture extends OneSecretStore {
  constructor() {
    super(at);
  }
  grant(constraints: string[], version: number | null = null): ReturnType<Store['apply']> {
    return this.apply({ op: 'secret-grant', at, id: 'db', constraints, version });
  }
  ungrant(constraints: string[]): ReturnType<Store['apply']> {
    return this.apply({ op: 'secret-ungrant', at, id: 'db', constraints });
  }
  grants(): unknown {
    return this.store.secret('db')!.grants;
  }
}

describe('node constraints (Docker placement syntax)', () => {
  test('parseNodeConstraint reads == and !=, trims spaces, lower-cases fixed keys and keeps a label key as given', () => {
    expect(parseNodeConstraint(' node.labels.Zone == East ')).toEqual({
      key: 'node.labels.Zone',
      operator: '==',
      value: 'East',
    });
    expect(parseNodeConstraint('NODE.Role!=manager')).toEqual({
      key: 'node.role',
      operator: '!=',
      value: 'manager',
    });
    expect(normalizeNodeConstraint('node.hostname == db-host')).toBe('node.hostname==db-host');
  });

  test('parseNodeConstraint refuses a missing operator, a bad key or value and an unknown key, naming the expression', () => {
    const cases: Array<[string, string]> = [
      ['node.labels.role=db', 'expected KEY==VALUE or KEY!=VALUE'],
      ['node labels==x', 'key "node labels" is invalid'],
      ['node.labels.role==d<b', 'value "d<b" is invalid'],
      ['node.labels.role==', 'value "" is invalid'],
      ['node.platform.os==linux', 'unknown key "node.platform.os"'],
      ['engine.labels.x==y', 'unknown key "engine.labels.x"'],
      ['node.labels.==y', 'unknown key "node.labels."'],
    ];
    for (const [text, reason] of cases) {
      const error = errorOf(() => parseNodeConstraint(text));
      expect({ text, code: error.code }).toEqual({ text, code: 'invalid' });
      expect(error.message).toContain(JSON.stringify(text));
      expect(error.message).toContain(reason);
    }
  });

  test('nodeMatches needs every constraint, compares values ignoring case, and takes a missing label as empty', () => {
    const n = node();
    expect(nodeMatches(['node.labels.role==DB'], n)).toBe(true);
    expect(nodeMatches(['node.labels.role==db', 'node.role==worker'], n)).toBe(true);
    expect(nodeMatches(['node.labels.role==db', 'node.role==manager'], n)).toBe(false);
    expect(nodeMatches(['node.labels.zone==east'], n)).toBe(false); // a label key keeps its case
    expect(nodeMatches(['node.labels.Zone==east'], n)).toBe(true);
    expect(nodeMatches(['node.labels.missing!=x'], n)).toBe(true);
    expect(nodeMatches(['node.labels.missing==x'], n)).toBe(false);
    expect(nodeMatches(['node.id==n1', 'node.hostname!=other'], n)).toBe(true);
    expect(nodeMatches(['node.id==n2'], n)).toBe(false);
  });

  test('checkGrantConstraints normalizes, sorts and drops duplicates, and refuses none or too many', () => {
    expect(
      checkGrantConstraints(['node.role == worker', 'node.labels.role==db', 'NODE.ROLE==worker']),
    ).toEqual(['node.labels.role==db', 'node.role==worker']);
    expect(errorOf(() => checkGrantConstraints([])).message).toContain(
      'give at least one node constraint',
    );
    const many = Array.from({ length: grantConstraintsMax + 1 }, (_, i) => `node.labels.l${i}==x`);
    expect(errorOf(() => checkGrantConstraints(many)).message).toContain(
      `over the limit of ${grantConstraintsMax}`,
    );
  });
});

describe('grants in the store', () => {
  test('a grant is stored normalized with its version and moves the secret index', () => {
    const f = new Fixture();
    const before = f.store.secret('db')!.metaIndex;
    expect(f.grant(['node.labels.role==db'])).toEqual({ ok: true, id: 'db', changed: true });
    expect(f.grants()).toEqual([
      { constraints: ['node.labels.role==db'], version: null, createdAt: at },
    ]);
    expect(f.store.secret('db')!.metaIndex).toBeGreaterThan(before);
  });

  test('the same constraints again change only the pinned version; the same grant again changes nothing', () => {
    const f = new Fixture();
    f.grant(['node.labels.role==db']);
    expect(f.grant(['node.labels.role==db'])).toEqual({ ok: true, id: 'db', changed: false });
    expect(f.grant(['node.labels.role==db'], 1)).toEqual({
      ok: true,
      id: 'db',
      changed: true,
      version: 1,
    });
    expect(f.grants()).toEqual([
      { constraints: ['node.labels.role==db'], version: 1, createdAt: at },
    ]);
  });

  test('several grants are kept as alternatives', () => {
    const f = new Fixture();
    f.grant(['node.labels.role==db']);
    f.grant(['node.id==n9', 'node.role==manager']);
    expect(f.grants()).toEqual([
      { constraints: ['node.labels.role==db'], version: null, createdAt: at },
      { constraints: ['node.id==n9', 'node.role==manager'], version: null, createdAt: at },
    ]);
  });

  test('a grant pinned to a version the secret does not have is refused, changing nothing', () => {
    const f = new Fixture();
    expect(f.grant(['node.labels.role==db'], 5)).toEqual({
      ok: false,
      code: 'not_found',
      message: 'Cannot grant secret db: it has no version 5 (it has 1)',
    });
    expect(f.grants()).toBeUndefined();
  });

  test('a grant of an unknown secret is refused', () => {
    const f = new Fixture();
    const result = f.apply({
      op: 'secret-grant',
      at,
      id: 'nope',
      constraints: ['node.id==n1'],
      version: null,
    });
    expect(result).toEqual({ ok: false, code: 'not_found', message: 'Secret nope not found' });
  });

  test(`more than ${secretGrantsMax} grants on one secret are refused`, () => {
    const f = new Fixture();
    for (let i = 0; i < secretGrantsMax; i++) expect(f.grant([`node.id==n${i}`]).ok).toBe(true);
    const refused = f.grant(['node.id==over']);
    expect(refused.ok ? '' : refused.message).toBe(
      `Cannot grant secret db: it already has ${secretGrantsMax} grants, the limit (remove one with secret ungrant)`,
    );
  });

  test('ungrant removes exactly the grant with those constraints, and names them when there is none', () => {
    const f = new Fixture();
    f.grant(['node.labels.role==db', 'node.role==worker']);
    f.grant(['node.id==n1']);
    const missing = f.ungrant(['node.labels.role==db']);
    expect(missing).toEqual({
      ok: false,
      code: 'not_found',
      message:
        'Cannot ungrant secret db: it has no grant with node constraints [node.labels.role==db] (its grants: [node.labels.role==db, node.role==worker] [node.id==n1])',
    });
    expect(f.ungrant(['node.labels.role==db', 'node.role==worker'])).toEqual({
      ok: true,
      id: 'db',
      changed: true,
    });
    expect(f.grants()).toEqual([{ constraints: ['node.id==n1'], version: null, createdAt: at }]);
    f.ungrant(['node.id==n1']);
    expect(f.grants()).toBeUndefined();
    expect(f.ungrant(['node.id==n1'])).toEqual({
      ok: false,
      code: 'not_found',
      message:
        'Cannot ungrant secret db: it has no grant with node constraints [node.id==n1] (it has no grants)',
    });
  });

  test('secret rm is refused while a grant exists, naming it, and allowed once it is gone', () => {
    const f = new Fixture();
    f.grant(['node.labels.role==db']);
    expect(f.apply({ op: 'secret-remove', at, ids: ['db'] })).toEqual({
      ok: false,
      code: 'conflict',
      message:
        'Cannot remove secret db: it is granted to nodes by a grant ([node.labels.role==db]); remove it first with secret ungrant',
    });
    expect(f.store.secret('db')).toBeDefined();
    f.ungrant(['node.labels.role==db']);
    expect(f.apply({ op: 'secret-remove', at, ids: ['db'] })).toEqual({ ok: true });
  });

  test('secret rm is refused while a service uses it, whatever its grants', () => {
    const f = new Fixture();
    f.grant(['node.labels.role==db']);
    const spec: ServiceSpec = {
      name: 'web',
      labels: {},
      container: {
        image: 'busybox',
        command: [],
        args: [],
        env: [],
        secrets: [
          { secretId: 'db', secretName: 'db', target: 'db', uid: '0', gid: '0', mode: 0o444 },
        ],
      },
      mode: { kind: 'replicated', replicas: 1 },
      update: { parallelism: 1, delayMs: 0 },
    };
    f.apply({ op: 'service-create', at, id: 'web', spec });
    const result = f.apply({ op: 'secret-remove', at, ids: ['db'] });
    expect(result.ok ? '' : result.message).toBe(
      "Secret 'db' is in use by the following service: web",
    );
  });

  test('a version a grant pins is kept from removal and from retention', () => {
    const f = new Fixture();
    f.apply({ op: 'secret-version-add', at, id: 'db', data: bytes('v2'), ifVersion: null });
    f.grant(['node.labels.role==db'], 1);
    expect(f.apply({ op: 'secret-version-remove', at, id: 'db', version: 1 })).toEqual({
      ok: false,
      code: 'conflict',
      message: 'Cannot remove version 1 of secret db: it is pinned by grant [node.labels.role==db]',
    });
    f.apply({ op: 'cluster-init', ...clusterInit() });
    f.apply({ op: 'cluster-update', at, expectedIndex: null, secretVersionsKept: 1 });
    f.apply({ op: 'secret-version-add', at, id: 'db', data: bytes('v3'), ifVersion: null });
    expect(f.store.secret('db')!.versions.map((v) => v.version)).toEqual([1, 3]);
  });

  test('grants survive a snapshot and restore', () => {
    const f = new Fixture();
    f.grant(['node.labels.role==db'], 1);
    const restored = Store.restore(f.store.snapshot());
    expect(restored.secret('db')!.grants).toEqual([
      { constraints: ['node.labels.role==db'], version: 1, createdAt: at },
    ]);
  });

  test('grantedVersion: none when no grant matches, the newest for an unpinned one, the newest named among several', () => {
    const f = new Fixture();
    f.apply({ op: 'secret-version-add', at, id: 'db', data: bytes('v2'), ifVersion: null });
    const secret = (): Parameters<typeof grantedVersion>[0] => f.store.secret('db')!;
    expect(grantedVersion(secret(), node())).toBeNull();
    f.grant(['node.labels.role==db'], 1);
    expect(grantedVersion(secret(), node())).toBe(1);
    expect(grantedVersion(secret(), node({ labels: { role: 'web' } }))).toBeNull();
    f.grant(['node.role==worker']);
    expect(grantedVersion(secret(), node())).toBe(2);
    expect(grantedVersion(secret(), node({ labels: {} }))).toBe(2);
    expect(grantedVersion(secret(), node({ role: 'manager' }))).toBe(1);
  });
});

function clusterInit(): Omit<Extract<Command, { op: 'cluster-init' }>, 'op'> {
  return {
    at,
    clusterId: 'c1',
    caCertPem: 'PEM',
    caKey: toBase64(new Uint8Array([1])),
    joinTokens: { worker: 'w', manager: 'm' },
    unlockKey: null,
    node: { id: 'm1', role: 'manager', hostname: 'm1', addr: '127.0.0.1:1' },
  };
}
