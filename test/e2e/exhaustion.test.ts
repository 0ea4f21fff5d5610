/**
 * Unauthenticated exhaustion (issue 11), against the compiled executable: clients without a
 * certificate that never finish must not take the manager's memory or descriptors, nor keep
 * certified clients and the admin socket from being answered. Before the fix, 2 connections × 500
 * streams of unfinished 1.3 MB join bodies took a manager from 92 MB to 1.39 GB, and 20,000 idle
 * TLS connections used every descriptor and starved the admin socket.
 *
 * The attack clients are in test/helpers/attack-clients.ts; all of them run on loopback, from
 * addresses of their own (127.0.1.x, 127.0.2.x), and are destroyed at the end.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { join } from 'node:path';
import {
  anonymousConnectionsMax,
  anonymousConnectionLifetimeMs,
  handshakingConnectionsMax,
  joinRequestBytesMax,
  tlsHandshakeTimeoutMs,
} from '../../src/limits.ts';
import {
  AttackPool,
  closesWithin,
  footprint,
  type Target,
  type Tracked,
} from '../helpers/attack-clients.ts';
import { adminRequest } from '../helpers/cluster.ts';
import {
  Daemon,
  freePort,
  H2Client,
  readCerts,
  requireBinary,
  secretd,
  tempDir,
  type ClientCerts,
  type TempDir,
} from '../helpers/process.ts';

beforeAll(requireBinary);
setDefaultTimeout(120_000);

/** What the manager may hold during the attacks, whatever the attackers do (it starts at about 100 MB and 40 descriptors). */
const rssBytesCap = 400 * 1024 * 1024;
/** Every stalled handshake and anonymous connection it may hold, plus its own files, sockets and the probes. */
const fdsCap = handshakingConnectionsMax + anonymousConnectionsMax + 150;

/** Bodies stalled mid-way (under the join limit) or running past it (without declaring a length). */
const bodySessions = 48; // 6 addresses × 8: the per-address cap of anonymous connections, and more over the total
const bodyStreamsPerSession = 40;
/** Idle TLS connections without a certificate, and TCP connections that never start TLS. */
const idleTlsConnections = 2000;
const stalledHandshakes = handshakingConnectionsMax + 200; // past the cap: the oldest are closed to make room

