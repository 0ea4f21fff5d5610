/**
 * Decodes a simulated member's WAL segments into one line per record, for failure reports: when a
 * member refuses to restart, what its disk holds is the first thing to look at.
 */
import { scanSegment } from '../../src/raft/_wal-scan.ts';
import type { WALRecord } from '../../src/raft/wal-codec.ts';
import type { Member } from './member.ts';

export function dumpWAL(member: Member, dek: Uint8Array): string[] {
  const lines: string[] = [];
  for (const file of member.disk.files()) {
    lines.push(`${file.path}: ${file.bytes.length} bytes, ${file.durable} durable`);
    const match = /\/([0-9a-f]{16})-([0-9a-f]{16})\.wal$/.exec(file.path);
    if (match === null) continue;
    const scan = scanSegment(file.bytes, parseInt(match[1]!, 16), { dek, keyId: 1 });
    for (const { record, offset } of scan.records)
      lines.push(`  @${offset} ${describeRecord(record)}`);
    if (scan.damage !== null)
      lines.push(
        `  damage at ${scan.damage.offset}: ${scan.damage.reason} (valid up to ${scan.validBytes})`,
      );
  }
  return lines;
}

function describeRecord(record: WALRecord): string {
  switch (record.type) {
    case 'entry':
      return `entry ${record.entry.index} term ${record.entry.term} (${record.entry.data.length} bytes)`;
    case 'hard-state':
      return `hard-state term ${record.hardState.term} vote ${record.hardState.vote} commit ${record.hardState.commit}`;
    case 'snapshot':
      return `snapshot marker ${record.meta.index} term ${record.meta.term} keepLog ${record.keepLog}`;
    default:
      return record.type;
  }
}
