import { describe, expect, test } from 'bun:test';
import { spawnSync } from 'node:child_process';
import { runToEnd } from './child-process.ts';

describe('runToEnd', () => {
  test('gives the output of a command that exits 0, and throws with the output of one that fails', async () => {
    expect(await runToEnd('sh', ['-c', 'echo out; echo err >&2'])).toBe('out\n');
    await expect(runToEnd('sh', ['-c', 'echo why >&2; exit 3'])).rejects.toThrow(
      /exited with .*3.*why/s,
    );
  });

  test('kills a command that outlives its timeout', async () => {
    await expect(runToEnd('sleep', ['30'], { timeoutMs: 200 })).rejects.toThrow(
      'sleep 30 did not finish in 0.2 s',
    );
  });

  test('leaves no timer behind: a script that ran a quick command with a long timeout exits at once', () => {
    const script = `import { runToEnd } from ${JSON.stringify(`${import.meta.dir}/child-process.ts`)};
await runToEnd('true', [], { timeoutMs: 600_000 });`;
    // Before the fix the script waited out the 600 s timer; it is killed here after 15 s.
    const run = spawnSync(process.execPath, ['--eval', script], { timeout: 15_000 });
    expect({ status: run.status, signal: run.signal }).toEqual({ status: 0, signal: null });
  }, 20_000);
});
