/**
 * What the figures of a run depend on besides the systems measured: the runtime, the CPUs, how busy
 * the machine was, and the filesystem the data dirs live on (fsync on tmpfs costs nothing).
 */
import { readFileSync, statfsSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { formatNumber } from './stats.ts';

/**
 * Client and servers share the CPUs, so other work on the machine skews a comparison. Taken when
 * this module is first imported, before the run adds its own load.
 */
export const loadAverageAtStart = loadavg()[0] ?? Number.NaN;

export interface MachineFacts {
  readonly bun: string | undefined;
  readonly cpus: number;
  readonly loadAverageBefore: number;
  /** The 1-minute load average now: includes this run's own load, so only a hint. */
  readonly loadAverageAfter: number;
  /** The filesystem type of the temp dir where the data dirs are, from /proc/self/mountinfo. */
  readonly tmpFilesystem: string;
}

export function machineFacts(): MachineFacts {
  return {
    bun: process.versions['bun'],
    cpus: availableParallelism(),
    loadAverageBefore: loadAverageAtStart,
    loadAverageAfter: loadavg()[0] ?? Number.NaN,
    tmpFilesystem: filesystemOf(tmpdir()),
  };
}

export function describeMachine(facts: MachineFacts): string {
  return (
    `Bun ${facts.bun ?? '?'}, ${facts.cpus} CPUs, load average before ${formatNumber(facts.loadAverageBefore, 2)} ` +
    `(after ${formatNumber(facts.loadAverageAfter, 2)}), data dirs on ${facts.tmpFilesystem}`
  );
}

/** A 1-minute load above this on the CPUs of the machine makes figures unreliable. */
export function busyWarning(facts: MachineFacts): string | undefined {
  if (!(facts.loadAverageBefore > facts.cpus * 0.5)) return undefined;
  return `the machine was busy before the run (load ${formatNumber(facts.loadAverageBefore, 2)} on ${facts.cpus} CPUs): repeat it when the load is low`;
}

const tmpfsMagic = 0x01021994;

/** "ext4 (/dev/vda)": the longest mount point that contains `path`. */
function filesystemOf(path: string): string {
  try {
    let best = { mountPoint: '', description: '?' };
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      // Fields: id parent major:minor root mount-point options [optional…] - type source super-options
      const fields = line.split(' ');
      const mountPoint = fields[4];
      const separator = fields.indexOf('-');
      if (mountPoint === undefined || separator < 0) continue;
      const inside =
        path === mountPoint ||
        path.startsWith(mountPoint.endsWith('/') ? mountPoint : `${mountPoint}/`);
      if (inside && mountPoint.length >= best.mountPoint.length) {
        best = {
          mountPoint,
          description: `${fields[separator + 1] ?? '?'} (${fields[separator + 2] ?? '?'})`,
        };
      }
    }
    return best.description;
  } catch {
    return statfsSync(path).type === tmpfsMagic ? 'tmpfs' : '?';
  }
}

/** The machine's busy and total CPU time so far, in clock ticks (/proc/stat's first line). */
function cpuTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  const ticks = fields.slice(1, 9).map(Number); // user nice system idle iowait irq softirq steal
  const total = ticks.reduce((sum, t) => sum + t, 0);
  return { busy: total - ticks[3]! - ticks[4]!, total };
}

export interface Quiet {
  /** How long it waited, ms. */
  readonly waitedMs: number;
  /** The share of all CPUs busy in the last window (0-1). */
  readonly busy: number;
}

/**
 * Waits until the whole machine is quiet: less than `busyBelow` of all its CPUs busy over a
 * window of `windowMs`, or `timeoutMs` passed (then it says so in what it returns). A system
 * restarted in one round may still be busy after it answered (a dockerd reloading its tasks,
 * a secretd taking its idle snapshot); the next round, of either system, should not pay for it.
 */
export async function waitQuiet(
  options: { busyBelow?: number; windowMs?: number; timeoutMs?: number } = {},
): Promise<Quiet> {
  const { busyBelow = 0.1, windowMs = 250, timeoutMs = 10_000 } = options;
  const start = performance.now();
  let busy = 1;
  for (;;) {
    const before = cpuTicks();
    await new Promise((resolve) => setTimeout(resolve, windowMs));
    const after = cpuTicks();
    busy = (after.busy - before.busy) / Math.max(1, after.total - before.total);
    const waitedMs = performance.now() - start;
    if (busy < busyBelow || waitedMs >= timeoutMs) return { waitedMs, busy };
  }
}
