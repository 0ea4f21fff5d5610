/**
 * The steady writer of the long e2e tests (root rotation, certificate renewal): one write pair after
 * another (create a secret, remove it), each manager's admin socket in turn, every answer checked.
 * A failure is counted and, for the first 20, kept word for word (a dead node would fail every
 * write: memory stays bounded), and the next write waits 100 ms: a node that is gone fails at once,
 * and a writer that never left the microtask queue would keep the test process from seeing the
 * daemons exit (it spun, and grew to 24 GB, after a failed test had stopped them). Declare it with
 * `await using` after the cluster, so that it stops first however the test ends.
 */
import type { ServiceNode } from './services.ts';

export interface SteadyWritesOptions {
  /** Checked before each pair: false stops the writer as stop() does (default: always true). */
  readonly keepGoing?: () => boolean;
  /** Called after each pair with the number of pairs written so far. */
  readonly afterPair?: (pairs: number) => void;
}

export class SteadyWrites implements AsyncDisposable {
  /** Pairs written so far. */
  pairs = 0;
  /** Writes that failed (an unexpected status or no answer). */
  failed = 0;
  /** The first 20 failures, each naming the write, the node, when (ms after the start) and why. */
  readonly failures: string[] = [];
  #writing = true;
  readonly #started = Date.now();
  readonly #done: Promise<void>;

  constructor(managers: readonly ServiceNode[], options: SteadyWritesOptions = {}) {
    this.#done = this.#run(managers, options);
  }

  /** Stops after the pair under way; resolves once it is done. */
  async stop(): Promise<void> {
    this.#writing = false;
    await this.#done;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #run(managers: readonly ServiceNode[], options: SteadyWritesOptions): Promise<void> {
    while (this.#writing && (options.keepGoing?.() ?? true)) {
      const node = managers[this.pairs % managers.length]!;
      const name = `w-${this.pairs}`;
      const data = Buffer.from(`data-${this.pairs}`).toString('base64');
      await this.#attempt(node, 'create', 201, () =>
        node.admin('POST', '/secrets/create', { Name: name, Data: data }),
      );
      await this.#attempt(node, 'rm', 204, () => node.admin('DELETE', `/secrets/${name}`));
      this.pairs++;
      options.afterPair?.(this.pairs);
    }
  }

  async #attempt(
    node: ServiceNode,
    what: string,
    expected: number,
    call: () => Promise<{ status: number; text: string }>,
  ): Promise<void> {
    let problem: string | undefined;
    try {
      const answer = await call();
      if (answer.status !== expected) problem = `${answer.status} ${answer.text}`;
    } catch (error) {
      problem = (error as Error).message;
    }
    if (problem === undefined) return;
    this.failed++;
    if (this.failures.length < 20)
      this.failures.push(`${what} on ${node.name} at ${Date.now() - this.#started} ms: ${problem}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
