/** /_ping, /version, /info and secretd's own CA routes (client certificates: issue, list, revoke). */
import { Hono } from 'hono';
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';
import { invalid } from '../../../errors.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend, RevocationOutcome } from '../backend.ts';
import { readJsonObject } from '../request.ts';
import { clientCertLifetimeMsMin } from '../../../limits.ts';
import { peerPaths } from '../../peers/index.ts';
import {
  checkRoleAndScope,
  clientCertNamePattern,
  type ClientCertRecord,
} from '../../store/index.ts';
import { swarmJSON } from '../shapes.ts';
import { localContainerCounts } from './local-containers.ts';

export const apiVersion = '1.47';
export const minApiVersion = '1.24';

/**
 * A client certificate's `Expiry`, in nanoseconds as Docker's API carries durations (absent: the
 * default, 90 days), as milliseconds; at least `clientCertLifetimeMsMin`.
 */
function expiryMs(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < clientCertLifetimeMsMin * 1e6
  )
    throw invalid(
      `Invalid certificate request: Expiry must be a whole number of nanoseconds, at least ${clientCertLifetimeMsMin * 1e6} (1 minute)`,
    );
  return Math.round(value / 1e6);
}

/** A client certificate record as the API shows it: never a key. */
function clientCertJSON(record: ClientCertRecord): Record<string, unknown> {
  return {
    Serial: record.serial,
    Name: record.name,
    Role: record.role,
    Scope: record.scope,
    IssuedAt: record.issuedAt,
    ExpiresAt: record.expiresAt,
    RevokedAt: record.revokedAt,
  };
}

/** The managers that did not confirm a change to the client certificates in time. */
function unconfirmedJSON(unconfirmed: RevocationOutcome['unconfirmed']): object[] {
  return unconfirmed.map((m) => ({ NodeID: m.nodeId, Addr: m.addr, Error: m.reason }));
}

/** The machine, read once: what `docker info` reports of it. */
const host = {
  operatingSystem: prettyOsName(),
  kernel: release(),
  cpus: availableParallelism(),
  memoryBytes: totalmem(),
};

function prettyOsName(): string {
  try {
    return (
      /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ??
      process.platform
    );
  } catch {
    return process.platform;
  }
}

function hostOf(addr: string): string {
  return addr.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
}

export interface SystemRoutesOptions {
  readonly backend: Backend;
  readonly version: string;
}

