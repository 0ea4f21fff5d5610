/**
 * The network between simulated managers (manager-sim.test.ts): each manager's `PeerLink` (the
 * port its Raft transport, leader router, renewer and revocation checks use) delivers to the
 * target manager's real API app (`createApp`, hono's `app.request`) after a seeded delay, with the
 * caller's identity worked out as the TLS server works it out (server.ts: a manager certificate
 * counts as a manager only while the target's store says so). The Raft stream, which the real
 * server serves straight off the HTTP/2 stream (stream-routes.ts), is delivered frame by frame to
 * the target's `raftReceive` with the same checks, in order, acknowledged with a byte per burst.
 *
 * A manager that is down refuses connections; a stream or request in flight to a manager that
 * dies never gets its answer (the stream closes, the request times out on the caller's clock).
 * Everything is scheduled on the simulator's queue, so a seed replays exactly.
 */
import { parseIdentity } from '../../src/crypto/index.ts';
import { SecretdError } from '../../src/errors.ts';
import type { Timers } from '../../src/io/timers.ts';
import { raftBatchBytesMax } from '../../src/limits.ts';
import { createApp, type Backend, type Identity } from '../../src/node/api/index.ts';
import type { Manager } from '../../src/node/manager/index.ts';
import type { PeerLink, PeerResponse, PeerStream, PeerTls } from '../../src/node/peers/index.ts';
import { peerPaths } from '../../src/node/peers/index.ts';
import { FrameReader } from '../../src/node/raft-io/index.ts';
import type { Prng } from './prng.ts';
import { world, type Scheduler } from './scheduler.ts';

/** A manager's process as the network reaches it: its API app and its backend. */
export interface SimProcess {
  readonly manager: Manager;
  readonly app: ReturnType<typeof createApp>;
}

/** One place on the network: the process serving at `addr` now, or null while it is down. */
export interface SimHost {
  readonly index: number;
  readonly addr: string;
  serving(): SimProcess | null;
}

/** The end of a link that calls: its owner on the scheduler and whether that process still runs. */
export interface SimCaller {
  readonly index: number;
  readonly alive: () => boolean;
  readonly timers: Timers;
}

interface CallerEnv {
  readonly caller: Identity;
}

/** The caller on a request: what a TLS server makes of the certificate it presented (server.ts's identify). */
export function identifyCaller(backend: Backend, presented: Identity): Identity {
  if (presented.role !== 'manager' && presented.role !== 'worker') return presented;
  if (backend.isRemovedNode(presented.nodeId))
    throw new SecretdError(
      'forbidden',
      `Permission denied: node ${presented.nodeId} was removed from the cluster`,
    );
  if (presented.role === 'manager' && backend.currentRole(presented.nodeId) !== 'manager')
    return { ...presented, role: 'worker', speaksRaft: backend.speaksRaft(presented.nodeId) };
  return presented;
}

/** A manager's API app as its TLS server builds it, the caller's identity coming with each request. */
export function simApp(manager: Manager): ReturnType<typeof createApp> {
  return createApp({
    backend: manager,
    version: 'sim',
    identify: (c) => identifyCaller(manager, (c.env as CallerEnv).caller),
  });
}

export class SimManagerNet {
  readonly #scheduler: Scheduler;
  readonly #prng: Prng;
  readonly #hosts = new Map<string, SimHost>();
  readonly #delayMs: readonly [number, number];
  readonly stats = { requests: 0, frames: 0, refused: 0 };
  /** Requests between managers, by path (the Raft stream aside). */
  readonly paths = new Map<string, number>();

  constructor(scheduler: Scheduler, prng: Prng, delayMs: readonly [number, number]) {
    this.#scheduler = scheduler;
    this.#prng = prng;
    this.#delayMs = delayMs;
  }

  add(host: SimHost): void {
    this.#hosts.set(host.addr, host);
  }

  /** One incarnation's link, on the certificate `tls` names (as the peer client presents it). */
  link(caller: SimCaller, tls: PeerTls): PeerLink {
    const { nodeId, role } = parseIdentity(tls.cert);
    const identity: Identity = {
      role,
      nodeId,
      via: 'tls',
      speaksRaft: role === 'manager',
    };
    return new SimLink(this, caller, identity);
  }

