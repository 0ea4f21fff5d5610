import { describe, expect, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { repoRoot } from './child-process.ts';

/**
 * Wrong flags are refused before anything starts: a one-line message naming the option and the
 * value, the usage, exit status 2, no stack trace. A script that fails to refuse them would start
 * its benchmark; the timeout kills it and everything it started.
 */
const spawnTimeoutMs = 5_000;

interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The script's run, in a process group of its own: a script that fails to refuse its flags starts
 * its benchmark (secretd nodes, dockerd, etcd), and at the timeout the whole group is killed, so a
 * failing test leaves nothing running behind it.
 */
function run(script: string, args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [`bench/${script}.ts`, ...args], {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }, spawnTimeoutMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

async function expectRefused(
  script: string,
  args: readonly string[],
  message: string,
): Promise<void> {
  const { status, signal, stderr } = await run(script, args);
  expect({ status, signal }).toEqual({ status: 2, signal: null });
  expect(stderr.split('\n')[0]).toBe(message);
  expect(stderr).toContain(`Usage: bun bench/${script}.ts`);
  expect(stderr).not.toMatch(/^\s*at .*[/(]/m);
  expect(stderr).not.toContain('TypeError');
}

const cases: ReadonlyArray<{
  readonly script: string;
  readonly badValue: readonly string[];
  readonly badValueMessage: string;
  readonly missingValue: string;
}> = [
  {
    script: 'backup',
    badValue: ['--secrets', 'abc'],
    badValueMessage: "--secrets must be a whole number, not 'abc'",
    missingValue: '--large-bytes',
  },
  {
    script: 'cli-latency',
    badValue: ['--rounds', 'abc'],
    badValueMessage: "--rounds must be a whole number, not 'abc'",
    missingValue: '--warmup',
  },
  {
    script: 'ceiling',
    badValue: ['--n', 'abc'],
    badValueMessage: "--n must be a whole number, not 'abc'",
    missingValue: '--concurrency',
  },
  {
    script: 'latency-breakdown',
    badValue: ['--n', 'abc'],
    badValueMessage: "--n must be a whole number, not 'abc'",
    missingValue: '--clusters',
  },
  {
    script: 'memory',
    badValue: ['--total', 'abc'],
    badValueMessage: "--total must be a whole number, not 'abc'",
    missingValue: '--size',
  },
  {
    script: 'fan-out',
    badValue: ['--nodes', 'abc'],
    badValueMessage: "--nodes must be a whole number, not 'abc'",
    missingValue: '--rounds',
  },
  {
    script: 'create-secrets',
    badValue: ['--n', 'abc'],
    badValueMessage: "--n must be a whole number, not 'abc'",
    missingValue: '--size',
  },
  {
    script: 'raft-writes',
    badValue: ['--concurrency', '1,x'],
    badValueMessage: "--concurrency must be a whole number, not 'x'",
    missingValue: '--n',
  },
  {
    script: 'failover',
    badValue: ['--rounds', '0'],
    badValueMessage: "--rounds must be at least 1, not '0'",
    missingValue: '--size',
  },
  {
    script: 'secret-rotation',
    badValue: ['--replicas', 'abc'],
    badValueMessage: "--replicas must be a whole number, not 'abc'",
    missingValue: '--runs',
  },
  {
    script: 'service-secrets',
    badValue: ['--poll-ms', '1.5'],
    badValueMessage: "--poll-ms must be a whole number, not '1.5'",
    missingValue: '--runs',
  },
  {
    script: 'restart-at-scale',
    badValue: ['--secrets', 'abc'],
    badValueMessage: "--secrets must be a whole number, not 'abc'",
    missingValue: '--rounds',
  },
  {
    script: 'piece-files',
    badValue: ['--size', '0'],
    badValueMessage: "--size must be at least 1, not '0'",
    missingValue: '--dir',
  },
  {
    script: 'oci-runtime',
    badValue: ['--runs', 'abc'],
    badValueMessage: "--runs must be a whole number, not 'abc'",
    missingValue: '--containers',
  },
];

for (const { script, badValue, badValueMessage, missingValue } of cases) {
  describe(`bench/${script}.ts`, () => {
    test('refuses an unknown option with its name, the usage and exit status 2', async () => {
      await expectRefused(script, ['--bogus'], "Unknown option '--bogus'");
    });

    test('refuses a value the option does not take', async () => {
      await expectRefused(script, badValue, badValueMessage);
    });

    test('refuses an option without its value', async () => {
      await expectRefused(
        script,
        [missingValue],
        `Option '${missingValue} <value>' argument missing`,
      );
    });

    test('prints the usage for --help and exits 0', async () => {
      const { status, signal, stdout } = await run(script, ['--help']);
      expect({ status, signal }).toEqual({ status: 0, signal: null });
      expect(stdout).toStartWith(`Usage: bun bench/${script}.ts`);
    });
  });
}

describe('bench/ceiling.ts, which also takes lists and modes', () => {
  test('refuses a concurrency list with a value that is not a count', async () => {
    await expectRefused(
      'ceiling',
      ['--concurrency', '1,x'],
      "--concurrency must be a whole number, not 'x'",
    );
  });

  test('refuses a mode other than transport and fsync, also for its server half', async () => {
    await expectRefused(
      'ceiling',
      ['--mode', 'transport,disk'],
      "--mode must be transport or fsync, not 'disk'",
    );
    await expectRefused(
      'ceiling',
      ['--serve', 'disk', '--port', '1', '--dir', '/nonexistent'],
      "--serve must be transport or fsync, not 'disk'",
    );
  });
});

describe('bench/latency-breakdown.ts, which takes a list of cluster sizes', () => {
  test('refuses a cluster of no managers', async () => {
    await expectRefused(
      'latency-breakdown',
      ['--clusters', '1,0'],
      "--clusters must be at least 1, not '0'",
    );
  });

  test('refuses no creates in flight', async () => {
    await expectRefused(
      'latency-breakdown',
      ['--concurrency', '0'],
      "--concurrency must be at least 1, not '0'",
    );
  });
});

describe('bench/restart-at-scale.ts, whose services each use a secret of their own', () => {
  test('refuses more services than secrets', async () => {
    await expectRefused(
      'restart-at-scale',
      ['--secrets', '10', '--services', '11'],
      '--services must not exceed --secrets (each uses one)',
    );
  });
});

describe('bench/raft-writes.ts, whose clusters are 1 to 7 members each', () => {
  test('refuses a cluster of no members, or of more than the machine is given', async () => {
    await expectRefused('raft-writes', ['--members', '0'], "--members must be at least 1, not '0'");
    await expectRefused('raft-writes', ['--members', '8'], "--members must be at most 7, not '8'");
    await expectRefused(
      'raft-writes',
      ['--members', 'two'],
      "--members must be a whole number, not 'two'",
    );
  });

  test('the usage names the option', async () => {
    const { status, stdout } = await run('raft-writes', ['--help']);
    expect(status).toBe(0);
    expect(stdout).toContain('--members M');
  });
});
