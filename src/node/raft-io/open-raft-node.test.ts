/** Opening a member from disk: what recovery logs, and a log that is gone refusing to start. */
import { describe, expect, test } from 'bun:test';
import { rmSync } from 'node:fs';
import { tempDir } from '../../../test/helpers/process.ts';
import { dek, entries, fs, hs } from '../../../test/helpers/wal.ts';
import { systemRandom } from '../../io/system.ts';
import type { MemberId } from '../../raft/types.ts';
import { WAL } from '../../raft/wal.ts';
import { openRaftNode, walMarkerPath, type OpenRaftOptions } from './open-raft-node.ts';

function openOptions(root: string, log: string[]): OpenRaftOptions {
  return {
    id: 'node-a' as MemberId,
    walDir: `${root}/raft/wal`,
    snapshotDir: `${root}/raft/snap`,
    dek,
    dekKeyId: 1,
    fs,
    random: systemRandom,
    electionRandom: () => 0.5,
    bootstrapConf: { voters: ['node-a' as MemberId], learners: [] },
    transport: { send: () => {} },
    tickMs: 50,
    onFatal: (error) => {
      throw error;
    },
    walMarker: walMarkerPath(root),
    log: (line) => log.push(line),
  };
}

describe('openRaftNode', () => {
  test('logs a torn tail it truncates with sizes and entry indexes, and starts from what is left', async () => {
    using dir = tempDir('secretd-raft-open-');
    const log: string[] = [];
    const first = await openRaftNode(openOptions(dir.path, log));
    await first.stop();
    const walDir = `${dir.path}/raft/wal`;
    const sealing = { dek, keyId: 1, random: systemRandom, fs };
    const { wal } = await WAL.open(walDir, { ...sealing, preallocateBytes: 0 }); // sizes read below
    await wal.save({ hardState: hs(1, 2, 'node-a'), entries: entries(1, 2, 1) });
    const [segment] = (await fs.list(walDir)).filter((name) => name.endsWith('.wal'));
    const path = `${walDir}/${segment}`;
    const before = (await fs.readFile(path)).length;
    await wal.save({ hardState: hs(1, 3, 'node-a'), entries: entries(3, 3, 1) });
    await wal.close();
    const bytes = await fs.readFile(path);
    await fs.writeFile(path, bytes.subarray(0, bytes.length - 3));

    const reopened = await openRaftNode(openOptions(dir.path, log));
    expect(reopened.core.status().commit).toBe(2);
    await reopened.stop();
    expect(log).toEqual([
      `secretd: WAL recovery truncated ${path} at offset ${before}: dropped ${bytes.length - 3 - before} bytes of a batch that never completed (2 readable record(s), entry 3; ${log[0]?.match(/entry 3; (.*)\): a crash/)?.[1]}): a crash in the middle of a write leaves this; if there was no crash, the log was cut and acknowledged writes may be lost`,
    ]);
    expect(log[0]).not.toContain('entry 3 term 1'); // the entry's data
  });

  test('refuses to start when raft/ was deleted after the log was created', async () => {
    using dir = tempDir('secretd-raft-open-');
    const first = await openRaftNode(openOptions(dir.path, []));
    await first.stop();
    rmSync(`${dir.path}/raft`, { recursive: true, force: true });
    await expect(openRaftNode(openOptions(dir.path, []))).rejects.toThrow(
      `WAL in ${dir.path}/raft/wal is gone (no segments) but ${dir.path}/raft-log.json records that this node wrote 1 segment(s)`,
    );
  });
});
