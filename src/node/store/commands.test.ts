/**
 * parseCommand(): the one schema of every command, for forwarded writes and for the store before it
 * applies; encodeCommand()/decodeCommand(): the log entry forms (binary for a secret's value, JSON
 * otherwise and before); wireCommand(): the JSON a forwarded write travels as.
 */
import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { secretBytesMax } from '../../limits.ts';
import {
  decodeStandardBase64,
  binaryEntryTag,
  decodeCommand,
  encodeCommand,
  parseCommand,
  wireCommand,
  type CommandOp,
  type TaggedCommand,
  toBase64,
} from './commands.ts';
import { Store } from './store.ts';

const at = '2026-11-28T00:00:00.000Z';
const secret = new TextEncoder().encode('s3cr3t');
const data = toBase64(secret);
const container = {
  image: 'busybox',
  command: ['sh'],
  args: ['-c', 'sleep 1'],
  env: ['A=b'],
  secrets: [
    {
      secretId: 's1',
      secretName: 'db',
      version: 2,
      onUpdate: { kind: 'signal', signal: 'SIGHUP' },
      target: 'db',
      uid: '0',
      gid: '0',
      mode: 0o400,
    },
  ],
};
const spec = {
  name: 'web',
  labels: { tier: 'front' },
  container,
  mode: { kind: 'replicated', replicas: 2 },
  update: { parallelism: 1, delayMs: 0 },
  forceUpdate: 0,
};
const node = {
  id: 'n1',
  role: 'manager',
  hostname: 'h',
  addr: '127.0.0.1:4377',
  resources: { nanoCpus: 1, memoryBytes: 2 },
};

/** A root certificate (createRootCA, public) and its key's SPKI, for the rotation's samples. */
const rootPem =
  '-----BEGIN CERTIFICATE-----\nMIIBbTCCAROgAwIBAgIQciRZVRJHr/P/gy+JcsBV+zAKBggqhkjOPQQDAjAVMRMw\nEQYDVQQDEwpzZWNyZXRkLWNhMB4XDTI2MTEyNzIzMDAwMFoXDTQ2MTEyMzAwMDAw\nMFowFTETMBEGA1UEAxMKc2VjcmV0ZC1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEH\nA0IABPyXxPR8U+2U+vA0EoNjsEfwxy7suRpSz4Mui3BwKnj0J/H7JLMnxBXLgptz\nqSNlqgiGy98E2mFvSHFMhi758rejRTBDMBIGA1UdEwEB/wQIMAYBAf8CAQEwDgYD\nVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBQqWQSkUsGPMhNEQf9+LdKU961p1jAKBggq\nhkjOPQQDAgNIADBFAiEAkz9zq/tnYpjUcq+CeqfcpTtMdg7p1W4ZbqWPGCUjff0C\nIAcMFqXPGSqQQopUvoFrGUuy2f0pdWGza2RzkC07k1Ht\n-----END CERTIFICATE-----\n';
const rootKey =
  'MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/JfE9HxT7ZT68DQSg2OwR/DHLuy5GlLPgy6LcHAqePQn8fsksyfEFcuCm3OpI2WqCIbL3wTaYW9IcUyGLvnytw==';