  /** A request as a caller's client sends it, with the caller's identity: used by the links and by tests. */
  request(
    caller: SimCaller,
    identity: Identity,
    addr: string,
    method: string,
    path: string,
    body: Uint8Array | null,
    options: { timeoutMs: number; contentType?: string },
  ): Promise<PeerResponse> {
    this.stats.requests++;
    if (identity.role === 'manager') this.paths.set(path, (this.paths.get(path) ?? 0) + 1);
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (done: () => void): void => {
        if (settled || !caller.alive()) return;
        settled = true;
        cancelTimeout();
        done();
      };
      const cancelTimeout = caller.timers.after(options.timeoutMs, () =>
        settle(() =>
          reject(
            new SecretdError(
              'unavailable',
              `Manager at ${addr} did not answer within ${options.timeoutMs} ms`,
            ),
          ),
        ),
      );
      const host = this.#hosts.get(addr);
      this.#send(host?.index ?? world, () => {
        const process = host?.serving() ?? null;
        if (process === null) {
          this.stats.refused++;
          this.#send(caller.index, () =>
            settle(() =>
              reject(
                new SecretdError(
                  'unavailable',
                  `Cannot reach manager at ${addr}: connection refused`,
                ),
              ),
            ),
          );
          return;
        }
        const headers: Record<string, string> = body
          ? { 'content-type': options.contentType ?? 'application/octet-stream' }
          : {};
        const env: CallerEnv = { caller: identity };
        void Promise.resolve(
          process.app.request(path, { method, headers, ...(body ? { body } : {}) }, env as never),
        )
          .then(async (response) => ({
            status: response.status,
            body: new Uint8Array(await response.arrayBuffer()),
          }))
          .then(
            (answer) => {
              // The server died while it worked: the connection is gone, the answer with it.
              if (host!.serving() !== process) return;
              this.#send(caller.index, () => settle(() => resolve(answer)));
            },
            (error: unknown) => this.#send(caller.index, () => settle(() => reject(error))),
          );
      });
    });
  }

  /** Runs `deliver` on `owner`'s side after a one-way delay. */
  #send(owner: number, deliver: () => void): void {
    this.#scheduler.after(this.delay(), owner, deliver);
  }

  delay(): number {
    const [lo, hi] = this.#delayMs;
    return this.#prng.between(lo, hi);
  }

  host(addr: string): SimHost | undefined {
    return this.#hosts.get(addr);
  }

  get scheduler(): Scheduler {
    return this.#scheduler;
  }
}

class SimLink implements PeerLink {
  readonly #net: SimManagerNet;
  readonly #caller: SimCaller;
  #identity: Identity;
  readonly #streams = new Set<SimRaftStream>();

  constructor(net: SimManagerNet, caller: SimCaller, identity: Identity) {
    this.#net = net;
    this.#caller = caller;
    this.#identity = identity;
  }

  request(
    addr: string,
    method: string,
    path: string,
    body: Uint8Array | null,
    options: { timeoutMs: number; contentType?: string },
  ): Promise<PeerResponse> {
    return this.#net.request(this.#caller, this.#identity, addr, method, path, body, options);
  }

  openLines(addr: string): Promise<{ status: number; body: string; close: () => void }> {
    // Only the agent's dispatcher session uses it, and simulated managers run no executor.
    return Promise.reject(
      new SecretdError(
        'unimplemented',
        `Cannot open a line stream to ${addr}: the simulated network carries no dispatcher sessions`,
      ),
    );
  }

  openStream(addr: string, path: string): PeerStream {
    if (path !== peerPaths.raftStream)
      throw new SecretdError(
        'unimplemented',
        `The simulated network streams only ${peerPaths.raftStream}`,
      );
    const stream = new SimRaftStream(this.#net, this.#caller, this.#identity, addr, () =>
      this.#streams.delete(stream),
    );
    this.#streams.add(stream);
    return stream;
  }

  /** The simulated network retires no connection: a renewal changes the identity of every stream at once (setTls). */
  retired(): boolean {
    return false;
  }

