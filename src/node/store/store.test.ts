import { describe, expect, test } from 'bun:test';
import { errorOf } from '../../../test/helpers/errors.ts';
import { requestIdsRemembered, secretBytesMax } from '../../limits.ts';
import type { Command, TaggedCommand } from './commands.ts';
import { decodeCommand, encodeCommand, toBase64 } from './commands.ts';
import { checkLabels, checkSecretData, checkSecretName } from './secret-rules.ts';
import { fromBase64, Store } from './store.ts';

const at = '2026-11-28T00:00:00.000Z';
const create = (id: string, name: string, data = 'secret'): Command => ({
  op: 'secret-create',
  at,
  id,
  name,
  labels: { a: 'b' },
  data: new TextEncoder().encode(data),
});

describe('secret names (Docker fixtures)', () => {
  const rejected = [
    '',
    '.',
    '-',
    '_',
    '.name',
    'name.',
    '-name',
    'name-',
    '_name',
    'name_',
    '/a',
    'a/',
    'a/b',
    '..',
    '../a',
    'a/..',
    'withexclamation!',
    'with space',
    'with\nnewline',
    'with@splat',
    'with:colon',
    'with;semicolon',
    'snowman☃',
    'a'.repeat(65),
  ];
  const accepted = [
    '0',
    'a',
    'A',
    'name-with--dashes',
    'name.with..dots',
    'name_with__underscores',
    'name.with-all_special',
    '02624name035with1699numbers015125',
    'a'.repeat(64),
  ];
  for (const name of rejected) {
    test(`checkSecretName() rejects ${JSON.stringify(name)}`, () => {
      expect(errorOf(() => checkSecretName(name)).code).toBe('invalid');
    });
  }
  for (const name of accepted) {
    test(`checkSecretName() accepts ${JSON.stringify(name)}`, () =>
      expect(checkSecretName(name)).toBe(name));
  }
  test('checkSecretName() rejects a non-string', () =>
    expect(errorOf(() => checkSecretName(42)).message).toContain('must be provided'));
});

describe('secret data and labels', () => {
  test('checkSecretData() rejects empty data and data over 1 MiB, accepts exactly 1 MiB', () => {
    expect(errorOf(() => checkSecretData(new Uint8Array(0))).code).toBe('invalid');
    expect(errorOf(() => checkSecretData(new Uint8Array(secretBytesMax + 1))).code).toBe(
      'too_large',
    );
    expect(() => checkSecretData(new Uint8Array(secretBytesMax))).not.toThrow();
  });
  test('checkLabels() requires string values and non-empty keys', () => {
    expect(checkLabels({ env: 'prod' }, 'secret')).toEqual({ env: 'prod' });
    expect(checkLabels(undefined, 'secret')).toEqual({});
    expect(errorOf(() => checkLabels({ env: 1 }, 'secret')).message).toContain(
      '"env" must be a string',
    );
    expect(errorOf(() => checkLabels({ '': 'x' }, 'secret')).code).toBe('invalid');
    expect(errorOf(() => checkLabels(['a'], 'secret')).code).toBe('invalid');
  });
});

describe('fromBase64', () => {
  test('gives the bytes Buffer gives for any text: standard base64 the quick way, the rest as before, each in an array of its own', () => {
    const texts = [
      '',
      'aGVsbG8=',
      toBase64(new Uint8Array(256).map((_, i) => i)),
      'aGVsbG8', // no padding
      'aGVs bG8=', // a space
      'aGVs\nbG8=', // a line break
      'a-_b', // the URL alphabet
      'a===',
      '!!!!',
      'aGVsbG9=', // bits set past the last byte
      'YR==',
      '====',
      'YQ=a', // padding inside
    ];
    for (const text of texts) {
      const bytes = fromBase64(text);
      expect([...bytes], text).toEqual([...Buffer.from(text, 'base64')]);
      expect(bytes.byteLength, text).toBe(bytes.buffer.byteLength);
    }
  });
});

