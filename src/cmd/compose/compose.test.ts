import { describe, expect, test } from 'bun:test';
import { interpolateString } from './interpolate.ts';
import { readServiceSpec } from '../../node/api/index.ts';
import { loadCompose, sameSpec, translate, type CurrentSpec, type StackPlan } from './index.ts';
import { splitCommand } from './shell-words.ts';

const env =
  (vars: Record<string, string>) =>
  (name: string): string | undefined =>
    vars[name];
const enoent = (path: string): never => {
  throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
};

/** Loads one compose file (from /stack) and translates it for stack `app`, with these files and variables. */
function plan(
  text: string,
  options: { vars?: Record<string, string>; files?: Record<string, string>; more?: string[] } = {},
): StackPlan & { warnings: readonly string[] } {
  const lookup = env(options.vars ?? {});
  const files = [
    { name: 'compose.yml', text },
    ...(options.more ?? []).map((t, i) => ({ name: `more${i + 1}.yml`, text: t })),
  ];
  const loaded = loadCompose(files, { workingDir: '/stack', env: lookup });
  const fileMap = options.files ?? {};
  const result = translate(loaded.project, 'app', {
    env: lookup,
    readFile: (path) => (path in fileMap ? new TextEncoder().encode(fileMap[path]!) : enoent(path)),
    readServiceSpec,
  });
  return { ...result, warnings: loaded.warnings };
}

const text = (data: Uint8Array): string => new TextDecoder().decode(data);

// Docker's "Use secrets in Compose" example, on the busybox image with a command (secretd images have none).
const dockerExample = `
services:
  db:
    image: busybox
    command: sh -c 'while true; do cat "$$DB_PASSWORD_FILE"; sleep 1; done'
    environment:
      MYSQL_ROOT_PASSWORD_FILE: /run/secrets/db_root_password
      MYSQL_DATABASE: wordpress
      DB_PASSWORD_FILE: /run/secrets/db_password
    secrets:
      - db_root_password
      - db_password
  app:
    image: busybox
    command: ["sh", "-c", "sleep 1000"]
    environment:
      - WORDPRESS_DB_HOST=db:3306
      - WORDPRESS_DB_PASSWORD_FILE=/run/secrets/db_password
    secrets:
      - db_password
secrets:
  db_password:
    file: db_password.txt
  db_root_password:
    file: ./secrets/root.txt
`;

