import { describe, expect, test } from 'bun:test';
import { errorOf } from '../../../test/helpers/errors.ts';
import { OneSecretStore } from '../../../test/helpers/store-fixture.ts';
import { secretVersionMax, secretVersionsKeptDefault } from '../../limits.ts';
import { checkVersionNumber, checkVersionsKept, parseOnUpdate } from './secret-rules.ts';
import { Store } from './store.ts';
import { toBase64 } from './commands.ts';
import type { ContainerSpec, SecretReference, ServiceSpec } from './types.ts';

const at = '2026-11-28T00:00:00.000Z';
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (data: Uint8Array): string => new TextDecoder().decode(data);

/** A store with one secret `db` (version 1 = "v1"), its versions and services using it. */
class Fixture extends OneSecretStore {
  constructor() {
    super(at);
  }
  add(data: string, ifVersion: number | null = null): ReturnType<Store['apply']> {
    return this.apply({ op: 'secret-version-add', at, id: 'db', data: bytes(data), ifVersion });
  }
  versions(): Array<[number, string]> {
    return this.store.secret('db')!.versions.map((v) => [v.version, text(v.data)]);
  }
  service(id: string, ref: Partial<SecretReference>): void {
    const container: ContainerSpec = {
      image: 'busybox',
      command: ['sh'],
      args: [],
      env: [],
      secrets: [
        { secretId: 'db', secretName: 'db', target: 'db', uid: '0', gid: '0', mode: 0o444, ...ref },
      ],
    };
    const spec: ServiceSpec = {
      name: id,
      labels: {},
      container,
      mode: { kind: 'replicated', replicas: 1 },
      update: { parallelism: 1, delayMs: 0 },
    };
    expect(this.apply({ op: 'service-create', at, id, spec })).toEqual({ ok: true, id });
  }
  task(id: string, serviceId: string): void {
    const service = this.store.workloads.services.get(serviceId as never)!;
    this.apply({
      op: 'tasks-put',
      at,
      tasks: [
        {
          id,
          serviceId,
          slot: 1,
          nodeId: 'n1',
          specVersion: service.specVersion,
          container: service.spec.container,
          desiredState: 'running',
          state: 'assigned',
        },
      ],
    });
  }
}

