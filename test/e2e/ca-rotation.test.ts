/**
 * The root CA rotates, on the compiled executable: three managers and a worker running a task
 * with a secret, a steady writer on every manager's admin socket, and `secretd ca rotate` while
 * the worker is stopped. The rotation waits for it (3 of 4 nodes converged); a second rotate says
 * one is running; a worker joining meanwhile gets a certificate from the new key, chained to the
 * old root its token pins, and converges with one renewal; the stopped worker comes back with its
 * old-root certificate, converges, and the rotation
 * finishes: every node's certificate comes from the new root, every node trusts only the new root,
 * GET /nodes says so, the old join token is refused and the new one joins a worker, the task's
 * secret is still delivered (a new version too), and no write failed.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { SteadyWrites } from '../helpers/steady-writes.ts';
import { secretdAsync } from '../helpers/cluster.ts';
import { freePort, requireBinary, secretd, tempDir } from '../helpers/process.ts';
import { expectRun, ServiceCluster, until, type ServiceNode } from '../helpers/services.ts';

beforeAll(requireBinary);
setDefaultTimeout(300_000);

interface RotationJSON {
  InProgress: boolean;
  ID: string | null;
  Converged: number;
  Total: number;
  Pending: string[];
}

function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/g) ?? [];
}

/** The node's certificate on disk (the leaf, node.pem's first block). */
function leafOf(node: ServiceNode): X509Certificate {
  return new X509Certificate(readFileSync(join(node.dataDir, 'certificates', 'node.pem'), 'utf8'));
}

/** The roots the node trusts on disk. */
function trustedOf(node: ServiceNode): string[] {
  return pemBlocks(readFileSync(join(node.dataDir, 'certificates', 'ca.pem'), 'utf8')).map((b) =>
    b.trim(),
  );
}

