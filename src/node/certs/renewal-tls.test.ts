/**
 * A manager renews its own certificate through its own TLS port, for real: the renewal route over
 * HTTP/2 mutual TLS (the connection's certificate as Bun's node:http2 gives it), the keys file and
 * node.pem rewritten, and the server's secure context swapped (`setSecureContext`) so that new
 * connections get the new certificate while one opened before keeps working.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ClientHttp2Session } from 'node:http2';
import type { Http2SecureServer } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import {
  createKeyAndCSR,
  issueCertificate,
  keyPkcs8ToPem,
  parseIdentity,
} from '../../crypto/index.ts';
import { systemNow, systemRandom } from '../../io/system.ts';
import { freePort } from '../../../test/helpers/process.ts';
import { serveTls } from '../api/index.ts';
import { readNodeKeys, writeNodeState } from '../data-dir/index.ts';
import { bootstrapCluster } from '../join/index.ts';
import { Manager } from '../manager/index.ts';

let dataDir: string;
let manager: Manager;
let server: Http2SecureServer;
let addr: string;
let caPem: string;
let admin: { cert: string; key: string };
const sessions: ClientHttp2Session[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'secretd-renewal-'));
  addr = `127.0.0.1:${await freePort()}`;
  const boot = await bootstrapCluster({
    dataDir,
    listenAddr: addr,
    advertiseAddr: addr,
    autolock: false,
    random: systemRandom,
    now: systemNow(),
  });
  manager = await Manager.bootstrap(
    {
      dataDir,
      random: systemRandom,
      now: systemNow,
      tickMs: 10,
      onFatal: (error) => {
        throw error;
      },
      onRaftStarted: async (m) => {
        server = await serveTls({
          backend: m,
          version: 'test',
          clusterId: m.state.clusterId,
          listenAddr: addr,
          caPem: readFileSync(m.paths.caCert, 'utf8'),
          certPem: readFileSync(m.paths.nodeCert, 'utf8'),
          tlsKey: m.tlsKey,
        });
      },
    },
    boot.state,
    boot.firstCommand,
    boot.unlockKey,
  );
  await writeNodeState(boot.paths.nodeState, boot.state);
  const cluster = await manager.cluster();
  caPem = cluster.caCertPem;
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  admin = {
    key: keyPkcs8ToPem(keyPkcs8),
    cert: await issueCertificate({ certPem: caPem, keyPkcs8: cluster.caKey }, csrPem, {
      nodeId: 'tester',
      role: 'admin',
      clusterId: cluster.id,
      now: new Date(),
      lifetimeMs: 3_600_000,
      serial: systemRandom(16),
    }),
  };
});

afterAll(async () => {
  for (const session of sessions) session.destroy();
  server?.close();
  await manager?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A new HTTP/2 session as the admin; resolves once connected, with the server certificate's serial. */
function open(): Promise<{ session: ClientHttp2Session; serial: string }> {
  return new Promise((resolve, reject) => {
    const session = connect(`https://${addr}`, { ca: caPem, ...admin, servername: 'localhost' });
    sessions.push(session);
    session.once('error', reject);
    session.once('connect', () => {
      const cert = (session.socket as TLSSocket).getPeerCertificate();
      resolve({ session, serial: cert.serialNumber.toLowerCase() });
    });
  });
}

function get(session: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path });
    let status = 0;
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('error', reject);
    stream.on('end', () => resolve(status));
    stream.resume();
    stream.end();
  });
}

describe('a manager renewing its certificate', () => {
  test('writes the new pair, serves it on new connections, and keeps the old connection working', async () => {
    const before = parseIdentity(manager.certificatePem);
    const old = await open();
    expect(old.serial).toBe(before.serialHex);

    await manager.renewCertificate('test');

    const after = parseIdentity(manager.certificatePem);
    expect(after.serialHex).not.toBe(before.serialHex);
    expect({ nodeId: after.nodeId, role: after.role, clusterId: after.clusterId }).toEqual({
      nodeId: before.nodeId,
      role: 'manager',
      clusterId: before.clusterId,
    });
    // On disk: node.pem and the keys file's pair are the new certificate, for the key in use.
    expect(readFileSync(manager.paths.nodeCert, 'utf8')).toBe(manager.certificatePem);
    const keys = await readNodeKeys(manager.paths.nodeKeys, null);
    expect(keys.tlsCert).toBe(manager.certificatePem);
    expect(Buffer.from(keys.tlsKey).equals(Buffer.from(manager.tlsKey))).toBe(true);

    // A new connection gets the new certificate, and its client certificate is still checked.
    const fresh = await open();
    expect(fresh.serial).toBe(after.serialHex);
    expect(await get(fresh.session, '/secrets')).toBe(200);
    // The connection opened before keeps working on the old certificate, still valid.
    expect(await get(old.session, '/secrets')).toBe(200);
  });
});
