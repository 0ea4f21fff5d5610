/** The role switch's part on disk: each switch's files, and a start-up after a crash at each step. */
import { beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../test/helpers/process.ts';
import { createKeyAndCSR, createRootCA, issueCertificate } from '../crypto/index.ts';
import { systemRandom } from '../io/system.ts';
import {
  dataDirPaths,
  readNodeKeys,
  readNodeState,
  writeNodeKeys,
  writeNodeState,
  type NodeState,
} from './data-dir/index.ts';
import { settleRoleSwitch, writeDemotedFiles, writePromotedFiles } from './role-switch.ts';

const tlsKey = systemRandom(138);
/** A certificate per role, from one CA (the key pair is not checked here: `tlsKey` stands for it). */
const certs = { manager: '', worker: '' };
let tlsCert = '';

beforeAll(async () => {
  const now = new Date();
  const ca = await createRootCA({ now });
  for (const role of ['manager', 'worker'] as const) {
    const { csrPem } = await createKeyAndCSR();
    certs[role] = await issueCertificate(ca, csrPem, {
      nodeId: 'n'.repeat(25),
      role,
      clusterId: 'c'.repeat(25),
      now,
      lifetimeMs: 3_600_000,
      serial: systemRandom(16),
    });
  }
  tlsCert = certs.manager;
});
const managers = [{ id: 'm'.repeat(25), addr: '10.0.0.1:4377' }];

function stateOf(role: 'manager' | 'worker'): NodeState {
  return {
    format: 1,
    nodeId: 'n'.repeat(25),
    clusterId: 'c'.repeat(25),
    role,
    listenAddr: '0.0.0.0:4377',
    advertiseAddr: '10.0.0.2:4377',
    createdAt: '2026-01-01T00:00:00.000Z',
    bootstrapVoters: [managers[0]!.id],
    peers: managers,
  };
}

/** A data dir as `role` leaves it: node.json, a keys file (a DEK, no switch role) and, for a manager, raft/. */
async function dataDir(
  root: string,
  role: 'manager' | 'worker',
  options: { certificate?: 'manager' | 'worker'; kek?: Uint8Array } = {},
): Promise<Uint8Array> {
  const paths = dataDirPaths(root);
  mkdirSync(join(root, 'certificates'), { recursive: true });
  const dek = systemRandom(32);
  const cert = certs[options.certificate ?? role];
  writeFileSync(paths.nodeCert, cert);
  await writeNodeKeys(
    paths.nodeKeys,
    { dek: dek.slice(), dekKeyId: 3, tlsKey, tlsCert: cert },
    options.kek ?? null,
    systemRandom,
  );
  await writeNodeState(paths.nodeState, stateOf(role));
  if (role === 'manager') {
    mkdirSync(paths.wal, { recursive: true });
    mkdirSync(paths.snapshots, { recursive: true });
    writeFileSync(join(paths.wal, '0000000000000001.wal'), 'sealed');
  }
  return dek;
}

const quiet = (): void => {};

describe('writePromotedFiles', () => {
  test('writes a fresh DEK with the same key pair, then node.json says manager; raft/ leftovers are removed', async () => {
    using dir = tempDir('secretd-role-switch-');
    const paths = dataDirPaths(dir.path);
    const oldDek = await dataDir(dir.path, 'worker');
    mkdirSync(paths.wal, { recursive: true }); // a leftover of an earlier attempt
    const state = await writePromotedFiles(
      paths,
      stateOf('worker'),
      { tlsKey, tlsCert },
      systemRandom,
    );
    const keys = await readNodeKeys(paths.nodeKeys, null);
    expect({
      role: keys.role,
      dekKeyId: keys.dekKeyId,
      sameDek: Buffer.from(keys.dek).equals(Buffer.from(oldDek)),
      tlsKey: keys.tlsKey,
      tlsCert: keys.tlsCert,
    }).toEqual({ role: 'manager', dekKeyId: 1, sameDek: false, tlsKey, tlsCert });
    expect(state).toEqual(stateOf('manager'));
    expect(await readNodeState(paths.nodeState, dir.path)).toEqual(stateOf('manager'));
    expect(existsSync(join(dir.path, 'raft'))).toBe(false);
  });
});

describe('writeDemotedFiles', () => {
  test('replaces the DEK, says worker with the managers the store listed, and erases raft/', async () => {
    using dir = tempDir('secretd-role-switch-');
    const paths = dataDirPaths(dir.path);
    const oldDek = await dataDir(dir.path, 'manager');
    const listed = [{ id: 'o'.repeat(25), addr: '10.0.0.3:4377' }];
    const state = await writeDemotedFiles(
      paths,
      stateOf('manager'),
      { tlsKey, tlsCert },
      listed,
      systemRandom,
    );
    const keys = await readNodeKeys(paths.nodeKeys, null);
    expect({
      role: keys.role,
      sameDek: Buffer.from(keys.dek).equals(Buffer.from(oldDek)),
      tlsKey: keys.tlsKey,
      tlsCert: keys.tlsCert,
    }).toEqual({ role: 'worker', sameDek: false, tlsKey, tlsCert });
    expect(state).toEqual({ ...stateOf('worker'), peers: listed });
    expect(await readNodeState(paths.nodeState, dir.path)).toEqual(state);
    expect(existsSync(join(dir.path, 'raft'))).toBe(false);
  });
});

describe('settleRoleSwitch', () => {
  test('finishes a promotion cut short after the keys file: node.json says manager', async () => {
    using dir = tempDir('secretd-role-switch-');
    const paths = dataDirPaths(dir.path);
    await dataDir(dir.path, 'worker');
    await writeNodeKeys(
      paths.nodeKeys,
      { dek: systemRandom(32), dekKeyId: 1, tlsKey, tlsCert, role: 'manager' },
      null,
      systemRandom,
    );
    const lines: string[] = [];
    expect((await settleRoleSwitch(dir.path, (line) => lines.push(line), systemRandom)).role).toBe(
      'manager',
    );
    expect((await readNodeState(paths.nodeState, dir.path)).role).toBe('manager');
    expect(lines).toEqual([
      "secretd: finishing this node's switch from worker to manager that a stop cut short",
    ]);
  });

  test('finishes a demotion cut short after the keys file: node.json says worker and raft/ is erased', async () => {
    using dir = tempDir('secretd-role-switch-');
    const paths = dataDirPaths(dir.path);
    await dataDir(dir.path, 'manager');
    await writeNodeKeys(
      paths.nodeKeys,
      { dek: systemRandom(32), dekKeyId: 1, tlsKey, tlsCert, role: 'worker' },
      null,
      systemRandom,
    );
    expect((await settleRoleSwitch(dir.path, quiet, systemRandom)).role).toBe('worker');
    expect((await readNodeState(paths.nodeState, dir.path)).role).toBe('worker');
    expect(existsSync(join(dir.path, 'raft'))).toBe(false);
  });

  test('erases the raft/ a demotion cut short left beside a worker node.json', async () => {
    using dir = tempDir('secretd-role-switch-');
    const paths = dataDirPaths(dir.path);
    await dataDir(dir.path, 'manager');
    await writeNodeState(paths.nodeState, stateOf('worker'));
    expect((await settleRoleSwitch(dir.path, quiet, systemRandom)).role).toBe('worker');
    expect(existsSync(join(dir.path, 'raft'))).toBe(false);
  });

  test("finishes the demotion of a manager that stopped holding a worker's certificate", async () => {
    using dir = tempDir('secretd-role-switch-');
    const paths = dataDirPaths(dir.path);
    const oldDek = await dataDir(dir.path, 'manager', { certificate: 'worker' });
    expect((await settleRoleSwitch(dir.path, quiet, systemRandom)).role).toBe('worker');
    const keys = await readNodeKeys(paths.nodeKeys, null);
    expect({
      role: keys.role,
      sameDek: Buffer.from(keys.dek).equals(Buffer.from(oldDek)),
      tlsKey: keys.tlsKey,
      tlsCert: keys.tlsCert,
    }).toEqual({ role: 'worker', sameDek: false, tlsKey, tlsCert: certs.worker });
    expect((await readNodeState(paths.nodeState, dir.path)).role).toBe('worker');
    expect(existsSync(join(dir.path, 'raft'))).toBe(false);
  });

  test("leaves an autolocked manager holding a worker's certificate as it is: its keys need the unlock key", async () => {
    using dir = tempDir('secretd-role-switch-');
    const paths = dataDirPaths(dir.path);
    await dataDir(dir.path, 'manager', { certificate: 'worker', kek: systemRandom(32) });
    expect((await settleRoleSwitch(dir.path, quiet, systemRandom)).role).toBe('manager');
    expect(existsSync(join(paths.wal, '0000000000000001.wal'))).toBe(true);
  });

  test("leaves a manager's data dir alone when no switch was under way", async () => {
    using dir = tempDir('secretd-role-switch-');
    const paths = dataDirPaths(dir.path);
    await dataDir(dir.path, 'manager');
    const lines: string[] = [];
    expect(await settleRoleSwitch(dir.path, (line) => lines.push(line), systemRandom)).toEqual(
      stateOf('manager'),
    );
    expect(existsSync(join(paths.wal, '0000000000000001.wal'))).toBe(true);
    expect(lines).toEqual([]);
  });
});
