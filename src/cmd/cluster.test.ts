/** `secretd cluster update --cert-expiry`: bad input stops before any request, with the reason. */
import { describe, expect, test } from 'bun:test';
import { main } from './main.ts';

async function run(args: string[]): Promise<{ code: number; errors: string[]; lines: string[] }> {
  const lines: string[] = [];
  const errors: string[] = [];
  const code = await main(
    // No manager in this data dir: a request would fail with another message.
    ['cluster', 'update', ...args, '--data-dir', '/nonexistent/secretd-cluster-test'],
    {
      out: (text) => lines.push(text),
      err: (text) => errors.push(text),
      write: () => {},
      stdin: async () => new Uint8Array(),
      stdinIsTTY: false,
    },
  );
  return { code, errors, lines };
}

describe('cluster update --cert-expiry', () => {
  test('refuses under 1 minute, over 20 years, and what is no duration, before any request', async () => {
    for (const [value, reason] of [
      ['59s', 'the minimum is 1m'],
      ['0', 'the minimum is 1m'],
      ['7400d', "the maximum is the root CA's lifetime, 7300d"],
      ['soon', 'expected a duration such as 90d, 12h, 30m or 1d12h'],
      ['1w', 'expected a duration such as 90d, 12h, 30m or 1d12h'],
    ] as const) {
      expect(await run(['--cert-expiry', value])).toEqual({
        code: 1,
        errors: [`Error: Invalid --cert-expiry ${JSON.stringify(value)}: ${reason}`],
        lines: [],
      });
    }
  });

  test('a valid one goes on to ask the manager (none here)', async () => {
    const answer = await run(['--cert-expiry', '1m']);
    expect(answer.code).toBe(1);
    expect(answer.errors.join('\n')).not.toContain('Invalid --cert-expiry');
  });
});
