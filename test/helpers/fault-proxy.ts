/**
 * A fault-injecting TCP network for end-to-end cluster tests, in the test process.
 *
 * Topology. Every node has a loopback IP of its own (127.0.0.11, 127.0.0.12, …; the test client
 * uses 127.0.0.100). A node listens on its real port and advertises a *proxy* port on the same IP;
 * the proxy listening there forwards bytes to the real port. Managers open peer connections from
 * their advertised IP, so every connection a proxy accepts is labelled by its two ends: the source
 * IP (who calls) and the proxy's IP (whom). A link is the unordered pair of those IPs. The proxy
 * opens its upstream connection from the caller's IP too, so the node still sees who called.
 *
 *     node A (127.0.0.11:real) ──▶ proxy B (127.0.0.12:advertised) ──▶ node B (127.0.0.12:real)
 *
 * Faults, on links:
 * - `cut(a, b)` / `isolate(ip)`: connections already open across the link are destroyed at once
 *   (both sides see a reset); new ones are accepted and black-holed: what arrives is read and
 *   dropped, nothing is forwarded, nothing comes back, as when every packet is lost. Refusing them
 *   would tell the caller at once; a real partition only shows as time passing.
 * - `heal()`: black-holed connections are destroyed (a TCP connection that timed out during the
 *   partition) and new connections go through again.
 * - `refuse` instead of black-holing (option of `cut`/`isolate`): new connections are reset at once,
 *   as a host whose port is closed.
 * Not modelled: delay, loss or reordering inside a live connection, one-way links. The admin socket
 * (a Unix socket) is never proxied: the test can always ask a node directly, even a cut-off one.
 *
 * Because it runs in the test process, nothing in the test may block the event loop while a
 * cluster runs (no spawnSync): a stalled proxy would look like a partition to the nodes.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type CutMode = 'blackhole' | 'refuse';

interface Connection {
  readonly from: string;
  readonly to: string;
  readonly client: Socket;
  upstream: Socket | null;
  blackholed: boolean;
}

const normalize = (ip: string | undefined): string => (ip ?? '').replace(/^::ffff:/, '');
const linkKey = (a: string, b: string): string => (a < b ? `${a}|${b}` : `${b}|${a}`);

export class FaultNetwork implements AsyncDisposable {
  readonly #servers: Server[] = [];
  readonly #connections = new Set<Connection>();
  /** Cut links (unordered IP pairs) and isolated IPs, each with how new connections are treated. */
  readonly #cutLinks = new Map<string, CutMode>();
  readonly #isolated = new Map<string, CutMode>();
  /** Counters, for a test to show its faults did something. */
  readonly stats = { forwarded: 0, blackholed: 0, refused: 0, cut: 0 };

  /** Starts a proxy on `ip` (an ephemeral port) forwarding to `ip:targetPort`; returns its port. */
  async proxy(ip: string, targetPort: number): Promise<number> {
    const server = createServer((socket) => this.#accept(ip, targetPort, socket));
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, ip, () => resolve());
    });
    this.#servers.push(server);
    const address = server.address();
    if (typeof address !== 'object' || !address) throw new Error(`proxy on ${ip} has no port`);
    return address.port;
  }

  /** Cuts the link between two IPs, both ways. */
  cut(a: string, b: string, mode: CutMode = 'blackhole'): void {
    this.#cutLinks.set(linkKey(a, b), mode);
    this.#enforce();
  }

  /** Cuts every link of one IP: the node can reach no one and no one (client included) reaches it. */
  isolate(ip: string, mode: CutMode = 'blackhole'): void {
    this.#isolated.set(ip, mode);
    this.#enforce();
  }

  /** Restores every link; black-holed connections are reset, so callers reconnect. */
  heal(): void {
    this.#cutLinks.clear();
    this.#isolated.clear();
    for (const connection of [...this.#connections])
      if (connection.blackholed) this.#reset(connection);
  }

  #modeFor(from: string, to: string): CutMode | null {
    return (
      this.#cutLinks.get(linkKey(from, to)) ??
      this.#isolated.get(from) ??
      this.#isolated.get(to) ??
      null
    );
  }

  #enforce(): void {
    for (const connection of [...this.#connections]) {
      if (connection.blackholed || this.#modeFor(connection.from, connection.to) === null) continue;
      this.stats.cut++;
      this.#reset(connection);
    }
  }

  #accept(ip: string, targetPort: number, client: Socket): void {
    const connection: Connection = {
      from: normalize(client.remoteAddress),
      to: ip,
      client,
      upstream: null,
      blackholed: false,
    };
    const mode = this.#modeFor(connection.from, connection.to);
    client.on('error', () => this.#reset(connection));
    if (mode === 'refuse') {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    this.#connections.add(connection);
    // A natural close travels through the pipes (end → FIN); the proxy forgets the connection once
    // both of its sockets are closed.
    const forget = (): void => {
      if (client.destroyed && (connection.upstream === null || connection.upstream.destroyed))
        this.#connections.delete(connection);
    };
    client.on('close', forget);
    if (mode === 'blackhole') {
      this.stats.blackholed++;
      connection.blackholed = true;
      client.resume();
      return;
    }
    this.stats.forwarded++;
    // A node that is down shows to its caller as a connection accepted, then reset.
    const upstream = connect({
      host: ip,
      port: targetPort,
      ...(connection.from ? { localAddress: connection.from } : {}),
    });
    connection.upstream = upstream;
    upstream.on('error', () => this.#reset(connection));
    upstream.on('close', forget);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Both ends see a reset: a fault, an error on either side, or the end of the test. */
  #reset(connection: Connection): void {
    this.#connections.delete(connection);
    if (!connection.client.destroyed) connection.client.resetAndDestroy();
    if (connection.upstream && !connection.upstream.destroyed)
      connection.upstream.resetAndDestroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const connection of [...this.#connections]) this.#reset(connection);
    await Promise.all(
      this.#servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
    this.#servers.length = 0;
  }
}
