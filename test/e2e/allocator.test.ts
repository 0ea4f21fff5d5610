/**
 * A serving node runs with its allocator's setting (`allocatorEnv`, in src/cmd/allocator.ts):
 * `init` and `run` run themselves again with it (same pid, same arguments, same output; from the
 * sources, the runtime's flags too), a value the user set is kept, and the node serves as before.
 * `join` is covered in identity.test.ts, with the token's own hand-over.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { allocatorEnv } from '../../src/cmd/allocator.ts';
import {
  argumentsOf,
  Daemon,
  environOf,
  freePort,
  repoRoot,
  requireBinary,
  secretd,
  tempDir,
  type TempDir,
} from '../helpers/process.ts';

beforeAll(requireBinary);
setDefaultTimeout(60_000);

describe("a serving node's allocator setting", () => {
  let dir: TempDir;
  beforeAll(() => (dir = tempDir('secretd-allocator-')));
  afterAll(() => dir[Symbol.dispose]());

  test('init and run take it, as the same process with the same arguments; a value the user set is kept', async () => {
    expect(allocatorEnv).toEqual({ MIMALLOC_PURGE_DELAY: expect.stringMatching(/^\d+$/) });
    const dataDir = join(dir.path, 'node');
    const initArgs = [
      'init',
      '--data-dir',
      dataDir,
      '--listen-addr',
      `127.0.0.1:${await freePort()}`,
    ];
    {
      await using node = new Daemon(initArgs);
      await node.waitFor(/Data directory:/);
      expect(environOf(node.proc.pid!)).toMatchObject(allocatorEnv);
      expect(argumentsOf(node.proc.pid!)).toEqual(initArgs);
      expect(node.stdout).toContain('Cluster initialized: current node');
      const created = secretd(['secret', 'create', 'kept', '-', '--data-dir', dataDir], {
        input: 'value',
      });
      expect(created.code).toBe(0);
      await node.kill('SIGKILL');
    }
    const runArgs = ['run', '--data-dir', dataDir];
    {
      await using chosen = new Daemon(runArgs, { MIMALLOC_PURGE_DELAY: '250' });
      await chosen.waitFor(/admin socket ready/);
      expect(environOf(chosen.proc.pid!).MIMALLOC_PURGE_DELAY).toBe('250');
      await chosen.kill('SIGKILL');
    }
    await using node = new Daemon(runArgs);
    await node.waitFor(/admin socket ready/);
    expect(environOf(node.proc.pid!)).toMatchObject(allocatorEnv);
    expect(argumentsOf(node.proc.pid!)).toEqual(runArgs);
    const listed = secretd(['secret', 'ls', '--data-dir', dataDir]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('kept');
  });

  test("run from the sources (bun src/main.ts), it keeps the runtime's own flags", async () => {
    const dataDir = join(dir.path, 'from-sources');
    const args = ['init', '--data-dir', dataDir, '--listen-addr', `127.0.0.1:${await freePort()}`];
    const node = spawn(process.execPath, ['--smol', join(repoRoot, 'src', 'main.ts'), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    node.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    node.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise((resolve) => node.on('exit', resolve));
    try {
      const deadline = Date.now() + 30_000;
      while (!output.includes('Data directory:')) {
        if (node.exitCode !== null || Date.now() > deadline)
          throw new Error(`secretd init did not start:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(argumentsOf(node.pid!)).toEqual(['--smol', join(repoRoot, 'src', 'main.ts'), ...args]);
      expect(environOf(node.pid!)).toMatchObject(allocatorEnv);
    } finally {
      node.kill('SIGKILL');
      await exited;
    }
  });
});
