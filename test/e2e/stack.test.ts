/**
 * `secretd stack` on real processes and real runc containers (busybox): Docker's "secrets in
 * compose" example (a database and an app reading their passwords through `*_FILE` variables)
 * deployed, re-deployed unchanged (nothing updated, no task restarted), re-deployed with one
 * secret file changed (a new version reaches only that secret's consumers, in place), listed,
 * and removed (an external secret stays); bad compose files fail with exit code 1 and create
 * nothing.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import {
  requireBinary,
  secretd,
  tempDir,
  type RunResult,
  type TempDir,
} from '../helpers/process.ts';
import {
  expectRun,
  ServiceCluster,
  until,
  type ServiceNode,
  type TaskJSON,
} from '../helpers/services.ts';

beforeAll(requireBinary);
setDefaultTimeout(60_000);

// Each service writes what its *_FILE variables point at into /tmp/seen, once a second.
const compose = `
version: "3.8"
name: ignored-in-favour-of-the-stack-argument
services:
  db:
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do cat \\"$$DB_PASSWORD_FILE\\" \\"$$DB_ROOT_PASSWORD_FILE\\" > /tmp/seen.new; mv /tmp/seen.new /tmp/seen; sleep 1 & wait; done"]
    environment:
      DB_PASSWORD_FILE: /run/secrets/db_password
      DB_ROOT_PASSWORD_FILE: /run/secrets/db_root_password
    secrets:
      - db_root_password
      - source: db_password
        mode: 0400
    deploy:
      replicas: \${DB_REPLICAS:-1}
  app:
    image: busybox
    command: sh -c 'trap "exit 0" TERM; while true; do cat "$$APP_DB_PASSWORD_FILE" "$$TOKEN_FILE" > /tmp/seen.new; mv /tmp/seen.new /tmp/seen; sleep 1 & wait; done'
    environment:
      - APP_DB_PASSWORD_FILE=/run/secrets/db_password
      - TOKEN_FILE=/run/secrets/token
    secrets:
      - db_password
      - source: shared_token
        target: token
secrets:
  db_password:
    file: db_password.txt
  db_root_password:
    file: ./db_root_password.txt
  shared_token:
    external: true
`;

let dir: TempDir;
let cluster: ServiceCluster;
let node: ServiceNode;
let composeFile: string;

beforeAll(async () => {
  dir = tempDir('secretd-stack-');
  cluster = await ServiceCluster.init(join(dir.path, 'cluster'));
  node = cluster.manager;
  cluster.importImage('busybox', busyboxRootfsTarball());
  const project = join(dir.path, 'project');
  mkdirSync(project);
  composeFile = join(project, 'compose.yml');
  writeFileSync(composeFile, compose);
  writeFileSync(join(project, 'db_password.txt'), 'pw-1;');
  writeFileSync(join(project, 'db_root_password.txt'), 'root-1;');
});

afterAll(async () => {
  try {
    await cluster?.[Symbol.asyncDispose]();
  } finally {
    dir?.[Symbol.dispose]();
  }
});

function stack(args: readonly string[]): RunResult {
  return secretd(['stack', ...args], { env: { SECRETD_DATA_DIR: node.dataDir } });
}

async function running(service: string): Promise<TaskJSON> {
  return (await cluster.runningTasks(service, 1))[0]!;
}

/** Waits until the task's loop has written `want` (it rewrites /tmp/seen every second). */
async function seen(task: TaskJSON, want: string): Promise<void> {
  let last = '';
  await until(`${task.ID} to see ${want}`, 15_000, () => {
    last = node.cli(['exec', task.ID, 'cat', '/tmp/seen']).stdout;
    return last === want ? true : undefined;
  }).catch((error: Error) => {
    throw new Error(`${error.message}; last seen ${JSON.stringify(last)}`);
  });
}

/** The start time of the container's PID 1: the same value means the same process. */
function pid1Start(task: TaskJSON): string {
  return expectRun(node.cli(['exec', task.ID, 'sh', '-c', 'cut -d" " -f22 /proc/1/stat']), {
    stdout: /^\d+\n$/,
  }).stdout;
}

async function inspect(
  kind: 'services' | 'secrets',
  name: string,
): Promise<{ ID: string; Version: { Index: number }; Spec: { Labels: Record<string, string> } }> {
  const answer = await node.admin('GET', `/${kind}/${name}`);
  expect({ name, status: answer.status }).toEqual({ name, status: 200 });
  return JSON.parse(answer.text);
}

async function versions(secret: string): Promise<number[]> {
  const answer = JSON.parse(
    (await node.admin('GET', `/secretd/secrets/${secret}/versions`)).text,
  ) as { Versions: Array<{ Version: number }> };
  return answer.Versions.map((v) => v.Version);
}

