/**
 * Grants on real processes (the compiled executable): one manager and one worker labelled
 * role=db. A grant by label reaches only the matching node, as each node's own admin socket lists
 * (`GET /secretd/local/grants`, never a value); a new version is pushed; a label change that stops
 * matching withdraws it, and so does ungrant; `secret rm` is refused while granted; inspect shows
 * the grants; a reader cannot grant; deliveries and releases by grant are in the audit trail.
 *
 * No container runs here (nothing to import): what a node holds by grant is in its agent's memory.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import { asClient, issueClientCert } from '../helpers/client-certs.ts';
import { until } from '../helpers/cluster.ts';
import { requireBinary, tempDir, type RunResult, type TempDir } from '../helpers/process.ts';
import { expectRun, ServiceCluster, type ServiceNode } from '../helpers/services.ts';

setDefaultTimeout(120_000);

let dir: TempDir;
let cluster: ServiceCluster;
let worker: ServiceNode;

beforeAll(async () => {
  requireBinary();
  dir = tempDir('secretd-grants-');
  cluster = await ServiceCluster.init(dir.path);
  worker = await cluster.joinWorker('db1');
  expectRun(cluster.manager.cli(['node', 'update', '--label-add', 'role=db', worker.id]), {
    stdout: `${worker.id}\n`,
  });
  expectRun(cluster.manager.cli(['secret', 'create', 'db_pass', '-'], 'first-db-value'), {
    stdout: /^\w{25}\n$/,
  });
});

afterAll(async () => {
  await cluster?.[Symbol.asyncDispose]();
  dir?.[Symbol.dispose]();
});

interface HeldJSON {
  readonly ID: string;
  readonly Name: string;
  readonly Version: number;
}

/** What a node holds by grant, from its own admin socket: [name, version] pairs. */
async function held(node: ServiceNode): Promise<Array<[string, number]>> {
  const answer = await node.admin('GET', '/secretd/local/grants');
  if (answer.status !== 200)
    throw new Error(
      `${node.name}: GET /secretd/local/grants answered ${answer.status} ${answer.text}`,
    );
  expect(answer.text).not.toContain('db-value');
  return (JSON.parse(answer.text) as HeldJSON[]).map((g) => [g.Name, g.Version]);
}