/** One valid command of every op (the Record makes a new op without a sample a type error). */
const samples: Record<CommandOp, TaggedCommand> = {
  'cluster-init': {
    op: 'cluster-init',
    at,
    clusterId: 'c1',
    caCertPem: 'PEM',
    caKey: toBase64(new Uint8Array([1, 2])),
    joinTokens: { worker: 'w', manager: 'm' },
    unlockKey: null,
    node: node as never,
  },
  'cluster-update': {
    op: 'cluster-update',
    at,
    expectedIndex: 3,
    labels: { a: 'b' },
    joinTokens: { worker: 'w', manager: 'm' },
    unlockKey: data,
    secretVersionsKept: 5,
  },
  'secret-create': {
    op: 'secret-create',
    at,
    id: 's1',
    name: 'db_pass',
    labels: {},
    data: secret,
    requestId: 'r1',
  },
  'secret-update': { op: 'secret-update', at, id: 's1', expectedIndex: 4, labels: { a: 'b' } },
  'secret-remove': { op: 'secret-remove', at, ids: ['s1', 's2'] },
  'secret-version-add': {
    op: 'secret-version-add',
    at,
    id: 's1',
    data: secret,
    ifVersion: null,
  },
  'secret-rollback': { op: 'secret-rollback', at, id: 's1', to: 1, ifVersion: 2 },
  'secret-version-remove': { op: 'secret-version-remove', at, id: 's1', version: 1 },
  'secret-grant': {
    op: 'secret-grant',
    at,
    id: 's1',
    constraints: ['node.labels.role==db', 'node.role!=manager'],
    version: null,
  },
  'secret-ungrant': { op: 'secret-ungrant', at, id: 's1', constraints: ['node.id==n1'] },
  'node-add': { op: 'node-add', at, node: node as never },
  'node-update': {
    op: 'node-update',
    at,
    id: 'n1',
    expectedIndex: null,
    role: 'worker',
    availability: 'drain',
    labels: { a: 'b' },
    addr: '10.0.0.1:4377',
  },
  'node-remove': { op: 'node-remove', at, ids: ['n1'] },
  'node-status': { op: 'node-status', at, id: 'n1', status: 'ready' },
  'service-create': { op: 'service-create', at, id: 'v1', spec: spec as never },
  'service-update': {
    op: 'service-update',
    at,
    id: 'v1',
    expectedIndex: 7,
    spec: { ...spec, mode: { kind: 'global' } } as never,
  },
  'service-remove': { op: 'service-remove', at, id: 'v1' },
  'tasks-put': {
    op: 'tasks-put',
    at,
    tasks: [
      {
        id: 't1',
        serviceId: 'v1',
        slot: 1,
        nodeId: null,
        specVersion: 1,
        container: container as never,
        desiredState: 'running',
        state: 'pending',
        message: 'm',
      },
    ],
  },
  'task-status': {
    op: 'task-status',
    at,
    nodeId: 'n1',
    updates: [
      {
        id: 't1',
        state: 'running',
        message: 'started',
        error: '',
        exitCode: null,
        secretVersions: { s1: 2 },
      },
    ],
  },
  'tasks-remove': { op: 'tasks-remove', at, ids: [] },
  'client-cert-issue': {
    op: 'client-cert-issue',
    at,
    cert: {
      serial: '4a3f09',
      name: 'ci-bot',
      role: 'admin',
      scope: [],
      issuedAt: at,
      expiresAt: '2027-02-26T00:00:00.000Z',
      revokedAt: null,
    },
  },
  'client-cert-update': {
    op: 'client-cert-update',
    at,
    serials: ['4a3f09'],
    role: 'writer',
    scope: ['app_*', 'ci-?'],
  },
  'client-cert-revoke': { op: 'client-cert-revoke', at, serials: ['4a3f09', '51'] },
  'cert-records-prune': { op: 'cert-records-prune', at, clientCerts: ['4a3f09'], removedNodes: [] },
  'audit-append': {
    op: 'audit-append',
    at,
    records: [
      {
        at,
        actor: { kind: 'client', name: 'ci', serial: '4a3f09', role: 'writer' },
        source: '127.0.0.1:5000',
        action: 'secret-create',
        object: { name: 'db_x' },
        result: 'denied',
      },
    ],
  },
  'dek-rotate': { op: 'dek-rotate', at },
  'ca-rotation-start': {
    op: 'ca-rotation-start',
    at,
    rotation: {
      id: 'r1',
      startedAt: at,
      caCertPem: rootPem,
      caKey: toBase64(new Uint8Array([1, 2])),
      crossSignedPem: 'PEM',
      issuerKey: rootKey,
    },
    forceRotate: 1,
  },
  'node-cert-issuer': { op: 'node-cert-issuer', at, id: 'n1', issuerKey: rootKey },
  'ca-rotation-finish': {
    op: 'ca-rotation-finish',
    at,
    rotationId: 'r1',
    joinTokens: { worker: 'w', manager: 'm' },
  },
};

