/**
 * README command 1 (`npm start`): builds the executable, starts a one-node cluster on the default
 * data dir in the background (or restarts it), stores a secret, and prints each step and how to
 * reach the cluster. Safe to run again: it reuses what is there.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, symlinkSync, unlinkSync, lstatSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dir, '..');
const bin = join(root, 'dist', 'secretd');
const isRoot = process.getuid?.() === 0;
const dataDir = process.env.SECRETD_DATA_DIR ?? (isRoot ? '/var/lib/secretd' : join(root, '.data', 'secretd'));
const listenAddr = process.env.SECRETD_LISTEN_ADDR ?? '0.0.0.0:4377';

function say(text: string): void {
  console.log(`\n\x1b[1m==> ${text}\x1b[0m`);
}

function run(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  console.log(`$ secretd ${args.join(' ')}`);
  const result = spawnSync(bin, [...args, '--data-dir', dataDir], { input: input ?? '', encoding: 'utf8' });
  if (result.stdout) process.stdout.write(result.stdout);
  if (result.stderr) process.stderr.write(result.stderr);
  return { code: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

async function waitUntilServing(logFile: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const ping = spawnSync(bin, ['secret', 'ls', '-q', '--data-dir', dataDir], { encoding: 'utf8' });
    if (ping.status === 0) return;
    if (/locked/.test(ping.stderr)) {
      console.log(`The node is autolocked: run  ${bin} unlock --data-dir ${dataDir}`);
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  console.error(`secretd did not come up; see ${logFile}`);
  process.exit(1);
}

say('Building the secretd executable (bun build --compile)');
const build = spawnSync(process.execPath, [join(root, 'scripts', 'compile.ts')], { stdio: 'inherit' });
if (build.status !== 0) process.exit(1);

if (isRoot) {
  try {
    if (existsSync('/usr/local/bin/secretd') && lstatSync('/usr/local/bin/secretd').isSymbolicLink()) unlinkSync('/usr/local/bin/secretd');
    if (!existsSync('/usr/local/bin/secretd')) symlinkSync(bin, '/usr/local/bin/secretd');
  } catch {
    // Not fatal: the full path works too.
  }
}

mkdirSync(dataDir, { recursive: true, mode: 0o700 });
const logFile = join(dataDir, 'secretd.log');
const running = spawnSync(bin, ['secret', 'ls', '-q', '--data-dir', dataDir]).status === 0;
if (running) {
  say(`A secretd node is already running on ${dataDir}`);
} else {
  const initialized = existsSync(join(dataDir, 'node.json'));
  const args = initialized ? ['run', '--data-dir', dataDir] : ['init', '--data-dir', dataDir, '--listen-addr', listenAddr];
  say(`${initialized ? 'Restarting' : 'Creating'} a one-node cluster: secretd ${args.join(' ')} (in the background, log: ${logFile})`);
  const log = openSync(logFile, 'a');
  const child = spawn(bin, args, { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  await waitUntilServing(logFile);
}

say('Storing a secret (its value goes in on stdin and never comes back out)');
if (spawnSync(bin, ['secret', 'inspect', 'my_secret_data', '--data-dir', dataDir]).status !== 0) {
  console.log('$ echo "This is a secret" | secretd secret create my_secret_data -');
  run(['secret', 'create', 'my_secret_data', '-'], 'This is a secret\n');
}
run(['secret', 'ls']);
run(['secret', 'inspect', 'my_secret_data']);

say('Join tokens (to add nodes)');
run(['cluster', 'join-token', 'worker']);

say('A client certificate, for curl and for --host');
const certs = join(dataDir, 'client-certs');
if (!existsSync(join(certs, 'cert.pem'))) run(['ca', 'issue-client', '--name', 'quickstart', '--out', certs]);
const port = listenAddr.split(':').at(-1);
console.log(`
The cluster is running in the background (log: ${logFile}).

  ${isRoot ? 'secretd' : bin} secret ls --data-dir ${dataDir}
  curl --http2 --cacert ${certs}/ca.pem --cert ${certs}/cert.pem --key ${certs}/key.pem https://127.0.0.1:${port}/secrets

Stop it with:  pkill -f 'secretd (init|run) --data-dir ${dataDir}'`);
