/**
 * Node certificates renew themselves, on the compiled executable: three managers and a worker
 * with `cluster update --cert-expiry 1m` keep taking writes (a steady writer on every manager's
 * admin socket, forwarded to the leader over mTLS) and delivering new versions of a secret to a
 * task on every node for more than three minutes, while every node replaces its certificate on
 * disk again and again (new serial, later end). A demoted manager's certificate becomes a
 * worker's within seconds, and a node whose certificate expired while it was off refuses to start,
 * saying so.
 *
 * Needs root, runc and busybox-static (CI installs them).
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { X509Certificate } from 'node:crypto';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfsTarball } from '../helpers/busybox-image.ts';
import { SteadyWrites } from '../helpers/steady-writes.ts';
import { secretdAsync } from '../helpers/cluster.ts';
import { requireBinary, secretd, tempDir } from '../helpers/process.ts';
import { expectRun, ServiceCluster, until, type ServiceNode } from '../helpers/services.ts';

beforeAll(requireBinary);
// The issue asks for three minutes of renewals at a one-minute validity; setup and checks add ~1 min.
setDefaultTimeout(420_000);

const runMs = 3 * 60_000;

interface Seen {
  readonly serial: string;
  readonly notAfter: number;
  readonly role: string;
}

/** The certificate a node has on disk now (node.pem, the copy of the keys file's). */
function certificateOf(node: ServiceNode): Seen {
  const cert = new X509Certificate(
    readFileSync(join(node.dataDir, 'certificates', 'node.pem'), 'utf8'),
  );
  return {
    serial: cert.serialNumber.toLowerCase(),
    notAfter: Date.parse(cert.validTo),
    role: /(?:^|\n)OU=secretd-(\w+)/.exec(cert.subject)?.[1] ?? '?',
  };
}

