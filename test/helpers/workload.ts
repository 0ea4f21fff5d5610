/**
 * A write workload for cluster tests and the checks run on its history.
 *
 * Workers stream `POST /secrets/create`, each with a unique name and a random value, over HTTP/2
 * mTLS to the managers. A worker that gets no answer (timeout, reset, 5xx) tries the same create
 * at the next manager, up to `attempts` times. Each create ends as one of:
 * - acked: answered 201 (with its id);
 * - committed: a retry answered 409 "already exists", so an earlier attempt of it was applied;
 * - indeterminate: no definite answer; it may or may not exist (Jepsen's :info).
 * Anything else (a 400, a 409 on a first attempt) is recorded as unexpected.
 *
 * `verifyHistory` then asks each manager: every acked create exists with its id and, through
 * Docker's update rule (an update may carry Data only if it equals the stored value), its value;
 * committed ones exist with their value; every listed name is one of ours and appears once;
 * indeterminate ones, when present, hold their value; and every manager lists the same secrets.
 */
import { expect } from 'bun:test';
import type { ClusterNode, SecretJSON } from './cluster.ts';
import type { H2Client, H2Response } from './process.ts';

export interface Acked {
  readonly id: string;
  readonly value: string;
  /** When the attempt that got the 201 was sent, and when the 201 arrived (Date.now()). */
  readonly sentAt: number;
  readonly ackedAt: number;
}

