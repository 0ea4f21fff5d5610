/** parseCommand(): the one schema of every command, for forwarded writes and for the store before it applies. */
import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { secretBytesMax } from '../../limits.ts';
import { parseCommand, type CommandOp, type TaggedCommand } from './commands.ts';
import { toBase64 } from './store.ts';

const at = '2026-11-28T00:00:00.000Z';
const data = toBase64(new TextEncoder().encode('s3cr3t'));
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
    data,
    requestId: 'r1',
  },
  'secret-update': { op: 'secret-update', at, id: 's1', expectedIndex: 4, labels: { a: 'b' } },
  'secret-remove': { op: 'secret-remove', at, ids: ['s1', 's2'] },
  'secret-version-add': { op: 'secret-version-add', at, id: 's1', data, ifVersion: null },
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
    ['data', 42],
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
