/**
 * The objects the clients operate on, checked key by key (models.ts), and how each maps onto the
 * production store's commands and queries:
 *
 *   register:cluster   the cluster's labels, written whole by 'cluster-update' with expectedIndex
 *                      null (the store replaces the labels map, so the map is one register, not
 *                      one per label); read as labels.v;
 *   register:<node>    a node's labels, written by 'node-update' with expectedIndex null (the
 *                      node is added during set-up);
 *   set:<name>         whether a secret named <name> exists: 'secret-create' (with an id derived
 *                      from the name) is ok iff absent, else conflict; 'secret-remove' of that id
 *                      is ok iff present, else not_found.
 */
import type { TaggedCommand } from '../../src/node/store/index.ts';
import type { ApplyResult, Store } from '../../src/node/store/index.ts';
import type { SimInput, SimOutput } from './models.ts';

/** The commands that create the objects before the run: the cluster, and one node per node register. */
export function setupCommands(nodes: readonly string[], at: string): TaggedCommand[] {
  const init: TaggedCommand = {
    op: 'cluster-init',
    at,
    clusterId: 'sim-cluster',
    caCertPem: 'sim',
    caKey: '',
    joinTokens: { worker: 'w', manager: 'm' },
    unlockKey: null,
    node: { id: 'node-manager', role: 'manager', hostname: 'manager', addr: '10.0.0.1' },
    requestId: 'setup-init',
  };
  const adds = nodes.map((id): TaggedCommand => ({
    op: 'node-add',
    at,
    node: { id, role: 'worker', hostname: id, addr: '10.0.0.2' },
    requestId: `setup-${id}`,
  }));
  return [init, ...adds];
}

export function commandFor(
  key: string,
  input: SimInput,
  requestId: string,
  at: string,
): TaggedCommand {
  const [kind, name] = splitKey(key);
  if (input.f === 'write') {
    const labels = { v: input.value };
    if (name === 'cluster')
      return { op: 'cluster-update', at, expectedIndex: null, labels, requestId };
    return { op: 'node-update', at, id: name, expectedIndex: null, labels, requestId };
  }
  if (kind !== 'set') throw new Error(`Cannot ${input.f} register ${name}`);
  if (input.f === 'create')
    return {
      op: 'secret-create',
      at,
      id: `id-${name}`,
      name,
      labels: {},
      data: valueOf(name),
      requestId,
    };
  if (input.f === 'remove') return { op: 'secret-remove', at, ids: [`id-${name}`], requestId };
  throw new Error(`${input.f} is not a write`);
}

/**
 * A secret's value: for every other name one of snapshotVersionPieceBytesMin bytes or more, so
 * that snapshots hold value pieces (kept as their bytes, standing as their base64: written to
 * packs, installed, loaded after a crash), the rest a few bytes, held inline.
 */
function valueOf(name: string): Uint8Array {
  const large = name.charCodeAt(name.length - 1) % 2 === 0;
  return new TextEncoder().encode(large ? `sim ${name} `.repeat(200).slice(0, 1500) : 'sim');
}

/** A read of `key` from a member's store. */
export function readKey(store: Store, key: string): SimOutput {
  const [kind, name] = splitKey(key);
  if (kind === 'set') return store.secretByName(name) === undefined ? 'absent' : 'present';
  const labels = name === 'cluster' ? store.cluster?.labels : store.node(name)?.labels;
  return labels?.['v'] ?? null;
}

export function outcomeOf(result: ApplyResult): SimOutput {
  return result.ok ? 'ok' : result.code;
}

export function describeInput(input: SimInput): string {
  return input.f === 'write' ? `write(${input.value})` : `${input.f}()`;
}

function splitKey(key: string): [string, string] {
  const colon = key.indexOf(':');
  return [key.slice(0, colon), key.slice(colon + 1)];
}