describe('translate: Docker names and labels', () => {
  test("Docker's secrets example: secrets STACK_name from files beside the compose file, services STACK_svc with the namespace and image labels", () => {
    const result = plan(dockerExample, {
      files: { '/stack/db_password.txt': 'pw', '/stack/secrets/root.txt': 'root' },
    });
    expect(
      result.secrets.map((s) => ({
        key: s.key,
        name: s.name,
        labels: s.labels,
        data: text(s.data),
      })),
    ).toEqual([
      {
        key: 'db_password',
        name: 'app_db_password',
        labels: { 'com.docker.stack.namespace': 'app' },
        data: 'pw',
      },
      {
        key: 'db_root_password',
        name: 'app_db_root_password',
        labels: { 'com.docker.stack.namespace': 'app' },
        data: 'root',
      },
    ]);
    expect(result.external).toEqual([]);
    expect(result.warnings).toEqual([]);
    expect(result.services).toEqual([
      {
        Name: 'app_app',
        Labels: { 'com.docker.stack.namespace': 'app', 'com.docker.stack.image': 'busybox' },
        TaskTemplate: {
          ContainerSpec: {
            Image: 'busybox',
            Args: ['sh', '-c', 'sleep 1000'],
            Env: [
              'WORDPRESS_DB_HOST=db:3306',
              'WORDPRESS_DB_PASSWORD_FILE=/run/secrets/db_password',
            ],
            Secrets: [
              {
                SecretName: 'app_db_password',
                File: { Name: 'db_password', UID: '0', GID: '0', Mode: 0o444 },
              },
            ],
          },
        },
        Mode: { Replicated: { Replicas: 1 } },
        UpdateConfig: { Parallelism: 1, Delay: 0 },
      },
      {
        Name: 'app_db',
        Labels: { 'com.docker.stack.namespace': 'app', 'com.docker.stack.image': 'busybox' },
        TaskTemplate: {
          ContainerSpec: {
            Image: 'busybox',
            Args: ['sh', '-c', 'while true; do cat "$DB_PASSWORD_FILE"; sleep 1; done'],
            Env: [
              'DB_PASSWORD_FILE=/run/secrets/db_password',
              'MYSQL_DATABASE=wordpress',
              'MYSQL_ROOT_PASSWORD_FILE=/run/secrets/db_root_password',
            ],
            Secrets: [
              {
                SecretName: 'app_db_password',
                File: { Name: 'db_password', UID: '0', GID: '0', Mode: 0o444 },
              },
              {
                SecretName: 'app_db_root_password',
                File: { Name: 'db_root_password', UID: '0', GID: '0', Mode: 0o444 },
              },
            ],
          },
        },
        Mode: { Replicated: { Replicas: 1 } },
        UpdateConfig: { Parallelism: 1, Delay: 0 },
      },
    ]);
  });

  test('long syntax: source, target, uid, gid, mode as a YAML 1.1 octal number or an octal string, x-secretd-on-update', () => {
    const result = plan(
      `
services:
  web:
    image: busybox
    entrypoint: /bin/sh
    command: [-c, "sleep 1000"]
    secrets:
      - source: tls
        target: server.pem
        uid: "1000"
        gid: 1000
        mode: 0400
      - source: api_key
        target: /etc/app/key
        mode: "0440"
      - source: hup
        x-secretd-on-update: signal:SIGHUP
secrets:
  tls: { file: /abs/tls.pem }
  api_key: { file: key }
  hup: { environment: HUP_VALUE }
`,
      { files: { '/abs/tls.pem': 'cert', '/stack/key': 'k' }, vars: { HUP_VALUE: 'h1' } },
    );
    expect(result.services[0]!.TaskTemplate.ContainerSpec).toEqual({
      Image: 'busybox',
      Command: ['/bin/sh'],
      Args: ['-c', 'sleep 1000'],
      Secrets: [
        {
          SecretName: 'app_api_key',
          File: { Name: '/etc/app/key', UID: '0', GID: '0', Mode: 0o440 },
        },
        {
          SecretName: 'app_hup',
          File: { Name: 'hup', UID: '0', GID: '0', Mode: 0o444 },
          Secretd: { OnUpdate: 'signal:SIGHUP' },
        },
        {
          SecretName: 'app_tls',
          File: { Name: 'server.pem', UID: '1000', GID: '1000', Mode: 0o400 },
        },
      ],
    });
    expect(result.secrets.map((s) => [s.name, text(s.data)])).toEqual([
      ['app_api_key', 'k'],
      ['app_hup', 'h1'],
      ['app_tls', 'cert'],
    ]);
  });

  test('external secrets keep their own name (or name:) and are never created; a non-external name: is used unscoped, as Docker does', () => {
    const result = plan(
      `
services:
  s: { image: busybox, command: sleep 1, secrets: [shared, legacy, custom] }
secrets:
  shared: { external: true }
  legacy: { external: { name: old_one } }
  custom: { file: c.txt, name: my_custom, labels: { team: a } }
  unused: { external: true, name: nobody_uses_me }
`,
      { files: { '/stack/c.txt': 'c' } },
    );
    expect(result.external).toEqual(['old_one', 'shared']);
    expect(result.secrets.map((s) => ({ name: s.name, labels: s.labels }))).toEqual([
      { name: 'my_custom', labels: { team: 'a', 'com.docker.stack.namespace': 'app' } },
    ]);
    expect(
      result.services[0]!.TaskTemplate.ContainerSpec.Secrets.map((s) => [
        s.SecretName,
        s.File.Name,
      ]),
    ).toEqual([
      ['my_custom', 'custom'],
      ['old_one', 'legacy'],
      ['shared', 'shared'],
    ]);
  });

  test('deploy: replicas, global mode, update_config parallelism and delay (Go durations, in ns), deploy.labels on the service; top-level name: is ignored', () => {
    const result = plan(`
name: ignored
version: "3.8"
services:
  r: { image: busybox, command: sleep 1, deploy: { replicas: 3, labels: { tier: web }, update_config: { parallelism: 2, delay: 1m30s } } }
  g: { image: busybox, command: sleep 1, deploy: { mode: global } }
`);
    expect(
      result.services.map((s) => ({
        name: s.Name,
        labels: s.Labels,
        mode: s.Mode,
        update: s.UpdateConfig,
      })),
    ).toEqual([
      {
        name: 'app_g',
        labels: { 'com.docker.stack.namespace': 'app', 'com.docker.stack.image': 'busybox' },
        mode: { Global: {} },
        update: { Parallelism: 1, Delay: 0 },
      },
      {
        name: 'app_r',
        labels: {
          tier: 'web',
          'com.docker.stack.namespace': 'app',
          'com.docker.stack.image': 'busybox',
        },
        mode: { Replicated: { Replicas: 3 } },
        update: { Parallelism: 2, Delay: 90e9 },
      },
    ]);
  });

  test('environment: null and empty values come from the deploying shell when it has them; a null one it lacks is left out', () => {
    const result = plan(
      `
services:
  s:
    image: busybox
    command: sleep 1
    environment: [FROM_SHELL, EMPTY=, MISSING, PLAIN=1]
`,
      { vars: { FROM_SHELL: 'x', EMPTY: 'y' } },
    );
    expect(result.services[0]!.TaskTemplate.ContainerSpec.Env).toEqual([
      'EMPTY=y',
      'FROM_SHELL=x',
      'PLAIN=1',
    ]);
  });

  test('several files merge in order: later values win, environment and secrets merge by key, deploy field by field', () => {
    const result = plan(
      `
services:
  s: { image: busybox:1, command: sleep 1, environment: { A: "1", B: "1" }, secrets: [one], deploy: { replicas: 2, labels: { x: "1" } } }
secrets:
  one: { file: one.txt }
`,
      {
        files: { '/stack/one.txt': '1', '/stack/two.txt': '2' },
        more: [
          `
services:
  s: { image: busybox:2, environment: { B: "2" }, secrets: [{ source: one, target: renamed }, two], deploy: { labels: { second: "2" } } }
secrets:
  two: { file: two.txt }
`,
        ],
      },
    );
    const spec = result.services[0]!;
    expect(spec.TaskTemplate.ContainerSpec).toEqual({
      Image: 'busybox:2',
      Args: ['sleep', '1'],
      Env: ['A=1', 'B=2'],
      Secrets: [
        { SecretName: 'app_one', File: { Name: 'renamed', UID: '0', GID: '0', Mode: 0o444 } },
        { SecretName: 'app_two', File: { Name: 'two', UID: '0', GID: '0', Mode: 0o444 } },
      ],
    });
    expect(spec.Mode).toEqual({ Replicated: { Replicas: 2 } });
    expect(spec.Labels).toEqual({
      x: '1',
      second: '2',
      'com.docker.stack.namespace': 'app',
      'com.docker.stack.image': 'busybox:2',
    });
  });
});

