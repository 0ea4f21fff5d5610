/**
 * Managers' DEKs rotate, on three real managers (the compiled executable): turning autolock on and
 * `secretd cluster rotate-keys` each give every manager a new DEK; once each reports
 * `OldestKeyIdOnDisk` equal to its `KeyId`, a scan of every WAL segment and snapshot file (every
 * envelope's key id, read from the bytes) finds nothing under an older key id, and the secrets
 * written before are all still there. A manager killed with SIGKILL right after a rotation is asked
 * for recovers at restart (unlocked with the key) and finishes it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import { Cluster, until, type ClusterNode } from '../helpers/cluster.ts';
import { requireBinary, tempDir, type TempDir } from '../helpers/process.ts';
import { keyIdsIn, sealedFiles } from '../helpers/sealed-files.ts';

beforeAll(requireBinary);
// Real processes, fsync, TLS and elections on a small shared machine.
setDefaultTimeout(180_000);

const keyPattern = /SDKEY-1-[A-Za-z0-9+/]{43}/;
const secretNames = Array.from({ length: 12 }, (_, i) => `before_rotation_${i}`);

interface Encryption {
  readonly KeyId: number;
  readonly OldestKeyIdOnDisk: number;
}

async function encryption(node: ClusterNode): Promise<Encryption> {
  return ((await node.raftStatus()) as unknown as { Encryption: Encryption }).Encryption;
}

/** Waits until `node` seals with `keyId` and nothing older is on disk, as it reports it. */
async function rotated(node: ClusterNode, keyId: number): Promise<void> {
  let last: Encryption | null = null;
  try {
    await until(`${node.name} to finish its rotation to key id ${keyId}`, 30_000, async () => {
      last = await encryption(node);
      return last.KeyId === keyId && last.OldestKeyIdOnDisk === keyId ? true : undefined;
    });
  } catch (error) {
    throw new Error(`${(error as Error).message}; last reported ${JSON.stringify(last)}`);
  }
}

/** The key ids of every envelope in the node's WAL segments and snapshots, read from disk. */
function keyIdsOnDisk(node: ClusterNode): number[] {
  return keyIdsIn(
    sealedFiles(join(node.dataDir, 'raft', 'wal'), join(node.dataDir, 'raft', 'snap')),
  );
}

/** Every secret created before the rotations is listed by `node`, and one inspects as created. */
async function secretsIntact(node: ClusterNode): Promise<void> {
  const ls = await node.admin('GET', '/secrets');
  expect(ls.status).toBe(200);
  const names = (JSON.parse(ls.text) as Array<{ Spec: { Name: string } }>).map((s) => s.Spec.Name);
  expect(names.filter((n) => n.startsWith('before_rotation_')).sort()).toEqual(
    [...secretNames].sort(),
  );
  const inspect = await node.cli(['secret', 'inspect', secretNames[3]!]);
  expect({ code: inspect.code, stderr: inspect.stderr }).toEqual({ code: 0, stderr: '' });
  expect(JSON.parse(inspect.stdout)[0].Spec.Labels).toEqual({ written: 'before' });
}

describe('DEK rotation', () => {
  let dir: TempDir;
  beforeAll(() => (dir = tempDir()));
  afterAll(() => dir[Symbol.dispose]());

  test('autolock on and cluster rotate-keys give every manager a new DEK and leave nothing under the old one on disk; a manager killed during a rotation finishes it at restart', async () => {
    await using cluster = new Cluster(dir.path);
    const nodes = await cluster.bootstrap(3);
    await cluster.waitForLeader(nodes);
    for (const name of secretNames) {
      const created = await nodes[0]!.cli(
        ['secret', 'create', name, '-', '--label', 'written=before'],
        {
          input: `value of ${name}`,
        },
      );
      expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
    }
    for (const node of nodes) {
      await until(`${node.name} to apply every create`, 20_000, async () =>
        (await node.admin('GET', '/secrets')).text.includes(secretNames.at(-1)!) ? true : undefined,
      );
      expect(await encryption(node)).toEqual({ KeyId: 1, OldestKeyIdOnDisk: 1 });
      expect(keyIdsOnDisk(node)).toEqual([1]);
    }

    // Autolock on: the DEK sat in the clear in the keys file, so every manager rotates it.
    const on = await nodes[1]!.cli(['cluster', 'update', '--autolock=true']);
    expect({ code: on.code, stderr: on.stderr }).toEqual({ code: 0, stderr: '' });
    const unlockKey = keyPattern.exec(on.stdout)![0];
    for (const node of nodes) {
      await rotated(node, 2);
      expect(keyIdsOnDisk(node)).toEqual([2]);
      await secretsIntact(node);
    }

    // On demand.
    const rotate = await nodes[2]!.cli(['cluster', 'rotate-keys']);
    expect({ code: rotate.code, stderr: rotate.stderr }).toEqual({ code: 0, stderr: '' });
    expect(rotate.stdout).toContain(
      'DEK rotation 2 finished on this manager: its log and snapshots are sealed with key id 3, and no older key is on disk.',
    );
    for (const node of nodes) {
      await rotated(node, 3);
      expect(keyIdsOnDisk(node)).toEqual([3]);
      await secretsIntact(node);
    }

    // SIGKILL of a manager right after a rotation is asked for, wherever in it the kill lands.
    const victim = nodes[2]!;
    const asked = nodes[0]!.admin('POST', '/secretd/rotate-keys', undefined, 30_000);
    await victim.kill();
    const answer = await asked;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toEqual({
      Rotation: 3,
      Encryption: { KeyId: 4, OldestKeyIdOnDisk: 4 },
    });
    const restarted = victim.run();
    await restarted.waitFor(/this manager is locked/);
    const unlock = await victim.cli(['unlock'], { input: unlockKey });
    expect({ code: unlock.code, stderr: unlock.stderr }).toEqual({ code: 0, stderr: '' });
    for (const node of nodes) {
      await rotated(node, 4);
      expect(keyIdsOnDisk(node)).toEqual([4]);
      await secretsIntact(node);
    }
    expect(cluster.daemonErrors()).toEqual([]);
  });
});
