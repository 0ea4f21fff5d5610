/**
 * The two systems the service-secrets benchmark drives, behind one interface: a one-node secretd,
 * spoken to on its admin socket, and a one-node Docker Swarm (`docker-swarm.ts`), on dockerd's
 * socket. Both are HTTP/1.1 on a local unix socket through the same client (`dockerRequest`, which
 * is plain HTTP and nothing Docker-specific), so neither pays for TLS or a network hop the other
 * does not.
 *
 * | step                 | secretd                                   | Docker Engine API (v1.41)                     |
 * | image                | POST /secretd/images/import (a root fs)   | POST /images/create?fromSrc=- (the same tar)  |
 * | secret               | POST /secrets/create                      | POST /secrets/create                          |
 * | service              | POST /services/create                     | POST /services/create                         |
 * | running task         | GET /tasks (desired and state running)    | GET /tasks, then its ContainerStatus          |
 * | exec                 | POST /secretd/exec (one call)             | POST /containers/{id}/exec, /exec/{id}/start, GET /exec/{id}/json |
 * | drop the secret      | GET + POST /services/{id}/update          | GET + POST /services/{id}/update              |
 * | remove               | DELETE /services/{id}, then no live task  | DELETE /services/{id}, then no running container |
 */
import { request } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stopProcess, spawnCaptured, waitUntil } from './child-process.ts';
import { dockerApiPrefix, dockerRequest } from './docker-client.ts';
import { freePort, runDirOf } from './secretd-process.ts';

export interface RunningTask {
  /** The task's id: a new one after an update. */
  readonly taskId: string;
  /** What `exec` takes: the task id (secretd) or its container id (Docker). */
  readonly execRef: string;
}

export interface ExecAnswer {
  readonly code: number;
  /** secretd: stdout; Docker: the multiplexed stream (stdout and stderr with 8-byte frame headers). */
  readonly output: string;
}

export interface SecretRef {
  readonly id: string;
  readonly name: string;
}

export interface ServiceSystem {
  readonly label: 'secretd' | 'docker';
  createSecret(name: string, value: string): Promise<SecretRef>;
  /** One replica of `args` in the busybox image, with `secret` at /run/secrets/<secret.name>, mode 0444. */
  createService(name: string, secret: SecretRef, args: readonly string[]): Promise<string>;
  /** Updates the service to reference no secret (a rolling update: stop-first in both). */
  dropSecrets(serviceId: string): Promise<void>;
  /** The service's task that is desired running and running now, or null. */
  runningTask(serviceId: string): Promise<RunningTask | null>;
  exec(execRef: string, argv: readonly string[]): Promise<ExecAnswer>;
  /** Removes the service and returns once nothing of it runs any more (not timed). */
  removeService(serviceId: string): Promise<void>;
}

const requestTimeoutMs = 30_000;
const removeTimeoutMs = 60_000;

type Method = 'GET' | 'POST' | 'DELETE';