describe('certificate renewal', () => {
  test('3 managers + 1 worker at --cert-expiry 1m: writes and secret deliveries never fail while every certificate is replaced', async () => {
    using dir = tempDir('secretd-renewal-');
    await using cluster = await ServiceCluster.init(dir.path);
    const m1 = cluster.manager;
    expectRun(m1.cli(['cluster', 'update', '--cert-expiry', '30s']), {
      code: 1,
      stderr: 'Error: Invalid --cert-expiry "30s": the minimum is 1m\n',
    });
    expectRun(m1.cli(['cluster', 'update', '--cert-expiry', '1m']), {
      stdout: 'Cluster updated.\n',
      stderr: /^Warning: node certificates now last 1m, so every node renews/,
    });
    const swarm = JSON.parse((await m1.admin('GET', '/swarm')).text);
    expect(swarm.Spec.CAConfig).toEqual({ NodeCertExpiry: 60e9 });

    const m2 = await cluster.joinManager('m2');
    const m3 = await cluster.joinManager('m3');
    const w1 = await cluster.joinWorker('w1');
    const nodes = [m1, m2, m3, w1];
    // A copy of the worker's data dir as it is now, started again once its certificate has expired.
    const frozen = join(dir.path, 'w1-frozen');
    cpSync(w1.dataDir, frozen, {
      recursive: true,
      filter: (source) => !source.endsWith('admin.sock'),
    });
    const frozenEnd = certificateOf(w1).notAfter;

    cluster.importImage('busybox', busyboxRootfsTarball());
    expectRun(m1.cli(['secret', 'create', 'token', '-'], 'value-0'), { stdout: /^\w{25}\n$/ });
    m1.createIdleService('reader', ['--mode', 'global', '--secret', 'token']);
    const tasks = await cluster.runningTasks('reader', 4, { timeoutMs: 60_000 });

    const history = new Map<string, Seen[]>(nodes.map((n) => [n.name, [certificateOf(n)]]));
    const sample = (): void => {
      for (const node of nodes) {
        const seen = history.get(node.name)!;
        const now = certificateOf(node);
        if (now.serial !== seen.at(-1)!.serial) seen.push(now);
      }
    };
    const replaced = (): number => Math.min(...nodes.map((n) => history.get(n.name)!.length - 1));

    const started = Date.now();
    const stopped = (): string[] => nodes.filter((n) => !n.running).map((n) => n.name);
    // The steady writer: one write after another, each manager's admin socket in turn.
    await using writer = new SteadyWrites([m1, m2, m3], {
      keepGoing: () => stopped().length === 0,
      afterPair: (pairs) => {
        if (pairs % 20 === 0) sample();
      },
    });

    // Deliveries: a new version every round, read back from the task on every node. Client
    // commands run asynchronously, so that the writer above never stalls behind them.
    const cli = (args: readonly string[], input?: string) =>
      secretdAsync(['--data-dir', m1.dataDir, ...args], {
        timeoutMs: 30_000,
        ...(input === undefined ? {} : { input }),
      });
    let version = 0;
    try {
      while (Date.now() - started < runMs || replaced() < 2) {
        if (Date.now() - started > runMs + 120_000 || stopped().length > 0) break;
        version++;
        expectRun(await cli(['secret', 'update', 'token', '-'], `value-${version}`), {
          stdout: `token: version ${version + 1}\n`,
        });
        for (const task of tasks) {
          const want = `value-${version}`;
          let last = '';
          await until(
            `version ${version} in task ${task.ID} on ${task.NodeID}`,
            15_000,
            async () => {
              const read = await cli(['exec', task.ID, 'cat', '/run/secrets/token']);
              last = `exit ${read.code}, stdout ${JSON.stringify(read.stdout.slice(0, 80))}, stderr ${JSON.stringify(read.stderr.slice(0, 200))}`;
              return read.code === 0 && read.stdout === want ? true : undefined;
            },
          ).catch((error: unknown) => {
            throw new Error(`${(error as Error).message}; the last read: ${last}`);
          });
        }
        sample();
      }
    } catch (error) {
      // Bounded: when, what the writer saw, each node's id, certificates and last lines.
      throw new Error(
        [
          `${(error as Error).message}`,
          `at ${Date.now() - started} ms of the run, ${writer.pairs} write pairs, writer failures: ${JSON.stringify(writer.failures.slice(0, 3))}`,
          ...nodes.map(
            (n) =>
              `-- ${n.name} (${n.id}, ${n.running ? 'running' : 'stopped'}), certificates replaced ${history.get(n.name)!.length - 1}:\n${n.lastLines(8)}`,
          ),
        ].join('\n'),
      );
    }
    await writer.stop();
    sample();

    expect({
      stopped: stopped(),
      failed: writer.failed,
      failures: writer.failures,
      elapsedAtLeast3m: Date.now() - started >= runMs,
    }).toEqual({ stopped: [], failed: 0, failures: [], elapsedAtLeast3m: true });
    expect(writer.pairs).toBeGreaterThan(100);
    for (const node of nodes) {
      const seen = history.get(node.name)!;
      const ends = seen.map((s) => s.notAfter);
      expect({
        node: node.name,
        replacedTwice: seen.length >= 3,
        newSerials: new Set(seen.map((s) => s.serial)).size === seen.length,
        laterEnds: ends.every((end, i) => i === 0 || end > ends[i - 1]!),
        role: seen.at(-1)!.role,
      }).toEqual({
        node: node.name,
        replacedTwice: true,
        newSerials: true,
        laterEnds: true,
        role: node.role,
      });
      // Renewed at one minute: a certificate issued now lasts a minute (plus the 1 h backdate's start).
      expect(seen.at(-1)!.notAfter - Date.now()).toBeLessThanOrEqual(60_000);
    }
    console.log(
      `cert-renewal: ${writer.pairs} write pairs, ${version} secret versions delivered to ${tasks.length} tasks; certificates replaced: ${nodes.map((n) => `${n.name} ${history.get(n.name)!.length - 1}`).join(', ')}`,
    );

    // The service goes first, so the demotion below is seen on its certificate alone (the demoted
    // manager goes on as a worker: role-switch.test.ts follows its tasks).
    expectRun(await cli(['service', 'rm', 'reader']), { stdout: 'reader\n' });
    await until('every node to erase its task', 20_000, () =>
      nodes.every((n) => n.mountedTasks().length === 0) ? true : undefined,
    );

    // A demoted manager's certificate becomes a worker's within seconds.
    expectRun(m1.cli(['node', 'demote', m3.id]), {
      stdout: `Node ${m3.id} demoted to a worker in the cluster.\n`,
    });
    await until(`${m3.name}'s certificate to be a worker's`, 10_000, () =>
      certificateOf(m3).role === 'worker' ? true : undefined,
    );

    // The frozen copy's certificate ended minutes ago: it refuses to start, and says why.
    expect(Date.now()).toBeGreaterThan(frozenEnd);
    const expired = secretd(['run', '--data-dir', frozen]);
    expect({ code: expired.code, stdout: expired.stdout }).toEqual({ code: 1, stdout: '' });
    expect(expired.stderr).toMatch(
      /^Error: This node's certificate expired at \d{4}-\d\d-\d\dT[\d:.]+Z; it cannot renew it: remove the node \(secretd node rm --force \w{25}\) and join it again with a fresh --data-dir\n$/,
    );
    expect(cluster.daemonErrors()).toEqual([]);
  });
});
