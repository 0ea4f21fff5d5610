/** The forwarded-write route through `app.request()` against a real manager (real sealed WAL, real Raft core). */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { callApp, type AppAnswer } from '../../../../test/helpers/app-request.ts';
import { startTestManager, type TestManager } from '../../../../test/helpers/manager.ts';
import { createApp } from '../app.ts';
import type { Identity } from '../backend.ts';

const at = '2026-11-28T00:00:00.000Z';
const b64 = (text: string): string => Buffer.from(text).toString('base64');

let tm: TestManager;
let app: ReturnType<typeof createApp>;

beforeAll(async () => {
  tm = await startTestManager();
  const self = tm.manager.state.nodeId;
  // Another manager's certificate, as forwarding managers present.
  const manager: Identity = { role: 'manager', nodeId: self, via: 'tls', speaksRaft: true };
  app = createApp({ backend: tm.manager, version: 'test', identify: () => manager });
});
afterAll(async () => {
  await tm[Symbol.asyncDispose]();
});

const forward = (command: unknown): Promise<AppAnswer> =>
  callApp(app, 'POST', '/secretd/raft/propose', { Command: command });

describe('POST /secretd/raft/propose', () => {
  test('a poison command (secret-remove with ids null) gets 400 and the manager keeps serving, across a restart too', async () => {
    const created = await forward({
      op: 'secret-create',
      at,
      id: 'a'.repeat(25),
      name: 'kept',
      labels: {},
      data: b64('value'),
    });
    expect({ status: created.status, json: created.json }).toEqual({
      status: 200,
      json: { ok: true, id: 'a'.repeat(25) },
    });

    const poison = await forward({ op: 'secret-remove', at, ids: null });
    expect({ status: poison.status, json: poison.json }).toEqual({
      status: 400,
      json: { message: 'Invalid command: ids must be a list' },
    });

    const removed = await forward({ op: 'secret-remove', at, ids: ['nope'] });
    expect({ status: removed.status, json: removed.json }).toEqual({
      status: 200,
      json: { ok: false, code: 'not_found', message: 'Secret nope not found' },
    });
    await tm.restart();
    expect((await tm.manager.listSecrets()).map((s) => s.name)).toEqual(['kept']);
  });

  test('every malformed shape is a 400 naming the field, and nothing reaches the log', async () => {
    const before = tm.manager.raftStatus() as { lastIndex: number };
    expect(before.lastIndex).toBeGreaterThan(0);
    const cases: ReadonlyArray<readonly [unknown, string]> = [
      [null, 'Invalid command: command must be an object'],
      [{ op: 'tasks-put', at, tasks: [null] }, 'Invalid command: tasks[0] must be an object'],
      [
        {
          op: 'task-status',
          at,
          nodeId: 'n',
          updates: [
            {
              id: 't',
              state: 'running',
              message: '',
              error: '',
              exitCode: null,
              secretVersions: { s: 'x' },
            },
          ],
        },
        'Invalid command: updates[0].secretVersions["s"] must be a whole number, 0 or more',
      ],
      [
        { op: 'secret-create', at, id: 'b'.repeat(25), name: 'x', labels: {}, data: 'not base64!' },
        'Invalid command: data must be base64',
      ],
      [
        { op: 'node-update', at, id: 'n', expectedIndex: null, role: 'root' },
        'Invalid command: role must be one of manager, worker, admin',
      ],
      [{ op: 'wipe', at }, 'Invalid command: unknown op "wipe"'],
    ];
    for (const [command, message] of cases) {
      const answer = await forward(command);
      expect({ status: answer.status, json: answer.json }).toEqual({
        status: 400,
        json: { message },
      });
    }
    expect((tm.manager.raftStatus() as { lastIndex: number }).lastIndex).toBe(before.lastIndex);
  });
});

describe('POST /secretd/internal/exec', () => {
  test('a forwarded exec with a missing task or a command that is not a list of strings is a 400, as on the admin route', async () => {
    const cases: ReadonlyArray<readonly [unknown, string]> = [
      [{ Cmd: ['true'] }, 'Invalid exec request: Task must be provided'],
      [{ Task: 't', Cmd: null }, 'Invalid exec request: Cmd must be a non-empty list of strings'],
      [{ Task: 't', Cmd: [] }, 'Invalid exec request: Cmd must be a non-empty list of strings'],
      [
        { Task: 't', Cmd: ['sh', 1] },
        'Invalid exec request: Cmd must be a non-empty list of strings',
      ],
    ];
    for (const [body, message] of cases) {
      const answer = await callApp(app, 'POST', '/secretd/internal/exec', body);
      expect({ status: answer.status, json: answer.json }).toEqual({
        status: 400,
        json: { message },
      });
    }
  });
});
