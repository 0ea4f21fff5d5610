/** /_ping, /version, /info and secretd's own CA route. */
import type { Hono } from 'hono';
import { invalid } from '../../errors.ts';
import { requireRole, type AppEnv, type AppOptions } from './app.ts';
import { readJsonObject } from './request.ts';

export const apiVersion = '1.47';
export const minApiVersion = '1.24';
const clientNamePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

export function systemRoutes(api: Hono<AppEnv>, options: AppOptions): void {
  const { backend } = options;
  const swarmHeader = (): string => (backend.locked ? 'locked' : backend.summary().isManager ? 'active/manager' : 'active/worker');
  const pingHeaders = (): Record<string, string> => ({ 'API-Version': apiVersion, 'Cache-Control': 'no-cache, no-store, must-revalidate', Swarm: swarmHeader() });

  api.get('/_ping', (c) => c.text('OK', 200, pingHeaders()));
  api.on('HEAD', '/_ping', (c) => c.body(null, 200, pingHeaders()));

  api.get('/version', (c) =>
    c.json({
      Platform: { Name: 'secretd' },
      Components: [{ Name: 'secretd', Version: options.version, Details: { ApiVersion: apiVersion, MinAPIVersion: minApiVersion } }],
      Version: options.version,
      ApiVersion: apiVersion,
      MinAPIVersion: minApiVersion,
      Os: process.platform,
      Arch: process.arch === 'x64' ? 'amd64' : process.arch,
      KernelVersion: '',
      GitCommit: '',
      GoVersion: '',
    }),
  );

  api.get('/info', (c) => {
    const s = backend.summary();
    return c.json({
      ID: s.nodeId,
      Name: s.hostname,
      ServerVersion: options.version,
      OperatingSystem: 'secretd',
      OSType: process.platform,
      Architecture: process.arch,
      Swarm: {
        NodeID: s.nodeId,
        NodeAddr: s.addr,
        LocalNodeState: s.state,
        ControlAvailable: s.isManager,
        Error: '',
        RemoteManagers: null,
        Nodes: s.nodes,
        Managers: s.managers,
        ...(s.clusterId && !backend.locked ? { Cluster: { ID: s.clusterId } } : {}),
      },
      Secrets: s.secrets,
      // What this node's agent was given for its tasks, as counts: never names or values.
      SecretsReceived: s.secretsReceived,
      SecretsHeld: s.secretsHeld,
    });
  });

  api.post('/secretd/ca/client-certificates', async (c) => {
    requireRole(c, ['admin'], 'issue client certificates');
    const body = await readJsonObject(c, 'certificate request', ['Name', 'CSR']);
    if (typeof body.Name !== 'string' || !clientNamePattern.test(body.Name)) {
      throw invalid('Invalid certificate request: Name must be 1 to 64 characters [a-zA-Z0-9_.-] starting with a letter or digit');
    }
    if (typeof body.CSR !== 'string' || !body.CSR.includes('-----BEGIN CERTIFICATE REQUEST-----')) {
      throw invalid('Invalid certificate request: CSR must be a PEM certificate signing request');
    }
    const issued = await backend.issueClientCertificate(body.Name, body.CSR);
    return c.json({ Certificate: issued.certPem, CA: issued.caPem }, 201);
  });
}