describe('interpolation', () => {
  const context = (vars: Record<string, string>) => ({
    lookup: env(vars),
    unset: new Set<string>(),
  });

  test('${VAR}, $VAR, defaults for unset (-) and unset-or-empty (:-), alternatives (+), $$ as a literal $', () => {
    const c = context({ A: 'a', EMPTY: '' });
    expect(
      interpolateString('${A}-$A-${B:-dflt}-${EMPTY:-e}-${EMPTY-e}-${A:+alt}-${B+alt}-$$A', 'x', c),
    ).toBe('a-a-dflt-e--alt--$A');
    expect(interpolateString('${B:-${A}x}', 'x', c)).toBe('ax');
    expect([...c.unset]).toEqual([]);
  });

  test('an unset variable becomes "" with Docker\'s warning; ${VAR:?msg} fails naming it', () => {
    const loaded = loadCompose(
      [{ name: 'c.yml', text: 'services:\n  s: { image: "busybox${TAG}", command: sleep 1 }\n' }],
      { workingDir: '/', env: env({}) },
    );
    expect(loaded.warnings).toEqual([
      'The "TAG" variable is not set. Defaulting to a blank string.',
    ]);
    expect(loaded.project.services.get('s')!.image).toBe('busybox');
    expect(() => interpolateString('${PW:?set PW first}', 'x', context({}))).toThrow(
      'required variable PW is missing a value: set PW first',
    );
    expect(() => interpolateString('${PW', 'services.s.image', context({}))).toThrow(
      'invalid interpolation format for services.s.image: "${PW". You may need to escape any $ with another $',
    );
  });

  test('values are interpolated everywhere in services and secrets, numbers included', () => {
    const result = plan(
      'services:\n  s: { image: "${IMG}", command: "sleep ${N}", deploy: { replicas: "${R}" }, secrets: [{ source: s1, mode: "${MODE}" }] }\nsecrets:\n  s1: { file: "${DIR}/s1" }\n',
      {
        vars: { IMG: 'busybox', N: '5', R: '2', MODE: '0400', DIR: '/d' },
        files: { '/d/s1': 'v' },
      },
    );
    const spec = result.services[0]!;
    expect([
      spec.TaskTemplate.ContainerSpec.Image,
      spec.TaskTemplate.ContainerSpec.Args,
      spec.Mode,
      spec.TaskTemplate.ContainerSpec.Secrets[0]!.File.Mode,
    ]).toEqual(['busybox', ['sleep', '5'], { Replicated: { Replicas: 2 } }, 0o400]);
  });
});