/** For each op, fields set to values of the wrong shape: each must be refused. */
const wrongShapes: Record<CommandOp, ReadonlyArray<readonly [string, unknown]>> = {
  'cluster-init': [
    ['clusterId', ''],
    ['caCertPem', 1],
    ['caKey', 'not base64!'],
    ['joinTokens', null],
    ['joinTokens.worker', 1],
    ['unlockKey', 7],
    ['node', 'n1'],
    ['node.role', 'root'],
    ['node.resources.nanoCpus', -1],
  ],
  'cluster-update': [
    ['expectedIndex', '3'],
    ['labels', ['a']],
    ['labels', { a: 1 }],
    ['joinTokens', {}],
    ['unlockKey', {}],
    ['secretVersionsKept', 0],
  ],
  'secret-create': [
    ['id', null],
    ['name', 'a b'],
    ['name', 5],
    ['labels', null],
    ['data', ''],
    ['data', new Uint8Array(0)],
    ['data', 42],
    ['data', [1, 2]],
    ['data', '%%%%'],
    ['requestId', 9],
  ],
  'secret-update': [
    ['id', 1],
    ['expectedIndex', -1],
    ['expectedIndex', 1.5],
    ['labels', 'x'],
  ],
  'secret-remove': [
    ['ids', null],
    ['ids', 's1'],
    ['ids', [1]],
    ['ids', ['']],
    ['ids', { 0: 's1' }],
  ],
  'secret-version-add': [
    ['data', null],
    ['ifVersion', 0],
    ['ifVersion', '1'],
    ['id', {}],
  ],
  'secret-rollback': [
    ['to', null],
    ['to', 0],
    ['ifVersion', -2],
  ],
  'secret-version-remove': [
    ['version', '1'],
    ['version', 2 ** 60],
  ],
  'secret-grant': [
    ['id', ''],
    ['constraints', []],
    ['constraints', 'node.id==n1'],
    ['constraints', ['node.labels.role=db']],
    ['constraints', ['node.platform.os==linux']],
    ['constraints', ['node.role==worker', 'node.id==n1']],
    ['constraints', ['node.id==n1', 'node.id==n1']],
    ['constraints', ['NODE.ID==n1']],
    ['version', 0],
    ['version', '2'],
  ],
  'secret-ungrant': [
    ['id', 7],
    ['constraints', null],
    ['constraints', ['node.labels.==x']],
  ],
  'node-add': [
    ['node', null],
    ['node.id', 3],
    ['node.hostname', null],
    ['node.addr', []],
    ['node.resources', 'big'],
  ],
  'node-update': [
    ['id', null],
    ['expectedIndex', 'x'],
    ['role', 'boss'],
    ['availability', 'off'],
    ['labels', 3],
    ['addr', 1],
  ],
  'node-remove': [
    ['ids', null],
    ['ids', [null]],
  ],
  'node-status': [
    ['status', 'up'],
    ['id', ''],
  ],
  'service-create': [
    ['spec', null],
    ['spec.name', ''],
    ['spec.labels', null],
    ['spec.container', null],
    ['spec.container.command', 'sh'],
    ['spec.container.env', [1]],
    ['spec.container.secrets', null],
    ['spec.container.secrets.0.mode', '0400'],
    ['spec.container.secrets.0.onUpdate', { kind: 'signal', signal: 'SIGKILL' }],
    ['spec.container.secrets.0.version', 0],
    ['spec.mode', { kind: 'replicated' }],
    ['spec.mode', { kind: 'sometimes' }],
    ['spec.update', null],
    ['spec.update.delayMs', -1],
    ['spec.update.failureAction', 'rollback'],
    ['spec.forceUpdate', 'yes'],
  ],
  'service-update': [
    ['expectedIndex', null],
    ['spec', []],
  ],
  'service-remove': [['id', 0]],
  'tasks-put': [
    ['tasks', null],
    ['tasks.0', null],
    ['tasks.0.slot', -1],
    ['tasks.0.nodeId', 1],
    ['tasks.0.container.secrets', {}],
    ['tasks.0.desiredState', 'paused'],
    ['tasks.0.state', 'gone'],
    ['tasks.0.message', 1],
  ],
  'task-status': [
    ['nodeId', null],
    ['updates', null],
    ['updates.0.state', 'done'],
    ['updates.0.exitCode', '0'],
    ['updates.0.secretVersions', null],
    ['updates.0.secretVersions.s1', '2'],
  ],
  'tasks-remove': [['ids', 'all']],
  'dek-rotate': [['at', 7]],
  'ca-rotation-start': [
    ['rotation', null],
    ['rotation.id', ''],
    ['rotation.caKey', 3],
    ['rotation.caCertPem', 'not a certificate'],
    ['rotation.issuerKey', 'QUJD'],
    ['forceRotate', -1],
  ],
  'node-cert-issuer': [
    ['id', ''],
    ['issuerKey', 'not base64!'],
    ['issuerKey', ''],
  ],
  'ca-rotation-finish': [
    ['rotationId', 7],
    ['joinTokens', null],
  ],
  'client-cert-issue': [
    ['cert', null],
    ['cert.serial', 'xyz'],
    ['cert.serial', '4A3F09'],
    ['cert.serial', 'a'.repeat(41)],
    ['cert.name', 'a b'],
    ['cert.name', ''],
    ['cert.role', 'manager'],
    ['cert.scope', null],
    ['cert.scope', [1]],
    ['cert.scope', ['app_*']],
    ['cert.issuedAt', 'yesterday'],
    ['cert.expiresAt', '2026-11-27T00:00:00.000Z'],
    ['cert.revokedAt', at],
  ],
  'client-cert-update': [
    ['serials', []],
    ['serials', ['not-hex']],
    ['role', 'manager'],
    ['role', 'root'],
    ['scope', null],
    ['scope', ['']],
    ['scope', ['app_[x]']],
    ['scope', ['_app']],
    ['scope', Array.from({ length: 33 }, (_, i) => `s${i}`)],
  ],
  'client-cert-revoke': [
    ['serials', []],
    ['serials', '4a3f09'],
    ['serials', ['not-hex']],
    ['serials', [7]],
  ],
  'cert-records-prune': [
    ['clientCerts', null],
    ['clientCerts', ['g']],
    ['removedNodes', [''] as unknown],
    ['removedNodes', 'n1'],
  ],
  'audit-append': [
    ['records', []],
    ['records', 'r'],
    ['records.0.actor.kind', 'root'],
    ['records.0.actor.name', 1],
    ['records.0.result', null],
    ['records.0.version', -1],
    ['records.0.object', 'db_x'],
  ],
};

