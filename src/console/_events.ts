/**
 * Live updates for the pages, as server-sent events. Two sources, started when the first page
 * listens and stopped when the last one leaves:
 *   - the audit trail's follow stream (`GET /secretd/audit?follow=true`), when the role may read it:
 *     every committed change and every delivery or release of a secret version has its record, sent
 *     to the pages as an `audit` event the moment the manager applies it (no polling);
 *   - for what no watch covers (a node's reachability and Raft progress, a task's state, and every
 *     view of a role that may not read the trail), a read of the cluster every consolePollMs that
 *     sends `change` when what it read differs from the last read.
 * A page re-reads its view on either event. Events carry records' lines and never a value: a record
 * holds none.
 */
import type { ServerResponse } from 'node:http';
import { consoleEventClientsMax, consolePollMs } from '../limits.ts';
import type { Timers } from '../io/timers.ts';
import type { Cluster } from './_cluster.ts';

export class EventHub {
  readonly #clients = new Set<ServerResponse>();
  #stopPoll: (() => void) | null = null;
  #followOpen = false;
  #lastDigest = '';
  #closed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly allowed: readonly string[],
    private readonly timers: Timers,
    private readonly now: () => Date,
  ) {}

  /** Takes a page's event stream; false when too many already listen. */
  add(res: ServerResponse): boolean {
    if (this.#clients.size >= consoleEventClientsMax || this.#closed) return false;
    res.writeHead(200, { 'content-type': 'text/event-stream', connection: 'keep-alive' });
    res.write(': secretd console\n\n');
    this.#clients.add(res);
    res.on('close', () => {
      this.#clients.delete(res);
      if (this.#clients.size === 0) this.#stop();
    });
    this.#start();
    return true;
  }

  #send(event: string, data: string): void {
    for (const res of this.#clients) res.write(`event: ${event}\ndata: ${data}\n\n`);
  }

  #start(): void {
    if (this.#stopPoll === null) {
      const tick = (): void => {
        void this.#poll().finally(() => {
          if (this.#stopPoll !== null) this.#stopPoll = this.timers.after(consolePollMs, tick);
        });
      };
      this.#stopPoll = this.timers.after(consolePollMs, tick);
    }
    if (!this.#followOpen && this.allowed.includes('GET /secretd/audit')) this.#follow();
  }

  #stop(): void {
    this.#stopPoll?.();
    this.#stopPoll = null;
  }

  close(): void {
    this.#closed = true;
    this.#stop();
    for (const res of this.#clients) res.end();
    this.#clients.clear();
  }

  async #poll(): Promise<void> {
    try {
      const read = JSON.stringify([
        await this.cluster.cluster(this.allowed),
        await this.cluster.workload(this.allowed),
      ]);
      if (read !== this.#lastDigest) {
        const first = this.#lastDigest === '';
        this.#lastDigest = read;
        if (!first) this.#send('change', '{}');
      }
    } catch (error) {
      this.#send('problem', JSON.stringify({ message: (error as Error).message }));
    }
  }

  /** One follow stream per console, from now on (records already committed are on the audit page). */
  #follow(): void {
    this.#followOpen = true;
    let partial = '';
    const since = new Date(this.now().getTime() - 1000).toISOString();
    void this.cluster.client
      .request(
        'GET',
        `/secretd/audit?follow=true&since=${encodeURIComponent(since)}`,
        undefined,
        (chunk) => {
          const lines = (partial + chunk.toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) if (line !== '') this.#send('audit', line);
        },
      )
      .catch(() => undefined)
      .finally(() => {
        // The stream ended (a manager restarted, the console closing): open it again while pages listen.
        this.#followOpen = false;
        if (!this.#closed && this.#clients.size > 0)
          this.timers.after(consolePollMs, () => {
            if (this.#clients.size > 0 && !this.#followOpen) this.#follow();
          });
      });
  }
}
