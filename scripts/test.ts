/**
 * The whole test suite, as CI runs it: type-check (tsc, then deno check), import rules, compile the
 * executable (the end-to-end tests run it), then every bun test (test/e2e/deno.test.ts runs secretd
 * under Deno). Prints one closing line "tests: N passed, N failed".
 */
import { join } from 'node:path';

const root = join(import.meta.dir, '..');
const bun = process.execPath;
const tsc = join(root, 'node_modules', '.bin', 'tsc');
const prettier = join(root, 'node_modules', '.bin', 'prettier');
const deno = join(root, 'node_modules', '.bin', 'deno');
// Deno (the devDependency) reads only node_modules (deno.json) and must not look for a newer self.
process.env.DENO_NO_UPDATE_CHECK = '1';

function step(name: string, cmd: string[]): void {
  console.log(`\n== ${name}: ${cmd.map((c) => c.replace(root + '/', '')).join(' ')}`);
  const result = Bun.spawnSync(cmd, { cwd: root, stdout: 'inherit', stderr: 'inherit' });
  if (result.exitCode !== 0) {
    console.log(`\ntests: 0 passed, 1 failed (${name} failed)`);
    process.exit(1);
  }
}

step('type-check', [tsc, '--noEmit', '-p', '.']);
step('deno check', [deno, 'check', '--quiet', '--cached-only', join(root, 'src', 'main.ts')]);
step('import rules', [bun, join(root, 'scripts', 'check-imports.ts')]);
step('format', [
  prettier,
  '--check',
  '--log-level',
  'warn',
  'src/**/*.ts',
  'test/**/*.ts',
  'bench/**/*.ts',
  'scripts/**/*.ts',
]);
step('compile', [bun, join(root, 'scripts', 'compile.ts')]);

const args = process.argv.slice(2);
console.log(`\n== bun test ${args.join(' ')}`);
const proc = Bun.spawn([bun, 'test', '--timeout', '60000', ...args], {
  cwd: root,
  stdout: 'inherit',
  stderr: 'pipe',
});
let captured = '';
const decoder = new TextDecoder();
for await (const chunk of proc.stderr) {
  const text = decoder.decode(chunk);
  captured += text;
  process.stderr.write(text);
}
const code = await proc.exited;
const count = (word: string): number =>
  Number(
    /^\s*(\d+) (?:pass|fail)$/m.exec(
      captured
        .split('\n')
        .filter((l) => l.trim().endsWith(` ${word}`))
        .join('\n'),
    )?.[1] ?? 0,
  );
const passed = count('pass');
const failed = count('fail');
console.log(`\ntests: ${passed} passed, ${failed + (code !== 0 && failed === 0 ? 1 : 0)} failed`);
process.exit(code === 0 && passed > 0 ? 0 : 1);
