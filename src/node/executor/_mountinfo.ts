/**
 * What is mounted where, from /proc/self/mountinfo: the kernel's word, not a guess from a path.
 * statfs alone is not enough: a directory under /run (itself a tmpfs) reports tmpfs even when our
 * own mount failed, and its files would then sit in a shared, swappable, host-wide tmpfs.
 */
import { readFile } from 'node:fs/promises';

export interface MountEntry {
  readonly mountPoint: string;
  readonly fsType: string;
  /** Per-mount options (nodev, nosuid, noexec, ro, ...). */
  readonly mountOptions: ReadonlySet<string>;
  /** Filesystem options (size=, mode=, noswap, ...). */
  readonly superOptions: ReadonlySet<string>;
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) =>
    String.fromCharCode(parseInt(octal, 8)),
  );
}

export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    // id parent major:minor root mount-point options [optional fields...] - type source super-options
    const separator = fields.indexOf('-', 6);
    if (separator === -1 || fields.length < separator + 4) continue;
    entries.push({
      mountPoint: unescape(fields[4]!),
      fsType: fields[separator + 1]!,
      mountOptions: new Set(fields[5]!.split(',')),
      superOptions: new Set(fields[separator + 3]!.split(',')),
    });
  }
  return entries;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The mount visible at exactly `path` (the last one wins when mounts are stacked), or null. */
export function mountAt(entries: readonly MountEntry[], path: string): MountEntry | null {
  let found: MountEntry | null = null;
  for (const entry of entries) if (entry.mountPoint === path) found = entry;
  return found;
}