describe('a manager under unauthenticated exhaustion attacks', () => {
  let dir: TempDir;
  let daemon: Daemon;
  let dataDir: string;
  let certs: ClientCerts;
  let target: Target;
  let url: string;

  beforeAll(async () => {
    dir = tempDir();
    dataDir = join(dir.path, 'manager');
    const port = await freePort();
    daemon = new Daemon(['init', '--data-dir', dataDir, '--listen-addr', `127.0.0.1:${port}`]);
    await daemon.waitFor(/serving the API on/);
    const issued = secretd([
      'ca',
      'issue-client',
      '--name',
      'probe',
      '--out',
      join(dir.path, 'certs'),
      '--data-dir',
      dataDir,
    ]);
    expect({ code: issued.code, stderr: issued.stderr }).toEqual({ code: 0, stderr: '' });
    certs = readCerts(join(dir.path, 'certs'));
    target = { host: '127.0.0.1', port, ca: certs.ca };
    url = `https://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await daemon?.kill('SIGKILL');
    dir?.[Symbol.dispose]();
  });

  test('memory and descriptors stay capped, mTLS and the admin socket keep answering, and every stalled client is closed', async () => {
    await using pool = new AttackPool();
    const pid = daemon.proc.pid!;
    const start = footprint(pid);

    // (c) Clients that never finish, on a quiet server: each must be closed by a deadline.
    const slow = pool.tls(target, { alpn: 'http/1.1', localAddress: '127.0.3.1' });
    const slowCertified = pool.tls(target, {
      alpn: 'http/1.1',
      localAddress: '127.0.3.1',
      ...certs,
    });
    const idleSession = pool.session(target, {}, '127.0.3.2');
    const bodyless = pool.session(target, {}, '127.0.3.3');
    await Promise.all([slow.ready, slowCertified.ready, idleSession.ready, bodyless.ready]);
    slow.socket.write('POST /secretd/join HTTP/1.1\r\nHost: x\r\n');
    slowCertified.socket.write('GET /secrets HTTP/1.1\r\nHost: x\r\n');
    const neverEnds = pool.stalledBody(bodyless.socket, '/secretd/join', 10);
    const slowClients: [Tracked, string][] = [
      [slow, 'anonymous HTTP/1.1 headers that never end'],
      [slowCertified, 'certified HTTP/1.1 headers that never end'],
      [idleSession, 'an idle anonymous HTTP/2 session'],
      [neverEnds, 'a join POST whose body never comes'],
      [bodyless, 'the session of that POST'],
    ];

    // The probes: a certified request over a new connection (from the attackers' own address too)
    // and a request on the admin socket, one after the other for as long as the attack runs.
    const probes: { what: string; status: number | string }[] = [];
    let attacking = true;
    const probing = (async () => {
      for (let round = 0; attacking || round < 3; round++) {
        const localAddress = round % 2 === 0 ? '127.0.0.1' : '127.0.1.1';
        using client = new H2Client(url, certs, { localAddress });
        const tls = await client.request('GET', '/secrets', undefined, { timeoutMs: 10_000 }).then(
          (r) => r.status,
          (e: Error) => e.message,
        );
        probes.push({ what: `mTLS from ${localAddress}`, status: tls });
        const admin = await adminRequest(dataDir, 'GET', '/info', undefined, 10_000).then(
          (r) => r.status,
          (e: Error) => e.message,
        );
        probes.push({ what: 'admin socket', status: admin });
        await new Promise((resolve) => setTimeout(resolve, 50)); // a steady pace, not a wait for anything
      }
    })();

    const bodyStatuses = new Map<number, number>();
    let peak = start;
    const sampler = setInterval(() => {
      const now = footprint(pid);
      peak = { rssBytes: Math.max(peak.rssBytes, now.rssBytes), fds: Math.max(peak.fds, now.fds) };
    }, 50);

    try {
      // (a) Many connections × many streams of join bodies: half run past the limit without
      // declaring a length (256 KiB each, 32 times the limit), half stall just under it.
      const large = Buffer.alloc(32 * joinRequestBytesMax, 0x7b);
      const bodies: Promise<void>[] = [];
      const bodyConnections: Promise<void>[] = [];
      for (let i = 0; i < bodySessions; i++) {
        const session = pool.session(target, {}, `127.0.1.${1 + (i % 6)}`);
        // As a careful attacker would: streams opened once the server's settings are known, so that
        // the client keeps as many open as the server allows, not more (those would be refused).
        const settled = new Promise<void>((resolve) =>
          session.socket.on(
            'remoteSettings',
            (settings) =>
              settings.maxConcurrentStreams !== undefined &&
              settings.maxConcurrentStreams < 1000 &&
              resolve(),
          ),
        );
        bodyConnections.push(Promise.race([settled, session.closed]));
        void settled.then(() => {
          for (let j = 0; j < bodyStreamsPerSession; j++) {
            const stream = pool.stalledBody(session.socket, '/secretd/join', 0);
            if (j % 2 === 0) stream.stream.write(large);
            else stream.stream.write(Buffer.alloc(joinRequestBytesMax - 1024, 0x7b));
            bodies.push(
              stream.status.then(
                (status) => void bodyStatuses.set(status, (bodyStatuses.get(status) ?? 0) + 1),
              ),
            );
          }
        });
      }
      // Connected before (b) takes every anonymous place: their streams run while (b) goes on.
      await Promise.allSettled(bodyConnections);

      // (b) Thousands of idle TLS connections without a certificate, and stalled handshakes.
      const idle: Tracked[] = [];
      for (let i = 0; i < idleTlsConnections; i += 100) {
        const batch = Array.from({ length: 100 }, (_, k) =>
          pool.tls(target, { localAddress: `127.0.2.${1 + ((i + k) % 40)}` }),
        );
        idle.push(...batch);
        await Promise.allSettled(batch.map((c) => c.ready));
      }
      for (let i = 0; i < stalledHandshakes; i += 100) {
        const batch = Array.from({ length: 100 }, (_, k) =>
          pool.stalledHandshake(target, `127.0.4.${1 + ((i + k) % 40)}`),
        );
        idle.push(...batch);
        await Promise.allSettled(batch.map((c) => c.ready));
      }

      // Every stalled client is closed by the server: nothing here is closed by the client.
      for (const [tracked, what] of slowClients)
        await closesWithin(tracked, anonymousConnectionLifetimeMs + 10_000, what);
      expect(await neverEnds.status).toBe(400);
      await Promise.all(
        idle.map((c, i) =>
          closesWithin(
            c,
            anonymousConnectionLifetimeMs + tlsHandshakeTimeoutMs + 10_000,
            `idle connection ${i}`,
          ),
        ),
      );
      await Promise.all(bodies);
      // Past the limit: 413 (or refused outright: over the anonymous budget); stalled: 400 once idle, or 503 with no room.
      expect(
        [...bodyStatuses.keys()].filter((status) => ![0, 400, 413, 503].includes(status)),
      ).toEqual([]);
      expect(bodyStatuses.get(413) ?? 0).toBeGreaterThan(0);
    } finally {
      attacking = false;
      await probing;
      clearInterval(sampler);
    }

    expect(probes.length).toBeGreaterThanOrEqual(6);
    expect(probes.filter((p) => p.status !== 200)).toEqual([]);
    const report = `manager RSS ${mib(start.rssBytes)} → peak ${mib(peak.rssBytes)} (cap ${mib(rssBytesCap)}); descriptors ${start.fds} → peak ${peak.fds} (cap ${fdsCap}); join answers ${JSON.stringify(Object.fromEntries(bodyStatuses))}`;
    console.log(`exhaustion: ${report}; ${probes.length} probes answered`);
    expect({ rss: peak.rssBytes < rssBytesCap, fds: peak.fds < fdsCap, report }).toEqual({
      rss: true,
      fds: true,
      report,
    });
    expect(daemon.stderr).not.toContain('internal error');
  });
});

function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 / 1024)} MiB`;
}
