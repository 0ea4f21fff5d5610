/**
 * README command 1 (`npm start`): builds the executable, starts a one-node cluster on the default
 * data dir in the background (or restarts it), then runs the whole flow of Docker's secrets
 * announcement, printing each step: a busybox root filesystem (Debian's busybox-static) imported
 * as an image, a secret created, a service started with it, the secret read from inside the
 * container, removed from the service, gone. Safe to run again: it reuses what is there.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { runDirOf } from '../src/io/run-dir.ts';
import { busyboxRootfsTarball } from '../test/helpers/busybox-image.ts';

const root = join(import.meta.dir, '..');
const bin = join(root, 'dist', 'secretd');
const isRoot = process.getuid?.() === 0;
const dataDir =
  process.env.SECRETD_DATA_DIR ?? (isRoot ? '/var/lib/secretd' : join(root, '.data', 'secretd'));
const listenAddr = process.env.SECRETD_LISTEN_ADDR ?? '0.0.0.0:4377';
/** The executor's run dir for this data dir (src/io/run-dir.ts): its mounts are ours. */
const dataDirRunHint = runDirOf(dataDir);

function say(text: string): void {
  console.log(`\n\x1b[1m==> ${text}\x1b[0m`);
}

function run(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  console.log(`$ secretd ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`);
  // Options go before the image or task: what follows those is the container's command line.
  const result = spawnSync(bin, ['--data-dir', dataDir, ...args], {
    input: input ?? '',
    encoding: 'utf8',
  });
  if (result.stdout) process.stdout.write(result.stdout);
  if (result.stderr) process.stderr.write(result.stderr);
  return { code: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

function mountsHold(source: string): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((line) => line.startsWith(`${source} `) && line.includes(dataDirRunHint));
}

async function waitFor(condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      console.error('secretd: a step did not finish in time; see the log');
      process.exit(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function waitUntilServing(logFile: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const ping = spawnSync(bin, ['secret', 'ls', '-q', '--data-dir', dataDir], {
      encoding: 'utf8',
    });
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

if (isRoot) {
  const missing = [
    ['runc', 'runc'],
    ['busybox', 'busybox-static'],
  ]
    .filter(([cmd]) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status !== 0)
    .map(([, pkg]) => pkg!);
  if (missing.length > 0) {
    say(`Installing ${missing.join(' and ')} from Debian (the OCI runtime and the image's binary)`);
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    if (
      spawnSync('apt-get', ['install', '-y', '-qq', ...missing], {
        stdio: 'inherit',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      }).status !== 0
    )
      process.exit(1);
  }
} else {
  console.log(
    'Note: running containers needs root (runc, tmpfs mounts); run `npm start` as root for the whole flow.',
  );
}

say('Building the secretd executable (bun build --compile)');
const build = spawnSync(process.execPath, [join(root, 'scripts', 'compile.ts')], {
  stdio: 'inherit',
});
if (build.status !== 0) process.exit(1);

if (isRoot) {
  try {
    if (
      existsSync('/usr/local/bin/secretd') &&
      lstatSync('/usr/local/bin/secretd').isSymbolicLink()
    )
      unlinkSync('/usr/local/bin/secretd');
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
  const args = initialized
    ? ['run', '--data-dir', dataDir]
    : ['init', '--data-dir', dataDir, '--listen-addr', listenAddr];
  say(
    `${initialized ? 'Restarting' : 'Creating'} a one-node cluster: secretd ${args.join(' ')} (in the background, log: ${logFile})`,
  );
  const log = openSync(logFile, 'a');
  const child = spawn(bin, args, { detached: true, stdio: ['ignore', log, log] });
  child.unref();
  await waitUntilServing(logFile);
}

say('Importing a busybox root filesystem (from Debian\'s busybox-static) as the image "busybox"');
run(['image', 'import', 'busybox', busyboxRootfsTarball()]);

say('Storing a secret (its value goes in on stdin and never comes back out)');
if (spawnSync(bin, ['secret', 'inspect', 'my_secret_data', '--data-dir', dataDir]).status !== 0) {
  console.log('$ echo "This is a secret" | secretd secret create my_secret_data -');
  run(['secret', 'create', 'my_secret_data', '-'], 'This is a secret\n');
}
run(['secret', 'ls']);

say('Starting a service that uses it (the secret is pushed only to the node that runs the task)');
spawnSync(bin, ['service', 'rm', 'redis', '--data-dir', dataDir]);
await waitFor(
  () =>
    spawnSync(bin, ['service', 'inspect', 'redis', '--data-dir', dataDir]).status !== 0 &&
    !mountsHold('secretd-secrets'),
);
run([
  'service',
  'create',
  '--name',
  'redis',
  '--secret',
  'my_secret_data',
  'busybox',
  'sh',
  '-c',
  'trap "exit 0" TERM; sleep 100000 & wait',
]);
await waitFor(
  () => spawnSync(bin, ['exec', '--data-dir', dataDir, 'redis.1', 'true']).status === 0,
);
run(['service', 'ps', 'redis']);

say('Reading it from inside the container (an in-memory filesystem at /run/secrets)');
run(['exec', 'redis.1', 'ls', '-l', '/run/secrets']);
run(['exec', 'redis.1', 'cat', '/run/secrets/my_secret_data']);

say("Removing it from the service: the task is replaced and the old one's secrets are erased");
run(['service', 'update', '--secret-rm', 'my_secret_data', 'redis']);
await waitFor(
  () =>
    spawnSync(bin, ['exec', '--data-dir', dataDir, 'redis.1', 'ls', '/run/secrets'], {
      encoding: 'utf8',
    }).stdout === '' &&
    spawnSync(bin, ['exec', '--data-dir', dataDir, 'redis.1', 'true']).status === 0,
);
run(['exec', 'redis.1', 'cat', '/run/secrets/my_secret_data']);
run(['service', 'rm', 'redis']);
await waitFor(() => !mountsHold('secretd-secrets'));
console.log('No secret mount is left on this machine (/proc/mounts has no secretd-secrets tmpfs).');

say('Join tokens (to add nodes)');
run(['cluster', 'join-token', 'worker']);

say('A client certificate, for curl and for --host');
const certs = join(dataDir, 'client-certs');
if (!existsSync(join(certs, 'cert.pem')))
  run(['ca', 'issue-client', '--name', 'quickstart', '--out', certs]);
const port = listenAddr.split(':').at(-1);
console.log(`
The cluster is running in the background (log: ${logFile}).

  ${isRoot ? 'secretd' : bin} secret ls --data-dir ${dataDir}
  curl --http2 --cacert ${certs}/ca.pem --cert ${certs}/cert.pem --key ${certs}/key.pem https://127.0.0.1:${port}/secrets

Stop it with:  pkill -f 'secretd (init|run) --data-dir ${dataDir}'`);
