import { beforeAll, describe, expect, test } from 'bun:test';
import {
  createKeyAndCSR,
  createRootCA,
  issueCertificate,
  parseIdentity,
  type RootCA,
} from '../../crypto/index.ts';
import type { PeerResponse } from '../peers/peer-client.ts';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import { CertRenewer, type RenewedPair } from './renewer.ts';

const start = Date.parse('2026-03-01T12:00:00Z');
const lowest = (n: number) => new Uint8Array(n); // the window's first point: 50%
let ca: RootCA;
let first: string;

async function certFor(csrPem: string, at: number, options: { nodeId?: string } = {}) {
  return issueCertificate(ca, csrPem, {
    nodeId: options.nodeId ?? 'node1',
    role: 'worker',
    clusterId: 'cluster1',
    now: new Date(at),
    lifetimeMs: 60_000,
    serial: crypto.getRandomValues(new Uint8Array(16)),
  });
}

beforeAll(async () => {
  ca = await createRootCA({ now: new Date(start - 86_400_000) });
  first = await certFor((await createKeyAndCSR()).csrPem, start);
});

/** A renewer on a hand-driven clock; `answer` plays the managers. */
function harness(answer: (addr: string, csrPem: string, at: number) => Promise<PeerResponse>) {
  const timers = new ManualTimers();
  const now = () => new Date(start + timers.time);
  const asked: string[] = [];
  const persisted: RenewedPair[] = [];
  const applied: RenewedPair[] = [];
  const logs: string[] = [];
  let current = first;
  const renewer = new CertRenewer({
    nodeId: 'node1',
    clusterId: 'cluster1',
    caPem: () => ca.certPem,
    certificate: () => current,
    managers: () => ['m1:4377', 'm2:4377'],
    peers: {
      request: async (addr, _method, _path, body) => {
        asked.push(addr);
        const csr = JSON.parse(new TextDecoder().decode(body!)).CSR as string;
        return answer(addr, csr, now().getTime());
      },
    },
    timers,
    now,
    random: lowest,
    persist: async (pair) => void persisted.push(pair),
    apply: (pair) => {
      applied.push(pair);
      current = pair.certPem;
    },
    log: (line) => logs.push(line),
  });
  return { timers, renewer, asked, persisted, applied, logs, current: () => current };
}

const ok = async (csr: string, at: number): Promise<PeerResponse> => ({
  status: 200,
  body: new TextEncoder().encode(JSON.stringify({ Certificate: await certFor(csr, at) })),
});
const status = (code: number, message: string): PeerResponse => ({
  status: code,
  body: new TextEncoder().encode(JSON.stringify({ message })),
});

describe('CertRenewer', () => {
  test('renews at its drawn point of the validity, writes the pair before using it, then schedules from the new certificate', async () => {
    const h = harness((_addr, csr, at) => ok(csr, at));
    h.renewer.start();
    h.timers.advance(29_999);
    await h.renewer.settled;
    expect(h.asked).toEqual([]);
    h.timers.advance(1);
    await h.renewer.settled;
    expect(h.asked).toEqual(['m1:4377']);
    expect(h.persisted).toHaveLength(1);
    expect(h.applied.map((p) => p.certPem)).toEqual(h.persisted.map((p) => p.certPem));
    const renewed = parseIdentity(h.current());
    expect(renewed.serialHex).not.toBe(parseIdentity(first).serialHex);
    expect(renewed.notAfter.getTime()).toBe(start + 30_000 + 60_000);
    // The next one: half of the new certificate's validity after its issue.
    expect(h.timers.pendingAfters()).toEqual([30_000]);
    h.renewer.stop();
  });

  test('backs off 5 s, 10 s, 20 s while no manager answers, asking each manager every time', async () => {
    const h = harness(async () => {
      throw new Error('connection refused');
    });
    h.renewer.renewNow('test');
    await h.renewer.settled;
    expect(h.asked).toEqual(['m1:4377', 'm2:4377']);
    expect(h.timers.pendingAfters()).toEqual([5000]);
    h.timers.advance(5000);
    await h.renewer.settled;
    expect(h.timers.pendingAfters()).toEqual([10_000]);
    h.timers.advance(10_000);
    await h.renewer.settled;
    expect(h.timers.pendingAfters()).toEqual([20_000]);
    expect(h.renewer.failures).toBe(3);
    expect(h.persisted).toEqual([]);
    expect(h.logs[0]).toContain('certificate renewal failed (test)');
    h.renewer.stop();
  });

  test('a refusal (403) ends the attempt without asking the other managers, and nothing is written', async () => {
    const h = harness(async () => status(403, 'Permission denied: node node1 was removed'));
    h.renewer.renewNow('test');
    await h.renewer.settled;
    expect(h.asked).toEqual(['m1:4377']);
    expect(h.persisted).toEqual([]);
    expect(h.current()).toBe(first);
    expect(h.logs[0]).toContain('node node1 was removed');
    h.renewer.stop();
  });

  test('an unavailable manager (503) is skipped for the next one', async () => {
    const h = harness(async (addr, csr, at) =>
      addr === 'm1:4377' ? status(503, 'no leader') : ok(csr, at),
    );
    h.renewer.renewNow('test');
    await h.renewer.settled;
    expect(h.asked).toEqual(['m1:4377', 'm2:4377']);
    expect(h.persisted).toHaveLength(1);
    h.renewer.stop();
  });

  test('refuses an answer for another key or another node, and keeps the certificate it has', async () => {
    for (const [wrong, why] of [
      [
        async (_c: string, at: number) => certFor((await createKeyAndCSR()).csrPem, at),
        "not for this node's new key",
      ],
      [(c: string, at: number) => certFor(c, at, { nodeId: 'node2' }), 'names node node2'],
    ] as const) {
      const h = harness(async (_addr, csr, at) => ({
        status: 200,
        body: new TextEncoder().encode(JSON.stringify({ Certificate: await wrong(csr, at) })),
      }));
      h.renewer.renewNow('test');
      await h.renewer.settled;
      expect(h.persisted).toEqual([]);
      expect(h.current()).toBe(first);
      expect(h.logs[0]).toContain(why);
      h.renewer.stop();
    }
  });

  test('renewNow during an attempt runs one more attempt after it', async () => {
    const h = harness((_addr, csr, at) => ok(csr, at));
    h.renewer.renewNow('first');
    h.renewer.renewNow('role changed');
    await h.renewer.settled;
    await h.renewer.settled;
    expect(h.persisted).toHaveLength(2);
    expect(h.logs.at(-1)).toContain('(role changed)');
    h.renewer.stop();
  });
});