export interface WorkloadOptions {
  /** Names start with it (unique per test). */
  readonly prefix: string;
  /** The managers to write to, read at each attempt (nodes may be added while it runs). */
  readonly targets: () => readonly ClusterNode[];
  readonly client: (node: ClusterNode) => H2Client;
  /** Concurrent workers (default 4). */
  readonly workers?: number;
  /** Per-request time limit (default 4000 ms): past it the worker moves to another manager. */
  readonly requestTimeoutMs?: number;
  /** Attempts of one create across managers (default 3). */
  readonly attempts?: number;
  /** Pause between a worker's creates (default 30 ms), to keep the history a checkable size. */
  readonly thinkMs?: number;
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class Workload {
  readonly acked = new Map<string, Acked>();
  readonly committed = new Map<string, string>();
  readonly indeterminate = new Map<string, string>();
  readonly unexpected: string[] = [];
  readonly #options: WorkloadOptions;
  readonly #clients = new Map<ClusterNode, H2Client>();
  #next = 0;
  #stopping = false;
  #running: Promise<void> | null = null;

  constructor(options: WorkloadOptions) {
    this.#options = options;
  }

  /** Every name this workload tried, with its value. */
  get attempted(): Map<string, string> {
    const all = new Map<string, string>();
    for (const [name, { value }] of this.acked) all.set(name, value);
    for (const [name, value] of this.committed) all.set(name, value);
    for (const [name, value] of this.indeterminate) all.set(name, value);
    return all;
  }

  start(): void {
    if (this.#running) throw new Error('workload already running');
    this.#running = Promise.all(
      Array.from({ length: this.#options.workers ?? 4 }, (_, i) => this.#worker(i)),
    ).then(() => {});
  }

  /** Stops after each worker's current create has ended (so its outcome is recorded). */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#running;
    this.#running = null;
    for (const client of this.#clients.values()) client[Symbol.dispose]();
    this.#clients.clear();
  }

  /** Creates acked whose successful attempt was sent after `t`. */
  ackedSentAfter(t: number): Acked[] {
    return [...this.acked.values()].filter((a) => a.sentAt > t);
  }

  /** Waits until `count` creates sent after `t` were acked. */
  async waitForAcks(count: number, t: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.ackedSentAfter(t).length < count) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${count} acknowledged creates (have ${this.ackedSentAfter(t).length}; indeterminate ${this.indeterminate.size}; unexpected: ${this.unexpected.slice(0, 3).join('; ')})`,
        );
      }
      await pause(20);
    }
  }

  #client(node: ClusterNode): H2Client {
    let client = this.#clients.get(node);
    if (!client || !client.usable) {
      client = this.#options.client(node);
      this.#clients.set(node, client);
    }
    return client;
  }

  #drop(node: ClusterNode, client: H2Client): void {
    if (this.#clients.get(node) === client) this.#clients.delete(node);
    client[Symbol.dispose]();
  }

  async #worker(worker: number): Promise<void> {
    let cursor = worker;
    while (!this.#stopping) {
      const name = `${this.#options.prefix}-${this.#next++}`;
      const value = `${name}:${crypto.randomUUID()}`;
      const body = { Name: name, Labels: { w: String(worker) }, Data: b64(value) };
      const attempts = this.#options.attempts ?? 3;
      let outcome: 'pending' | 'done' = 'pending';
      for (let attempt = 0; attempt < attempts && outcome === 'pending'; attempt++) {
        const targets = this.#options.targets();
        const node = targets[cursor % targets.length]!;
        const client = this.#client(node);
        const sentAt = Date.now();
        let status = 0;
        let text = '';
        try {
          const answer = await client.request('POST', '/secrets/create', body, {
            timeoutMs: this.#options.requestTimeoutMs ?? 4000,
          });
          status = answer.status;
          text = answer.text;
        } catch {
          // No answer: this manager is down, stopped or cut off; drop the session and move on.
          this.#drop(node, client);
        }
        if (status === 201) {
          this.acked.set(name, {
            id: (JSON.parse(text) as { ID: string }).ID,
            value,
            sentAt,
            ackedAt: Date.now(),
          });
          outcome = 'done';
        } else if (status === 409 && attempt > 0 && text.includes('already exists')) {
          this.committed.set(name, value);
          outcome = 'done';
        } else if (status !== 0 && status < 500) {
          this.unexpected.push(
            `${name} at ${node.name} (attempt ${attempt + 1}): ${status} ${text}`,
          );
          outcome = 'done';
        } else {
          cursor++;
          if (this.#stopping) break;
          await pause(50);
        }
      }
      if (outcome === 'pending') this.indeterminate.set(name, value);
      await pause(this.#options.thinkMs ?? 30);
    }
  }
}

/**
 * Asks until a definite answer: a 503 (no leader confirmed the read or write in time) or no answer
 * is what a client retries on; the checks are about safety, availability is tested elsewhere.
 */
async function definite(
  what: string,
  ask: () => Promise<H2Response>,
  timeoutMs = 30_000,
): Promise<H2Response> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const answer = await ask();
      if (answer.status !== 503) return answer;
      last = `${answer.status} ${answer.text}`;
    } catch (error) {
      last = (error as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: no definite answer within ${timeoutMs} ms (last: ${last})`);
    await pause(200);
  }
}

/** A client to one manager that reconnects when its session has failed (checks outlive resets). */
export class ManagerClient implements Disposable {
  #client: H2Client | null = null;

  constructor(readonly make: () => H2Client) {}

  get(): H2Client {
    if (!this.#client || !this.#client.usable) this.#client = this.make();
    return this.#client;
  }

  [Symbol.dispose](): void {
    this.#client?.[Symbol.dispose]();
  }
}

/** Lists the secrets on one manager (a linearizable read there). */
export async function listSecrets(client: ManagerClient): Promise<SecretJSON[]> {
  const answer = await definite('GET /secrets', () =>
    client.get().request('GET', '/secrets', undefined, { timeoutMs: 10_000 }),
  );
  if (answer.status !== 200)
    throw new Error(`GET /secrets answered ${answer.status}: ${answer.text}`);
  return answer.json<SecretJSON[]>();
}

/** One manager's view as name → id, checking names are ours and unique. */
function namesToIds(
  list: readonly SecretJSON[],
  ours: ReadonlyMap<string, string>,
  prefix: string,
  where: string,
): Map<string, string> {
  const byName = new Map<string, string>();
  for (const secret of list) {
    if (!secret.Spec.Name.startsWith(`${prefix}-`)) continue;
    expect({ where, name: secret.Spec.Name, ours: ours.has(secret.Spec.Name) }).toEqual({
      where,
      name: secret.Spec.Name,
      ours: true,
    });
    expect({ where, duplicate: byName.has(secret.Spec.Name) ? secret.Spec.Name : null }).toEqual({
      where,
      duplicate: null,
    });
    byName.set(secret.Spec.Name, secret.ID);
  }
  return byName;
}

/**
 * Data check on one manager, by Docker's update rule: an update carrying the stored value
 * succeeds (200); one carrying another value is refused (400). Runs `concurrency` at a time.
 */
async function checkValues(
  client: ManagerClient,
  list: readonly SecretJSON[],
  values: ReadonlyMap<string, string>,
  where: string,
  concurrency = 8,
): Promise<void> {
  const todo = list.filter((s) => values.has(s.Spec.Name));
  const failures: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const secret = todo[next++]!;
      const value = values.get(secret.Spec.Name)!;
      const update = (data: string, version: number): Promise<H2Response> =>
        definite(`update ${secret.Spec.Name}`, () =>
          client
            .get()
            .request(
              'POST',
              `/secrets/${secret.ID}/update?version=${version}`,
              { Name: secret.Spec.Name, Labels: secret.Spec.Labels, Data: b64(data) },
              { timeoutMs: 10_000 },
            ),
        );
      let version = secret.Version.Index;
      let same = await update(value, version);
      // A retried update whose first try did land finds a newer version: the value matched then.
      for (
        let tries = 0;
        same.status !== 200 && same.text.includes('is out of date') && tries < 3;
        tries++
      ) {
        const current = await definite(`GET /secrets/${secret.ID}`, () =>
          client.get().request('GET', `/secrets/${secret.ID}`, undefined, { timeoutMs: 10_000 }),
        );
        version = current.json<SecretJSON>().Version.Index;
        same = await update(value, version);
      }
      if (same.status !== 200)
        failures.push(`${secret.Spec.Name}: same value answered ${same.status} ${same.text}`);
      // A negative control on a sample: the oracle must be able to say no.
      if (next % 50 === 1) {
        const other = await update(`${value}x`, version);
        if (other.status !== 400 || !other.text.includes('only updates to Labels are allowed'))
          failures.push(
            `${secret.Spec.Name}: another value answered ${other.status} ${other.text}`,
          );
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  expect({ where, checked: todo.length, failures }).toEqual({
    where,
    checked: todo.length,
    failures: [],
  });
}

/**
 * The history checks, on every manager in `managers` (all must be reachable by the client). Waits
 * (bounded) for the managers to list the same secrets: a write a manager was still retrying
 * internally when the workload stopped may land a moment later.
 */
export async function verifyHistory(
  workload: Workload,
  managers: readonly ClusterNode[],
  client: (node: ClusterNode) => H2Client,
  prefix: string,
): Promise<{ acked: number; committed: number; indeterminatePresent: number }> {
  expect(workload.unexpected).toEqual([]);
  const ours = workload.attempted;
  const clients = managers.map((m) => new ManagerClient(() => client(m)));
  try {
    let views: Array<{ list: SecretJSON[]; byName: Map<string, string> }> = [];
    const deadline = Date.now() + 20_000;
    for (;;) {
      views = [];
      for (const [i, c] of clients.entries()) {
        const list = await listSecrets(c);
        views.push({ list, byName: namesToIds(list, ours, prefix, managers[i]!.name) });
      }
      const first = JSON.stringify([...views[0]!.byName].sort());
      if (
        views.every((v) => JSON.stringify([...v.byName].sort()) === first) ||
        Date.now() > deadline
      )
        break;
      await pause(100);
    }
    // Every manager lists the same secrets with the same ids.
    for (const [i, view] of views.entries())
      expect({ manager: managers[i]!.name, secrets: [...view.byName].sort() }).toEqual({
        manager: managers[i]!.name,
        secrets: [...views[0]!.byName].sort(),
      });
    const byName = views[0]!.byName;
    const missingAcked = [...workload.acked]
      .filter(([name, { id }]) => byName.get(name) !== id)
      .map(([name, { id }]) => `${name}: acked ${id}, listed ${byName.get(name) ?? 'nothing'}`);
    expect(missingAcked).toEqual([]);
    const missingCommitted = [...workload.committed.keys()].filter((name) => !byName.has(name));
    expect(missingCommitted).toEqual([]);
    // Listed again just before: each check writes a new version of every secret it checks.
    for (const [i, c] of clients.entries())
      await checkValues(c, await listSecrets(c), ours, managers[i]!.name);
    return {
      acked: workload.acked.size,
      committed: workload.committed.size,
      indeterminatePresent: [...workload.indeterminate.keys()].filter((n) => byName.has(n)).length,
    };
  } finally {
    for (const c of clients) c[Symbol.dispose]();
  }
}