describe('secret versions in the store', () => {
  test('an update adds version 2 with the new data and moves the compare-and-set index', () => {
    const f = new Fixture();
    expect(f.add('v2')).toEqual({ ok: true, id: 'db', version: 2, changed: true });
    expect(f.versions()).toEqual([
      [1, 'v1'],
      [2, 'v2'],
    ]);
    expect(f.store.secret('db')!.metaIndex).toBe(2);
  });

  test('an update whose data equals the newest version changes nothing', () => {
    const f = new Fixture();
    f.add('v2');
    const before = f.store.secret('db');
    expect(f.add('v2')).toEqual({ ok: true, id: 'db', version: 2, changed: false });
    expect(f.store.secret('db')).toBe(before!);
  });

  test('--if-version: the newest version must be the one named, else 409 and nothing changes', () => {
    const f = new Fixture();
    expect(f.add('v2', 1)).toMatchObject({ ok: true, version: 2 });
    const stale = f.add('v3', 1);
    expect(stale).toEqual({
      ok: false,
      code: 'conflict',
      message: 'Cannot update secret db: --if-version 1 is out of date (the newest version is 2)',
    });
    expect(f.versions()).toEqual([
      [1, 'v1'],
      [2, 'v2'],
    ]);
  });

  test("rollback copies an old version's data into a new newest version", () => {
    const f = new Fixture();
    f.add('v2');
    expect(f.apply({ op: 'secret-rollback', at, id: 'db', to: 1, ifVersion: 2 })).toEqual({
      ok: true,
      id: 'db',
      version: 3,
      changed: true,
    });
    expect(f.versions()).toEqual([
      [1, 'v1'],
      [2, 'v2'],
      [3, 'v1'],
    ]);
    expect(f.apply({ op: 'secret-rollback', at, id: 'db', to: 9, ifVersion: null })).toEqual({
      ok: false,
      code: 'not_found',
      message: 'Cannot roll back secret db: it has no version 9 (it has 1, 2, 3)',
    });
  });

  test('removing a version: refused for the newest, for a missing one, and while a service pins it', () => {
    const f = new Fixture();
    f.add('v2');
    f.add('v3');
    f.service('web', { version: 2 });
    expect(f.apply({ op: 'secret-version-remove', at, id: 'db', version: 3 })).toMatchObject({
      ok: false,
      code: 'conflict',
      message:
        'Cannot remove version 3 of secret db: it is the newest version (add a new one or roll back first)',
    });
    expect(f.apply({ op: 'secret-version-remove', at, id: 'db', version: 2 })).toEqual({
      ok: false,
      code: 'conflict',
      message: 'Cannot remove version 2 of secret db: it is pinned by service web',
    });
    expect(f.apply({ op: 'secret-version-remove', at, id: 'db', version: 7 })).toMatchObject({
      ok: false,
      code: 'not_found',
    });
    expect(f.apply({ op: 'secret-version-remove', at, id: 'db', version: 1 })).toMatchObject({
      ok: true,
    });
    expect(f.versions()).toEqual([
      [2, 'v2'],
      [3, 'v3'],
    ]);
    // Numbers are never reused: the next version is 4.
    expect(f.add('v4')).toMatchObject({ version: 4 });
  });

  test('retention keeps the newest N versions and every pinned one', () => {
    const f = new Fixture();
    f.apply({
      op: 'cluster-init',
      at,
      clusterId: 'c',
      caCertPem: '',
      caKey: '',
      joinTokens: { worker: 'w', manager: 'm' },
      unlockKey: null,
      node: { id: 'n1', role: 'manager', hostname: 'h', addr: 'a' },
    });
    expect(
      f.apply({ op: 'cluster-update', at, expectedIndex: null, secretVersionsKept: 2 }),
    ).toMatchObject({ ok: true });
    f.add('v2');
    f.service('pinned', { version: 2 });
    for (const value of ['v3', 'v4', 'v5']) f.add(value);
    expect(f.versions()).toEqual([
      [2, 'v2'],
      [4, 'v4'],
      [5, 'v5'],
    ]);
  });

  test('the default retention is ' + secretVersionsKeptDefault + ' versions', () => {
    const f = new Fixture();
    for (let i = 2; i <= secretVersionsKeptDefault + 3; i++) f.add(`v${i}`);
    expect(f.versions().map(([v]) => v)).toEqual(
      Array.from({ length: secretVersionsKeptDefault }, (_, i) => i + 4),
    );
  });

  test('a new task pins on-update restart and absolute-target references to the newest version; others follow', () => {
    const f = new Fixture();
    f.add('v2');
    f.service('restarts', { onUpdate: { kind: 'restart' } });
    f.service('absolute', { target: '/etc/db' });
    f.service('follows', { onUpdate: { kind: 'signal', signal: 'SIGHUP' } });
    f.task('t1', 'restarts');
    f.task('t2', 'absolute');
    f.task('t3', 'follows');
    const version = (id: string): number | undefined =>
      f.store.workloads.tasks.get(id as never)!.container.secrets[0]!.version;
    expect([version('t1'), version('t2'), version('t3')]).toEqual([2, 2, undefined]);
    // The pinned task version is protected from removal while the task lives.
    f.add('v3');
    expect(f.apply({ op: 'secret-version-remove', at, id: 'db', version: 2 })).toMatchObject({
      ok: false,
      message:
        'Cannot remove version 2 of secret db: it is pinned by task restarts.1, task absolute.1',
    });
  });

  test('a new version rolls only the services that follow it with on-update restart', () => {
    const f = new Fixture();
    f.service('restarts', { onUpdate: { kind: 'restart' } });
    f.service('inplace', {});
    f.service('pinned', { version: 1 });
    f.add('v2');
    const specVersions = ['restarts', 'inplace', 'pinned'].map(
      (id) => f.store.workloads.services.get(id as never)!.specVersion,
    );
    expect(specVersions).toEqual([2, 1, 1]);
    f.add('v2');
    expect(f.store.workloads.services.get('restarts' as never)!.specVersion).toBe(2);
  });

  test('a service may not pin a version the secret does not have', () => {
    const f = new Fixture();
    const container: ContainerSpec = {
      image: 'b',
      command: ['sh'],
      args: [],
      env: [],
      secrets: [
        {
          secretId: 'db',
          secretName: 'db',
          target: 'db',
          uid: '0',
          gid: '0',
          mode: 0o444,
          version: 5,
        },
      ],
    };
    expect(
      f.apply({
        op: 'service-create',
        at,
        id: 's',
        spec: {
          name: 's',
          labels: {},
          container,
          mode: { kind: 'replicated', replicas: 1 },
          update: { parallelism: 1, delayMs: 0 },
        },
      }),
    ).toEqual({ ok: false, code: 'invalid', message: 'Secret db has no version 5' });
  });

  test('versions survive a snapshot and restore', () => {
    const f = new Fixture();
    f.add('v2');
    const restored = Store.restore(f.store.snapshot());
    expect(restored.secret('db')!.versions.map((v) => [v.version, text(v.data)])).toEqual([
      [1, 'v1'],
      [2, 'v2'],
    ]);
  });
});

describe('version input rules', () => {
  test('checkVersionNumber() takes whole numbers from 1 (numbers or digit strings) and nothing else', () => {
    expect(checkVersionNumber(3, 'v')).toBe(3);
    expect(checkVersionNumber('12', 'v')).toBe(12);
    for (const bad of [
      0,
      -1,
      1.5,
      '0',
      'abc',
      '',
      '1e3',
      ' 2',
      secretVersionMax + 1,
      null,
      undefined,
      true,
    ]) {
      expect(errorOf(() => checkVersionNumber(bad, '--if-version')).message).toMatch(
        /^Invalid --if-version .*: a version is a whole number from 1 to 2147483647$/,
      );
    }
  });

  test('parseOnUpdate() reads none, restart and signal:NAME (SIG optional), and refuses the rest', () => {
    expect(parseOnUpdate('none')).toEqual({ kind: 'none' });
    expect(parseOnUpdate('restart')).toEqual({ kind: 'restart' });
    expect(parseOnUpdate('signal:SIGHUP')).toEqual({ kind: 'signal', signal: 'SIGHUP' });
    expect(parseOnUpdate('signal:usr1')).toEqual({ kind: 'signal', signal: 'SIGUSR1' });
    expect(errorOf(() => parseOnUpdate('reload')).message).toBe(
      'Invalid on-update "reload": expected none, restart or signal:SIGNAL (e.g. signal:SIGHUP)',
    );
    expect(errorOf(() => parseOnUpdate('signal:SIGKILL')).message).toStartWith(
      'Invalid on-update "signal:SIGKILL": the signal must be one of SIGHUP',
    );
    expect(errorOf(() => parseOnUpdate('signal:')).code).toBe('invalid');
    expect(errorOf(() => parseOnUpdate(3)).code).toBe('invalid');
  });

  test('checkVersionsKept() takes 1 to 1000', () => {
    expect(checkVersionsKept(1)).toBe(1);
    for (const bad of [0, 1001, 2.5, '3'])
      expect(errorOf(() => checkVersionsKept(bad)).code).toBe('invalid');
  });
});
