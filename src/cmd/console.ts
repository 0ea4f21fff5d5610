/**
 * `secretd console [--listen 127.0.0.1:8080] [--open]`: a web console on this machine, in the spirit
 * of `kubectl proxy`. It reaches the cluster exactly as the other client commands do (the admin
 * socket, or `--host` with a client certificate, so it has that certificate's role), prints a URL
 * with a random token, and serves until interrupted (SIGINT, SIGTERM), when its sessions end.
 */
import { spawn } from 'node:child_process';
import { isIP } from 'node:net';
import type { CAC } from 'cac';
import { startConsole } from '../console/index.ts';
import { SecretdError } from '../errors.ts';
import { systemNow, systemRandom } from '../io/system.ts';
import { systemTimers } from '../io/timers.ts';
import { clientFor, type GlobalFlags, type Io } from './_common.ts';
import { parseSecretFlag } from './_secret-spec.ts';

export const defaultConsoleListen = '127.0.0.1:8080';

/** `HOST:PORT` or `[IPv6]:PORT`. */
export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535)
    throw new SecretdError(
      'invalid',
      `Invalid --listen ${JSON.stringify(value)}: expected HOST:PORT, e.g. ${defaultConsoleListen}`,
    );
  return { host: match[1] ?? match[2]!, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

export function registerConsole(cli: CAC, io: Io): void {
  cli
    .command('', 'Serve a web console for the cluster on this machine (loopback by default)')
    .option('--listen <addr>', `Address to serve the console on (default ${defaultConsoleListen})`)
    .option('--open', 'Open the console in the default browser (xdg-open)')
    .action(async (flags: GlobalFlags & { listen?: string; open?: boolean }) => {
      const listen = parseListen(flags.listen ?? defaultConsoleListen);
      const client = clientFor(flags);
      try {
        await using running = await startConsole({
          client,
          parseSecretSpec: parseSecretFlag,
          listen,
          random: systemRandom,
          timers: systemTimers,
          now: systemNow,
        });
        if (!isLoopback(listen.host))
          io.err(
            `Warning: the console listens on ${listen.host}, which is not a loopback address: anyone who can reach it over plain HTTP and learns the URL acts with role ${running.whoami.Role}. Prefer the default (127.0.0.1) and an SSH tunnel.`,
          );
        io.out(`secretd console: role ${running.whoami.Role} (${running.whoami.Name})`);
        io.out(`Open ${running.url}`);
        io.out('The session ends when this command stops (Ctrl-C).');
        if (flags.open) openBrowser(running.url, io);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        io.out('secretd console: stopped');
      } finally {
        client.close();
      }
      return 0;
    });
}

function openBrowser(url: string, io: Io): void {
  const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
  child.on('error', () => io.err('Could not run xdg-open: open the URL above in a browser'));
  child.unref();
}
