/**
 * The house rules that a machine can check, over every non-test file in src/ (the table is in the
 * README's architecture section). Fails listing every line that breaks one:
 *   - who may import what: the Raft core and crypto are pure; hono only in the API layer; cac only
 *     in the CLI; nothing below the CLI imports it; the CLI reaches src/node/ only through its door
 *     (src/node/index.ts); no folder imports another folder's private (`_`) file;
 *   - no import cycle between modules (type-only imports aside: they vanish at run time);
 *   - only src/crypto/_x509.ts imports @peculiar/x509 for its value (it loads it when needed), and
 *     nothing every command evaluates (src/cmd/main.ts, src/node/index.ts) reaches hono;
 *   - the clock, randomness and exit go through ports: no `Date.now`, `Math.random` or `randomUUID`
 *     outside src/io/ and src/main.ts, and `process.exit` only in src/main.ts.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

interface Rule {
  readonly files: RegExp;
  readonly forbidden: RegExp;
  readonly why: string;
}

const rules: Rule[] = [
  {
    files: /^src\/(raft|crypto)\//,
    forbidden:
      /^(\.\.\/)+(node|cmd)\/|^(\.\.\/)+io\/(?!fs\.ts$)|^node:(fs|net|http|http2|https|child_process|os|tls|dgram)|^(hono|cac|@hono\/)/,
    why: 'the Raft core and crypto are pure: no I/O, nothing from node/ or cmd/, only the FileSystem port (io/fs.ts) from io/',
  },
  {
    files: /^src\/(?!node\/api\/)/,
    forbidden: /^hono(\/|$)/,
    why: 'hono belongs to the API layer (src/node/api/)',
  },
  {
    files: /^src\/(?!node\/api\/server\.ts)/,
    forbidden: /^@hono\/node-server/,
    why: 'the node adapter is used only by src/node/api/server.ts',
  },
  { files: /^src\/(?!cmd\/)/, forbidden: /^cac$/, why: 'cac belongs to src/cmd/' },
  {
    files: /^src\/(?!cmd\/|main\.ts)/,
    forbidden: /^(\.\.\/)+cmd\/|^\.\/cmd\//,
    why: 'nothing below the CLI imports the CLI',
  },
];

/** Which rooms of src/node may not reach which: the pure rooms stay pure, and the Raft shell knows nothing of what runs on it. */
const roomRules: ReadonlyArray<{
  readonly files: RegExp;
  readonly forbidden: RegExp;
  readonly why: string;
}> = [
  {
    files: /^src\/node\/(store|orchestration)\/(?!control-loop\.ts)/,
    forbidden: /^src\/(io|node\/(peers|api|raft-io|manager|task-dispatch|executor|join))\//,
    why: 'the store and the orchestrator are pure rules: no I/O, peers, API, Raft shell or manager',
  },
  {
    files: /^src\/node\/raft-io\//,
    forbidden: /^src\/node\/(manager|api|orchestration|task-dispatch|executor)\//,
    why: 'the Raft shell knows nothing of the manager, the API, the orchestrator, the dispatcher or the executor',
  },
];

/** src/node's rooms: a file outside a room reaches it only through the room's door (its index.ts). */
const rooms = /^src\/node\/([^/]+)\//;

/** Calls that must go through a port (src/io/) or stay in the entry point. */
const portRules: ReadonlyArray<{
  readonly pattern: RegExp;
  readonly allowed: RegExp;
  readonly why: string;
}> = [
  {
    pattern: /\bDate\.now\(|\bMath\.random\(|\brandomUUID\(/,
    allowed: /^src\/(io\/|main\.ts$)/,
    why: 'the clock and randomness come through ports (src/io/)',
  },
  {
    pattern: /\bprocess\.exit\(/,
    allowed: /^src\/main\.ts$/,
    why: 'only the entry point (src/main.ts) exits the process',
  },
];

const root = join(import.meta.dir, '..');
const importPattern =
  /^\s*(import|export)\s(type\s)?[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm;

function* sourceFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) yield path;
  }
}

/** The folder a file belongs to, for the privacy rule: a `_` file is private to its folder and the folders inside it. */
function folderOf(file: string): string {
  return dirname(file);
}

const problems: string[] = [];
/** Value imports between src files, for the cycle check. */
const graph = new Map<string, string[]>();
/** Packages each src file imports for its value, and its import() calls, for the OCI runtime's closure below. */
const packages = new Map<string, string[]>();
const dynamicImports = new Map<string, string[]>();
const dynamicImportPattern = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;
for (const path of sourceFiles(join(root, 'src'))) {
  const file = relative(root, path);
  const text = readFileSync(path, 'utf8');
  const edges: string[] = [];
  const fromPackages: string[] = [];
  for (const match of text.matchAll(importPattern)) {
    const typeOnly = match[2] !== undefined;
    const spec = match[3] ?? match[4] ?? '';
    for (const rule of rules) {
      if (rule.files.test(file) && rule.forbidden.test(spec))
        problems.push(`${file}: imports ${spec} (${rule.why})`);
    }
    if (!spec.startsWith('.')) {
      if (!typeOnly) fromPackages.push(spec);
      if (
        /^src\/node\/(store|orchestration)\/(?!control-loop\.ts)/.test(file) &&
        /^node:(fs|net|http|http2|https|child_process|tls|dgram)/.test(spec)
      )
        problems.push(
          `${file}: imports ${spec} (the store and the orchestrator are pure rules: no I/O)`,
        );
      continue;
    }
    const target = normalize(join(dirname(file), spec));
    for (const rule of roomRules) {
      if (rule.files.test(file) && rule.forbidden.test(target))
        problems.push(`${file}: imports ${spec} (${rule.why})`);
    }
    const room = rooms.exec(target)?.[1];
    if (
      room !== undefined &&
      rooms.exec(file)?.[1] !== room &&
      target !== `src/node/${room}/index.ts` &&
      file.startsWith('src/node/')
    ) {
      problems.push(
        `${file}: imports ${spec} (another room of src/node is reached only through its door, src/node/${room}/index.ts)`,
      );
    }
    if (
      file.startsWith('src/cmd/') &&
      target.startsWith('src/node/') &&
      target !== 'src/node/index.ts'
    ) {
      problems.push(
        `${file}: imports ${spec} (the CLI reaches src/node/ only through its door, src/node/index.ts)`,
      );
    }
    const name = target.split('/').at(-1) ?? '';
    if (name.startsWith('_') && !`${folderOf(file)}/`.startsWith(`${folderOf(target)}/`)) {
      problems.push(
        `${file}: imports ${spec} (a file whose name starts with _ is private to its folder)`,
      );
    }
    if (!typeOnly) edges.push(target);
  }
  graph.set(file, edges);
  packages.set(file, fromPackages);
  dynamicImports.set(
    file,
    [...text.matchAll(dynamicImportPattern)].map((m) =>
      m[1]!.startsWith('.') ? normalize(join(dirname(file), m[1]!)) : m[1]!,
    ),
  );
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, '');
    if (/^\s*(\*|\/\*)/.test(line)) return;
    for (const rule of portRules) {
      if (rule.pattern.test(code) && !rule.allowed.test(file))
        problems.push(`${file}:${i + 1}: ${line.trim().slice(0, 80)} (${rule.why})`);
    }
  });
}

