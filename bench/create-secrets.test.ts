/**
 * create-secrets.ts's exit status says whether its figures are a measurement: a run whose creates
 * failed printed its table and exited 0, so a script (or ceiling.ts, which runs it) took failures
 * for figures. Each run starts a secretd of its own (src/main.ts) and measures no Docker.
 */
import { expect, test } from 'bun:test';
import { secretBytesMax } from '../src/limits.ts';
import { repoRoot, spawnCaptured } from './child-process.ts';

async function createSecrets(
  size: number,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const run = spawnCaptured(
    process.execPath,
    [
      'bench/create-secrets.ts',
      '--no-docker',
      '--n',
      '3',
      '--warmup',
      '0',
      '--concurrency',
      '1',
      '--size',
      String(size),
      '--max-seconds',
      '30',
    ],
    { cwd: repoRoot },
  );
  await run.exited;
  return { status: run.child.exitCode, stdout: run.stdout(), stderr: run.output() };
}

test('exits 1 and says so when measured creates failed, 0 when each was created', async () => {
  // A value one byte over the limit: every create is refused (too large), none is a measurement.
  const refused = await createSecrets(secretBytesMax + 1);
  expect(refused.status).toBe(1);
  expect(refused.stdout).toMatch(/^secretd +1 +0 +3 /m);
  expect(refused.stderr).toContain('create-secrets: secretd C=1: 3 of 3 measured creates failed');
  const created = await createSecrets(64);
  expect(created.status).toBe(0);
  expect(created.stdout).toMatch(/^secretd +1 +3 +0 /m);
  // The last columns: the server's CPU and page faults per create, read from /proc for the
  // secretd this script started (numbers, not '-').
  expect(created.stdout).toMatch(
    /server CPU ms\/create +client CPU ms\/create +server faults\/create$/m,
  );
  expect(created.stdout).toMatch(/^secretd +1 +3 +0 .* \d+\.\d\d +\d+\.\d\d +\d+\.\d$/m);
}, 120_000);
