/** The leader's views of who holds what and of the nodes' state (holdings.ts), from a real store and fake probes. */
import { describe, expect, test } from 'bun:test';
import type { Command } from '../store/index.ts';
import { Store } from '../store/index.ts';
import { lockedFromInfo, nodeStatesView, secretHoldersView } from './holdings.ts';

const at = '2026-12-06T00:00:00.000Z';

function store(): Store {
  const s = new Store();
  let index = 0;
  const apply = (command: Command) => s.apply(++index, command);
  for (const [id, role, hostname] of [
    ['m1', 'manager', 'alpha'],
    ['m2', 'manager', 'bravo'],
    ['m3', 'manager', 'charlie'],
    ['w1', 'worker', 'aaa-worker'],
  ] as const)
    apply({ op: 'node-add', at, node: { id, role, hostname, addr: `${id}:4377` } });
  return s;
}

const info = (state: string): Uint8Array =>
  new TextEncoder().encode(JSON.stringify({ Swarm: { LocalNodeState: state } }));

describe('lockedFromInfo', () => {
  test("reads Docker's LocalNodeState: locked, active, and null for anything else", () => {
    expect(lockedFromInfo(200, info('locked'))).toBe(true);
    expect(lockedFromInfo(200, info('active'))).toBe(false);
    expect(lockedFromInfo(200, info('inactive'))).toBe(null);
    expect(lockedFromInfo(503, info('active'))).toBe(null);
    expect(lockedFromInfo(200, new TextEncoder().encode('not json'))).toBe(null);
  });
});

describe('secretHoldersView', () => {
  test('names each holder with its hostname, sorted by host then version, a task holder with its task', () => {
    expect(
      secretHoldersView(store(), [
        { nodeId: 'm2', version: 2, by: 'task', taskId: 't2' },
        { nodeId: 'm1', version: 1, by: 'grant' },
        { nodeId: 'gone', version: 1, by: 'grant' },
      ]),
    ).toEqual([
      { NodeID: 'm1', Hostname: 'alpha', Version: 1, By: 'grant' },
      { NodeID: 'm2', Hostname: 'bravo', Version: 2, By: 'task', TaskID: 't2' },
      { NodeID: 'gone', Hostname: 'gone', Version: 1, By: 'grant' },
    ]);
  });
});

describe('nodeStatesView', () => {
  test('managers first; certificate ends from sessions, its own for itself; each other manager asked whether it is locked', async () => {
    const asked: string[] = [];
    const states = await nodeStatesView(store(), {
      selfId: 'm1',
      selfNotAfterMs: Date.parse('2027-01-01T00:00:00.000Z'),
      sessions: new Map([
        ['m2', Date.parse('2027-02-01T00:00:00.000Z')],
        ['w1', undefined],
      ]),
      probeLocked: async (addr) => {
        asked.push(addr);
        return addr === 'm2:4377' ? true : null;
      },
    });
    expect(states).toEqual([
      {
        NodeID: 'm1',
        Hostname: 'alpha',
        Role: 'manager',
        Session: false,
        CertificateNotAfter: '2027-01-01T00:00:00.000Z',
        Locked: false,
      },
      {
        NodeID: 'm2',
        Hostname: 'bravo',
        Role: 'manager',
        Session: true,
        CertificateNotAfter: '2027-02-01T00:00:00.000Z',
        Locked: true,
      },
      {
        NodeID: 'm3',
        Hostname: 'charlie',
        Role: 'manager',
        Session: false,
        CertificateNotAfter: null,
        Locked: null,
      },
      {
        NodeID: 'w1',
        Hostname: 'aaa-worker',
        Role: 'worker',
        Session: true,
        CertificateNotAfter: null,
        Locked: null,
      },
    ]);
    expect(asked.sort()).toEqual(['m2:4377', 'm3:4377']);
  });
});
