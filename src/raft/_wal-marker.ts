/**
 * The WAL's marker: a small file outside the WAL directory recording that this log exists and the
 * newest segment it has created (`{"format":1,"lastSegment":N}`). Nothing inside the log can tell
 * that the log itself, or its newest segments, were deleted: what is left is a valid, shorter log.
 * With the marker, a WAL directory that is gone or empty, or that ends before the recorded segment,
 * refuses to start instead of starting an empty or shorter log, which would forget acknowledged
 * writes and votes. Written when the first segment exists and after each new segment (rare: one per
 * walSegmentBytesTarget), atomically: temp file, rename, directory sync.
 */
import { SecretdError } from '../errors.ts';
import type { FileSystem } from '../io/fs.ts';

export interface WALMarker {
  readonly lastSegment: number;
}

export async function readMarker(fs: FileSystem, path: string): Promise<WALMarker | null> {
  const slash = path.lastIndexOf('/');
  const names = await fs.list(path.slice(0, slash)).catch(() => [] as string[]);
  if (!names.includes(path.slice(slash + 1))) return null;
  let parsed: { format?: unknown; lastSegment?: unknown };
  try {
    parsed = JSON.parse(new TextDecoder().decode(await fs.readFile(path))) as typeof parsed;
  } catch {
    throw new SecretdError(
      'corrupt',
      `Cannot read the WAL marker ${path}: not valid JSON; refusing to start`,
    );
  }
  if (
    parsed.format !== 1 ||
    typeof parsed.lastSegment !== 'number' ||
    !Number.isSafeInteger(parsed.lastSegment) ||
    parsed.lastSegment < 1
  ) {
    throw new SecretdError(
      'corrupt',
      `Cannot read the WAL marker ${path}: unknown format; refusing to start`,
    );
  }
  return { lastSegment: parsed.lastSegment };
}

export async function writeMarker(fs: FileSystem, path: string, marker: WALMarker): Promise<void> {
  const temp = `${path}.tmp`;
  await fs.writeFile(
    temp,
    new TextEncoder().encode(`${JSON.stringify({ format: 1, lastSegment: marker.lastSegment })}\n`),
  );
  await fs.rename(temp, path);
  await fs.syncDir(path.slice(0, path.lastIndexOf('/')));
}

/** Refuses a log that the marker shows lost its newest segments, or all of them. */
export function checkAgainstMarker(
  dir: string,
  markerPath: string,
  marker: WALMarker | null,
  lastSeq: number | null,
): void {
  if (marker === null) return;
  const advice =
    'restore the data dir from a backup, or remove this node from the cluster (`secretd node rm`) and join it again with a fresh data dir';
  if (lastSeq === null) {
    throw new SecretdError(
      'corrupt',
      `WAL in ${dir} is gone (no segments) but ${markerPath} records that this node wrote ${marker.lastSegment} segment(s): refusing to start with an empty log, which would forget acknowledged writes; ${advice}`,
    );
  }
  if (lastSeq < marker.lastSegment) {
    throw new SecretdError(
      'corrupt',
      `WAL in ${dir} ends at segment ${lastSeq} but ${markerPath} records that segment ${marker.lastSegment} was written: its newest segments are missing; refusing to start; ${advice}`,
    );
  }
}
