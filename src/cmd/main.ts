/**
 * The CLI entry: picks the command group, lets cac parse, runs one action, returns an exit code.
 * Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong.
 */
import { cac, type CAC } from 'cac';
import { loadX509 } from '../crypto/index.ts';
import { SecretdError } from '../errors.ts';
import { secretdVersion } from '../node/index.ts';
import { addConnectionOptions, readAllStdin, stdinArg, type Io } from './_common.ts';
import { registerCa } from './ca.ts';
import { registerCluster } from './cluster.ts';
import { registerAudit } from './audit.ts';
import { registerConsole } from './console.ts';
import { registerNodeProcess } from './node-process.ts';
import { reexec } from './reexec.ts';
import { registerNode } from './node.ts';
import { registerSecret } from './secret.ts';
import { registerService } from './service.ts';
import { registerStack } from './stack.ts';
import { registerExec, registerImage } from './exec-image.ts';
import { ociRuntime } from './oci-runtime.ts';
import { spawnCommand } from './spawn.ts';
import { registerBackup } from './backup.ts';
import { registerRestore } from './restore.ts';
import { registerSystemdUnit } from './systemd-unit.ts';

const groups: Record<string, { describe: string; register: (cli: CAC, io: Io) => void }> = {
  secret: { describe: 'Manage secrets', register: registerSecret },
  cluster: {
    describe: 'Manage the cluster: join tokens, unlock key, settings',
    register: registerCluster,
  },
  ca: { describe: 'Issue client certificates', register: registerCa },
  audit: {
    describe: 'Read, export and verify the audit trail',
    register: registerAudit,
  },
  node: { describe: 'Manage nodes: list, promote, demote, drain, remove', register: registerNode },
  service: { describe: 'Manage services: containers that get secrets', register: registerService },
  stack: {
    describe: 'Manage stacks: services and secrets from compose files',
    register: registerStack,
  },
  image: { describe: "Manage this node's images (root filesystems)", register: registerImage },
  backup: {
    describe: 'Take an encrypted backup of the cluster, or inspect one',
    register: registerBackup,
  },
  console: {
    describe: 'Serve a web console for the cluster on this machine',
    register: registerConsole,
  },
};

/**
 * The commands (and groups of commands) that reach a node only through the client (client.ts) and
 * read no certificate themselves: they load the X.509 library (10-14 ms of a 40-60 ms command)
 * only when they may connect over TLS (`--host`, SECRETD_HOST), where the client checks the
 * server's certificate. Every other command, and every node, loads it first.
 */
const clientOnlyCommands: ReadonlySet<string> = new Set([
  'unlock',
  'exec',
  'secret',
  'service',
  'stack',
  'node',
  'audit',
  'image',
  'cluster',
  'backup',
]);

function needsX509(command: string | undefined, argv: readonly string[]): boolean {
  // No command: `--version`, `--help` or the usage, which read no certificate.
  if (command === undefined) return false;
  if (!clientOnlyCommands.has(command)) return true;
  // Anywhere on the line, even where it is not the option (a container's command): loading it
  // when not needed costs only the time.
  return (
    Boolean(process.env.SECRETD_HOST) ||
    argv.some((arg) => arg === '-H' || arg === '--host' || /^(-H|--host)=/.test(arg))
  );
}

/**
 * The newest write to each stream, settled once the stream has handed it (and, streams keeping
 * order, everything before it) to the operating system. A pipe takes 64 KiB before its reader
 * reads; what the process holds past that is lost if it exits first.
 */
const lastWrites = { out: Promise.resolve(), err: Promise.resolve() };

function write(stream: 'out' | 'err', data: string): void {
  const target = stream === 'out' ? process.stdout : process.stderr;
  // Settled on success and on failure alike (a reader that went away): exiting is then right.
  lastWrites[stream] = new Promise((resolve) => target.write(data, () => resolve()));
}

/** Resolves once everything written through `defaultIo` has left this process. */
export async function outputWritten(): Promise<void> {
  await Promise.all([lastWrites.out, lastWrites.err]);
}

