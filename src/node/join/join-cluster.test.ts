/**
 * The joiner against servers on loopback that are not the manager it expects: one holding a
 * worker's certificate (it must be sent no token), and managers answering the join with garbage
 * (the joiner must refuse with a message naming what is wrong, and leave no data dir behind).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  keyPkcs8ToPem,
  newId,
  type Role,
} from '../../crypto/index.ts';
import { systemRandom } from '../../io/system.ts';
import { joinAnswerBytesMax } from '../../limits.ts';
import { freshClusterRecord } from '../../../test/helpers/cluster-record.ts';
import {
  serveImpostor,
  workerCertificateNamedAsManager,
  type ImpostorHandler,
  type SeenRequest,
} from '../../../test/helpers/impostor.ts';
import { issueJoin } from './admit-joiner.ts';
import { joinCluster, joinCAPath, joinPath, type JoinAnswer } from './join-cluster.ts';

const cluster = await freshClusterRecord();
const scratch = mkdtempSync(join(tmpdir(), 'secretd-join-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function managerCertificate(
  clusterId = cluster.id,
  signer = { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
): Promise<{ cert: string; key: string }> {
  const { keyPkcs8, csrPem } = await createKeyAndCSR();
  const cert = await issueCertificate(signer, csrPem, {
    nodeId: newId(systemRandom),
    role: 'manager',
    clusterId,
    now: new Date(),
    lifetimeMs: 3_600_000,
    serial: systemRandom(16),
    ipAddresses: ['127.0.0.1'],
  });
  return { cert, key: keyPkcs8ToPem(keyPkcs8) };
}

/** The answer a real manager gives this request (a certificate for its CSR), before any change. */
async function genuineAnswer(
  request: SeenRequest,
  role: Exclude<Role, 'admin'> = 'worker',
): Promise<JoinAnswer> {
  const body = JSON.parse(request.body) as { CSR: string; Addr: string; Hostname: string };
  const token = role === 'worker' ? cluster.joinTokens.worker : cluster.joinTokens.manager;
  const issued = await issueJoin(
    cluster,
    {
      token,
      csrPem: body.CSR,
      addr: body.Addr,
      hostname: body.Hostname,
      resources: null,
      observedIp: '127.0.0.1',
    },
    { random: systemRandom, now: new Date(), idTaken: () => false },
  );
  return {
    NodeID: issued.nodeId,
    Role: issued.role,
    ClusterID: cluster.id,
    Certificate: issued.certPem,
    CA: cluster.caCertPem,
    BootstrapVoters: [newId(systemRandom)],
    Managers: [{ ID: newId(systemRandom), Addr: '127.0.0.1:4377' }],
    UnlockKey: null,
  };
}

/** A join server: the real CA, and `answer` for the join itself. */
function joinServer(
  answer: (request: SeenRequest) => Promise<{ status: number; body: string }>,
): ImpostorHandler {
  return async (request) => {
    if (request.path === joinCAPath)
      return { status: 200, body: JSON.stringify({ CA: cluster.caCertPem }) };
    if (request.path === joinPath) return answer(request);
    return { status: 404, body: '{}' };
  };
}

let dirs = 0;
function joinOptions(
  port: number,
  overrides: { dataDir?: string; random?: (n: number) => Uint8Array } = {},
) {
  return {
    dataDir: overrides.dataDir ?? join(scratch, `node-${++dirs}`),
    token: cluster.joinTokens.worker,
    remote: `127.0.0.1:${port}`,
    listenAddr: '127.0.0.1:0',
    advertiseAddr: '127.0.0.1:4400',
    random: overrides.random ?? systemRandom,
    now: new Date(),
  };
}

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the join to fail');
}