describe('errors name the file and the key; nothing is translated', () => {
  const fails = (
    compose: string,
    message: string,
    options: Parameters<typeof plan>[1] = {},
  ): void => {
    expect(() => plan(compose, options)).toThrow(message);
  };
  const ok = 'image: busybox, command: sleep 1';

  test('unknown keys, at every level', () => {
    fails(
      `services:\n  s: { ${ok}, colour: red }\n`,
      'Invalid compose file compose.yml: services.s: additional property "colour" is not allowed',
    );
    fails(
      `services:\n  s: { ${ok} }\nfoo: 1\n`,
      'Invalid compose file compose.yml: (root): additional property "foo" is not allowed',
    );
    fails(
      `services:\n  s: { ${ok}, deploy: { replica: 2 } }\n`,
      'services.s.deploy: additional property "replica" is not allowed',
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [{ source: x, targte: y }] }\nsecrets: { x: { file: f } }\n`,
      'services.s.secrets[0]: additional property "targte" is not allowed',
    );
    fails(
      `services:\n  s: { ${ok} }\nsecrets: { x: { file: f, colour: red } }\n`,
      'secrets.x: additional property "colour" is not allowed',
    );
  });

  test('wrong types', () => {
    fails(
      `services:\n  s: { ${ok}, deploy: { replicas: three } }\n`,
      'Invalid compose file compose.yml: services.s.deploy.replicas must be a whole number (got string "three")',
    );
    fails(
      `services:\n  s: { image: [busybox], command: sleep 1 }\n`,
      'services.s.image must be a string (got a list)',
    );
    fails(
      `services:\n  s: { ${ok}, environment: { A: [1] } }\n`,
      'services.s.environment.A must be a string, number or boolean (got a list)',
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [{ source: x, mode: 0999 }] }\nsecrets: { x: { file: f } }\n`,
      'services.s.secrets[0].mode must be a file mode from 0 to 0777 (octal)',
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [{ source: x, uid: root }] }\nsecrets: { x: { file: f } }\n`,
      'services.s.secrets[0].uid must be a numeric id (got string "root")',
    );
    fails(
      `services:\n  s: { ${ok}, deploy: { mode: replicated-job } }\n`,
      'services.s.deploy.mode must be replicated or global (got "replicated-job")',
    );
    fails(
      `services:\n  s: { ${ok}, deploy: { update_config: { delay: soon } } }\n`,
      'services.s.deploy.update_config.delay must be a duration such as 10s or 1m30s (got "soon")',
    );
    fails('services: [a, b]\n', 'services must be a mapping (got a list)');
    fails(
      '- just a list\n',
      'Invalid compose file compose.yml: top-level object must be a mapping',
    );
    fails(
      'services:\n  s: { image: busybox\n',
      'Invalid compose file compose.yml: cannot parse YAML',
    );
    fails(`version: "2"\nservices:\n  s: { ${ok} }\n`, 'unsupported Compose file version: 2');
  });

  test('a secret used but not defined, a missing file, an env-sourced secret without its variable, conflicting sources', () => {
    fails(
      `services:\n  s: { ${ok}, secrets: [nope] }\n`,
      'Invalid compose file compose.yml: service s: undefined secret "nope"',
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [x] }\nsecrets: { x: { file: missing.txt } }\n`,
      'secret x: cannot read file /stack/missing.txt: no such file or directory',
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [x] }\nsecrets: { x: { environment: DB_PW } }\n`,
      'secret x: environment variable DB_PW is not set',
    );
    fails(
      `services:\n  s: { ${ok} }\nsecrets: { x: { file: f, external: true } }\n`,
      'secrets.x: conflicting parameters "external" and "file" specified',
    );
    fails(
      `services:\n  s: { ${ok} }\nsecrets: { x: { labels: { a: b } } }\n`,
      'secrets.x: give file, environment or external',
    );
    fails(
      `services:\n  s: { ${ok} }\nsecrets: { x: { file: f, driver: vault } }\n`,
      'secrets.x.driver is not supported by secretd',
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [x] }\nsecrets: { x: { file: empty } }\n`,
      'secret x: Invalid secret data',
      { files: { '/stack/empty': '' } },
    );
  });

  test('a service without image or command, replicas with global mode, conflicting targets, on-update an absolute target cannot take', () => {
    fails('services:\n  s: { command: sleep 1 }\n', 'service s: image is required');
    fails(
      'services:\n  s: { image: busybox }\n',
      'service s: command (or entrypoint) is required: secretd images have no default command',
    );
    fails(
      `services:\n  s: { ${ok}, deploy: { mode: global, replicas: 2 } }\n`,
      'service s: replicas can only be used with replicated mode',
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [{ source: a, target: t }, { source: b, target: t }] }\nsecrets: { a: { file: a }, b: { file: b } }\n`,
      "service s: secret references 'app_a' and 'app_b' have a conflicting target: 't'",
      { files: { '/stack/a': 'a', '/stack/b': 'b' } },
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [{ source: a, target: /etc/a, x-secretd-on-update: "signal:SIGHUP" }] }\nsecrets: { a: { file: a } }\n`,
      'service s: secret app_a has the absolute target "/etc/a"',
      { files: { '/stack/a': 'a' } },
    );
    fails(
      `services:\n  s: { ${ok}, secrets: [{ source: a, x-secretd-on-update: "signal:SIGKILL" }] }\nsecrets: { a: { file: a } }\n`,
      'service s:',
      { files: { '/stack/a': 'a' } },
    );
  });

  test("keys Docker honours but secretd cannot are errors; Docker's forbidden keys are Docker's error", () => {
    fails(
      `services:\n  s: { ${ok}, ports: ["80:80"] }\n`,
      'Invalid compose file compose.yml: services.s.ports is not supported by secretd (secretd runs containers without a network)',
    );
    fails(
      `services:\n  s: { ${ok}, volumes: [data:/data] }\n`,
      'services.s.volumes is not supported by secretd',
    );
    fails(
      `services:\n  s: { ${ok}, deploy: { resources: { limits: { cpus: "1" } } } }\n`,
      'services.s.deploy.resources is not supported by secretd',
    );
    fails(
      `services:\n  s: { ${ok} }\nnetworks: { front: {} }\n`,
      'networks is not supported by secretd',
    );
    fails(
      `services:\n  s: { ${ok}, deploy: { update_config: { order: start-first } } }\n`,
      'services.s.deploy.update_config.order: secretd updates stop-first only',
    );
    fails(
      `services:\n  s: { ${ok}, mem_limit: 1g }\n`,
      'Compose file contains unsupported options:\n\nmem_limit: Set resource limits using deploy.resources\n',
    );
  });

  test('a bad stack name, before anything else', () => {
    const loaded = loadCompose([{ name: 'c.yml', text: `services:\n  s: { ${ok} }\n` }], {
      workingDir: '/',
      env: env({}),
    });
    expect(() =>
      translate(loaded.project, 'bad name', { env: env({}), readFile: enoent, readServiceSpec }),
    ).toThrow('Invalid stack name "bad name"');
    expect(() =>
      translate(loaded.project, ' ', { env: env({}), readFile: enoent, readServiceSpec }),
    ).toThrow('invalid stack name: " "');
  });
});

