/**
 * A node's certificate at start-up, after a renewal cut short at each step (the files as a crash
 * between two writes leaves them), and with an expired certificate.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  parseIdentity,
  type RootCA,
} from '../../crypto/index.ts';
import { systemRandom } from '../../io/system.ts';
import { SecretdError } from '../../errors.ts';
import {
  dataDirPaths,
  readNodeKeys,
  writeNodeKeys,
  writeRenewedPair,
  type DataDirPaths,
} from '../data-dir/index.ts';
import { checkNodeCertificate } from './startup.ts';

const now = new Date('2026-06-01T00:00:00Z');
const dirs: string[] = [];
let ca: RootCA;

async function pair(at: Date, lifetimeMs = 3_600_000) {
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const certPem = await issueCertificate(ca, csrPem, {
    nodeId: 'node1',
    role: 'worker',
    clusterId: 'c1',
    now: at,
    lifetimeMs,
    serial: systemRandom(16),
  });
  return { keyPkcs8, certPem };
}

/** A data dir whose keys file and node.pem hold `first`, as join leaves them. */
async function dataDir(first: { keyPkcs8: Uint8Array; certPem: string }): Promise<DataDirPaths> {
  const root = mkdtempSync(join(tmpdir(), 'secretd-certs-'));
  dirs.push(root);
  mkdirSync(join(root, 'certificates'));
  const paths = dataDirPaths(root);
  writeFileSync(paths.nodeCert, first.certPem);
  await writeNodeKeys(
    paths.nodeKeys,
    { dek: systemRandom(32), dekKeyId: 1, tlsKey: first.keyPkcs8, tlsCert: first.certPem },
    null,
    systemRandom,
  );
  return paths;
}

function matchesKey(certPem: string, keyPkcs8: Uint8Array): boolean {
  return new X509Certificate(certPem).checkPrivateKey(
    createPrivateKey({ key: Buffer.from(keyPkcs8), format: 'der', type: 'pkcs8' }),
  );
}

beforeAll(async () => {
  ca = await createRootCA({ now: new Date('2026-01-01T00:00:00Z') });
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('checkNodeCertificate', () => {
  test('after a renewal cut short at any step, start-up has a certificate for the key on disk, old or new', async () => {
    const old = await pair(now);
    const renewed = await pair(now);
    const logs: string[] = [];
    const steps: Array<[string, (paths: DataDirPaths) => Promise<void>, string]> = [
      // Killed before the keys file's rename: its temp file is left, the old pair stands.
      [
        'keys file written to its temp file only',
        async (paths) => writeFileSync(`${paths.nodeKeys}.tmp`, '{"format":1,"half'),
        old.certPem,
      ],
      // Killed between the two renames: the keys file holds the new pair, node.pem the old one.
      [
        'keys file renamed, node.pem not yet',
        async (paths) => {
          const keys = await readNodeKeys(paths.nodeKeys, null);
          await writeNodeKeys(
            paths.nodeKeys,
            { ...keys, tlsKey: renewed.keyPkcs8, tlsCert: renewed.certPem },
            null,
            systemRandom,
          );
        },
        renewed.certPem,
      ],
      [
        'both written',
        async (paths) => {
          const keys = await readNodeKeys(paths.nodeKeys, null);
          await writeRenewedPair(
            paths,
            { ...keys, tlsKey: renewed.keyPkcs8, tlsCert: renewed.certPem },
            null,
            systemRandom,
          );
        },
        renewed.certPem,
      ],
    ];
    for (const [what, crashAfter, expected] of steps) {
      const paths = await dataDir(old);
      await crashAfter(paths);
      const certPem = await checkNodeCertificate(paths, { now, log: (l) => logs.push(l) });
      const keys = await readNodeKeys(paths.nodeKeys, null);
      expect({
        what,
        same: certPem === expected,
        matches: matchesKey(certPem, keys.tlsKey),
      }).toEqual({ what, same: true, matches: true });
      // node.pem is the keys file's certificate again.
      expect(readFileSync(paths.nodeCert, 'utf8')).toBe(expected);
    }
    expect(logs).toEqual([
      expect.stringContaining(
        'was behind the keys file (a renewal was cut short): restored from it',
      ),
    ]);
  });

  test('a keys file from before renewal existed: node.pem is the certificate', async () => {
    const first = await pair(now);
    const paths = await dataDir(first);
    const keys = await readNodeKeys(paths.nodeKeys, null);
    const { tlsCert: _, ...without } = keys;
    await writeNodeKeys(paths.nodeKeys, without, null, systemRandom);
    expect(await checkNodeCertificate(paths, { now, log: () => {} })).toBe(first.certPem);
  });

  test('refuses to start on an expired certificate, saying when it expired and what to do', async () => {
    const expired = await pair(new Date(now.getTime() - 2 * 86_400_000), 60_000);
    const paths = await dataDir(expired);
    const notAfter = parseIdentity(expired.certPem).notAfter.toISOString();
    let refusal: unknown;
    try {
      await checkNodeCertificate(paths, { now, log: () => {} });
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(SecretdError);
    expect((refusal as Error).message).toBe(
      `This node's certificate expired at ${notAfter}; it cannot renew it: remove the node (secretd node rm --force node1) and join it again with a fresh --data-dir`,
    );
  });
});
