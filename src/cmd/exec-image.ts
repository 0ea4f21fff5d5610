/** `secretd exec TASK CMD…` (run a command in a task's container) and `secretd image import`. */
import type { CAC } from 'cac';
import { resolve } from 'node:path';
import { withClient, type GlobalFlags, type Io } from './_common.ts';
import { call } from './client.ts';

export function registerExec(cli: CAC, io: Io): void {
  cli
    .command(
      'exec <task>',
      "Run a command in a task's container (TASK: id or SERVICE.SLOT), wherever it runs",
    )
    .action(async (task: string, flags: GlobalFlags & { '--'?: string[] }) => {
      const cmd = flags['--'] ?? [];
      if (cmd.length === 0)
        throw new Error('secretd exec needs a command: secretd exec TASK CMD [ARG…]');
      const result = (await withClient(flags, (c) =>
        call(c, 'POST', '/secretd/exec', { Task: task, Cmd: cmd }),
      )) as { ExitCode: number; Stdout: string; Stderr: string };
      if (result.Stdout) io.write('out', result.Stdout);
      if (result.Stderr) io.write('err', result.Stderr);
      return result.ExitCode;
    });
}

export function registerImage(cli: CAC, io: Io): void {
  cli
    .command('import <name> <rootfs>', 'Import a root filesystem tarball as an image on this node')
    .action(async (name: string, rootfs: string, flags: GlobalFlags) => {
      const image = (await withClient(flags, (c) =>
        call(c, 'POST', '/secretd/images/import', { Name: name, Path: resolve(rootfs) }),
      )) as { Name: string };
      io.out(image.Name);
      return 0;
    });
}
