/**
 * Simulated clients and the history they record.
 *
 * Each client has one operation outstanding at a time, sent to the member that answered it last
 * (as a client keeps its connection; how often is seeded) or to a random one, and after "Not the
 * leader (leader: X)" to X. Writes go through RaftNode.propose(); reads through
 * RaftNode.linearizableRead() and then the member's store (objects.ts maps keys to commands).
 *
 * Every write carries a requestId. An attempt ends with a result (the op happened, with that
 * outcome), a definite failure (the member refused it before proposing, or reports that it was
 * overwritten: the op did not happen), or an ambiguous failure (timeout, crash, "may or may not
 * have happened"). After a definite failure the client tries another member; after an ambiguous
 * one it retries the same request (de-duplication must make it land once) or gives up, and the
 * history records an unknown outcome. Reads that fail are dropped (no effect). What the members
 * applied can then refine the history before it is checked (checkedHistory()).
 */
import { SecretdError } from '../../src/errors.ts';
import type { TaggedCommand } from '../../src/node/store/index.ts';
import type { ApplyResult } from '../../src/node/store/index.ts';
import type { Member } from './member.ts';
import type { SimInput, SimOperation, SimOutput } from './models.ts';
import { commandFor, describeInput, outcomeOf, readKey, setupCommands } from './objects.ts';
import type { Prng } from './prng.ts';
import { world, type Scheduler } from './scheduler.ts';

export interface WorkloadOptions {
  readonly clients: number;
  /** Nodes whose labels are registers; the cluster's labels are one more register. */
  readonly nodeRegisters: number;
  readonly secretNames: number;
  readonly mix: Readonly<Record<SimInput['f'], number>>;
  readonly thinkMs: readonly [number, number];
  /** An attempt not answered within this is abandoned (ambiguous for a write). */
  readonly attemptTimeoutMs: number;
  readonly attemptsMax: number;
  /** After an ambiguous failure, the chance of retrying the same request rather than giving up. */
  readonly retrySameRate: number;
  /**
   * Check the history refined by what the members applied (see checkedHistory()); otherwise as
   * the clients saw it, unknown outcomes and all.
   */
  readonly refineByApplies: boolean;
  /** Chance that a client stays with the member that answered it last (as a client keeps its connection). */
  readonly stickiness: number;
}

export interface HistoryEntry extends SimOperation {
  requestId: string | null;
  status: 'ok' | 'failed' | 'unknown' | 'pending';
  result: ApplyResult | null;
  output: SimOutput | undefined;
  ret: number;
  attempts: number;
}

type Attempt =
  | { readonly kind: 'result'; readonly output: SimOutput; readonly result: ApplyResult | null }
  | { readonly kind: 'definite' | 'ambiguous'; readonly why: string };

export interface WorkloadTarget {
  readonly scheduler: Scheduler;
  readonly members: readonly Member[];
  trace(line: string): void;
  /** A client saw something only a bug can produce (e.g. an assertion from propose()). */
  unexpected(error: unknown): void;
}

const definite =
  /^(Not the leader|Cannot propose|Too many writes waiting|Node is shutting down$)|did not happen/;

export class Workload {
  readonly history: HistoryEntry[] = [];
  readonly #options: WorkloadOptions;
  readonly #target: WorkloadTarget;
  readonly #prng: Prng;
  readonly #registers: readonly string[];
  readonly #sets: readonly string[];
  #stamp = 0;
  #busy = 0;
  #stopAt = 0;
  /** Request id → when it was first applied by any member (a stamp on the history's clock), and its outcome. */
  readonly #applied = new Map<string, { readonly stamp: number; readonly result: ApplyResult }>();
  /** Per client: the member that answered it last. */
  readonly #home = new Map<number, Member>();
  setupDone = false;

