/**
 * The CLI entry: picks the command group, lets cac parse, runs one action, returns an exit code.
 * Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong.
 */
import { cac, type CAC } from 'cac';
import { SecretdError } from '../errors.ts';
import { secretdVersion } from '../node/daemon.ts';
import { addConnectionOptions, readAllStdin, stdinArg, type Io } from './_common.ts';
import { registerCa } from './ca.ts';
import { registerCluster } from './cluster.ts';
import { registerNodeProcess } from './node-process.ts';
import { registerNode } from './node.ts';
import { registerSecret } from './secret.ts';

const groups: Record<string, { describe: string; register: (cli: CAC, io: Io) => void }> = {
  secret: { describe: 'Manage secrets', register: registerSecret },
  cluster: { describe: 'Manage the cluster: join tokens, unlock key, settings', register: registerCluster },
  ca: { describe: 'Issue client certificates', register: registerCa },
  node: { describe: 'Manage nodes: list, promote, demote, drain, remove', register: registerNode },
};

export const defaultIo: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  stdin: readAllStdin,
  stdinIsTTY: process.stdin.isTTY === true,
};

export async function main(argv: readonly string[], io: Io = defaultIo): Promise<number> {
  const [first, ...rest] = argv;
  const group = first !== undefined ? groups[first] : undefined;
  const cli = cac(group ? `secretd ${first}` : 'secretd');
  addConnectionOptions(cli);
  if (group) group.register(cli, io);
  else {
    registerNodeProcess(cli, io);
    for (const [name, g] of Object.entries(groups)) cli.command(`${name} <command>`, g.describe).action(() => usage(`Run 'secretd ${name} --help' for its commands`));
  }
  cli.help();
  cli.version(secretdVersion);
  try {
    // cac's parser drops a lone "-"; carry it through as a marker the commands recognise.
    const args = (group ? rest : argv).map((arg) => (arg === '-' ? stdinArg : arg));
    cli.parse(['', '', ...args], { run: false });
    if (cli.options.help || cli.options.version) return 0;
    if (!cli.matchedCommand) {
      const args = group ? rest : argv;
      if (args.length === 0) {
        cli.outputHelp();
        return 2;
      }
      return usage(`Unknown command ${JSON.stringify(args[0])}. Run '${cli.name} --help' for usage`);
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
