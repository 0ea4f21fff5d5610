import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import type { ServiceRecord, TaskRecord } from '../store/index.ts';
import { readServiceSpec, serviceSpecJSON, serviceStatus } from './service-shapes.ts';

const base = {
  Name: 'redis',
  TaskTemplate: { ContainerSpec: { Image: 'busybox', Args: ['sh', '-c', 'sleep 1'] } },
};
const withSecrets = (...refs: object[]): Record<string, unknown> => ({
  ...base,
  TaskTemplate: { ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Secrets: refs } },
});

/** The error readServiceSpec throws for `body`, as code and message. */
function refusal(body: Record<string, unknown>): { code: string; message: string } {
  try {
    readServiceSpec(body);
  } catch (error) {
    expect(error).toBeInstanceOf(SecretdError);
    return { code: (error as SecretdError).code, message: (error as SecretdError).message };
  }
  throw new Error('expected a refusal');
}

describe('readServiceSpec', () => {
  test('refuses an unknown field inside the container spec', () => {
    expect(() =>
      readServiceSpec({
        ...base,
        TaskTemplate: { ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Colour: 'red' } },
      }),
    ).toThrow('unknown field TaskTemplate.ContainerSpec.Colour');
  });

  test("reads Docker's shape with defaults: one replica, parallelism 1, no delay", () => {
    const spec = readServiceSpec(
      withSecrets({ SecretName: 'db', File: { Name: 'db', UID: '0', GID: '0', Mode: 256 } }),
    );
    expect(spec.mode).toEqual({ kind: 'replicated', replicas: 1 });
    expect(spec.update).toEqual({ parallelism: 1, delayMs: 0 });
    expect(spec.container.secrets).toEqual([
      { secretId: null, secretName: 'db', target: 'db', uid: '0', gid: '0', mode: 256 },
    ]);
    expect(
      readServiceSpec({
        ...base,
        Mode: { Global: {} },
        UpdateConfig: { Parallelism: 2, Delay: 2e9 },
      }),
    ).toMatchObject({ mode: { kind: 'global' }, update: { parallelism: 2, delayMs: 2000 } });
  });

  test('matches keys to Docker\'s field names ignoring case, as Go\'s encoding/json does (the Python SDK sends "replicated" and "global")', () => {
    expect(readServiceSpec({ ...base, Mode: { replicated: { Replicas: 2 } } }).mode).toEqual({
      kind: 'replicated',
      replicas: 2,
    });
    expect(readServiceSpec({ ...base, Mode: { global: {} } }).mode).toEqual({ kind: 'global' });
    const lower = readServiceSpec({
      name: 'web',
      taskTemplate: {
        containerSpec: {
          IMAGE: 'busybox',
          args: ['true'],
          secrets: [
            { secretName: 'db', file: { name: 'db_pass', uid: '1', gid: '2', mode: 0o400 } },
          ],
        },
      },
      updateConfig: { parallelism: 3, failureAction: 'continue' },
    });
    expect(lower).toEqual({
      name: 'web',
      labels: {},
      container: {
        image: 'busybox',
        command: [],
        args: ['true'],
        env: [],
        secrets: [
          { secretId: null, secretName: 'db', target: 'db_pass', uid: '1', gid: '2', mode: 0o400 },
        ],
      },
      mode: { kind: 'replicated', replicas: 1 },
      update: { parallelism: 3, delayMs: 0, failureAction: 'continue' },
    });
    // The unknown-field check compares the same way: a field in another case is known, a new name is not.
    expect(refusal({ ...base, Mode: { replicated: { count: 2 } } })).toEqual({
      code: 'invalid',
      message: 'Invalid service spec: unknown field Mode.Replicated.count',
    });
    // Two keys that name one field are ambiguous: refused rather than one silently dropped.
    expect(refusal({ ...base, Mode: { Replicated: { Replicas: 2, replicas: 3 } } }).message).toBe(
      'Invalid service spec: fields "Replicas" and "replicas" both name Replicas',
    );
  });

  test('job modes are refused (501) naming them, not as unknown fields', () => {
    expect(
      refusal({ ...base, Mode: { ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 3 } } }),
    ).toEqual({
      code: 'unimplemented',
      message: 'secretd does not support jobs (--mode replicated-job) (Mode.ReplicatedJob)',
    });
    expect(refusal({ ...base, Mode: { globalJob: {} } })).toEqual({
      code: 'unimplemented',
      message: 'secretd does not support jobs (--mode global-job) (Mode.GlobalJob)',
    });
  });

  test('Placement.Platforms and RollbackConfig are refused (501) when set, not accepted and dropped; empty they are accepted', () => {
    const platforms = {
      ...base,
      TaskTemplate: {
        ...base.TaskTemplate,
        Placement: { Platforms: [{ Architecture: 'amd64', OS: 'linux' }] },
      },
    };
    expect(refusal(platforms)).toEqual({
      code: 'unimplemented',
      message: 'secretd does not support placement by platform (TaskTemplate.Placement.Platforms)',
    });
    expect(
      refusal({ ...base, RollbackConfig: { Parallelism: 1, FailureAction: 'pause' } }),
    ).toEqual({
      code: 'unimplemented',
      message:
        'secretd does not support rolling services back, so it takes no rollback settings (--rollback-*) (RollbackConfig)',
    });
    expect(
      readServiceSpec({
        ...base,
        TaskTemplate: { ...base.TaskTemplate, Placement: { Platforms: [] } },
        RollbackConfig: {},
      }).name,
    ).toBe('redis');
  });

  test('UpdateConfig.Delay is kept to the nanosecond, and waited rounded up to whole milliseconds', () => {
    const update = (Delay: number): unknown =>
      readServiceSpec({ ...base, UpdateConfig: { Delay } }).update;
    expect(update(5)).toEqual({ parallelism: 1, delayMs: 1, delayNs: 5 });
    expect(update(1_500_000)).toEqual({ parallelism: 1, delayMs: 2, delayNs: 1_500_000 });
    expect(update(2e9)).toEqual({ parallelism: 1, delayMs: 2000 });
    expect(refusal({ ...base, UpdateConfig: { Delay: 1.5 } })).toEqual({
      code: 'invalid',
      message:
        'Invalid service spec: UpdateConfig.Delay must be a whole number of nanoseconds, 0 or more',
    });
    const spec = {
      name: 'x',
      labels: {},
      container: { image: 'i', command: [], args: ['a'], env: [], secrets: [] },
      mode: { kind: 'global' as const },
    };
    expect(
      serviceSpecJSON({ ...spec, update: { parallelism: 1, delayMs: 1, delayNs: 5 } }),
    ).toMatchObject({ UpdateConfig: { Delay: 5 } });
    expect(serviceSpecJSON({ ...spec, update: { parallelism: 1, delayMs: 2000 } })).toMatchObject({
      UpdateConfig: { Delay: 2e9 },
    });
  });

  test('UpdateConfig.FailureAction: pause and continue are kept, rollback is 501, anything else 400; Monitor other than 0 is 501', () => {
    const failure = (FailureAction: string): unknown =>
      readServiceSpec({ ...base, UpdateConfig: { Parallelism: 0, FailureAction } }).update;
    expect(failure('continue')).toEqual({ parallelism: 0, delayMs: 0, failureAction: 'continue' });
    expect(failure('pause')).toEqual({ parallelism: 0, delayMs: 0 });
    expect(refusal({ ...base, UpdateConfig: { FailureAction: 'rollback' } })).toEqual({
      code: 'unimplemented',
      message:
        'secretd does not support rolling back a failed update (--update-failure-action rollback) (UpdateConfig.FailureAction)',
    });
    expect(refusal({ ...base, UpdateConfig: { FailureAction: 'explode' } })).toEqual({
      code: 'invalid',
      message:
        'Invalid service spec: UpdateConfig.FailureAction "explode" is not one of pause, continue or rollback',
    });
    expect(refusal({ ...base, UpdateConfig: { Monitor: 5e9 } }).code).toBe('unimplemented');
    expect(readServiceSpec({ ...base, UpdateConfig: { Monitor: 0 } }).update).toEqual({
      parallelism: 1,
      delayMs: 0,
    });
    const spec = {
      name: 'x',
      labels: {},
      container: { image: 'i', command: [], args: ['a'], env: [], secrets: [] },
      mode: { kind: 'global' as const },
    };
    expect(
      serviceSpecJSON({
        ...spec,
        update: { parallelism: 0, delayMs: 0, failureAction: 'continue' },
      }),
    ).toMatchObject({ UpdateConfig: { FailureAction: 'continue' } });
    expect(serviceSpecJSON({ ...spec, update: { parallelism: 0, delayMs: 0 } })).toMatchObject({
      UpdateConfig: { FailureAction: 'pause' },
    });
  });

  test.each([
    ['a parent component', '/etc/../x', "must not contain '.' or '..' components"],
    ['a current-directory component', '/etc/./x', "must not contain '.' or '..' components"],
    ['an empty component', '/etc//x', "must not contain empty components ('//' or a trailing '/')"],
    ['a path under /proc', '/proc/self/environ', 'is reserved'],
    ['/run/secrets itself', '/run/secrets', 'is reserved'],
  ])(
    "refuses (400) an absolute target with %s, by the executor's own rule",
    (_what, target, why) => {
      const { code, message } = refusal(withSecrets({ SecretName: 'a', File: { Name: target } }));
      expect({
        code,
        message: message.slice(0, `Invalid service spec: secret target '${target}' ${why}`.length),
      }).toEqual({
        code: 'invalid',
        message: `Invalid service spec: secret target '${target}' ${why}`,
      });
    },
  );

  test('refuses targets that collide once placed, as the executor would', () => {
    expect(
      refusal(
        withSecrets(
          { SecretName: 'a', File: { Name: 'db' } },
          { SecretName: 'b', File: { Name: '/run/secrets/db' } },
        ),
      ).message,
    ).toBe("Invalid service spec: secret target '/run/secrets/db' is used twice");
    expect(
      refusal(
        withSecrets(
          { SecretName: 'a', File: { Name: 'app' } },
          { SecretName: 'b', File: { Name: 'app/key' } },
        ),
      ).message,
    ).toBe(
      "Invalid service spec: secret target '/run/secrets/app' is a file, so '/run/secrets/app/key' cannot be under it",
    );
  });

  test.each([
    ['a bad name', { ...base, Name: 'bad name' }, 'Invalid service name'],
    [
      'no image',
      { ...base, TaskTemplate: { ContainerSpec: { Args: ['x'] } } },
      'Image must be provided',
    ],
    [
      'no command',
      { ...base, TaskTemplate: { ContainerSpec: { Image: 'busybox' } } },
      'give a command to run',
    ],
    [
      'a duplicate target',
      withSecrets(
        { SecretName: 'a', File: { Name: 't' } },
        { SecretName: 'b', File: { Name: 't' } },
      ),
      "have a conflicting target: 't'",
    ],
    [
      'a bad mode',
      withSecrets({ SecretName: 'a', File: { Name: 'a', Mode: 0o1777 } }),
      'invalid file mode',
    ],
    [
      'a non-numeric uid',
      withSecrets({ SecretName: 'a', File: { Name: 'a', UID: 'root' } }),
      'numeric UID and GID',
    ],
    [
      'an escaping target',
      withSecrets({ SecretName: 'a', File: { Name: '../etc/x' } }),
      "secret target '../etc/x' must not contain '.' or '..' components",
    ],
    [
      'negative replicas',
      { ...base, Mode: { Replicated: { Replicas: -1 } } },
      'Replicas must be 0 to 1000',
    ],
    [
      'a Placement that is not an object',
      { ...base, TaskTemplate: { ...base.TaskTemplate, Placement: 'anywhere' } },
      'TaskTemplate.Placement must be an object',
    ],
  ])('refuses %s', (_what, body, message) => {
    // Unknown top-level fields are refused by the route (readJsonObject) before this runs.
    expect(() => readServiceSpec(body as Record<string, unknown>)).toThrow(message);
  });
});