export function systemRoutes(options: SystemRoutesOptions): Hono<AppEnv> {
  const { backend } = options;
  const api = new Hono<AppEnv>();
  const swarmHeader = (): string =>
    backend.locked ? 'locked' : backend.summary().isManager ? 'active/manager' : 'active/worker';
  const pingHeaders = (): Record<string, string> => ({
    'API-Version': apiVersion,
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    Swarm: swarmHeader(),
  });

  api.get('/_ping', allow('GET /_ping'), (c) => c.text('OK', 200, pingHeaders()));
  api.on('HEAD', '/_ping', allow('HEAD /_ping'), (c) => c.body(null, 200, pingHeaders()));

  // Every client role reads the version (access.ts: the Docker SDK for Python asks it first). A
  // worker's certificate opens only its dispatcher session (and /_ping, which even a connection
  // without a certificate reaches): not even the version or this machine's facts.
  api.get('/version', allow('GET /version'), (c) => {
    return c.json({
      Platform: { Name: 'secretd' },
      Components: [
        {
          Name: 'secretd',
          Version: options.version,
          Details: { ApiVersion: apiVersion, MinAPIVersion: minApiVersion },
        },
      ],
      Version: options.version,
      ApiVersion: apiVersion,
      MinAPIVersion: minApiVersion,
      Os: process.platform,
      Arch: process.arch === 'x64' ? 'amd64' : process.arch,
      KernelVersion: '',
      GitCommit: '',
      GoVersion: '',
    });
  });

  api.get('/info', allow('GET /info'), (c) => {
    const s = backend.summary();
    const cluster = s.cluster
      ? (swarmJSON(s.cluster, false) as Record<string, unknown>)
      : s.clusterId && !backend.locked
        ? { ID: s.clusterId }
        : null;
    return c.json({
      ID: s.nodeId,
      Name: s.hostname,
      ServerVersion: options.version,
      // This machine's, as `docker info` shows them; the containers are this node's tasks.
      Containers: s.tasks.live,
      ContainersRunning: s.tasks.running,
      ContainersPaused: 0,
      ContainersStopped: s.tasks.live - s.tasks.running,
      OperatingSystem: host.operatingSystem,
      OSType: process.platform,
      KernelVersion: host.kernel,
      Architecture: process.arch === 'x64' ? 'x86_64' : process.arch,
      NCPU: host.cpus,
      MemTotal: host.memoryBytes,
      DefaultRuntime: 'runc',
      Swarm: {
        NodeID: s.nodeId,
        NodeAddr: hostOf(s.addr),
        LocalNodeState: s.state,
        ControlAvailable: s.isManager,
        Error: '',
        RemoteManagers: s.remoteManagers.map((m) => ({ NodeID: m.nodeId, Addr: m.addr })),
        Nodes: s.nodes,
        Managers: s.managers,
        ...(cluster ? { Cluster: cluster } : {}),
      },
      Secrets: s.secrets,
      // What this node's agent was given for its tasks, as counts: never names or values.
      SecretsReceived: s.secretsReceived,
      SecretsHeld: s.secretsHeld,
      // Containers of other engines and spawned processes holding granted secrets here: counts only.
      ...localContainerCounts(backend.localContainers?.() ?? null),
    });
  });

  api.post(
    peerPaths.clientCertificates,
    allow(`POST ${peerPaths.clientCertificates}`),
    async (c) => {
      const body = await readJsonObject(c, 'certificate request', [
        'Name',
        'CSR',
        'Expiry',
        'Role',
        'Scope',
      ]);
      if (typeof body.Name !== 'string' || !clientCertNamePattern.test(body.Name)) {
        throw invalid(
          'Invalid certificate request: Name must be 1 to 64 characters [a-zA-Z0-9_.-] starting with a letter or digit',
        );
      }
      if (
        typeof body.CSR !== 'string' ||
        !body.CSR.includes('-----BEGIN CERTIFICATE REQUEST-----')
      ) {
        throw invalid('Invalid certificate request: CSR must be a PEM certificate signing request');
      }
      const lifetimeMs = expiryMs(body.Expiry);
      const access = checkRoleAndScope(
        body.Role ?? 'admin',
        body.Scope ?? [],
        `issue client certificate ${body.Name}`,
      );
      const issued = await backend.issueClientCertificate(body.Name, body.CSR, {
        ...access,
        ...(lifetimeMs === undefined ? {} : { lifetimeMs }),
      });
      return c.json(
        {
          Certificate: issued.certPem,
          CA: issued.caPem,
          ...clientCertJSON(issued.record),
          Unconfirmed: unconfirmedJSON(issued.unconfirmed),
        },
        201,
      );
    },
  );

  // Managers read the list too: one that revokes confirms on the others that they refuse it.
  api.get(peerPaths.clientCertificates, allow(`GET ${peerPaths.clientCertificates}`), async (c) =>
    c.json((await backend.listClientCertificates()).map(clientCertJSON)),
  );

  // `ca update`: a new role and scope, from the next request on every manager (no reissue).
  api.post(
    `${peerPaths.clientCertificates}/:ref/update`,
    allow(`POST ${peerPaths.clientCertificates}/:ref/update`),
    async (c) => {
      const ref = c.req.param('ref');
      const body = await readJsonObject(c, 'certificate update', ['Role', 'Scope']);
      if (body.Role === undefined) throw invalid('Invalid certificate update: Role must be given');
      const update = checkRoleAndScope(
        body.Role,
        body.Scope ?? [],
        `update client certificate ${ref.slice(0, 80)}`,
      );
      const outcome = await backend.updateClientCertificate(ref, update);
      return c.json({
        Updated: outcome.certificates.map(clientCertJSON),
        Unconfirmed: unconfirmedJSON(outcome.unconfirmed),
      });
    },
  );

  api.delete(
    `${peerPaths.clientCertificates}/:ref`,
    allow(`DELETE ${peerPaths.clientCertificates}/:ref`),
    async (c) => {
      const outcome = await backend.revokeClientCertificates(c.req.param('ref'));
      return c.json({
        Revoked: outcome.certificates.map(clientCertJSON),
        Unconfirmed: unconfirmedJSON(outcome.unconfirmed),
      });
    },
  );

  return api;
}