async function call(
  socketPath: string,
  method: Method,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const answer = await dockerRequest({
    socketPath,
    method,
    path,
    timeoutMs: requestTimeoutMs,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (answer.status >= 300)
    throw new Error(
      `${method} ${path} answered ${answer.status}: ${answer.body.trim().slice(0, 300)}`,
    );
  return answer.body.trim() === '' ? null : JSON.parse(answer.body);
}

interface TaskShape {
  readonly ID: string;
  readonly ServiceID: string;
  readonly DesiredState: string;
  readonly Status: {
    readonly State: string;
    readonly ContainerStatus?: { readonly ContainerID?: string };
  };
}

interface ServiceShape {
  readonly Version: { readonly Index: number };
  readonly Spec: { TaskTemplate: { ContainerSpec: { Secrets?: unknown[] } } };
}

const terminalStates = new Set([
  'complete',
  'shutdown',
  'failed',
  'rejected',
  'orphaned',
  'remove',
]);

function serviceSpec(
  name: string,
  image: string,
  secret: SecretRef,
  args: readonly string[],
): object {
  return {
    Name: name,
    TaskTemplate: {
      ContainerSpec: {
        Image: image,
        Args: args,
        Secrets: [
          {
            File: { Name: secret.name, UID: '0', GID: '0', Mode: 0o444 },
            SecretID: secret.id,
            SecretName: secret.name,
          },
        ],
      },
    },
    Mode: { Replicated: { Replicas: 1 } },
  };
}

async function dropSecretsVia(
  socketPath: string,
  prefix: string,
  serviceId: string,
): Promise<void> {
  const service = (await call(
    socketPath,
    'GET',
    `${prefix}/services/${serviceId}`,
  )) as ServiceShape;
  const spec = structuredClone(service.Spec);
  spec.TaskTemplate.ContainerSpec.Secrets = [];
  await call(
    socketPath,
    'POST',
    `${prefix}/services/${serviceId}/update?version=${service.Version.Index}`,
    spec,
  );
}

async function runningTaskVia(
  socketPath: string,
  prefix: string,
  serviceId: string,
  execRef: (task: TaskShape) => string | undefined,
): Promise<RunningTask | null> {
  const filters = encodeURIComponent(
    JSON.stringify({ service: [serviceId], 'desired-state': ['running'] }),
  );
  const tasks = (await call(
    socketPath,
    'GET',
    `${prefix}/tasks?filters=${filters}`,
  )) as TaskShape[];
  for (const task of tasks) {
    const ref = task.Status.State === 'running' ? execRef(task) : undefined;
    if (ref !== undefined) return { taskId: task.ID, execRef: ref };
  }
  return null;
}

// --- secretd --------------------------------------------------------------------------------

export interface SecretdNode extends ServiceSystem {
  /** Removes every service, stops the node, removes its data dir and run dir. */
  stop(): Promise<void>;
}

/** `init` on a fresh data dir (its executor runs the tasks), then the busybox image imported. */
export async function startSecretdNode(
  command: readonly string[],
  rootfsTarball: string,
): Promise<SecretdNode> {
  const [executable, ...leading] = command;
  if (executable === undefined) throw new Error('Cannot start secretd: empty command');
  const dir = await mkdtemp(join(tmpdir(), 'secretd-bench-services-'));
  const dataDir = join(dir, 'data');
  const socket = join(dataDir, 'admin.sock');
  const server = spawnCaptured(executable, [
    ...leading,
    'init',
    '--data-dir',
    dataDir,
    '--listen-addr',
    `127.0.0.1:${await freePort()}`,
  ]);
  const services = new Set<string>();
  const system: SecretdNode = {
    label: 'secretd',
    createSecret: async (name, value) => {
      const created = (await call(socket, 'POST', '/secrets/create', {
        Name: name,
        Data: Buffer.from(value).toString('base64'),
      })) as { ID: string };
      return { id: created.ID, name };
    },
    createService: async (name, secret, args) => {
      const created = (await call(
        socket,
        'POST',
        '/services/create',
        serviceSpec(name, 'busybox', secret, args),
      )) as { ID: string };
      services.add(created.ID);
      return created.ID;
    },
    dropSecrets: (serviceId) => dropSecretsVia(socket, '', serviceId),
    runningTask: (serviceId) => runningTaskVia(socket, '', serviceId, (task) => task.ID),
    exec: async (execRef, argv) => {
      const answer = (await call(socket, 'POST', '/secretd/exec', {
        Task: execRef,
        Cmd: argv,
      })) as { ExitCode: number; Stdout: string };
      return { code: answer.ExitCode, output: answer.Stdout };
    },
    removeService: async (serviceId) => {
      await call(socket, 'DELETE', `/services/${serviceId}`);
      services.delete(serviceId);
      await waitUntil(
        async () =>
          ((await call(socket, 'GET', '/tasks')) as TaskShape[]).every(
            (t) => t.ServiceID !== serviceId || terminalStates.has(t.Status.State),
          ),
        { timeoutMs: removeTimeoutMs, what: `secretd to stop the tasks of service ${serviceId}` },
      );
    },
    stop: async () => {
      if (!server.hasExited())
        for (const id of [...services]) await system.removeService(id).catch(() => undefined);
      await stopProcess(server, 10_000);
      const runDir = runDirOf(dataDir);
      // Only once nothing is mounted there any more: a tmpfs left behind is for a human to see.
      if (!readFileSync('/proc/mounts', 'utf8').includes(` ${runDir}/`))
        await rm(runDir, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await server.waitForLine(/^Data directory: /, { timeoutMs: 30_000 });
    await call(socket, 'POST', '/secretd/images/import', {
      Name: 'busybox',
      Path: resolve(rootfsTarball),
    });
    return system;
  } catch (error) {
    await system.stop();
    throw new Error(
      `Cannot start secretd (${command.join(' ')}): ${(error as Error).message}\n--- secretd output (last lines) ---\n${server.output() || '(nothing)'}`,
    );
  }
}

/** The executor's run directory for a data dir (src/node/executor/executor.ts). */

// --- Docker ---------------------------------------------------------------------------------

/** `docker import`: the tarball as the body of POST /images/create?fromSrc=-. */
export async function importDockerImage(
  socketPath: string,
  repo: string,
  tarball: string,
): Promise<void> {
  const body = await readFile(tarball);
  const answer = await new Promise<{ status: number; text: string }>((resolveAnswer, reject) => {
    const req = request(
      {
        socketPath,
        method: 'POST',
        path: `${dockerApiPrefix}/images/create?fromSrc=-&repo=${encodeURIComponent(repo)}&tag=latest`,
        headers: { 'Content-Type': 'application/x-tar', 'Content-Length': body.length },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolveAnswer({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      },
    );
    req.setTimeout(requestTimeoutMs, () =>
      req.destroy(new Error(`docker import timed out after ${requestTimeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
  // The progress stream carries errors in-band, with a 200.
  if (answer.status !== 200 || answer.text.includes('"error"'))
    throw new Error(`docker import answered ${answer.status}: ${answer.text.slice(0, 300)}`);
}

export function dockerSystem(socketPath: string): ServiceSystem {
  const prefix = dockerApiPrefix;
  return {
    label: 'docker',
    createSecret: async (name, value) => {
      const created = (await call(socketPath, 'POST', `${prefix}/secrets/create`, {
        Name: name,
        Data: Buffer.from(value).toString('base64'),
      })) as { ID: string };
      return { id: created.ID, name };
    },
    createService: async (name, secret, args) => {
      const created = (await call(
        socketPath,
        'POST',
        `${prefix}/services/create`,
        serviceSpec(name, 'busybox:latest', secret, args),
      )) as { ID: string };
      return created.ID;
    },
    dropSecrets: (serviceId) => dropSecretsVia(socketPath, prefix, serviceId),
    runningTask: (serviceId) =>
      runningTaskVia(
        socketPath,
        prefix,
        serviceId,
        (task) => task.Status.ContainerStatus?.ContainerID,
      ),
    exec: async (containerId, argv) => {
      const created = (await call(socketPath, 'POST', `${prefix}/containers/${containerId}/exec`, {
        AttachStdout: true,
        AttachStderr: true,
        Cmd: argv,
      })) as { Id: string };
      const started = await dockerRequest({
        socketPath,
        method: 'POST',
        path: `${prefix}/exec/${created.Id}/start`,
        body: JSON.stringify({ Detach: false, Tty: false }),
        timeoutMs: requestTimeoutMs,
      });
      if (started.status !== 200)
        throw new Error(`exec start answered ${started.status}: ${started.body.slice(0, 300)}`);
      const inspected = (await call(socketPath, 'GET', `${prefix}/exec/${created.Id}/json`)) as {
        ExitCode: number | null;
      };
      return { code: inspected.ExitCode ?? -1, output: started.body };
    },
    removeService: async (serviceId) => {
      await call(socketPath, 'DELETE', `${prefix}/services/${serviceId}`);
      const filters = encodeURIComponent(
        JSON.stringify({ label: [`com.docker.swarm.service.id=${serviceId}`] }),
      );
      await waitUntil(
        async () =>
          (
            (await call(
              socketPath,
              'GET',
              `${prefix}/containers/json?filters=${filters}`,
            )) as unknown[]
          ).length === 0,
        {
          timeoutMs: removeTimeoutMs,
          what: `Docker to stop the containers of service ${serviceId}`,
        },
      );
    },
  };
}