/** Top-level fields a command may leave out (a change to only some settings). */
const optionalFields: Partial<Record<CommandOp, readonly string[]>> = {
  'cluster-update': ['labels', 'joinTokens', 'unlockKey', 'secretVersionsKept'],
  'node-update': ['role', 'availability', 'labels', 'addr'],
  'ca-rotation-start': ['forceRotate'],
};

function withField(command: TaggedCommand, path: string, value: unknown): unknown {
  const copy = structuredClone(command) as Record<string, unknown>;
  const keys = path.split('.');
  let target: Record<string, unknown> = copy;
  for (const key of keys.slice(0, -1)) target = target[key] as Record<string, unknown>;
  target[keys.at(-1)!] = value;
  return copy;
}

function refusal(value: unknown): SecretdError {
  try {
    parseCommand(value);
  } catch (error) {
    if (error instanceof SecretdError) return error;
    throw error;
  }
  throw new Error('parseCommand() accepted it');
}

describe('parseCommand()', () => {
  for (const [op, command] of Object.entries(samples)) {
    test(`accepts a well-formed ${op} and returns it unchanged`, () => {
      expect(parseCommand(structuredClone(command))).toEqual(command);
    });
  }

  for (const [op, cases] of Object.entries(wrongShapes) as [
    CommandOp,
    (typeof wrongShapes)[CommandOp],
  ][]) {
    test(`refuses a ${op} with a field of the wrong shape, naming the field and never the value`, () => {
      for (const [path, value] of cases) {
        const error = refusal(withField(samples[op], path, value));
        expect({ path, code: error.code }).toEqual({ path, code: 'invalid' });
        expect(error.message).not.toContain('s3cr3t');
      }
    });
    test(`refuses a ${op} missing a required field`, () => {
      const optional = ['op', 'requestId', ...(optionalFields[op] ?? [])];
      const required = Object.keys(samples[op]).filter((key) => !optional.includes(key));
      expect(required.length).toBeGreaterThan(0);
      for (const key of required) {
        const { [key]: _dropped, ...rest } = samples[op] as unknown as Record<string, unknown>;
        expect({ key, code: refusal(rest).code }).toEqual({ key, code: 'invalid' });
      }
    });
  }

  test('refuses what is not a command: not an object, no op, an unknown op', () => {
    for (const value of [
      null,
      'secret-remove',
      [samples['secret-remove']],
      { at, ids: [] },
      { op: 'secret-purge', at },
      { op: 7, at },
    ]) {
      expect(refusal(value).code).toBe('invalid');
    }
  });

  test('the reported poison command, secret-remove with ids null, is refused', () => {
    expect(refusal({ op: 'secret-remove', ids: null, at }).message).toBe(
      'Invalid command: ids must be a list',
    );
  });

  test('secret data follows the API rule: at least 1 byte, at most the limit (too_large beyond), never echoed', () => {
    const big = toBase64(new Uint8Array(secretBytesMax + 1).fill(0x41));
    expect(refusal(withField(samples['secret-create'], 'data', big)).code).toBe('too_large');
    expect(
      parseCommand(
        withField(samples['secret-create'], 'data', toBase64(new Uint8Array(secretBytesMax))),
      ),
    ).toMatchObject({ op: 'secret-create' });
    expect(refusal(withField(samples['secret-version-add'], 'data', '')).message).toBe(
      'Invalid secret data: it must be at least 1 byte',
    );
  });
});

