/**
 * A demoted manager lives on as a worker (role-switch.ts), but whoever copied its data dir before
 * keeps its old certificate (90 days) and its key. Issue 11, finding 1:
 * with them it sent heartbeats of a higher term, the real leader followed it, and admins' writes,
 * with the values in them, went to it. Here the attack runs against three real managers: once the
 * demoted node has left the Raft configuration, its frames are refused (403) by every manager, its
 * forwarded writes and internal calls too, the leader keeps its leadership and term, and an admin's
 * write afterwards is stored for real on every manager. The demoted node itself goes on as a
 * worker in the same process, with its Raft log, snapshots and data key erased from its disk.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { existsSync, readFileSync } from 'node:fs';
import { connect, constants } from 'node:http2';
import { join } from 'node:path';
import { keyPkcs8ToPem } from '../../src/crypto/index.ts';
import { readNodeKeys } from '../../src/node/data-dir/index.ts';
import { frame } from '../../src/node/raft-io/index.ts';
import { raftStreamPath } from '../../src/node/raft-io/index.ts';
import { encodeMessages } from '../../src/node/raft-io/index.ts';
import type { MemberId, Message } from '../../src/raft/types.ts';
import { Cluster, clientIp, until, type ClusterNode } from '../helpers/cluster.ts';
import { H2Client, requireBinary, tempDir, type ClientCerts } from '../helpers/process.ts';

beforeAll(requireBinary);
setDefaultTimeout(120_000);

/** What a manager's data dir leaves to whoever holds it: the CA, its certificate and its TLS key. */
async function certsOf(node: ClusterNode): Promise<ClientCerts> {
  const dir = join(node.dataDir, 'certificates');
  const keys = await readNodeKeys(join(dir, 'node-keys.json'), null);
  return {
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    cert: readFileSync(join(dir, 'node.pem'), 'utf8'),
    key: keyPkcs8ToPem(keys.tlsKey),
  };
}

/** Opens the Raft stream to `node` with `certs` and sends `messages` in one frame: the answer's status and body. */
function sendRaft(
  node: ClusterNode,
  certs: ClientCerts,
  messages: readonly Message[],
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const options = { ...certs, localAddress: clientIp };
    const session = connect(node.url, options);
    session.on('error', reject);
    const stream = session.request({
      ':method': 'POST',
      ':path': raftStreamPath,
      'content-type': 'application/octet-stream',
    });
    let status = 0;
    let text = '';
    const timer = setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), 10_000);
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    stream.on('error', () => {});
    stream.on('close', () => {
      clearTimeout(timer);
      session.close();
      resolve({ status, text });
    });
    stream.end(frame(encodeMessages(messages)));
  });
}

/** Everything a deposed-leader takeover needs, from `from` to `to`, in a term far above the cluster's. */
function takeover(from: string, to: string, term: number, lastIndex: number): Message[] {
  const f = from as MemberId;
  const t = to as MemberId;
  return [
    { type: 'heartbeat', from: f, to: t, term, commit: 0 },
    {
      type: 'vote',
      from: f,
      to: t,
      term,
      lastIndex: lastIndex + 1000,
      lastTerm: term - 1,
      transfer: true,
    },
    {
      type: 'append',
      from: f,
      to: t,
      term,
      prevIndex: lastIndex,
      prevTerm: term - 1,
      entries: [],
      commit: lastIndex,
    },
    { type: 'timeout-now', from: f, to: t, term },
  ];
}

