/**
 * The audit trail's cost in the store's apply, per record: applies the same secret-create entries
 * (decode, parseCommand, apply) with and without an audit tag into fresh stores, and prints the time
 * per entry of each and the difference. A microbenchmark of one function on one core, printed, never
 * asserted: `bun bench/audit-apply-cost.ts [entries]`.
 */
import { encodeCommand, Store, toBase64, type TaggedCommand } from '../src/node/store/index.ts';

const entries = Number(process.argv[2] ?? 20_000);
const rounds = 5;
const at = '2026-12-01T10:00:00.000Z';
const data = toBase64(new Uint8Array(32).fill(7));
const audit = {
  actor: {
    kind: 'client',
    name: 'ci-deployer',
    serial: '3f9a0c1b2d4e5f60718293a4b5c6d7e8',
    role: 'writer',
  },
  source: '10.0.0.7:51234',
} as const;

function encoded(tagged: boolean): Uint8Array[] {
  const init: TaggedCommand = {
    op: 'cluster-init',
    at,
    clusterId: 'c1',
    caCertPem: 'PEM',
    caKey: data,
    joinTokens: { worker: 'w', manager: 'm' },
    unlockKey: null,
    node: { id: 'n1', role: 'manager', hostname: 'h', addr: '127.0.0.1:4377' },
  };
  const out = [encodeCommand(init)];
  for (let i = 0; i < entries; i++) {
    const command: TaggedCommand = {
      op: 'secret-create',
      at,
      id: `id${i.toString(36).padStart(8, '0')}xxxxxxxxxxxxxxxxx`,
      name: `app_secret_${i}`,
      labels: {},
      data: new Uint8Array(32).fill(7),
      requestId: `${i.toString(16).padStart(32, '0')}`,
      ...(tagged ? { audit: { ...audit, requestId: `${i.toString(16).padStart(32, '0')}` } } : {}),
    };
    out.push(encodeCommand(command));
  }
  return out;
}

function run(batch: readonly Uint8Array[]): number {
  const store = new Store();
  const start = performance.now();
  batch.forEach((bytes, i) => store.applyEntry(i + 1, bytes));
  return ((performance.now() - start) * 1000) / batch.length;
}

const plain = encoded(false);
const tagged = encoded(true);
const best = { plain: Infinity, tagged: Infinity };
for (let round = 0; round < rounds; round++) {
  best.plain = Math.min(best.plain, run(plain));
  best.tagged = Math.min(best.tagged, run(tagged));
}
console.log(
  `store apply of a secret-create, best of ${rounds} rounds of ${entries}: ` +
    `${best.plain.toFixed(2)} µs without its audit record, ${best.tagged.toFixed(2)} µs with it ` +
    `(${(best.tagged - best.plain).toFixed(2)} µs per record: canonical form, SHA-256, the line kept)`,
);