  reset(addr: string): void {
    for (const stream of [...this.#streams]) if (stream.addr === addr) stream.close();
  }

  setTls(tls: PeerTls): void {
    const { nodeId, role } = parseIdentity(tls.cert);
    this.#identity = { role, nodeId, via: 'tls', speaksRaft: role === 'manager' };
  }

  closeAll(): void {
    for (const stream of [...this.#streams]) stream.close();
  }
}

type Listener = (...args: never[]) => void;

/**
 * A Raft stream: opened (answered 200 or refused) after a delay, frames delivered in order, a
 * byte back per delivered burst. Breaks, both ways, when the server's process is no longer the one
 * that accepted it.
 */
class SimRaftStream implements PeerStream {
  readonly addr: string;
  readonly #net: SimManagerNet;
  readonly #caller: SimCaller;
  readonly #identity: Identity;
  readonly #onGone: () => void;
  readonly #listeners = new Map<string, Listener[]>();
  readonly #reader = new FrameReader(raftBatchBytesMax);
  #closed = false;
  /** The process that accepted the stream; null until then. */
  #server: SimProcess | null = null;
  /** When the last chunk is due at the server: a stream delivers in order. */
  #lastDueAt = 0;

  constructor(
    net: SimManagerNet,
    caller: SimCaller,
    identity: Identity,
    addr: string,
    onGone: () => void,
  ) {
    this.#net = net;
    this.#caller = caller;
    this.#identity = identity;
    this.addr = addr;
    this.#onGone = onGone;
    const host = net.host(addr);
    // The open reaches the server before any frame written on the stream.
    this.#lastDueAt = net.scheduler.now + net.delay();
    net.scheduler.at(this.#lastDueAt, host?.index ?? world, () => {
      const process = host?.serving() ?? null;
      if (process === null) return this.#break(new Error(`connect ECONNREFUSED ${addr}`));
      let status = 200;
      try {
        // serveRaftStream's checks: the caller, then Raft only from those that speak it.
        const identity = identifyCaller(process.manager, this.#identity);
        if (process.manager.locked || !identity.speaksRaft) status = 403;
      } catch {
        status = 403;
      }
      if (status === 200) this.#server = process;
      this.#toCaller(() => {
        this.#emit('response', { ':status': status });
        if (status !== 200) this.close();
      });
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  on(event: string, listener: Listener): this {
    const list = this.#listeners.get(event) ?? [];
    list.push(listener);
    this.#listeners.set(event, list);
    return this;
  }

  write(chunk: Uint8Array): boolean {
    if (this.#closed) return false;
    const bytes = chunk.slice();
    const host = this.#net.host(this.addr);
    const scheduler = this.#net.scheduler;
    this.#lastDueAt = Math.max(this.#lastDueAt, scheduler.now + this.#net.delay());
    scheduler.at(this.#lastDueAt, host?.index ?? world, () => this.#deliver(bytes));
    return true;
  }

  /** Closes once what was written has been delivered. */
  end(): void {
    this.#net.scheduler.at(this.#lastDueAt, this.#caller.index, () => this.close());
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onGone();
    queueMicrotask(() => this.#emit('close'));
  }

  #deliver(chunk: Uint8Array): void {
    if (this.#closed) return;
    const host = this.#net.host(this.addr);
    const process = this.#server;
    if (process === null || host?.serving() !== process)
      return this.#break(new Error(`The stream to ${this.addr} was reset`));
    this.#net.stats.frames++;
    try {
      for (const frame of this.#reader.push(chunk))
        process.manager.raftReceive(identifyCaller(process.manager, this.#identity), frame);
    } catch {
      // The server refuses the stream (REFUSED_STREAM): the sender opens another.
      return this.#toCaller(() => this.close());
    }
    this.#toCaller(() => this.#emit('data', new Uint8Array([1])));
  }

  /** The connection broke: the caller sees an error and the stream close. */
  #break(error: Error): void {
    this.#toCaller(() => {
      if (this.#closed) return;
      this.#emit('error', error);
      this.close();
    });
  }

  #toCaller(run: () => void): void {
    this.#net.scheduler.after(this.#net.delay(), this.#caller.index, () => {
      if (this.#caller.alive()) run();
    });
  }

  #emit(event: string, ...args: unknown[]): void {
    if (!this.#caller.alive()) return;
    if (this.#closed && event !== 'close') return;
    for (const listener of this.#listeners.get(event) ?? [])
      (listener as (...a: unknown[]) => void)(...args);
  }
}