export const defaultIo: Io = {
  out: (text) => write('out', `${text}\n`),
  err: (text) => write('err', `${text}\n`),
  write,
  stdin: readAllStdin,
  stdinIsTTY: process.stdin.isTTY === true,
  reexec,
};

/** Options (of any command) that take a value, so the first positional after them can be found. */
const valueOptions = new Set([
  '--token',
  '--token-file',
  '--data-dir',
  '-H',
  '--host',
  '--tlscacert',
  '--tlscert',
  '--tlskey',
  '--name',
  '--secret',
  '--replicas',
  '--mode',
  '-e',
  '--env',
  '-l',
  '--label',
  '--constraint',
  '--update-parallelism',
  '--update-delay',
  '--if-version',
  '--to',
  '--version',
  '-c',
  '--compose-file',
  '--listen',
]);

function firstPositional(args: readonly string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return -1;
    if (arg.startsWith('-') && arg !== '-' && arg !== stdinArg) {
      if (!arg.includes('=') && valueOptions.has(arg)) i++;
      continue;
    }
    return i;
  }
  return -1;
}

function splitAtCommand(args: readonly string[]): string[] {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return [...args];
    if (arg.startsWith('-') && arg !== stdinArg) {
      if (!arg.includes('=') && valueOptions.has(arg)) i++;
      continue;
    }
    return [...args.slice(0, i + 1), '--', ...args.slice(i + 1)];
  }
  return [...args];
}

export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  // runc's command line and a command after `--`: neither goes through cac's parser.
  if (argv[0] === 'oci-runtime') return ociRuntime(argv.slice(1), io);
  // The group is the first word that is not an option (global options may come before it).
  const at = firstPositional(argv);
  const first = at === -1 ? undefined : argv[at];
  const group = first !== undefined ? groups[first] : undefined;
  if (needsX509(first, argv)) await loadX509();
  if (argv[0] === 'spawn') return spawnCommand(argv.slice(1), io);
  const rest = group ? [...argv.slice(0, at), ...argv.slice(at + 1)] : [...argv];
  const cli = cac(group ? `secretd ${first}` : 'secretd');
  addConnectionOptions(cli);
  if (group) group.register(cli, io);
  else {
    registerNodeProcess(cli, io, argv);
    registerExec(cli, io);
    registerRestore(cli, io);
    registerSystemdUnit(cli, io);
    for (const [name, g] of Object.entries(groups))
      cli
        .command(`${name} <command>`, g.describe)
        .action(() => usage(`Run 'secretd ${name} --help' for its commands`));
  }
  cli.help();
  // Only `secretd --version` prints the version: inside a group, `--version N` names a secret version.
  if (!group) cli.version(secretdVersion);
  try {
    // cac's parser drops a lone "-"; carry it through as a marker the commands recognise.
    let args = rest.map((arg) => (arg === '-' ? stdinArg : arg));
    // `service create IMAGE CMD…` and `exec TASK CMD…`: everything after the image or task is the
    // container's command line, options included (as docker does), so it must not reach cac's parser.
    const verb = firstPositional(args);
    if (
      (group && first === 'service' && args[verb] === 'create') ||
      (!group && args[verb] === 'exec')
    ) {
      args = [...args.slice(0, verb + 1), ...splitAtCommand(args.slice(verb + 1))];
    }
    cli.parse(['', '', ...args], { run: false });
    if (cli.options.help || (!group && cli.options.version)) return 0;
    if (!cli.matchedCommand) {
      const args = rest;
      if (args.length === 0) {
        cli.outputHelp();
        return 2;
      }
      return usage(
        `Unknown command ${JSON.stringify(args[0])}. Run '${cli.name} --help' for usage`,
      );
    }
    const code: unknown = await cli.runMatchedCommand();
    return typeof code === 'number' ? code : 0;
  } catch (error) {
    if (error instanceof SecretdError) {
      io.err(`Error: ${error.message}`);
      return 1;
    }
    if (error instanceof Error && error.name === 'CACError') {
      io.err(`Error: ${error.message}`);
      return 2;
    }
    throw error;
  }

  function usage(message: string): number {
    io.err(`Error: ${message}`);
    return 2;
  }
}