describe('Store', () => {
  test('apply() creates a secret with one version and indexes it by name ignoring case', () => {
    const store = new Store();
    expect(store.apply(1, create('id1', 'DB_pass'))).toEqual({ ok: true, id: 'id1' });
    const secret = store.secretByName('db_PASS')!;
    expect(secret.id as string).toBe('id1');
    expect(secret.metaIndex).toBe(1);
    expect(secret.labels).toEqual({ a: 'b' });
    expect(new TextDecoder().decode(secret.versions[0]!.data)).toBe('secret');
    expect(secret.versions[0]!.version).toBe(1);
  });

  test('apply() refuses a second secret whose name differs only in case, changing nothing', () => {
    const store = new Store();
    store.apply(1, create('id1', 'db_pass'));
    expect(store.apply(2, create('id2', 'DB_PASS'))).toEqual({
      ok: false,
      code: 'conflict',
      message: 'Secret DB_PASS already exists',
    });
    expect([...store.secrets()].map((s) => s.id as string)).toEqual(['id1']);
    expect(store.appliedIndex).toBe(2);
  });

  test('apply() updates labels only with the current version and refuses a stale one', () => {
    const store = new Store();
    store.apply(1, create('id1', 'a'));
    expect(
      store.apply(2, { op: 'secret-update', at, id: 'id1', expectedIndex: 1, labels: { x: 'y' } }),
    ).toEqual({ ok: true, id: 'id1' });
    const stale = store.apply(3, {
      op: 'secret-update',
      at,
      id: 'id1',
      expectedIndex: 1,
      labels: { z: 'z' },
    });
    expect(stale.ok).toBe(false);
    expect(stale).toMatchObject({ code: 'conflict' });
    expect(store.secret('id1')!.labels).toEqual({ x: 'y' });
    expect(store.secret('id1')!.metaIndex).toBe(2);
  });

  test('apply() removes secrets, zeroes their data and frees the name', () => {
    const store = new Store();
    store.apply(1, create('id1', 'a'));
    const data = store.secret('id1')!.versions[0]!.data;
    expect(store.apply(2, { op: 'secret-remove', at, ids: ['id1'] })).toEqual({ ok: true });
    expect(data.every((b) => b === 0)).toBe(true);
    expect(store.secretByName('a')).toBeUndefined();
    expect(store.apply(3, create('id2', 'a')).ok).toBe(true);
    expect(store.apply(4, { op: 'secret-remove', at, ids: ['nope'] })).toMatchObject({
      ok: false,
      code: 'not_found',
    });
  });

  test('resolveSecret() takes a full id, an exact name, then a unique id prefix; never a name prefix', () => {
    const store = new Store();
    store.apply(1, create('abc111', 'first'));
    store.apply(2, create('abc222', 'second'));
    expect(store.resolveSecret('abc111').name).toBe('first');
    expect(store.resolveSecret('SECOND').id as string).toBe('abc222');
    expect(store.resolveSecret('abc2').id as string).toBe('abc222');
    expect(errorOf(() => store.resolveSecret('abc')).message).toBe(
      'Secret abc is ambiguous (2 matches found)',
    );
    expect(errorOf(() => store.resolveSecret('fir')).code).toBe('not_found');
    expect(errorOf(() => store.resolveSecret('')).code).toBe('not_found');
  });

  test('snapshot() and restore() give an identical store', () => {
    const store = new Store();
    store.apply(1, {
      op: 'cluster-init',
      at,
      clusterId: 'c1',
      caCertPem: 'PEM',
      caKey: toBase64(new Uint8Array([1, 2, 3])),
      joinTokens: { worker: 'w', manager: 'm' },
      unlockKey: null,
      node: { id: 'n1', role: 'manager', hostname: 'h', addr: '127.0.0.1:4377' },
    });
    store.apply(2, create('id1', 'a', 'value-1'));
    const restored = Store.restore(store.snapshot());
    expect(restored.snapshot()).toEqual(store.snapshot());
    expect(restored.appliedIndex).toBe(2);
    expect(restored.cluster!.caKey).toEqual(new Uint8Array([1, 2, 3]));
    expect(new TextDecoder().decode(restored.secretByName('A')!.versions[0]!.data)).toBe('value-1');
  });

  test('apply() refuses to go backwards: a replayed index is a broken invariant', () => {
    const store = new Store();
    store.apply(5, create('id1', 'a'));
    expect(() => store.apply(5, create('id2', 'b'))).toThrow('Invariant violated');
  });

  test('decodeCommand() rejects bytes that are not a command', () => {
    expect(decodeCommand(encodeCommand(create('i', 'n')))).toEqual(create('i', 'n'));
    expect(errorOf(() => decodeCommand(new Uint8Array([0xff, 0x00]))).code).toBe('corrupt');
    expect(errorOf(() => decodeCommand(new TextEncoder().encode('[1]'))).code).toBe('corrupt');
  });
});

