import { afterEach, describe, expect, test } from 'bun:test';
import { allocatorEnv } from './allocator.ts';
import { allocatorReexecEarly, type Reexec } from './reexec.ts';

/** The runs again `allocatorReexecEarly` asks for (a fake execve that returns instead). */
function calls(argv: readonly string[]): Array<[readonly string[], Record<string, string>]> {
  const made: Array<[readonly string[], Record<string, string>]> = [];
  const again = ((args: readonly string[], env: Readonly<Record<string, string>>) => {
    made.push([args, { ...env }]);
  }) as unknown as Reexec;
  allocatorReexecEarly(argv, again);
  return made;
}

const saved = process.env.MIMALLOC_PURGE_DELAY;
afterEach(() => {
  if (saved === undefined) delete process.env.MIMALLOC_PURGE_DELAY;
  else process.env.MIMALLOC_PURGE_DELAY = saved;
});

describe('allocatorReexecEarly (src/main.ts, before the CLI and the node are loaded)', () => {
  test('init and run lacking the setting are run again at once, with the same arguments and the setting', () => {
    delete process.env.MIMALLOC_PURGE_DELAY;
    for (const argv of [
      ['run', '--data-dir', '/var/lib/secretd'],
      ['init', '--listen-addr', '127.0.0.1:2377', '--autolock'],
    ])
      expect(calls(argv)).toEqual([[argv, { ...allocatorEnv }]]);
  });

  test('nothing else is: join (its token leaves the command line in its own run), other commands, help, options before the command', () => {
    delete process.env.MIMALLOC_PURGE_DELAY;
    for (const argv of [
      ['join', '--token', 'SWMTKN-1-x', '10.0.0.1:2377'],
      ['secret', 'ls'],
      ['run', '--help'],
      ['init', '-h'],
      ['--data-dir', '/tmp/d', 'run'],
      [],
    ])
      expect(calls(argv)).toEqual([]);
  });

  test('a value the user set is kept: no run again', () => {
    process.env.MIMALLOC_PURGE_DELAY = '250';
    expect(calls(['run'])).toEqual([]);
  });
});