/** `length` bytes holding every byte value in turn (0, 1, … 255, 0, …). */
function everyByte(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => i % 256);
}

function createWith(value: Uint8Array, name = 'db_pass'): TaggedCommand {
  return {
    op: 'secret-create',
    at,
    id: `id-${name}`,
    name,
    labels: { tier: 'db' },
    data: value,
    requestId: 'r1',
    audit: { actor: { kind: 'admin-socket', name: 'admin-socket', role: 'admin' }, source: 'cli' },
  } as TaggedCommand;
}

function corruption(bytes: Uint8Array): SecretdError {
  try {
    decodeCommand(bytes);
  } catch (error) {
    if (error instanceof SecretdError) return error;
    throw error;
  }
  throw new Error('decodeCommand() accepted it');
}

/** A binary entry with `json` as its JSON (length given, or the JSON's own) and `rest` after it. */
function binaryEntry(json: string, rest: number[] = [], jsonBytes?: number): Uint8Array {
  const text = new TextEncoder().encode(json);
  const entry = new Uint8Array(5 + text.length + rest.length);
  entry[0] = binaryEntryTag;
  new DataView(entry.buffer).setUint32(1, jsonBytes ?? text.length);
  entry.set(text, 5);
  entry.set(rest, 5 + text.length);
  return entry;
}

