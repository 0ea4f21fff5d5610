import { describe, expect, test } from 'bun:test';
import { SecretdError } from '../../errors.ts';
import { auditDenialWindowMs, auditDenialsPerWindow, auditFlushMs } from '../../limits.ts';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import {
  auditContext,
  auditRequest,
  AuditRecorder,
  type AuditAppendCommand,
  type AuditEntry,
  type AuditSink,
} from './index.ts';

function recorderWith(propose: (command: AuditAppendCommand) => Promise<unknown>) {
  const timers = new ManualTimers();
  const recorder = new AuditRecorder({
    propose,
    timers,
    now: () => new Date(Date.UTC(2026, 11, 1) + timers.now()).toISOString(),
    random: (n) => new Uint8Array(n).fill(7),
    log: () => {},
  });
  return { timers, recorder };
}

const denial = (name: string): AuditEntry => ({
  at: '2026-12-01T00:00:00.000Z',
  actor: { kind: 'client', name, serial: 'ab', role: 'reader' },
  source: '10.0.0.9:4000',
  action: 'denied',
  result: 'denied',
});

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('AuditRecorder', () => {
  test('a flood of denials from one identity becomes its first records and one summary per window', async () => {
    const proposed: AuditAppendCommand[] = [];
    const { timers, recorder } = recorderWith(async (c) => void proposed.push(c));
    for (let i = 0; i < 1214; i++) recorder.denied(denial('x'));
    recorder.denied(denial('y'));
    timers.advance(auditDenialWindowMs);
    await settle();
    await recorder.flush();
    const records = proposed.flatMap((c) => c.records);
    expect(records.filter((r) => r.actor.name === 'x' && r.action === 'denied')).toHaveLength(
      auditDenialsPerWindow,
    );
    expect(records.filter((r) => r.actor.name === 'y')).toHaveLength(1);
    const summaries = records.filter((r) => r.action === 'denied-summary');
    expect(summaries).toEqual([
      {
        at: expect.any(String),
        actor: denial('x').actor,
        source: '10.0.0.9:4000',
        action: 'denied-summary',
        count: 1214 - auditDenialsPerWindow,
        detail: `${1214 - auditDenialsPerWindow} more denials from CN x in 10 s`,
        result: 'denied',
      },
    ]);
  });

  test('queued records go as one audit-append entry after auditFlushMs', async () => {
    const proposed: AuditAppendCommand[] = [];
    const { timers, recorder } = recorderWith(async (c) => void proposed.push(c));
    recorder.record(denial('a'));
    recorder.record(denial('b'));
    expect(proposed).toHaveLength(0);
    timers.advance(auditFlushMs);
    await settle();
    expect(proposed.map((c) => [c.op, c.records.length])).toEqual([['audit-append', 2]]);
  });

  test('records wait while the manager cannot propose (locked) and go once it can, in order', async () => {
    let locked = true;
    const proposed: AuditAppendCommand[] = [];
    const { timers, recorder } = recorderWith(async (c) => {
      if (locked) throw new SecretdError('locked', 'This manager is locked');
      proposed.push(c);
    });
    recorder.record({ ...denial('a'), action: 'unlock', result: 'invalid' });
    timers.advance(auditFlushMs);
    await settle();
    expect(recorder.pending).toBe(1);
    locked = false;
    recorder.record({ ...denial('a'), action: 'unlock', result: 'ok' });
    timers.advance(auditFlushMs * 4);
    await settle();
    expect(proposed.flatMap((c) => c.records.map((r) => r.result))).toEqual(['invalid', 'ok']);
    expect(recorder.pending).toBe(0);
  });
});