describe('serviceStatus', () => {
  const service = (mode: ServiceRecord['spec']['mode']): ServiceRecord =>
    ({
      id: 's1',
      spec: {
        name: 's',
        labels: {},
        container: { image: 'i', command: [], args: ['a'], env: [], secrets: [] },
        mode,
        update: { parallelism: 1, delayMs: 0 },
      },
      specVersion: 1,
      createdAt: '',
      updatedAt: '',
      metaIndex: 1,
    }) as unknown as ServiceRecord;
  const task = (
    serviceId: string,
    desiredState: TaskRecord['desiredState'],
    state: TaskRecord['status']['state'],
  ): TaskRecord => ({ serviceId, desiredState, status: { state } }) as unknown as TaskRecord;
  const tasks = [
    task('s1', 'running', 'running'),
    task('s1', 'running', 'starting'),
    task('s1', 'shutdown', 'complete'),
    task('s1', 'shutdown', 'running'),
    task('other', 'running', 'running'),
  ];

  test('counts running tasks as swarmkit does, and wants the replicas of a replicated service', () => {
    expect(serviceStatus(service({ kind: 'replicated', replicas: 3 }), tasks)).toEqual({
      RunningTasks: 2,
      DesiredTasks: 3,
      CompletedTasks: 0,
    });
  });

  test('wants, for a global service, the tasks desired running', () => {
    expect(serviceStatus(service({ kind: 'global' }), tasks)).toEqual({
      RunningTasks: 2,
      DesiredTasks: 2,
      CompletedTasks: 0,
    });
  });
});