describe("Docker's warnings for keys it ignores", () => {
  test("unsupported and deprecated options are listed once, sorted, in Docker's words", () => {
    const result = plan(
      'services:\n  a: { image: busybox, command: sleep 1, build: ., restart: always, container_name: x }\n  b: { image: busybox, command: sleep 1, build: ., expose: [80], depends_on: [a] }\n',
    );
    expect(result.warnings).toEqual([
      'Ignoring unsupported options: build, restart\n',
      "Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported.\n\nexpose: Exposing ports is unnecessary - services on the same network can access each other's containers on any port.\n",
    ]);
  });
});

describe('sameSpec', () => {
  const wanted = plan(dockerExample, {
    files: { '/stack/db_password.txt': 'pw', '/stack/secrets/root.txt': 'root' },
  }).services[1]!;
  /** The same spec as the manager answers it: ids filled in, defaults written out, references in another order. */
  interface Served {
    Labels: Record<string, string>;
    TaskTemplate: {
      ContainerSpec: {
        Env?: string[];
        Secrets: Array<{ SecretID: string; File: { Name: string } }>;
      };
      ForceUpdate: number;
    };
    Mode: object;
    UpdateConfig: object;
  }
  const asServed = (): Served => {
    const served = JSON.parse(JSON.stringify(wanted)) as Served;
    served.TaskTemplate.ContainerSpec.Secrets.reverse().forEach((s) => (s.SecretID = 'id'));
    served.TaskTemplate.ForceUpdate = 0;
    served.UpdateConfig = { Parallelism: 1, Delay: 0, FailureAction: 'pause', Order: 'stop-first' };
    return served;
  };
  const same = (served: Served): boolean => sameSpec(served as unknown as CurrentSpec, wanted);

  test('the spec the manager serves back equals the one deployed', () => {
    expect(same(asServed())).toBe(true);
  });

  test('any change that matters is seen: env, a secret target, replicas, a label, the delay', () => {
    const changes: Array<(s: Served) => void> = [
      (s) => (s.TaskTemplate.ContainerSpec.Env = ['A=1']),
      (s) => (s.TaskTemplate.ContainerSpec.Secrets[0]!.File.Name = 'other'),
      (s) => (s.Mode = { Replicated: { Replicas: 2 } }),
      (s) => (s.Labels = { ...s.Labels, extra: '1' }),
      (s) => (s.UpdateConfig = { Parallelism: 1, Delay: 1e9 }),
    ];
    for (const change of changes) {
      const served = asServed();
      change(served);
      expect(same(served)).toBe(false);
    }
  });
});

describe('splitCommand (compose command strings)', () => {
  test('splits like a POSIX shell: quotes, escapes, comments', () => {
    expect(splitCommand(`sh -c 'echo "a b"; exit 0'`)).toEqual(['sh', '-c', 'echo "a b"; exit 0']);
    expect(splitCommand('echo "x \\"y\\"" a\\ b  # a comment')).toEqual(['echo', 'x "y"', 'a b']);
    expect(splitCommand("a '' b")).toEqual(['a', '', 'b']);
    expect(() => splitCommand("echo 'open")).toThrow('unclosed single quote');
  });
});