describe('auditRequest()', () => {
  function sink(): AuditSink & { records: AuditEntry[]; denials: AuditEntry[] } {
    const records: AuditEntry[] = [];
    const denials: AuditEntry[] = [];
    return {
      records,
      denials,
      record: (e) => records.push(e),
      denied: (e) => denials.push(e),
      requestId: () => 'rid',
      now: () => '2026-12-01T00:00:00.000Z',
      socketUid: 0,
    };
  }
  const client = { role: 'writer', nodeId: 'ci', name: 'ci', serial: 'ab', via: 'tls' as const };
  const request = (
    method: string,
    path: string,
    identity: typeof client | { role: string; nodeId: string; via: 'tls' | 'socket' } = client,
  ) => ({
    identity,
    method,
    path,
    source: () => '10.0.0.7:5000',
  });

  test('a forbidden request is a denied record naming the actor and the route', async () => {
    const s = sink();
    const refusal = new SecretdError(
      'forbidden',
      'Permission denied: role writer may not create secret db_x',
    );
    await expect(
      auditRequest(s, request('POST', '/secrets/create'), async () => {
        throw refusal;
      }),
    ).rejects.toBe(refusal);
    expect(s.denials).toEqual([
      {
        at: '2026-12-01T00:00:00.000Z',
        actor: { kind: 'client', name: 'ci', serial: 'ab', role: 'writer' },
        source: '10.0.0.7:5000',
        action: 'POST /secrets/create',
        detail: refusal.message,
        result: 'denied',
        requestId: 'rid',
      },
    ]);
  });

  test('a request that proposed records nothing itself; one that changed nothing records its outcome', async () => {
    const s = sink();
    await auditRequest(s, request('POST', '/secrets/create'), async () => {
      auditContext.current()!.proposed = true;
    });
    await auditRequest(s, request('GET', '/secrets'), async () => {});
    await auditRequest(s, request('POST', '/secretd/exec'), async () => {
      auditContext.current()!.object = { id: 'task1' };
    });
    await auditRequest(
      s,
      request('POST', '/swarm/unlock', { role: 'admin', nodeId: 'local', via: 'socket' }),
      async () => {
        throw new SecretdError('invalid', 'Invalid unlock key');
      },
    ).catch(() => {});
    expect(s.records.map((r) => [r.action, r.object, r.result, r.source, r.actor.kind])).toEqual([
      ['exec', { id: 'task1' }, 'ok', '10.0.0.7:5000', 'client'],
      ['unlock', undefined, 'invalid', 'admin-socket', 'admin-socket'],
    ]);
    expect(s.records[1]!.actor).toEqual({
      kind: 'admin-socket',
      name: 'admin-socket',
      role: 'admin',
      uid: 0,
    });
  });

  test('requests between nodes are not recorded unless refused', async () => {
    const s = sink();
    const node = { role: 'manager', nodeId: 'm2', via: 'tls' as const };
    await auditRequest(s, request('POST', '/secretd/propose', node), async () => {});
    await auditRequest(s, request('POST', '/secretd/propose', node), async () => {
      throw new SecretdError('invalid', 'Invalid command');
    }).catch(() => {});
    expect(s.records).toEqual([]);
  });

  test("a manager's forwarded call is recorded under the original actor; a tag from anyone else is ignored", async () => {
    const s = sink();
    const tag = JSON.stringify({
      actor: { kind: 'client', name: 'ops', serial: 'cd', role: 'operator' },
      source: '10.0.0.8:6000',
      requestId: 'r9',
    });
    const forwardedBy = (identity: { role: string; nodeId: string; via: 'tls' }) => ({
      ...request('DELETE', '/secretd/internal/nodes/n3', identity),
      forwarded: () => tag,
    });
    await auditRequest(s, forwardedBy({ role: 'manager', nodeId: 'm2', via: 'tls' }), async () => {
      throw new SecretdError('conflict', 'Cannot remove node n3: it is a manager');
    }).catch(() => {});
    await auditRequest(s, forwardedBy({ role: 'worker', nodeId: 'w1', via: 'tls' }), async () => {
      throw new SecretdError('conflict', 'no');
    }).catch(() => {});
    expect(s.records.map((r) => [r.actor.name, r.source, r.result, r.requestId])).toEqual([
      ['ops', '10.0.0.8:6000', 'conflict', 'r9'],
    ]);
  });
});
