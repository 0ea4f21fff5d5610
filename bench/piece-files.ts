/**
 * What a snapshot's new pieces cost the kernel, by how they are laid out on disk (issue 17, large
 * values). Until 2026-12-07 secretd wrote each new secret value of a snapshot as a piece file of
 * its own: created, written, fdatasynced, renamed, the directory synced once per group of 16, and
 * deleted once no kept snapshot referred to it. This script does the same with random bytes of a
 * piece's size, and, beside it, what a save did with packs when this was measured: the same bytes
 * appended to one pack per 256 pieces, synced once (saves now sync each pack write: see
 * raft/snapshot-store.ts, ChunkedFile). No sealing and no hashing: only the file system, so the
 * difference is the layout's.
 *
 *   bun bench/piece-files.ts [--n 3000] [--size 87384] [--dir DIR] [--rounds 2]
 *
 * Prints, per layout and round, the wall time and the process's user and system CPU (what
 * `process.cpuUsage` reports for its threads: the kernel work of each call is counted in the
 * thread that made it), and the system CPU per piece. DIR (default: a new directory under the
 * system's temp dir) should be on the file system a data dir would be on. Rounds alternate the
 * layouts; each round deletes what the one before wrote first, as secretd's pruning does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFileSystem } from '../src/io/node-fs.ts';
import { snapshotPackWriteBytes } from '../src/limits.ts';
import { optionsOrExit, positiveInteger, readFlags } from './create-secrets-options.ts';

const usage = `Usage: bun bench/piece-files.ts [options]

Writes N pieces of S random bytes as a snapshot save did, once as a file per piece (written,
synced, renamed, the directory synced per 16) and once appended to a pack per 256 pieces, rounds
alternating the layouts; prints the wall time and the user and system CPU of each. No secretd.

  --n N                  pieces per layout and round (default 3000)
  --size S               bytes per piece (default 87384: 64 KiB of value as base64)
  --rounds R             rounds, each writing both layouts (default 2)
  --dir DIR              where to write, on the file system a data dir would be on (default: a
                         new directory under the system's temp dir); removed at the end
`;

interface PieceFilesOptions {
  readonly count: number;
  readonly size: number;
  readonly rounds: number;
  readonly dir: string | undefined;
}

/** Undefined for --help. */
function parseOptions(argv: readonly string[]): PieceFilesOptions | undefined {
  const values = readFlags(argv, {
    n: { type: 'string' },
    size: { type: 'string' },
    dir: { type: 'string' },
    rounds: { type: 'string' },
  });
  if (values === undefined) return undefined;
  return {
    count: positiveInteger('--n', values.n ?? '3000'),
    /** 64 KiB of value as base64, as a piece file holds it (without the sealing's few bytes). */
    size: positiveInteger('--size', values.size ?? '87384'),
    rounds: positiveInteger('--rounds', values.rounds ?? '2'),
    dir: values.dir,
  };
}

const options = optionsOrExit(usage, () => parseOptions(process.argv.slice(2)));
const { count, size, rounds } = options;
const root = options.dir ?? (await mkdtemp(join(tmpdir(), 'secretd-piece-files-')));
const inFlight = 16;
const piecesPerPack = 256;
const bytes = randomBytes(size);
/** secretd's own file system port: the writes, syncs and renames a snapshot save makes. */
const fs = new NodeFileSystem();

type Layout = 'files' | 'pack';

async function run(layout: Layout, dir: string): Promise<void> {
  await fs.mkdirp(dir);
  const cpu = process.cpuUsage();
  const started = performance.now();
  if (layout === 'files') {
    for (let at = 0; at < count; at += inFlight) {
      const group = Array.from({ length: Math.min(inFlight, count - at) }, (_, i) => at + i);
      await Promise.all(group.map((i) => writeAndRename(join(dir, `${i}.piece`), [bytes])));
      await fs.syncDir(dir);
    }
  } else {
    // As a pack is written: the pieces in writes of snapshotPackWriteBytes, one sync at the end.
    const perWrite = Math.max(1, Math.floor(snapshotPackWriteBytes / size));
    for (let at = 0; at < count; at += piecesPerPack) {
      const pieces = Math.min(piecesPerPack, count - at);
      const writes = Array.from({ length: Math.ceil(pieces / perWrite) }, (_, w) =>
        Buffer.concat(Array(Math.min(perWrite, pieces - w * perWrite)).fill(bytes)),
      );
      await writeAndRename(join(dir, `${at}.pack`), writes);
      await fs.syncDir(dir);
    }
  }
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  console.log(
    [
      layout.padEnd(6),
      `${count} pieces of ${size} B`,
      `wall ${wallMs.toFixed(0)} ms`,
      `user ${(used.user / 1000).toFixed(0)} ms`,
      `system ${(used.system / 1000).toFixed(0)} ms`,
      `system per piece ${(used.system / count).toFixed(0)} µs`,
    ].join('  '),
  );
}

/** `writes` into a temp file (the first creating it, the rest appended), synced, renamed into place. */
async function writeAndRename(path: string, writes: readonly Uint8Array[]): Promise<void> {
  await fs.writeFile(`${path}.tmp`, writes[0]!);
  if (writes.length > 1) {
    const handle = await fs.openAppend(`${path}.tmp`);
    try {
      for (const bytes of writes.slice(1)) await handle.write(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
  await fs.rename(`${path}.tmp`, path);
}

/** Deletes what a round wrote, one file at a time as pruning does, then syncs the directory. */
async function prune(dir: string): Promise<void> {
  for (const name of await fs.list(dir)) await fs.remove(join(dir, name));
  await fs.syncDir(dir);
}

console.log(
  `piece-files: ${root}, ${inFlight} piece files at a time, ${piecesPerPack} pieces per pack`,
);
const dir = join(root, 'pieces');
try {
  for (let round = 0; round < rounds; round++) {
    for (const layout of ['files', 'pack'] as const) {
      await run(layout, dir);
      await prune(dir);
    }
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
