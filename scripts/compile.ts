/** Builds one self-contained executable for this machine's platform: dist/secretd. */
import { join } from 'node:path';

const root = join(import.meta.dir, '..');
const outfile = join(root, 'dist', 'secretd');
const bun = process.execPath;
const build = Bun.spawnSync(
  [
    bun,
    'build',
    '--compile',
    '--minify-syntax',
    // Bytecode: a third of the start-up time (the OCI runtime path is run for every container).
    '--bytecode',
    // ES modules split at each import(): a start loads only the code it runs. The run again for
    // the allocator's setting (cmd/reexec.ts) comes 10-20 ms sooner, the OCI runtime path loads
    // none of the node (bench/README.md, seventeenth session).
    '--format',
    'esm',
    '--splitting',
    join(root, 'src', 'main.ts'),
    '--outfile',
    outfile,
  ],
  { stdout: 'inherit', stderr: 'inherit' },
);
if (build.exitCode !== 0) {
  console.error('compile: bun build --compile failed');
  process.exit(build.exitCode ?? 1);
}
const check = Bun.spawnSync([outfile, '--version'], { stdout: 'pipe', stderr: 'pipe' });
if (check.exitCode !== 0) {
  console.error(`compile: ${outfile} does not run: ${check.stderr.toString()}`);
  process.exit(1);
}
console.log(`compile: wrote ${outfile} (${check.stdout.toString().trim()})`);