describe('encodeCommand() and decodeCommand()', () => {
  test('a secret-create round-trips as a binary entry with data of 0, 1 and 500 KiB holding every byte value', () => {
    for (const length of [0, 1, 500 * 1024]) {
      const command = createWith(everyByte(length));
      const entry = encodeCommand(command);
      expect({ length, tag: entry[0] }).toEqual({ length, tag: binaryEntryTag });
      expect(decodeCommand(entry)).toEqual(command);
    }
  });

  test('a secret-version-add round-trips as a binary entry', () => {
    const command: TaggedCommand = {
      op: 'secret-version-add',
      at,
      id: 's1',
      data: everyByte(300),
      ifVersion: 4,
    };
    const entry = encodeCommand(command);
    expect(entry[0]).toBe(binaryEntryTag);
    expect(decodeCommand(entry)).toEqual(command);
  });

  test('the binary entry is the tag, the u32 length of the JSON without data, that JSON, then the raw value', () => {
    const value = everyByte(3);
    const { data: _value, ...header } = createWith(value) as TaggedCommand & { data: Uint8Array };
    const json = new TextEncoder().encode(JSON.stringify(header));
    const expected = new Uint8Array([
      binaryEntryTag,
      ...new Uint8Array(new Uint32Array([json.length]).buffer).reverse(),
      ...json,
      0,
      1,
      2,
    ]);
    expect(encodeCommand(createWith(value))).toEqual(expected);
  });

  test('commands without a value stay JSON entries, byte for byte as before', () => {
    for (const op of ['secret-remove', 'cluster-update', 'tasks-put', 'secret-update'] as const) {
      const command = samples[op];
      expect(encodeCommand(command)).toEqual(new TextEncoder().encode(JSON.stringify(command)));
      expect(decodeCommand(encodeCommand(command))).toEqual(command);
    }
  });

  test('a decoded value is a copy: the entry and the command never share bytes', () => {
    const entry = encodeCommand(createWith(everyByte(64)));
    const decoded = decodeCommand(entry) as TaggedCommand & { data: Uint8Array };
    decoded.data.fill(0);
    expect((decodeCommand(entry) as TaggedCommand & { data: Uint8Array }).data).toEqual(
      everyByte(64),
    );
  });

  test('the entry of a 64 KiB create is under 1.05 times the value plus a fixed 512 bytes', () => {
    const value = everyByte(64 * 1024);
    const entry = encodeCommand(createWith(value));
    expect(entry.length).toBeLessThan(1.05 * value.length + 512);
    // The JSON form written before carried it as base64: a third more.
    const old = new TextEncoder().encode(
      JSON.stringify({ ...createWith(value), data: toBase64(value) }),
    );
    expect(old.length).toBeGreaterThan((4 / 3) * value.length);
  });

  test('a binary entry that is cut short or whose lengths do not add up is corrupt, never a crash', () => {
    const good = encodeCommand(createWith(everyByte(10)));
    const cases: ReadonlyArray<readonly [string, Uint8Array, string]> = [
      [
        'the tag alone',
        new Uint8Array([binaryEntryTag]),
        'it holds 1 of the 5 bytes of the binary header',
      ],
      ['a truncated length', good.subarray(0, 3), 'it holds 3 of the 5 bytes of the binary header'],
      [
        'a JSON length past the end',
        binaryEntry('{"op":"secret-create"}', [1, 2], 1000),
        'its JSON of 1000 bytes runs past its end (29 bytes)',
      ],
      [
        'a JSON length of 2^32 - 1',
        binaryEntry('{"op":"secret-create"}', [], 0xffffffff),
        'its JSON of 4294967295 bytes runs past its end (27 bytes)',
      ],
      ['the entry cut inside its JSON', good.subarray(0, 20), 'its JSON of'],
      ['JSON that does not parse', binaryEntry('{"op":', [1]), ''],
      ['JSON that is no command', binaryEntry('[1]', [1]), ''],
      [
        'an op that carries no value',
        binaryEntry(JSON.stringify(samples['secret-remove']), [1]),
        'a binary entry must hold a command with data, outside its JSON',
      ],
      [
        'a value inside the JSON too',
        binaryEntry(JSON.stringify({ ...samples['secret-create'], data }), [1]),
        'a binary entry must hold a command with data, outside its JSON',
      ],
    ];
    for (const [what, bytes, why] of cases) {
      const error = corruption(bytes);
      expect({ what, code: error.code }).toEqual({ what, code: 'corrupt' });
      expect(error.message).toStartWith(
        `Log entry is not a valid command${why === '' ? '' : ': '}${why}`,
      );
    }
  });

  test('a corrupt binary entry fails as a write and the store goes on applying', () => {
    const store = new Store();
    expect(store.applyEntry(1, binaryEntry('{"op":"secret-create"}', [1, 2], 1000))).toMatchObject({
      ok: false,
      code: 'corrupt',
    });
    expect(store.applyEntry(2, encodeCommand(createWith(everyByte(8))))).toEqual({
      ok: true,
      id: 'id-db_pass',
    });
    expect(store.appliedIndex).toBe(2);
  });

  test('a binary entry with an empty value decodes and is refused as a write by the data rule', () => {
    const store = new Store();
    expect(store.applyEntry(1, encodeCommand(createWith(new Uint8Array(0))))).toEqual({
      ok: false,
      code: 'invalid',
      message: 'Invalid secret data: it must be at least 1 byte',
    });
    expect(store.secretByName('db_pass')).toBeUndefined();
  });
});

