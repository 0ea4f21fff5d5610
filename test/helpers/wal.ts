/** Fixtures shared by the WAL tests (real files through NodeFileSystem). */
import { SecretdError } from '../../src/errors.ts';
import { NodeFileSystem } from '../../src/io/node-fs.ts';
import { systemRandom } from '../../src/io/system.ts';
import type { Entry, HardState, MemberId, SnapshotMeta } from '../../src/raft/types.ts';
import { decodeFrame } from '../../src/raft/wal-codec.ts';
import { WAL, type WALOptions, type WALState } from '../../src/raft/wal.ts';

export const fs = new NodeFileSystem();
export const dek = systemRandom(32);
/**
 * The tests read segment files while their log is open and reason about their sizes, so the last
 * segment grows with each write here unless a test asks for preallocation.
 */
export const options = (extra: Partial<WALOptions> = {}): WALOptions => ({
  dek,
  keyId: 1,
  random: systemRandom,
  fs,
  preallocateBytes: 0,
  ...extra,
});
export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const entry = (
  index: number,
  term: number,
  data = `entry ${index} term ${term}`,
): Entry => ({ index, term, type: 'normal', data: text(data) });
export const entries = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
export const hs = (term: number, commit: number, vote: string | null = 'node-a'): HardState => ({
  term,
  commit,
  vote: vote as MemberId | null,
});
export const conf = { voters: ['node-a', 'node-b', 'node-c'] as MemberId[], learners: [] };
export const meta = (index: number, term: number): SnapshotMeta => ({ index, term, conf });

export async function reopen(dir: string, extra: Partial<WALOptions> = {}): Promise<WALState> {
  const { wal, state } = await WAL.open(dir, options(extra));
  await wal.close();
  return state;
}

export async function segmentPaths(dir: string): Promise<string[]> {
  return (await fs.list(dir))
    .filter((name) => name.endsWith('.wal'))
    .sort()
    .map((name) => `${dir}/${name}`);
}

export async function openError(
  dir: string,
  extra: Partial<WALOptions> = {},
): Promise<SecretdError> {
  try {
    await reopen(dir, extra);
  } catch (error) {
    if (error instanceof SecretdError) return error;
    throw error;
  }
  throw new Error('WAL.open() succeeded but should have refused');
}

/** Offsets of the records in `bytes` from `from` up to `to`. */
export function recordOffsets(bytes: Uint8Array, from: number, to: number): number[] {
  const offsets: number[] = [];
  for (let at = from; at < to;) {
    const frame = decodeFrame(bytes, at);
    if (!frame.ok) throw new Error(frame.reason);
    offsets.push(at);
    at = frame.value.end;
  }
  return offsets;
}
