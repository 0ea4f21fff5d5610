import { describe, expect, test } from 'bun:test';
import { readServiceSpec } from './service-shapes.ts';

const base = { Name: 'redis', TaskTemplate: { ContainerSpec: { Image: 'busybox', Args: ['sh', '-c', 'sleep 1'] } } };

describe('readServiceSpec', () => {
  test('refuses an unknown field inside the container spec', () => {
    expect(() => readServiceSpec({ ...base, TaskTemplate: { ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Colour: 'red' } } })).toThrow('unknown field TaskTemplate.ContainerSpec.Colour');
  });

  test('reads Docker\'s shape with defaults: one replica, parallelism 1, no delay', () => {
    const spec = readServiceSpec({ ...base, TaskTemplate: { ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Secrets: [{ SecretName: 'db', File: { Name: 'db', UID: '0', GID: '0', Mode: 256 } }] } } });
    expect(spec.mode).toEqual({ kind: 'replicated', replicas: 1 });
    expect(spec.update).toEqual({ parallelism: 1, delayMs: 0 });
    expect(spec.container.secrets).toEqual([{ secretId: null, secretName: 'db', target: 'db', uid: '0', gid: '0', mode: 256 }]);
    expect(readServiceSpec({ ...base, Mode: { Global: {} }, UpdateConfig: { Parallelism: 2, Delay: 2e9 } })).toMatchObject({ mode: { kind: 'global' }, update: { parallelism: 2, delayMs: 2000 } });
  });

  test.each([
    ['a bad name', { ...base, Name: 'bad name' }, 'Invalid service name'],
    ['no image', { ...base, TaskTemplate: { ContainerSpec: { Args: ['x'] } } }, 'Image must be provided'],
    ['no command', { ...base, TaskTemplate: { ContainerSpec: { Image: 'busybox' } } }, 'give a command to run'],
    ['a duplicate target', { ...base, TaskTemplate: { ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Secrets: [{ SecretName: 'a', File: { Name: 't' } }, { SecretName: 'b', File: { Name: 't' } }] } } }, "have a conflicting target: 't'"],
    ['a bad mode', { ...base, TaskTemplate: { ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Secrets: [{ SecretName: 'a', File: { Name: 'a', Mode: 0o1777 } }] } } }, 'invalid file mode'],
    ['a non-numeric uid', { ...base, TaskTemplate: { ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Secrets: [{ SecretName: 'a', File: { Name: 'a', UID: 'root' } }] } } }, 'numeric UID and GID'],
    ['an escaping target', { ...base, TaskTemplate: { ContainerSpec: { ...base.TaskTemplate.ContainerSpec, Secrets: [{ SecretName: 'a', File: { Name: '../etc/x' } }] } } }, 'invalid target file name'],
    ['negative replicas', { ...base, Mode: { Replicated: { Replicas: -1 } } }, 'Replicas must be 0 to 1000'],
  ])('refuses %s', (_what, body, message) => {
    // Unknown top-level fields are refused by the route (readJsonObject) before this runs.
    expect(() => readServiceSpec(body as Record<string, unknown>)).toThrow(message);
  });
});