describe('entries of the JSON form written before the binary form', () => {
  // Bytes as the previous version wrote them: the command's JSON, the value in base64.
  const oldCreate = new TextEncoder().encode(
    '{"op":"secret-create","at":"2026-11-28T00:00:00.000Z","id":"s1","name":"db_pass","labels":{},"data":"AAH/gA==","requestId":"r1"}',
  );
  const oldVersionAdd = new TextEncoder().encode(
    '{"op":"secret-version-add","at":"2026-11-28T00:00:00.000Z","id":"s1","data":"djI=","ifVersion":null}',
  );

  test('decodeCommand() reads them with the value still base64, as written', () => {
    expect(decodeCommand(oldCreate)).toEqual({
      op: 'secret-create',
      at,
      id: 's1',
      name: 'db_pass',
      labels: {},
      data: 'AAH/gA==',
      requestId: 'r1',
    } as unknown as TaggedCommand);
  });

  test('the store applies an old secret-create and secret-version-add with the values as bytes', () => {
    const store = new Store();
    expect(store.applyEntry(1, oldCreate)).toEqual({ ok: true, id: 's1' });
    expect(store.applyEntry(2, oldVersionAdd)).toEqual({
      ok: true,
      id: 's1',
      version: 2,
      changed: true,
    });
    expect(store.secret('s1')!.versions.map((v) => ({ version: v.version, data: v.data }))).toEqual(
      [
        { version: 1, data: new Uint8Array([0x00, 0x01, 0xff, 0x80]) },
        { version: 2, data: new TextEncoder().encode('v2') },
      ],
    );
  });
});

describe('the store and the bytes of an entry', () => {
  test('the store keeps its own copy: zeroing the entry afterwards leaves the secret as it was', () => {
    const store = new Store();
    const entry = encodeCommand(createWith(everyByte(32)));
    expect(store.applyEntry(1, entry)).toEqual({ ok: true, id: 'id-db_pass' });
    entry.fill(0);
    expect(store.secret('id-db_pass')!.versions[0]!.data).toEqual(everyByte(32));
  });

  test('a refused create zeroes its own copy of the value, never the entry the log holds', () => {
    const store = new Store();
    expect(store.applyEntry(1, encodeCommand(createWith(everyByte(32))))).toMatchObject({
      ok: true,
    });
    const entry = encodeCommand({ ...createWith(everyByte(32)), requestId: 'r2' });
    const kept = entry.slice();
    expect(store.applyEntry(2, entry)).toEqual({
      ok: false,
      code: 'conflict',
      message: 'Secret db_pass already exists',
    });
    expect(entry).toEqual(kept);
    expect(store.secret('id-db_pass')!.versions[0]!.data).toEqual(everyByte(32));
  });
});