describe('joinCluster', () => {
  test('joinCluster() refuses a server holding a worker certificate named secretd-manager, and sends it no token', async () => {
    await using impostor = await serveImpostor(
      {
        ca: cluster.caCertPem,
        ...(await workerCertificateNamedAsManager(
          { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
          cluster.id,
          newId(systemRandom),
        )),
      },
      joinServer(async () => ({ status: 201, body: '{}' })),
    );
    const options = { ...joinOptions(impostor.port), token: cluster.joinTokens.manager };
    const message = await failure(joinCluster(options));
    expect(message).toBe(
      `Cannot reach the manager at 127.0.0.1:${impostor.port}: the server is not a secretd manager: its certificate is not a manager's (role "secretd-worker", not secretd-manager)`,
    );
    // Only the CA was fetched (unverified, as the token's digest is what pins it): no token left this node.
    expect(impostor.seen.map((r) => `${r.method} ${r.path}`)).toEqual([`GET ${joinCAPath}`]);
    expect(impostor.seen.some((r) => r.body.includes(cluster.joinTokens.manager))).toBe(false);
    expect(existsSync(options.dataDir)).toBe(false);
  });

  test('joinCluster() writes the node files for a genuine answer', async () => {
    await using manager = await serveImpostor(
      { ca: cluster.caCertPem, ...(await managerCertificate()) },
      joinServer(async (r) => ({ status: 201, body: JSON.stringify(await genuineAnswer(r)) })),
    );
    const options = joinOptions(manager.port);
    const joined = await joinCluster(options);
    expect(joined.state).toMatchObject({
      role: 'worker',
      clusterId: cluster.id,
      advertiseAddr: '127.0.0.1:4400',
    });
    expect(readdirSync(join(options.dataDir, 'certificates')).sort()).toEqual([
      'ca.pem',
      'node-keys.json',
      'node.pem',
    ]);
  });

  test("joinCluster() takes a manager answer with the cluster's unlock key and returns that key", async () => {
    const unlockKey = systemRandom(32);
    await using manager = await serveImpostor(
      { ca: cluster.caCertPem, ...(await managerCertificate()) },
      joinServer(async (r) => ({
        status: 201,
        body: JSON.stringify({
          ...(await genuineAnswer(r, 'manager')),
          UnlockKey: Buffer.from(unlockKey).toString('base64'),
        }),
      })),
    );
    const joined = await joinCluster({
      ...joinOptions(manager.port),
      token: cluster.joinTokens.manager,
    });
    expect([joined.state.role, joined.unlockKey]).toEqual(['manager', unlockKey]);
  });

  test('joinCluster() refuses each malformed answer, naming what is wrong, and leaves no data dir', async () => {
    const otherCA = await createRootCA({ now: new Date() });
    const foreignKey = await createKeyAndCSR();
    const other = newId(systemRandom);
    type Case = [
      string,
      (a: JoinAnswer, r: SeenRequest) => Promise<{ status: number; body: string }>,
    ];
    const json = (value: unknown, status = 201) => ({ status, body: JSON.stringify(value) });
    const cases: Case[] = [
      [
        'answered POST /secretd/join with something that is not JSON',
        async () => ({ status: 201, body: '<html>welcome</html>' }),
      ],
      [
        'sent an invalid join answer: it is not a JSON object; nothing was written',
        async () => json([]),
      ],
      [
        'sent an invalid join answer: it is not a JSON object; nothing was written',
        async () => json(null),
      ],
      [
        'sent an invalid join answer: NodeID must be an id of 25 base-36 characters; nothing was written',
        async (a) => json({ ...a, NodeID: 42 }),
      ],
      [
        'sent an invalid join answer: NodeID must be an id of 25 base-36 characters; nothing was written',
        async (a) => json({ ...a, NodeID: '../../etc' }),
      ],
      [
        'sent an invalid join answer: Role must be "manager" or "worker"; nothing was written',
        async (a) => json({ ...a, Role: 'admin' }),
      ],
      [
        `sent an invalid join answer: ClusterID ${other} is not the cluster of the manager's own certificate; nothing was written`,
        async (a) => json({ ...a, ClusterID: other }),
      ],
      [
        'sent an invalid join answer: CA is not the CA the join token pins; nothing was written',
        async (a) => json({ ...a, CA: otherCA.certPem }),
      ],
      [
        'sent an invalid join answer: Certificate must be a PEM certificate; nothing was written',
        async (a) => json({ ...a, Certificate: undefined }),
      ],
      [
        'sent an invalid join answer: Certificate is not a secretd certificate; nothing was written',
        async (a) => json({ ...a, Certificate: 'garbage' }),
      ],
      [
        "sent an invalid join answer: Certificate is not for this node's key; nothing was written",
        async (a) => {
          const cert = await issueCertificate(
            { certPem: cluster.caCertPem, keyPkcs8: cluster.caKey },
            foreignKey.csrPem,
            {
              nodeId: a.NodeID,
              role: 'worker',
              clusterId: cluster.id,
              now: new Date(),
              lifetimeMs: 3_600_000,
              serial: systemRandom(16),
            },
          );
          return json({ ...a, Certificate: cert });
        },
      ],
      [
        'sent an invalid join answer: Certificate is not signed by the cluster CA; nothing was written',
        async (a, r) => {
          const cert = await issueCertificate(
            otherCA,
            (JSON.parse(r.body) as { CSR: string }).CSR,
            {
              nodeId: a.NodeID,
              role: 'worker',
              clusterId: cluster.id,
              now: new Date(),
              lifetimeMs: 3_600_000,
              serial: systemRandom(16),
            },
          );
          return json({ ...a, Certificate: cert });
        },
      ],
      [
        'sent an invalid join answer: Certificate names worker',
        async (a) => json({ ...a, Role: 'manager' }),
      ],
      [
        'sent an invalid join answer: Certificate names worker',
        async (a) => json({ ...a, NodeID: other }),
      ],
      [
        'sent an invalid join answer: BootstrapVoters must be a list of at most 1000 ids; nothing was written',
        async (a) => json({ ...a, BootstrapVoters: 'all' }),
      ],
      [
        'sent an invalid join answer: BootstrapVoters[0] must be an id of 25 base-36 characters; nothing was written',
        async (a) => json({ ...a, BootstrapVoters: [null] }),
      ],
      [
        'sent an invalid join answer: Managers must be a list of 1 to 1000 managers; nothing was written',
        async (a) => json({ ...a, Managers: [] }),
      ],
      [
        'sent an invalid join answer: Managers[0] must be an object; nothing was written',
        async (a) => json({ ...a, Managers: ['127.0.0.1:4377'] }),
      ],
      [
        'sent an invalid join answer: Managers[0].ID must be an id of 25 base-36 characters; nothing was written',
        async (a) => json({ ...a, Managers: [{ Addr: '127.0.0.1:4377' }] }),
      ],
      [
        'sent an invalid join answer: Managers[0].Addr must be HOST:PORT; nothing was written',
        async (a) => json({ ...a, Managers: [{ ID: other, Addr: 'nowhere' }] }),
      ],
      [
        'sent an invalid join answer: a worker is given no UnlockKey; nothing was written',
        async (a) => json({ ...a, UnlockKey: Buffer.alloc(32).toString('base64') }),
      ],
      [
        `sent an answer over ${joinAnswerBytesMax} bytes: it is not a join answer`,
        async (a) => json({ ...a, Padding: 'x'.repeat(joinAnswerBytesMax) }),
      ],
      [
        'refused to let this node join: HTTP 500',
        async () => ({ status: 500, body: 'Internal Server Error' }),
      ],
      [
        'refused to let this node join: A valid join token is necessary to join this cluster',
        async () => json({ message: 'A valid join token is necessary to join this cluster' }, 403),
      ],
    ];
    let current: Case[1] = cases[0]![1];
    await using manager = await serveImpostor(
      { ca: cluster.caCertPem, ...(await managerCertificate()) },
      joinServer(async (r) => current(await genuineAnswer(r), r)),
    );
    for (const [expected, answer] of cases) {
      current = answer;
      const options = joinOptions(manager.port);
      const message = await failure(joinCluster(options));
      expect(message).toStartWith(`The manager at 127.0.0.1:${manager.port} `);
      expect(message).toContain(expected);
      expect(existsSync(options.dataDir)).toBe(false);
    }
  });

  test('joinCluster() leaves a data dir that existed before as it found it when the answer is malformed', async () => {
    await using manager = await serveImpostor(
      { ca: cluster.caCertPem, ...(await managerCertificate()) },
      joinServer(async (r) => ({
        status: 201,
        body: JSON.stringify({ ...(await genuineAnswer(r)), Role: 'root' }),
      })),
    );
    const dataDir = join(scratch, 'existing');
    mkdirSync(dataDir);
    writeFileSync(join(dataDir, 'keep.txt'), 'mine');
    expect(await failure(joinCluster(joinOptions(manager.port, { dataDir })))).toContain(
      'Role must be "manager" or "worker"',
    );
    expect(readdirSync(dataDir)).toEqual(['keep.txt']);
  });

  test('joinCluster() removes exactly what it created when writing the node files fails', async () => {
    await using manager = await serveImpostor(
      { ca: cluster.caCertPem, ...(await managerCertificate()) },
      joinServer(async (r) => ({ status: 201, body: JSON.stringify(await genuineAnswer(r)) })),
    );
    const noEntropy = (): Uint8Array => {
      throw new Error('no entropy');
    };
    // A data dir two levels below anything that exists: both levels go.
    const fresh = join(scratch, 'fresh', 'data');
    const message = await failure(
      joinCluster(joinOptions(manager.port, { dataDir: fresh, random: noEntropy })),
    );
    expect(message).toBe(
      `Cannot write the joined node's files in ${fresh}: no entropy; nothing of this join was left there`,
    );
    expect(existsSync(join(scratch, 'fresh'))).toBe(false);
    // A data dir that existed, with a file of its owner's: only that file stays.
    const existing = join(scratch, 'existing-2');
    mkdirSync(existing);
    writeFileSync(join(existing, 'keep.txt'), 'mine');
    await failure(joinCluster(joinOptions(manager.port, { dataDir: existing, random: noEntropy })));
    expect(readdirSync(existing)).toEqual(['keep.txt']);
  });

  test('joinCluster() refuses a manager whose certificate names another cluster than the answer', async () => {
    const other = newId(systemRandom);
    await using manager = await serveImpostor(
      { ca: cluster.caCertPem, ...(await managerCertificate(other)) },
      joinServer(async (r) => ({ status: 201, body: JSON.stringify(await genuineAnswer(r)) })),
    );
    const options = joinOptions(manager.port);
    expect(await failure(joinCluster(options))).toContain(
      `ClusterID ${cluster.id} is not the cluster of the manager's own certificate`,
    );
    expect(existsSync(options.dataDir)).toBe(false);
  });
});
