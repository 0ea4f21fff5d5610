/**
 * Who may import what (the table is in the README's architecture section). Fails listing every
 * import that breaks a rule.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

interface Rule {
  readonly files: RegExp;
  readonly forbidden: RegExp;
  readonly why: string;
}

const rules: Rule[] = [
  { files: /^src\/(raft|crypto)\//, forbidden: /^(\.\.\/)+(node|cmd)\/|^(\.\.\/)+io\/(?!fs\.ts$)|^node:(fs|net|http|http2|https|child_process|os|tls|dgram)|^(hono|cac|@hono\/)/, why: 'the Raft core and crypto are pure: no I/O, nothing from node/ or cmd/, only the FileSystem port (io/fs.ts) from io/' },
  { files: /^src\/(?!node\/api\/|node\/server\.ts)/, forbidden: /^hono(\/|$)/, why: 'hono belongs to the API layer (src/node/api/, src/node/server.ts)' },
  { files: /^src\/(?!node\/server\.ts)/, forbidden: /^@hono\/node-server/, why: 'the node adapter is used only by src/node/server.ts' },
  { files: /^src\/(?!cmd\/)/, forbidden: /^cac$/, why: 'cac belongs to src/cmd/' },
  { files: /^src\/(?!cmd\/|main\.ts)/, forbidden: /^(\.\.\/)+cmd\/|^\.\/cmd\//, why: 'nothing below the CLI imports the CLI' },
];

const root = join(import.meta.dir, '..');
const importPattern = /^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm;

function* sourceFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) yield path;
  }
}

const problems: string[] = [];
for (const path of sourceFiles(join(root, 'src'))) {
  const file = relative(root, path);
  const text = readFileSync(path, 'utf8');
  for (const match of text.matchAll(importPattern)) {
    const spec = match[1] ?? match[2] ?? '';
    for (const rule of rules) {
      if (rule.files.test(file) && rule.forbidden.test(spec)) problems.push(`${file}: imports ${spec} (${rule.why})`);
    }
  }
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('check-imports: every import follows the rules');
