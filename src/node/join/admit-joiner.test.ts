/**
 * What a joiner's certificate may name: nothing the joiner chose. A worker's names its role and
 * id only; a manager's adds loopback names and its address only when the join came from it.
 */
import 'reflect-metadata';
import { describe, expect, test } from 'bun:test';
import { X509Certificate, SubjectAlternativeNameExtension } from '@peculiar/x509';
import { createKeyAndCSR, parseIdentity } from '../../crypto/index.ts';
import { systemRandom } from '../../io/system.ts';
import { freshClusterRecord } from '../../../test/helpers/cluster-record.ts';
import { issueJoin, type JoinRequest } from './admit-joiner.ts';

const cluster = await freshClusterRecord();

async function join(overrides: Partial<JoinRequest>) {
  const { csrPem } = await createKeyAndCSR();
  const request: JoinRequest = {
    token: cluster.joinTokens.worker,
    csrPem,
    addr: '10.0.0.5:4377',
    hostname: 'node-5',
    resources: null,
    observedIp: '10.0.0.5',
    ...overrides,
  };
  const issued = await issueJoin(cluster, request, {
    random: systemRandom,
    now: new Date(),
    idTaken: () => false,
  });
  const sans = new X509Certificate(issued.certPem)
    .getExtension(SubjectAlternativeNameExtension)!
    .names.toJSON()
    .map((n) => `${n.type}:${n.value}`);
  return { issued, sans };
}

const loopback = ['dns:localhost', 'ip:127.0.0.1', 'ip:::1'];

describe('issueJoin', () => {
  test('issueJoin() gives a worker that claims a manager name or a loopback address only its role and id', async () => {
    for (const addr of ['secretd-manager:4377', '127.0.0.1:4377', 'localhost:4377', '[::1]:4377']) {
      const { issued, sans } = await join({ addr, observedIp: '127.0.0.1' });
      expect(parseIdentity(issued.certPem)).toMatchObject({
        role: 'worker',
        nodeId: issued.nodeId,
        clusterId: cluster.id,
      });
      expect(sans).toEqual(['dns:secretd-worker', `dns:${issued.nodeId}`]);
    }
  });

  test("issueJoin() gives a worker none of its own address, nor the issuing manager's host name", async () => {
    const { issued, sans } = await join({});
    expect(sans).toEqual(['dns:secretd-worker', `dns:${issued.nodeId}`]);
    expect(issued.addr).toBe('10.0.0.5:4377');
  });

  test('issueJoin() names a manager by its address when the join came from that address', async () => {
    const { issued, sans } = await join({ token: cluster.joinTokens.manager });
    expect(parseIdentity(issued.certPem).role).toBe('manager');
    expect(sans).toEqual([
      'dns:secretd-manager',
      `dns:${issued.nodeId}`,
      ...loopback,
      'ip:10.0.0.5',
    ]);
  });

  test('issueJoin() leaves out a manager address the join did not come from, and any host name', async () => {
    for (const [addr, observedIp] of [
      ['10.0.0.5:4377', '10.0.0.9'],
      ['10.0.0.5:4377', null],
      ['mgr.example.com:4377', '10.0.0.5'],
      ['secretd-manager:4377', '10.0.0.5'],
    ] as const) {
      const { issued, sans } = await join({ token: cluster.joinTokens.manager, addr, observedIp });
      expect(sans).toEqual(['dns:secretd-manager', `dns:${issued.nodeId}`, ...loopback]);
      expect(issued.addr).toBe(addr);
    }
  });

  test('issueJoin() takes the address a manager joined from for a wildcard advertise address, IPv4-mapped or IPv6', async () => {
    const mapped = await join({
      token: cluster.joinTokens.manager,
      addr: '0.0.0.0:4377',
      observedIp: '::ffff:10.0.0.7',
    });
    expect([mapped.issued.addr, mapped.sans.at(-1)]).toEqual(['10.0.0.7:4377', 'ip:10.0.0.7']);
    const v6 = await join({
      token: cluster.joinTokens.manager,
      addr: '[fd00:0::7]:4377',
      observedIp: 'fd00::7',
    });
    expect([v6.issued.addr, v6.sans.at(-1)]).toEqual(['[fd00:0::7]:4377', 'ip:fd00::7']);
  });
});
