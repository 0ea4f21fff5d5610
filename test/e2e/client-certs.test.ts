/**
 * Client certificates on three real managers (the compiled executable): one issued with --expiry
 * expires when it says; once `secretd ca revoke NAME` returns, every manager refuses it on new
 * connections (403 naming the revocation) and the HTTP/2 connections opened with it before the
 * revocation are closed or refused; another client certificate keeps working; `ca ls` shows it.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import { parseIdentity } from '../../src/crypto/index.ts';
import { Cluster, clientIp, until, type ClusterNode } from '../helpers/cluster.ts';
import {
  H2Client,
  readCerts,
  requireBinary,
  tempDir,
  type ClientCerts,
  type H2Response,
} from '../helpers/process.ts';

beforeAll(requireBinary);
setDefaultTimeout(180_000);

interface ClientCertJSON {
  readonly Serial: string;
  readonly Name: string;
  readonly Role: string;
  readonly IssuedAt: string;
  readonly ExpiresAt: string;
  readonly RevokedAt: string | null;
}

async function listed(node: ClusterNode): Promise<ClientCertJSON[]> {
  const result = await node.cli(['ca', 'ls', '--format', 'json']);
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
  return result.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as ClientCertJSON);
}

/** What one request on a connection got: its status and message, or that the connection failed it. */
async function outcome(client: H2Client): Promise<string> {
  let answer: H2Response;
  try {
    answer = await client.request('GET', '/secrets', undefined, { timeoutMs: 10_000 });
  } catch {
    return 'connection closed';
  }
  if (answer.status === 200) return '200';
  return `${answer.status} ${answer.json<{ message: string }>().message}`;
}

describe('client certificates on three managers', () => {
  test('a revoked certificate is refused by every manager, its open connections included; another keeps working', async () => {
    using dir = tempDir();
    await using cluster = new Cluster(dir.path);
    const nodes = await cluster.bootstrap(3);
    await cluster.waitForLeader(nodes);
    const [first, second, third] = nodes as [ClusterNode, ClusterNode, ClusterNode];

    const out = join(dir.path, 'robot');
    const issued = await first.cli([
      'ca',
      'issue-client',
      '--name',
      'robot',
      '--out',
      out,
      '--expiry',
      '2h',
    ]);
    expect({ code: issued.code, stderr: issued.stderr }).toEqual({ code: 0, stderr: '' });
    const robot: ClientCerts = readCerts(out);
    const cert = parseIdentity(robot.cert);
    const entry = (await listed(third)).find((c) => c.Serial === cert.serialHex);
    expect(entry).toEqual({
      Serial: cert.serialHex,
      Name: 'robot',
      Role: 'admin',
      Scope: [],
      IssuedAt: entry!.IssuedAt,
      ExpiresAt: cert.notAfter.toISOString(),
      RevokedAt: null,
    } as ClientCertJSON);
    expect(cert.notAfter.getTime() - Date.parse(entry!.IssuedAt)).toBe(2 * 3600_000);
    expect(issued.stdout).toBe(
      `Wrote ${join(out, 'ca.pem')}, cert.pem and key.pem (client certificate for robot, role admin, serial ${cert.serialHex}, expires ${entry!.ExpiresAt})\n`,
    );

    // One HTTP/2 connection to each manager with each certificate, all used before the revocation.
    const robotClients = nodes.map((n) => new H2Client(n.url, robot, { localAddress: clientIp }));
    const keeperClients = nodes.map((n) => cluster.client(n));
    try {
      for (const client of [...robotClients, ...keeperClients])
        expect(await outcome(client)).toBe('200');

      const revoked = await second.cli(['ca', 'revoke', 'robot']);
      expect({ code: revoked.code, stderr: revoked.stderr }).toEqual({ code: 0, stderr: '' });
      const after = (await listed(first)).find((c) => c.Serial === cert.serialHex)!;
      expect(after.RevokedAt).not.toBeNull();
      expect(revoked.stdout).toBe(
        `Revoked client certificate ${cert.serialHex} (name robot) at ${after.RevokedAt}\n`,
      );
      const refusal = `403 Permission denied: client certificate ${cert.serialHex} (name robot) was revoked at ${after.RevokedAt}`;

      // The connections opened before: closed by each manager, or refused if the request got in first.
      for (const [i, client] of robotClients.entries())
        expect({ node: nodes[i]!.name, got: await outcome(client) }).toEqual({
          node: nodes[i]!.name,
          got: expect.stringMatching(new RegExp(`^(connection closed|${refusal})$`)) as never,
        });
      for (const [i, client] of robotClients.entries())
        await until(
          `${nodes[i]!.name} to close the revoked certificate's connection`,
          10_000,
          () => (client.usable ? undefined : true),
        );

      // New connections with it: 403 naming the revocation, on every manager.
      for (const node of nodes) {
        using fresh = new H2Client(node.url, robot, { localAddress: clientIp });
        expect({ node: node.name, got: await outcome(fresh) }).toEqual({
          node: node.name,
          got: refusal,
        });
      }

      // The other certificate works as before, on its old connections and on new ones.
      for (const client of keeperClients) expect(await outcome(client)).toBe('200');
      for (const node of nodes) {
        using fresh = cluster.client(node);
        expect(await outcome(fresh)).toBe('200');
      }

      // Revoking again changes nothing; an unknown name is refused naming it.
      const again = await third.cli(['ca', 'revoke', cert.serialHex]);
      expect(again).toEqual({ code: 0, stdout: revoked.stdout, stderr: '' });
      const unknown = await third.cli(['ca', 'revoke', 'nobody']);
      expect(unknown).toEqual({
        code: 1,
        stdout: '',
        stderr: 'Error: Client certificate "nobody" not found\n',
      });

      const table = await first.cli(['ca', 'ls']);
      expect(table.code).toBe(0);
      const lines = table.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^SERIAL\s+NAME\s+ROLE\s+SCOPE\s+ISSUED\s+EXPIRES\s+REVOKED$/);
      const row = lines.find((line) => line.startsWith(cert.serialHex))!;
      expect(row.split(/\s+/)).toEqual([
        cert.serialHex,
        'robot',
        'admin',
        '-',
        entry!.IssuedAt,
        entry!.ExpiresAt,
        after.RevokedAt!,
      ]);
      expect(table.stdout).not.toContain('BEGIN');
    } finally {
      for (const client of [...robotClients, ...keeperClients]) client[Symbol.dispose]();
    }
  });
});
