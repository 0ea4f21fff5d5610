import { expect, test } from 'bun:test';
import { workerCertificatePem } from '../../test/helpers/certificate.ts';

const pem = await workerCertificatePem();

const { SECRETD_HOST: _host, ...withoutHost } = process.env;

/**
 * Runs `secretd ARGS` through main() in a process of its own (this one loaded the library before
 * its tests: test/preload.ts), then says whether a certificate can be read: whether the command
 * loaded the X.509 library.
 */
function loadsX509(args: readonly string[], env: Record<string, string> = {}): boolean {
  const script = `
    import { main } from ${JSON.stringify(`${import.meta.dir}/main.ts`)};
    import { parseIdentity } from ${JSON.stringify(`${import.meta.dir}/../crypto/index.ts`)};
    const quiet = { out() {}, err() {}, write() {}, stdin: async () => new Uint8Array(), stdinIsTTY: false, reexec() { throw new Error('no'); } };
    await main(${JSON.stringify(args)}, quiet);
    try { parseIdentity(${JSON.stringify(pem)}); console.log('loaded'); } catch (e) { console.log(e.code); }
  `;
  const run = Bun.spawnSync([process.execPath, '-e', script], {
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...withoutHost, ...env },
  });
  // The last line: a command's own output (help, an error) comes before it.
  const said = run.stdout.toString().trim().split('\n').at(-1)!.trim();
  if (said !== 'loaded' && said !== 'internal')
    throw new Error(`unexpected: ${said} ${run.stderr.toString()}`);
  return said === 'loaded';
}

test('a command that reaches a node through the admin socket does not load the X.509 library', () => {
  for (const args of [
    ['secret', 'ls', '--data-dir', '/nonexistent'],
    ['service', 'ls', '--data-dir', '/nonexistent'],
    ['node', 'ls', '--data-dir', '/nonexistent'],
    ['--version'],
    ['--help'],
    ['cluster', 'unlock-key', '--data-dir', '/nonexistent'],
    ['unlock', '--data-dir', '/nonexistent'],
  ])
    expect(loadsX509(args), args.join(' ')).toBe(false);
});

test('a command that may connect over TLS, and every command outside the client-only groups, loads it first', () => {
  for (const args of [
    ['secret', 'ls', '--host', 'https://127.0.0.1:1'],
    ['secret', 'ls', '-H=https://127.0.0.1:1'],
    ['ca', 'issue-client', '--data-dir', '/nonexistent'],
    ['run', '--help'],
  ])
    expect(loadsX509(args), args.join(' ')).toBe(true);
  expect(loadsX509(['secret', 'ls'], { SECRETD_HOST: 'https://127.0.0.1:1' })).toBe(true);
});