// Cycles: a depth-first search over value imports; each cycle is reported once, from its smallest file.
const state = new Map<string, 'open' | 'done'>();
const stack: string[] = [];
const cycles = new Set<string>();
function visit(file: string): void {
  state.set(file, 'open');
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (!graph.has(next)) continue;
    if (state.get(next) === 'open') {
      const cycle = stack.slice(stack.indexOf(next));
      const start = cycle.indexOf([...cycle].sort()[0]!);
      cycles.add([...cycle.slice(start), ...cycle.slice(0, start)].join(' → '));
    } else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(file, 'done');
}
for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
for (const cycle of cycles) problems.push(`import cycle: ${cycle}`);

// The X.509 library is loaded when something needs it (loadX509), not when a module is evaluated:
// only its loader imports it for its value; everything else takes its types.
const x509Loader = 'src/crypto/_x509.ts';
for (const [file, specs] of packages)
  for (const spec of [...specs, ...(dynamicImports.get(file) ?? [])])
    if (spec === '@peculiar/x509' && file !== x509Loader)
      problems.push(
        `${file}: imports @peculiar/x509 for its value (only ${x509Loader} does: loadX509, x509())`,
      );

// What every command evaluates before it runs (src/main.ts imports these two): neither the API
// server's framework nor the X.509 library, which the node and the commands that need them load
// with import() (node/index.ts: the daemon; crypto/_x509.ts: loadX509). A command that only reaches
// a node through the client then starts in about 30 ms instead of 50 (bench/cli-latency.ts).
/**
 * Every file reached from `entries` through `next`, each with the file it was first reached from
 * (null for an entry), in the order they were reached.
 */
function reach(
  entries: readonly string[],
  next: (file: string) => readonly string[],
): Map<string, string | null> {
  const from = new Map<string, string | null>(entries.map((entry) => [entry, null]));
  for (const file of from.keys())
    for (const target of next(file)) if (!from.has(target)) from.set(target, file);
  return from;
}

const evaluated = reach(['src/cmd/main.ts', 'src/node/index.ts'], (file) => graph.get(file) ?? []);
for (const file of evaluated.keys())
  for (const spec of packages.get(file) ?? [])
    if (/^(hono|@hono\/node-server|@peculiar\/x509)$/.test(spec)) {
      const path = [file];
      for (let at = evaluated.get(file); at != null; at = evaluated.get(at)) path.unshift(at);
      problems.push(
        `${path.join(' → ')} imports ${spec}: every command would evaluate it (load it with import() where it is needed)`,
      );
    }

// The OCI runtime's path (src/main.ts loads only cmd/oci-runtime.ts for it): engines run it for every
// container, and without reflect-metadata loaded first the x509 library throws, so nothing it
// reaches may load src/node/ or that library.
const ociEntry = 'src/cmd/oci-runtime.ts';
const reached = reach([ociEntry], (file) => [
  ...(graph.get(file) ?? []),
  ...(dynamicImports.get(file) ?? []),
]);
for (const file of reached.keys()) {
  if (file.startsWith('src/node/'))
    problems.push(`${ociEntry} reaches ${file} (the OCI runtime's path must not load src/node/)`);
  for (const spec of [...(packages.get(file) ?? []), ...(dynamicImports.get(file) ?? [])])
    if (/^(@peculiar\/|reflect-metadata|tsyringe|hono)/.test(spec))
      problems.push(
        `${ociEntry} reaches ${file}, which imports ${spec} (not on the OCI runtime's path)`,
      );
}

if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log('check-imports: every import and port rule holds');
