/**
 * CPU time (user + system) spent by processes, from /proc/<pid>/stat, so a benchmark can say what
 * each write cost the servers. On a machine with few CPUs shared by client and servers, that cost,
 * more than the wait for the disk, bounds throughput. Linux only; elsewhere the figures are NaN.
 */
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Clock ticks per second of /proc times: 100 on every common Linux, asked once. */
const clockTicksPerSec = ((): number => {
  const answer = Number.parseInt(
    spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout ?? '',
    10,
  );
  return Number.isSafeInteger(answer) && answer > 0 ? answer : 100;
})();

/** Sum of user and system CPU time of `pids`, in milliseconds; NaN if one cannot be read. */
export function cpuTimeMs(pids: readonly number[]): number {
  return procTotals(pids).cpuMs;
}

/**
 * CPU time (ms) and minor page faults (every thread's) of `pids`, from one read of each
 * /proc/<pid>/stat; NaN if one cannot be read. On a virtual machine a fault can cost microseconds
 * (about 10 here: bench/README.md), so a server that keeps touching fresh memory pays for it in
 * CPU.
 */
function procTotals(pids: readonly number[]): { cpuMs: number; minorFaults: number } {
  let ticks = 0;
  let faults = 0;
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return { cpuMs: Number.NaN, minorFaults: Number.NaN };
    }
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 10, 14 and 15 of the whole line (minflt, utime, stime) are the 8th, 12th and 13th
    // after the name.
    faults += Number(fields[7]);
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return { cpuMs: (ticks * 1000) / clockTicksPerSec, minorFaults: faults };
}

/** This process's own CPU time (user + system), in milliseconds, at microsecond resolution. */
export function ownCpuTimeMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

/**
 * Starts counting: the returned function gives the CPU time, in ms, that `pids` (the server; NaN
 * when none is known) and this process (the client) have spent since, and the server's minor
 * page faults.
 */
export function cpuMeter(
  pids: readonly number[],
): () => { serverMs: number; clientMs: number; serverFaults: number } {
  const server = (): { cpuMs: number; minorFaults: number } =>
    pids.length === 0 ? { cpuMs: Number.NaN, minorFaults: Number.NaN } : procTotals(pids);
  const [serverBefore, clientBefore] = [server(), ownCpuTimeMs()];
  return () => {
    const now = server();
    return {
      serverMs: now.cpuMs - serverBefore.cpuMs,
      clientMs: ownCpuTimeMs() - clientBefore,
      serverFaults: now.minorFaults - serverBefore.minorFaults,
    };
  };
}