describe("Docker's secrets example as a stack", () => {
  let db: TaskJSON;
  let app: TaskJSON;

  test('deploy: secrets and services named and labelled as Docker does, each container reads its secrets through *_FILE', async () => {
    expectRun(
      secretd(['secret', 'create', 'shared_token', '-'], {
        input: 'tok-1',
        env: { SECRETD_DATA_DIR: node.dataDir },
      }),
      { stdout: /^\w{25}\n$/ },
    );
    expectRun(stack(['deploy', '-c', composeFile, 'app']), {
      stdout:
        'Creating secret app_db_password\nCreating secret app_db_root_password\nCreating service app_app\nCreating service app_db\n',
    });
    db = await running('app_db');
    app = await running('app_app');
    await seen(db, 'pw-1;root-1;');
    await seen(app, 'pw-1;tok-1');
    expectRun(node.cli(['exec', db.ID, 'ls', '-l', '/run/secrets']), {
      stdout:
        /^total \d+\n-r--------\s+1 root\s+root\s+5 [^\n]* db_password\n-r--r--r--\s+1 root\s+root\s+7 [^\n]* db_root_password\n$/,
    });

    expect((await inspect('secrets', 'app_db_password')).Spec.Labels).toEqual({
      'com.docker.stack.namespace': 'app',
    });
    expect((await inspect('secrets', 'shared_token')).Spec.Labels).toEqual({});
    expect((await inspect('services', 'app_db')).Spec.Labels).toEqual({
      'com.docker.stack.namespace': 'app',
      'com.docker.stack.image': 'busybox',
    });
  });

  test('stack ls, stack services (table, -q, json)', async () => {
    expectRun(stack(['ls']), { stdout: 'NAME   SERVICES\napp    2\n' });
    const services = [await inspect('services', 'app_app'), await inspect('services', 'app_db')];
    expectRun(stack(['services', 'app']), {
      stdout: new RegExp(
        `^ID\\s+NAME\\s+MODE\\s+REPLICAS\\s+IMAGE\\s+PORTS\\n${services[0]!.ID.slice(0, 12)}\\s+app_app\\s+replicated\\s+1/1\\s+busybox\\n${services[1]!.ID.slice(0, 12)}\\s+app_db\\s+replicated\\s+1/1\\s+busybox\\n$`,
      ),
    });
    expectRun(stack(['services', 'app', '-q']), {
      stdout: `${services[0]!.ID}\n${services[1]!.ID}\n`,
    });
    const json = expectRun(stack(['services', 'app', '--format', 'json']), {})
      .stdout.trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(json).toEqual([
      {
        ID: services[0]!.ID.slice(0, 12),
        Image: 'busybox',
        Mode: 'replicated',
        Name: 'app_app',
        Ports: '',
        Replicas: '1/1',
      },
      {
        ID: services[1]!.ID.slice(0, 12),
        Image: 'busybox',
        Mode: 'replicated',
        Name: 'app_db',
        Ports: '',
        Replicas: '1/1',
      },
    ]);
    expectRun(stack(['services', 'nothing']), {
      stdout: '',
      stderr: 'Nothing found in stack: nothing\n',
    });
  });

  test('re-deploy unchanged: no service update, no new secret version, the same tasks and processes', async () => {
    const before = {
      db: await inspect('services', 'app_db'),
      app: await inspect('services', 'app_app'),
      dbStart: pid1Start(db),
      appStart: pid1Start(app),
    };
    expectRun(stack(['deploy', '-c', composeFile, 'app']), {
      stdout: `Updating service app_app (id: ${before.app.ID})\nUpdating service app_db (id: ${before.db.ID})\n`,
    });
    expect((await inspect('services', 'app_db')).Version).toEqual(before.db.Version);
    expect((await inspect('services', 'app_app')).Version).toEqual(before.app.Version);
    expect(await versions('app_db_password')).toEqual([1]);
    expect(await versions('app_db_root_password')).toEqual([1]);
    expect([(await running('app_db')).ID, (await running('app_app')).ID]).toEqual([db.ID, app.ID]);
    expect([pid1Start(db), pid1Start(app)]).toEqual([before.dbStart, before.appStart]);
  });

  test('one secret file changed: a new version reaches only its consumer, in place; the other service is untouched', async () => {
    const before = {
      db: await inspect('services', 'app_db'),
      app: await inspect('services', 'app_app'),
      dbStart: pid1Start(db),
      appStart: pid1Start(app),
    };
    writeFileSync(join(dir.path, 'project', 'db_root_password.txt'), 'root-2;');
    expectRun(stack(['deploy', '-c', composeFile, 'app']), {
      stdout: `Updating secret app_db_root_password (new version 2)\nUpdating service app_app (id: ${before.app.ID})\nUpdating service app_db (id: ${before.db.ID})\n`,
    });
    await seen(db, 'pw-1;root-2;');
    const rootId = (await inspect('secrets', 'app_db_root_password')).ID;
    const passwordId = (await inspect('secrets', 'app_db_password')).ID;
    const dbNow = await running('app_db');
    const appNow = await running('app_app');
    expect([dbNow.ID, appNow.ID]).toEqual([db.ID, app.ID]);
    expect(dbNow.Status.SecretVersions).toEqual({ [passwordId]: 1, [rootId]: 2 });
    expect(appNow.Status.SecretVersions[rootId]).toBeUndefined();
    expect([pid1Start(db), pid1Start(app)]).toEqual([before.dbStart, before.appStart]);
    expect((await inspect('services', 'app_db')).Version).toEqual(before.db.Version);
    expect((await inspect('services', 'app_app')).Version).toEqual(before.app.Version);
    expect(node.cli(['exec', app.ID, 'cat', '/tmp/seen']).stdout).toBe('pw-1;tok-1');
    expect(await versions('app_db_password')).toEqual([1]);
  });

  test('services left out of the file stay, unless --prune', async () => {
    const dbOnly = join(dir.path, 'project', 'db-only.yml');
    writeFileSync(
      dbOnly,
      compose.slice(0, compose.indexOf('  app:\n')) +
        compose.slice(compose.indexOf('secrets:\n  db_password:')),
    );
    const ids = {
      db: (await inspect('services', 'app_db')).ID,
      app: (await inspect('services', 'app_app')).ID,
    };
    expectRun(stack(['deploy', '-c', dbOnly, 'app']), {
      stdout: `Updating service app_db (id: ${ids.db})\n`,
    });
    expectRun(stack(['ls']), { stdout: 'NAME   SERVICES\napp    2\n' });
    expectRun(stack(['deploy', '--prune', '-c', dbOnly, 'app']), {
      stdout: `Removing service app_app\nUpdating service app_db (id: ${ids.db})\n`,
    });
    expectRun(stack(['ls']), { stdout: 'NAME   SERVICES\napp    1\n' });
    expect((await running('app_db')).ID).toBe(db.ID);
  });

  test('bad compose files fail with exit code 1 and create nothing', async () => {
    const project = join(dir.path, 'project');
    const cases: Array<[string, string, RegExp]> = [
      [
        'unknown-key.yml',
        'services:\n  s: { image: busybox, command: sleep 1, colour: red }\n',
        /services\.s: additional property "colour" is not allowed/,
      ],
      [
        'wrong-type.yml',
        'services:\n  s: { image: busybox, command: sleep 1, deploy: { replicas: many } }\n',
        /services\.s\.deploy\.replicas must be a whole number/,
      ],
      [
        'undefined.yml',
        'services:\n  s: { image: busybox, command: sleep 1, secrets: [nope] }\n',
        /service s: undefined secret "nope"/,
      ],
      [
        'no-file.yml',
        'services:\n  s: { image: busybox, command: sleep 1, secrets: [x] }\nsecrets:\n  x: { file: missing.txt }\n',
        /secret x: cannot read file .*missing\.txt: no such file or directory/,
      ],
      [
        'no-env.yml',
        'services:\n  s: { image: busybox, command: sleep 1, secrets: [x] }\nsecrets:\n  x: { environment: SECRETD_TEST_UNSET_VAR }\n',
        /secret x: environment variable SECRETD_TEST_UNSET_VAR is not set/,
      ],
      // Valid locally, refused by the manager's answer: still before the first change.
      [
        'no-external.yml',
        'services:\n  s: { image: busybox, command: sleep 1, secrets: [x, gone] }\nsecrets:\n  x: { file: db_password.txt }\n  gone: { external: true }\n',
        /^Error: secret not found: gone\n$/,
      ],
    ];
    for (const [name, text, stderr] of cases) {
      writeFileSync(join(project, name), text);
      expectRun(stack(['deploy', '-c', join(project, name), 'bad']), {
        code: 1,
        stdout: '',
        stderr,
      });
    }
    expectRun(stack(['services', 'bad']), { stderr: 'Nothing found in stack: bad\n' });
    expectRun(stack(['rm', 'bad']), { stderr: 'Nothing found in stack: bad\n' });
    const secrets = expectRun(
      secretd(['secret', 'ls', '--format', 'json'], { env: { SECRETD_DATA_DIR: node.dataDir } }),
      {},
    )
      .stdout.trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { Spec: { Name: string } }).Spec.Name);
    expect(secrets.sort()).toEqual(['app_db_password', 'app_db_root_password', 'shared_token']);
  });

  test("stack rm: services, then the stack's secrets; the external secret stays; every task erased", async () => {
    expectRun(stack(['rm', 'app']), {
      stdout:
        'Removing service app_db\nRemoving secret app_db_password\nRemoving secret app_db_root_password\n',
    });
    expectRun(secretd(['service', 'ls', '-q'], { env: { SECRETD_DATA_DIR: node.dataDir } }), {
      stdout: '\n',
    });
    expectRun(
      secretd(['secret', 'ls', '--format', 'json'], { env: { SECRETD_DATA_DIR: node.dataDir } }),
      { stdout: /^\{[^\n]*"Name":"shared_token"[^\n]*\}\n$/ },
    );
    await cluster.waitForSecrets(
      { manager: { tasks: [], held: 0 } },
      'stack rm to erase every task',
    );
    expectRun(stack(['ls']), { stdout: 'NAME   SERVICES\n' });
    expectRun(stack(['rm', 'app']), { stderr: 'Nothing found in stack: app\n' });
  });
});