describe('root CA rotation', () => {
  test('3 managers + 1 worker: ca rotate under a steady write load, with the worker stopped during it; every node converges, the old token is refused', async () => {
    using dir = tempDir('secretd-ca-rotation-');
    await using cluster = await ServiceCluster.init(dir.path);
    const m1 = cluster.manager;
    const m2 = await cluster.joinManager('m2');
    const m3 = await cluster.joinManager('m3');
    const w1 = await cluster.joinWorker('w1');
    const nodes = [m1, m2, m3, w1];

    cluster.importImage('busybox', busyboxRootfsTarball());
    expectRun(m1.cli(['secret', 'create', 'token', '-'], 'value-0'), { stdout: /^\w{25}\n$/ });
    m1.createIdleService('reader', ['--mode', 'global', '--secret', 'token']);
    await cluster.runningTasks('reader', 4, { timeoutMs: 60_000 });
    const oldRoot = JSON.parse((await m1.admin('GET', '/swarm')).text).TLSInfo.TrustRoot as string;
    const oldWorkerToken = expectRun(m1.cli(['cluster', 'join-token', 'worker', '-q']), {
      stdout: /^SDTKN-/,
    }).stdout.trim();

    // The steady writer: one write after another, each manager's admin socket in turn.
    await using writer = new SteadyWrites([m1, m2, m3]);

    // The worker is down when the rotation starts: the rotation waits for it.
    await w1.daemon.kill('SIGTERM');
    const rotate = secretdAsync(['--data-dir', m1.dataDir, 'ca', 'rotate'], {
      timeoutMs: 180_000,
    });
    const status = async (): Promise<RotationJSON> =>
      JSON.parse((await m2.admin('GET', '/secretd/ca/rotation')).text) as RotationJSON;
    const waiting = await until(
      'every node but the stopped worker to converge',
      60_000,
      async () => {
        const s = await status();
        return s.InProgress && s.Converged === 3 ? s : undefined;
      },
    );
    expect({ total: waiting.Total, pending: waiting.Pending }).toEqual({
      total: 4,
      pending: [w1.id],
    });
    // A second rotate says one is running, with its progress, and changes nothing.
    expectRun(m3.cli(['ca', 'rotate', '--detach']), {
      code: 1,
      stderr:
        /^Error: A root CA rotation is already in progress \(started at [\dT:.Z-]+\): 3 of 4 nodes converged\n$/,
    });
    // Docker's form says the same.
    const swarm = JSON.parse((await m1.admin('GET', '/swarm')).text);
    expect(swarm.RootRotationInProgress).toBe(true);
    // A worker joining now (the token still pins the old root) gets a certificate from the new
    // key with the cross-signed root as its chain: converged at once.
    const w3 = await cluster.joinWorker('w3');
    expect(
      pemBlocks(readFileSync(join(w3.dataDir, 'certificates', 'node.pem'), 'utf8')).length,
    ).toBe(2);
    expect(trustedOf(w3)).toEqual([oldRoot.trim()]);
    expectRun(w3.cli(['image', 'import', 'busybox', busyboxRootfsTarball()]), {
      stdout: 'busybox:latest\n',
    });
    nodes.push(w3);
    // It trusts the pinned root alone: asked to renew once, it gets both roots, and converges.
    const joined = await until(
      'the worker joined during the rotation to converge',
      30_000,
      async () => {
        const s = await status();
        return s.Converged === 4 ? s : undefined;
      },
    );
    expect(joined).toEqual({ ...waiting, Converged: 4, Total: 5 });
    expect(trustedOf(w3)).toEqual([oldRoot.trim(), expect.any(String)]);

    // The worker comes back with its old-root certificate, still accepted, and converges.
    await w1.restart();
    const rotated = await rotate;
    expectRun(rotated, {
      stdout: new RegExp(
        `^Root CA rotation (\\w+): \\d of [45] nodes converged.*\\n(Root CA rotation \\1: \\d of [45] nodes converged.*\\n)*Root CA rotation \\1 finished: every node has a certificate from the new root, the old root is no longer trusted, and both join tokens changed\\nClient certificates issued before the rotation are refused from now on: issue new ones \\(secretd ca issue-client\\), whose ca\\.pem is the new root\\n$`,
      ),
    });

    const after = JSON.parse((await m1.admin('GET', '/swarm')).text);
    const newRoot = after.TLSInfo.TrustRoot as string;
    expect(after.RootRotationInProgress).toBe(false);
    expect(newRoot).not.toBe(oldRoot);
    const newRootCert = new X509Certificate(newRoot);
    // Every node: a certificate from the new root, and (once told) only the new root trusted.
    await until('every node to trust only the new root', 30_000, () =>
      nodes.every((n) => trustedOf(n).length === 1 && trustedOf(n)[0] === newRoot.trim())
        ? true
        : undefined,
    );
    for (const node of nodes)
      expect({ node: node.name, fromNewRoot: leafOf(node).verify(newRootCert.publicKey) }).toEqual({
        node: node.name,
        fromNewRoot: true,
      });
    const listed = JSON.parse((await m2.admin('GET', '/nodes')).text) as Array<{
      ID: string;
      Description: { TLSInfo: { TrustRoot: string; CertIssuerPublicKey: string } };
    }>;
    expect(listed.map((n) => n.ID).sort()).toEqual(nodes.map((n) => n.id).sort());
    expect(listed.map((n) => n.Description.TLSInfo)).toEqual(
      listed.map(() => ({
        TrustRoot: newRoot,
        CertIssuerSubject: after.TLSInfo.CertIssuerSubject,
        CertIssuerPublicKey: after.TLSInfo.CertIssuerPublicKey,
      })),
    );

    // The old join token is refused; the new one joins a new worker.
    const newWorkerToken = expectRun(m1.cli(['cluster', 'join-token', 'worker', '-q']), {
      stdout: /^SDTKN-/,
    }).stdout.trim();
    expect(newWorkerToken).not.toBe(oldWorkerToken);
    const port = await freePort();
    const refused = secretd([
      'join',
      '--data-dir',
      join(dir.path, 'w-old-token'),
      '--token',
      oldWorkerToken,
      '--listen-addr',
      `127.0.0.1:${port}`,
      '--advertise-addr',
      `127.0.0.1:${port}`,
      cluster.managerAddr,
    ]);
    expect({ code: refused.code, stdout: refused.stdout }).toEqual({ code: 1, stdout: '' });
    expect(refused.stderr).toMatch(/does not match the join token's digest/);
    const w2 = await cluster.joinWorker('w2');
    expect(leafOf(w2).verify(newRootCert.publicKey)).toBe(true);
    expectRun(w2.cli(['image', 'import', 'busybox', busyboxRootfsTarball()]), {
      stdout: 'busybox:latest\n',
    });

    // The task's secret is still delivered everywhere, a new version too.
    expectRun(m1.cli(['secret', 'update', 'token', '-'], 'value-1'), {
      stdout: 'token: version 2\n',
    });
    const tasks = await cluster.runningTasks('reader', 6, { timeoutMs: 60_000 });
    for (const task of tasks)
      await until(`version 2 in task ${task.ID}`, 20_000, async () => {
        const read = await secretdAsync([
          '--data-dir',
          m1.dataDir,
          'exec',
          task.ID,
          'cat',
          '/run/secrets/token',
        ]);
        return read.code === 0 && read.stdout === 'value-1' ? true : undefined;
      });

    await writer.stop();
    expect({ failures: writer.failures, enoughWrites: writer.pairs > 20 }).toEqual({
      failures: [],
      enoughWrites: true,
    });
    console.log(`ca-rotation: ${writer.pairs} write pairs during the rotation, none failed`);
    expect(cluster.daemonErrors()).toEqual([]);
  });
});