describe('a demoted manager holding its old certificate', () => {
  test('cannot speak Raft, forward writes or call internal routes, the leader keeps its term, and writes after it are stored', async () => {
    using dir = tempDir('secretd-demoted-');
    await using cluster = new Cluster(dir.path);
    const nodes = await cluster.bootstrap(3);
    const leader = await cluster.waitForLeader(nodes);
    const [demoted, other] = nodes.filter((n) => n !== leader) as [ClusterNode, ClusterNode];
    const certs = await certsOf(demoted);
    const keysPath = join(demoted.dataDir, 'certificates', 'node-keys.json');
    const dekBefore = Buffer.from((await readNodeKeys(keysPath, null)).dek);

    const demote = await leader.cli(['node', 'demote', demoted.id]);
    expect({ code: demote.code, stdout: demote.stdout.trim(), stderr: demote.stderr }).toEqual({
      code: 0,
      stdout: `Node ${demoted.id} demoted to a worker in the cluster.`,
      stderr: '',
    });
    // The leader takes it out of the Raft configuration; then the demoted manager's process goes on as a worker.
    for (const node of [leader, other]) {
      await until(
        `${node.name} to apply the removal of ${demoted.name} from Raft`,
        20_000,
        async () => {
          const { conf } = await node.raftStatus();
          return [...conf.voters, ...conf.learners].includes(demoted.id) ? undefined : true;
        },
      );
    }
    await demoted.daemon!.waitFor(/goes on as a worker[^]*worker \w+ running/, 30_000);
    expect(demoted.running).toBe(true);
    const state = JSON.parse(readFileSync(join(demoted.dataDir, 'node.json'), 'utf8')) as {
      role: string;
    };
    const keysAfter = await readNodeKeys(keysPath, null);
    expect({
      role: state.role,
      keysRole: keysAfter.role,
      raftDir: existsSync(join(demoted.dataDir, 'raft')),
      sameDek: Buffer.from(keysAfter.dek).equals(dekBefore),
    }).toEqual({ role: 'worker', keysRole: 'worker', raftDir: false, sameDek: false });
    const before = await leader.raftStatus();
    expect(before.role).toBe('leader');
    const otherBefore = await other.raftStatus();

    // Its old certificate: Raft frames with a term far above the cluster's, to the leader and to the follower.
    for (const target of [leader, other]) {
      const status = await target.raftStatus();
      const answer = await sendRaft(
        target,
        certs,
        takeover(demoted.id, target.id, status.term + 1000, status.commit),
      );
      expect({
        to: target.name,
        status: answer.status,
        message:
          answer.status === 403
            ? (JSON.parse(answer.text) as { message: string }).message
            : answer.text,
      }).toEqual({
        to: target.name,
        status: 403,
        message: 'Permission denied: only managers speak Raft',
      });
    }

    // Forwarded writes and the internal routes the leader serves to managers.
    using client = new H2Client(leader.url, certs, { localAddress: clientIp });
    const forwarded = await client.request('POST', '/secretd/raft/propose', {
      Command: {
        op: 'secret-create',
        at: new Date().toISOString(),
        id: 'x'.repeat(25),
        name: 'planted',
        labels: {},
        data: Buffer.from('planted').toString('base64'),
      },
    });
    expect({ status: forwarded.status, text: forwarded.text }).toEqual({
      status: 403,
      text: JSON.stringify({
        message: 'Permission denied: a worker certificate cannot forward writes',
      }),
    });
    for (const [method, path] of [
      ['GET', '/secretd/internal/nodes'],
      ['POST', '/secretd/internal/exec'],
    ] as const) {
      const answer = await client.request(
        method,
        path,
        method === 'POST' ? { Task: 'x', Cmd: ['id'] } : undefined,
      );
      expect({ path, status: answer.status }).toEqual({ path, status: 403 });
    }

    // Nothing moved: the same leader in the same term, the follower in the same term.
    const after = await leader.raftStatus();
    expect({ role: after.role, term: after.term, leader: after.leader }).toEqual({
      role: 'leader',
      term: before.term,
      leader: leader.id,
    });
    expect((await other.raftStatus()).term).toBe(otherBefore.term);

    // An admin's write through the follower (forwarded to the leader) is stored on both managers.
    const created = await other.cli(['secret', 'create', 'after_demotion', '-'], {
      input: 'kept-value',
    });
    expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
    const id = created.stdout.trim();
    expect(id).toMatch(/^[0-9a-z]{25}$/);
    for (const node of [leader, other]) {
      const inspect = await until(`${node.name} to hold the secret`, 10_000, async () => {
        const answer = await node.admin('GET', `/secrets/${id}`);
        return answer.status === 200 ? answer : undefined;
      });
      expect((JSON.parse(inspect.text) as { Spec: { Name: string } }).Spec.Name).toBe(
        'after_demotion',
      );
      expect((await node.admin('GET', '/secrets/planted')).status).toBe(404);
    }
    expect(cluster.daemonErrors()).toEqual([]);
  });
});