/** Waits until each node holds exactly what is given (by its admin socket). */
async function waitForHeld(
  expected: { manager: Array<[string, number]>; db1: Array<[string, number]> },
  what: string,
): Promise<void> {
  let seen = '';
  try {
    await until(what, 15_000, async () => {
      const now = { manager: await held(cluster.manager), db1: await held(worker) };
      seen = JSON.stringify(now);
      return seen === JSON.stringify(expected) ? true : undefined;
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last seen: ${seen}`);
  }
}

const grant = (args: readonly string[]): RunResult =>
  cluster.manager.cli(['secret', 'grant', 'db_pass', ...args]);

describe('grants', () => {
  test('a grant by label reaches only the matching node, and inspect shows it', async () => {
    expectRun(grant(['--node-constraint', 'node.labels.role==db']), {
      stdout: 'db_pass: granted to nodes where node.labels.role==db (the newest version)\n',
    });
    await waitForHeld({ manager: [], db1: [['db_pass', 1]] }, 'db_pass on db1 only');
    const inspect = JSON.parse(
      expectRun(cluster.manager.cli(['secret', 'inspect', 'db_pass']), {}).stdout,
    ) as Array<{ Grants: unknown }>;
    expect(inspect[0]!.Grants).toEqual([
      { Constraints: ['node.labels.role==db'], Version: null, CreatedAt: expect.any(String) },
    ]);
    // The worker's agent holds it in memory: counted, never shown.
    expect((await worker.secretCounts()).SecretsHeld).toBe(1);
  });

  test('a new version is pushed to the node', async () => {
    expectRun(cluster.manager.cli(['secret', 'update', 'db_pass', '-'], 'second-db-value'), {
      stdout: 'db_pass: version 2\n',
    });
    await waitForHeld({ manager: [], db1: [['db_pass', 2]] }, 'version 2 on db1');
  });

  test('secret rm is refused while granted, naming the grant', () => {
    expectRun(cluster.manager.cli(['secret', 'rm', 'db_pass']), {
      code: 1,
      stdout: '',
      stderr:
        'Error: Cannot remove secret db_pass: it is granted to nodes by a grant ([node.labels.role==db]); remove it first with secret ungrant\n',
    });
  });

  test('a bad expression and a missing version are refused, naming them', () => {
    expectRun(grant(['--node-constraint', 'node.labels.role=db']), {
      code: 1,
      stderr:
        'Error: Invalid node constraint "node.labels.role=db": expected KEY==VALUE or KEY!=VALUE (e.g. node.labels.role==db)\n',
    });
    expectRun(grant(['--node-constraint', 'node.role==manager', '--version', '9']), {
      code: 1,
      stderr: 'Error: Cannot grant secret db_pass: it has no version 9 (it has 1, 2)\n',
    });
    expectRun(grant([]), {
      code: 1,
      stderr:
        'Error: Missing --node-constraint: say which nodes the grant is for (e.g. --node-constraint node.labels.role==db)\n',
    });
  });

  test('a label change that stops matching withdraws the secret; matching again brings it back', async () => {
    expectRun(cluster.manager.cli(['node', 'update', '--label-rm', 'role', worker.id]), {});
    await waitForHeld({ manager: [], db1: [] }, 'db_pass withdrawn from db1');
    expect((await worker.secretCounts()).SecretsHeld).toBe(0);
    expectRun(cluster.manager.cli(['node', 'update', '--label-add', 'role=db', worker.id]), {});
    await waitForHeld({ manager: [], db1: [['db_pass', 2]] }, 'db_pass back on db1');
  });

  test('a pinned grant for managers reaches the manager at that version; ungrant withdraws each', async () => {
    expectRun(grant(['--node-constraint', 'node.role==manager', '--version', '1']), {
      stdout: 'db_pass: granted to nodes where node.role==manager (version 1)\n',
    });
    await waitForHeld({ manager: [['db_pass', 1]], db1: [['db_pass', 2]] }, 'the pinned grant');
    expectRun(
      cluster.manager.cli([
        'secret',
        'ungrant',
        'db_pass',
        '--node-constraint',
        'node.labels.role==db',
      ]),
      { stdout: 'db_pass: grant removed (1 left)\n' },
    );
    await waitForHeld({ manager: [['db_pass', 1]], db1: [] }, 'db_pass withdrawn from db1');
    const unknown = cluster.manager.cli([
      'secret',
      'ungrant',
      'db_pass',
      '--node-constraint',
      'node.labels.role==db',
    ]);
    expectRun(unknown, {
      code: 1,
      stderr:
        'Error: Cannot ungrant secret db_pass: it has no grant with node constraints [node.labels.role==db] (its grants: [node.role==manager])\n',
    });
    expectRun(
      cluster.manager.cli([
        'secret',
        'ungrant',
        'db_pass',
        '--node-constraint',
        'node.role==manager',
      ]),
      { stdout: 'db_pass: grant removed (0 left)\n' },
    );
    await waitForHeld({ manager: [], db1: [] }, 'db_pass withdrawn everywhere');
    // Without grants, inspect is Docker's shape again.
    expect(
      expectRun(cluster.manager.cli(['secret', 'inspect', 'db_pass']), {}).stdout,
    ).not.toContain('Grants');
  });

  test('deliveries and releases by grant are in the audit trail, naming the node and version', async () => {
    const expected = [
      'secret-deliver 1 db1',
      'secret-release 1 db1',
      'secret-deliver 2 db1',
      'secret-release 2 db1',
      'secret-deliver 2 db1',
      'secret-deliver 1 manager',
      'secret-release 2 db1',
      'secret-release 1 manager',
    ];
    let records: Array<Record<string, unknown>> = [];
    let byGrant: string[] = [];
    // The dispatcher's records are proposed in batches: wait for the last one to be applied.
    await until('the last release by grant in the audit trail', 15_000, () => {
      records = expectRun(
        cluster.manager.cli(['audit', 'ls', '--format', 'json', '--secret', 'db_pass']),
        {},
      )
        .stdout.trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      byGrant = records
        .filter((r) => r.detail === 'by grant')
        .map((r) => `${r.action} ${r.version} ${r.node === worker.id ? 'db1' : 'manager'}`);
      return byGrant.length >= expected.length ? true : undefined;
    }).catch(() => undefined);
    expect(byGrant).toEqual(expected);
    expect(records.map((r) => r.action)).toContain('secret-grant');
    expect(records.map((r) => r.action)).toContain('secret-ungrant');
    expect(JSON.stringify(records)).not.toContain('db-value');
  });

  test('a reader cannot grant or ungrant (403), and may read the grants', () => {
    const out = issueClientCert(cluster.manager.dataDir, join(dir.path, 'reader'), {
      name: 'grant-reader',
      role: 'reader',
    });
    const as = (args: readonly string[]): RunResult => asClient(cluster.managerAddr, out, args);
    expectRun(as(['secret', 'grant', 'db_pass', '--node-constraint', 'node.id==x']), {
      code: 1,
      stdout: '',
      stderr: 'Error: Permission denied: role reader may not grant secrets\n',
    });
    expectRun(as(['secret', 'ungrant', 'db_pass', '--node-constraint', 'node.id==x']), {
      code: 1,
      stdout: '',
      stderr: 'Error: Permission denied: role reader may not ungrant secrets\n',
    });
    expectRun(grant(['--node-constraint', 'node.id==nowhere']), { stdout: /granted/ });
    expectRun(as(['secret', 'inspect', 'db_pass']), { stdout: /"node\.id==nowhere"/ });
    expectRun(
      cluster.manager.cli([
        'secret',
        'ungrant',
        'db_pass',
        '--node-constraint',
        'node.id==nowhere',
      ]),
      { stdout: 'db_pass: grant removed (0 left)\n' },
    );
  });

  test('secret rm works once no grant is left', () => {
    expectRun(cluster.manager.cli(['secret', 'rm', 'db_pass']), { stdout: 'db_pass\n' });
  });
});