describe('parseCommand() and a secret value as bytes or base64', () => {
  test('bytes are checked where they are and returned in the same command, not copied', () => {
    const command = createWith(everyByte(16));
    const parsed = parseCommand(command);
    expect(parsed).toBe(command);
  });

  test('base64 (the JSON wire, an old entry) comes back as bytes in a new command; the given one is unchanged', () => {
    const given = { ...samples['secret-create'], data } as unknown as Record<string, unknown>;
    const parsed = parseCommand(given);
    expect(parsed).toEqual(samples['secret-create']);
    expect(given.data).toBe(data);
  });
});

describe('wireCommand()', () => {
  test('a value goes as base64 and parseCommand() on the other side gives the command back', () => {
    for (const length of [1, 1000, 500 * 1024]) {
      const command = createWith(everyByte(length));
      const wire = JSON.parse(JSON.stringify({ Command: wireCommand(command) })) as {
        Command: { data: unknown };
      };
      expect(wire.Command.data).toBe(toBase64(everyByte(length)));
      expect(parseCommand(wire.Command)).toEqual(command);
    }
  });

  test('a command without a value is sent as it is', () => {
    expect(wireCommand(samples['secret-remove'])).toBe(samples['secret-remove']);
  });
});

describe('decodeStandardBase64()', () => {
  test('decodes padded standard base64, whatever the last bits hold, as Go does', () => {
    for (const [text, bytes] of [
      ['', []],
      ['eA==', [120]],
      ['eB==', [120]],
      ['eHk=', [120, 121]],
      ['eHl6', [120, 121, 122]],
      ['+/+/', [251, 255, 191]],
    ] as const)
      expect(Array.from(decodeStandardBase64(text) ?? [-1])).toEqual([...bytes]);
    const value = crypto.getRandomValues(new Uint8Array(65_537));
    expect(decodeStandardBase64(Buffer.from(value).toString('base64'))).toEqual(value);
  });

  test('refuses anything else: other characters, URL-safe ones, whitespace, missing or misplaced padding', () => {
    for (const text of [
      'eA',
      'eHk',
      'e',
      'AA-_',
      'AA_A',
      'AA A',
      'AAA\n',
      '\tAAA',
      'AA=A',
      'AAAA====',
      '=AAA',
      'AA!A',
      'AAAé',
      '    ',
      'AAAA    ',
      'AA==    ',
      'AA== \n\r\f',
      'A\fAA',
      'AAA\r',
      ' AA=',
      'A A=',
      'AA =',
      'A  =',
    ])
      expect([text, decodeStandardBase64(text)]).toEqual([text, null]);
  });

  test('refuses every text with ASCII whitespace anywhere, whatever its length', () => {
    // Valid base64 of 1 to 9 bytes with 1 to 4 whitespace characters put in at random places,
    // then cut or padded with more whitespace to a multiple of 4: what fromBase64 alone would take.
    const spaces = ['\t', '\n', '\f', '\r', ' '];
    const pick = (n: number): number => crypto.getRandomValues(new Uint32Array(1))[0]! % n;
    for (let round = 0; round < 2000; round++) {
      const chars = [
        ...Buffer.from(crypto.getRandomValues(new Uint8Array(1 + pick(9)))).toString('base64'),
      ];
      for (let i = 1 + pick(4); i > 0; i--)
        chars.splice(pick(chars.length + 1), 0, spaces[pick(spaces.length)]!);
      while (chars.length % 4 !== 0) chars.push(spaces[pick(spaces.length)]!);
      const text = chars.join('');
      expect([text, decodeStandardBase64(text)]).toEqual([text, null]);
    }
  });
});