  constructor(options: WorkloadOptions, target: WorkloadTarget, prng: Prng) {
    this.#options = options;
    this.#target = target;
    this.#prng = prng;
    this.#registers = [
      'cluster',
      ...Array.from({ length: options.nodeRegisters }, (_, i) => `node-${i}`),
    ];
    this.#sets = Array.from({ length: options.secretNames }, (_, i) => `secret-${i}`);
  }

  /** True when no client operation is in flight. */
  get idle(): boolean {
    return this.#busy === 0;
  }

  /** Initializes the cluster and adds the register nodes, retrying until each is acknowledged. */
  async setup(): Promise<void> {
    this.#busy++;
    for (const command of setupCommands(this.#registers.slice(1), this.#at()))
      await this.#mustWrite(command);
    this.setupDone = true;
    this.#busy--;
  }

  /** Starts every client; they stop starting operations at `untilMs`. */
  start(untilMs: number): void {
    this.#stopAt = untilMs;
    for (let c = 0; c < this.#options.clients; c++) this.#spawn(this.#client(c));
  }

  /** Client writes sent first to `member` (a scenario needs entries on a leader it has cut off). */
  writeTo(member: Member, count: number): void {
    for (let i = 0; i < count; i++) {
      const key = `register:${this.#prng.pick(this.#registers)}`;
      this.#busy++;
      this.#spawn(
        this.#execute(
          this.#options.clients + 1,
          key,
          { f: 'write', value: `s.${this.history.length}` },
          1,
          member,
        ).finally(() => this.#busy--),
      );
    }
  }

  /** A member applied a command; the first application of a request id is when it took effect. */
  observeApply(requestId: string, result: ApplyResult): void {
    if (!this.#applied.has(requestId))
      this.#applied.set(requestId, { stamp: ++this.#stamp, result });
  }

  /**
   * The history to check. Refined (options.refineByApplies), each write is tightened by what the
   * members applied once the cluster has converged (every entry in every log applied): a write
   * took effect no later than its first application, so its return moves up to that instant
   * (before or after its client heard back); a write of unknown outcome that was applied gets
   * that outcome and instant; one that was never applied did not happen and is left out. Either
   * way, a write the client was told did not happen must not have been applied.
   */
  checkedHistory(): { readonly ops: SimOperation[]; readonly phantom: HistoryEntry | null } {
    const ops: SimOperation[] = [];
    for (const op of this.history) {
      const applied = op.requestId === null ? undefined : this.#applied.get(op.requestId);
      if (op.status === 'failed' && applied !== undefined) return { ops, phantom: op };
      if (!this.#options.refineByApplies) {
        if (op.status === 'ok' || op.status === 'unknown') ops.push(op);
      } else if (op.status === 'ok') {
        ops.push(applied === undefined ? op : { ...op, ret: Math.min(op.ret, applied.stamp) });
      } else if (op.status === 'unknown' && applied !== undefined) {
        ops.push({ ...op, output: outcomeOf(applied.result), ret: applied.stamp });
      }
    }
    return { ops, phantom: null };
  }

  /** One read of every key, after the faults: they see the final state through the history. */
  finalReads(): void {
    for (const key of [
      ...this.#registers.map((r) => `register:${r}`),
      ...this.#sets.map((s) => `set:${s}`),
    ]) {
      this.#busy++;
      const input: SimInput = key.startsWith('set:') ? { f: 'exists' } : { f: 'read' };
      this.#spawn(
        this.#execute(this.#options.clients, key, input, 100).finally(() => this.#busy--),
      );
    }
  }

  async #client(c: number): Promise<void> {
    this.#busy++;
    while (this.#target.scheduler.now < this.#stopAt) {
      await this.#sleep(this.#prng.between(...this.#options.thinkMs));
      if (this.#target.scheduler.now >= this.#stopAt) break;
      const f = this.#prng.weighted(this.#options.mix);
      if (f === 'write' || f === 'read') {
        const key = `register:${this.#prng.pick(this.#registers)}`;
        const input: SimInput =
          f === 'write' ? { f, value: `v${c}.${this.history.length}` } : { f };
        await this.#execute(c, key, input, this.#options.attemptsMax);
      } else if (this.#sets.length > 0) {
        await this.#execute(
          c,
          `set:${this.#prng.pick(this.#sets)}`,
          { f },
          this.#options.attemptsMax,
        );
      }
    }
    this.#busy--;
  }

  async #execute(
    client: number,
    key: string,
    input: SimInput,
    attemptsMax: number,
    first?: Member,
  ): Promise<void> {
    const isWrite = input.f === 'write' || input.f === 'create' || input.f === 'remove';
    const entry: HistoryEntry = {
      key,
      client,
      input,
      call: ++this.#stamp,
      ret: Infinity,
      output: undefined,
      requestId: isWrite ? `c${client}-${this.history.length}` : null,
      status: 'pending',
      result: null,
      attempts: 0,
    };
    this.history.push(entry);
    const command = isWrite ? commandFor(key, input, entry.requestId!, this.#at()) : null;
    let ambiguous = false;
    const home = this.#home.get(client);
    let target: Member | undefined =
      first ??
      (home !== undefined && this.#prng.chance(this.#options.stickiness) ? home : undefined);
    while (entry.attempts < attemptsMax) {
      entry.attempts++;
      target ??= this.#prng.pick(this.#target.members);
      const attempt =
        command === null ? await this.#read(target, key) : await this.#propose(target, command);
      if (attempt.kind === 'result') {
        this.#home.set(client, target);
        this.#complete(entry, attempt.output, attempt.result);
        return;
      }
      if (attempt.kind === 'ambiguous' && command !== null) {
        ambiguous = true;
        if (!this.#prng.chance(this.#options.retrySameRate)) break;
      }
      target =
        this.#leaderHint(attempt.why) ??
        this.#prng.pick(this.#target.members.filter((m) => m !== target));
      await this.#sleep(this.#prng.between(1, 20));
    }
    entry.status = ambiguous && isWrite ? 'unknown' : 'failed';
    this.#target.trace(`client ${client}: ${key} ${describeInput(input)} -> ${entry.status}`);
  }

  async #mustWrite(command: TaggedCommand): Promise<void> {
    for (;;) {
      const attempt = await this.#propose(this.#prng.pick(this.#target.members), command);
      if (attempt.kind === 'result') {
        if (attempt.output !== 'ok')
          this.#target.unexpected(
            new Error(`Set-up write ${command.op} failed: ${JSON.stringify(attempt.result)}`),
          );
        return;
      }
      await this.#sleep(this.#prng.between(5, 30));
    }
  }

  #complete(entry: HistoryEntry, output: SimOutput, result: ApplyResult | null): void {
    entry.ret = ++this.#stamp;
    entry.output = output;
    entry.result = result;
    entry.status = 'ok';
    this.#target.trace(
      `client ${entry.client}: ${entry.key} ${describeInput(entry.input)} -> ${output} (${entry.attempts} attempts)`,
    );
  }

  async #propose(
    member: Member,
    command: TaggedCommand,
    timeoutMs = this.#options.attemptTimeoutMs,
  ): Promise<Attempt> {
    await this.#reach(member);
    const node = member.node;
    if (member.state !== 'up' || node === null)
      return { kind: 'definite', why: 'connection refused' };
    const outcome = await this.#withTimeout(node.propose(command), timeoutMs);
    if (outcome === 'timeout') return { kind: 'ambiguous', why: 'timed out' };
    if ('error' in outcome) return this.#failure(outcome.error);
    const result = outcome.value;
    return { kind: 'result', output: outcomeOf(result), result };
  }

  async #read(member: Member, key: string): Promise<Attempt> {
    await this.#reach(member);
    const node = member.node;
    if (member.state !== 'up' || node === null)
      return { kind: 'definite', why: 'connection refused' };
    const outcome = await this.#withTimeout(
      node.linearizableRead(this.#options.attemptTimeoutMs),
      this.#options.attemptTimeoutMs,
    );
    if (outcome === 'timeout') return { kind: 'ambiguous', why: 'timed out' };
    if ('error' in outcome) return this.#failure(outcome.error);
    return { kind: 'result', output: readKey(node.store, key), result: null };
  }

  #failure(error: unknown): Attempt {
    if (!(error instanceof SecretdError)) {
      this.#target.unexpected(error);
      return { kind: 'ambiguous', why: String(error) };
    }
    return { kind: definite.test(error.message) ? 'definite' : 'ambiguous', why: error.message };
  }

  /** The request's trip to the member: an event of the member, so a paused member holds it. */
  #reach(member: Member): Promise<void> {
    return new Promise((resolve) =>
      this.#target.scheduler.after(this.#prng.between(0.2, 2), member.index, resolve),
    );
  }

  #withTimeout<T>(
    promise: Promise<T>,
    timeoutMs: number,
  ): Promise<{ value: T } | { error: unknown } | 'timeout'> {
    return new Promise((resolve) => {
      this.#target.scheduler.after(timeoutMs, world, () => resolve('timeout'));
      promise.then(
        (value) => resolve({ value }),
        (error: unknown) => resolve({ error }),
      );
    });
  }

  /** Runs a client task; a throw in it is a simulator bug, reported as the run's failure. */
  #spawn(task: Promise<void>): void {
    task.catch((error: unknown) => this.#target.unexpected(error));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#target.scheduler.after(ms, world, resolve));
  }

  #leaderHint(why: string): Member | undefined {
    const hinted = /\(leader: ([^)]+)\)/.exec(why)?.[1];
    return this.#prng.chance(0.8) ? this.#target.members.find((m) => m.id === hinted) : undefined;
  }

  #at(): string {
    return new Date(Math.floor(this.#target.scheduler.now)).toISOString();
  }
}
