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
/**
 * What bun printed for each failed test (the lines between the test before it and its "(fail)"
 * line; at most 60, a longer block its first 50 and last 5), again at the end: a CI record that
 * keeps only the output's tail then still says why.
 */
function failureRecap(output: string): string[] {
  const lines = output.split('\n');
  const recap: string[] = [];
  let from = 0;
  lines.forEach((line, i) => {
    const trimmed = line.trimStart();
    if (trimmed.startsWith('(fail)')) {
      const block = lines.slice(from, i + 1).filter((l) => l.trim() !== '');
      // The message comes first, the stack last: a long block keeps its head and its last lines.
      const kept = block.length > 60 ? [...block.slice(0, 50), '…', ...block.slice(-5)] : block;
      // bun's closing list of failed tests repeats each "(fail)" line alone: nothing to add.
      if (block.length > 1)
        recap.push(kept.map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l)).join('\n'));
    }
    if (
      trimmed.startsWith('(pass)') ||
      trimmed.startsWith('(fail)') ||
      trimmed.startsWith('(skip)')
    )
      from = i + 1;
  });
  return recap;
}
const recap = failureRecap(captured);
if (recap.length > 0) console.log(`\n== why each test failed\n${recap.join('\n--\n')}`);
const passed = count('pass');
const failed = count('fail');
console.log(`\ntests: ${passed} passed, ${failed + (code !== 0 && failed === 0 ? 1 : 0)} failed`);
process.exit(code === 0 && passed > 0 ? 0 : 1);