describe('Store apply is total', () => {
  /** The store's state without the applied index, which a failed entry still advances. */
  const state = (store: Store): unknown => ({
    ...JSON.parse(new TextDecoder().decode(store.snapshot())),
    appliedIndex: null,
  });
  const poisons: ReadonlyArray<readonly [string, unknown]> = [
    ['secret-remove with ids null (the reported crash)', { op: 'secret-remove', at, ids: null }],
    ['tasks-put with tasks null', { op: 'tasks-put', at, tasks: null }],
    ['task-status with an update null', { op: 'task-status', at, nodeId: 'n1', updates: [null] }],
    [
      'service-create with no container',
      {
        op: 'service-create',
        at,
        id: 'v1',
        spec: {
          name: 'web',
          labels: {},
          mode: { kind: 'global' },
          update: { parallelism: 1, delayMs: 0 },
        },
      },
    ],
    [
      'secret-version-add with data null',
      { op: 'secret-version-add', at, id: 'id1', data: null, ifVersion: null },
    ],
    ['an unknown op', { op: 'secret-purge', at }],
    ['not an object', 'secret-remove'],
  ];

  for (const [what, poison] of poisons) {
    test(`apply() of ${what} fails as a write, changes nothing and does not throw`, () => {
      const store = new Store();
      store.apply(1, create('id1', 'a'));
      const before = state(store);
      const result = store.apply(2, poison);
      expect(result).toMatchObject({ ok: false, code: 'invalid' });
      expect(state(store)).toEqual(before);
      expect(store.appliedIndex).toBe(2);
      expect(store.apply(3, create('id2', 'b'))).toEqual({ ok: true, id: 'id2' });
    });
  }

  test('applyEntry() of bytes that are no command fails as a write; every store gives the same outcome', () => {
    const entries = [
      new Uint8Array([0xff, 0x00]),
      new TextEncoder().encode('[1]'),
      encodeCommand(create('id1', 'a')),
      new TextEncoder().encode('{"op":"secret-remove","at":"x","ids":null}'),
    ];
    const outcomes = [new Store(), new Store()].map((store) => ({
      results: entries.map((bytes, i) => store.applyEntry(i + 1, bytes)),
      state: store.snapshot(),
    }));
    expect(outcomes[0]!.results.map((r) => r.ok)).toEqual([false, false, true, false]);
    expect(outcomes[0]!.results[0]).toMatchObject({ code: 'corrupt' });
    expect(outcomes[1]).toEqual(outcomes[0]!);
  });

  test('apply() still stops on a broken invariant', () => {
    const store = new Store();
    store.apply(2, create('id1', 'a'));
    expect(() => store.apply(1, { op: 'secret-remove', at, ids: null })).toThrow(
      'Invariant violated',
    );
  });
});

describe('Store request de-duplication', () => {
  test('a command retried with the same request id is applied once and answered with the first outcome', () => {
    const store = new Store();
    const first = store.apply(1, { ...create('id1', 'a'), requestId: 'req-1' });
    expect(first).toEqual({ ok: true, id: 'id1' });
    expect(store.apply(2, { ...create('id1', 'a'), requestId: 'req-1' })).toEqual(first);
    expect([...store.secrets()]).toHaveLength(1);
    expect(store.apply(3, { ...create('id2', 'a'), requestId: 'req-2' })).toMatchObject({
      ok: false,
      code: 'conflict',
    });
    const restored = Store.restore(store.snapshot());
    expect(restored.apply(4, { ...create('id1', 'a'), requestId: 'req-1' })).toEqual(first);
  });

  test('remembers the last requestIdsRemembered request ids, oldest forgotten first, across a snapshot', () => {
    const store = new Store();
    const total = requestIdsRemembered + 3;
    const retry = (n: number): TaggedCommand => ({
      ...create(`id${n}`, `s${n}`),
      requestId: `req-${n}`,
    });
    for (let n = 1; n <= total; n++) store.apply(n, retry(n));
    const restored = Store.restore(store.snapshot());
    for (const s of [store, restored]) {
      // The oldest remembered id answers its first outcome; the newest forgotten one is applied again.
      expect(s.apply(total + 1, retry(4))).toEqual({ ok: true, id: 'id4' });
      expect(s.apply(total + 2, retry(3))).toMatchObject({ ok: false, code: 'conflict' });
    }
  });
});
