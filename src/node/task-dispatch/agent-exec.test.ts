/**
 * The agent's end of exec: the dispatcher sends an unanswered exec again on each new session of
 * the node (its first session may have ended with the message in flight), so the agent runs an id
 * once, however many sessions bring it. The link is a stand-in that brings each session's lines;
 * the exec itself is refused (no such task here), which the agent answers like any result.
 */
import { describe, expect, test } from 'bun:test';
import { systemTimers, type Timers } from '../../io/timers.ts';
import { ManualTimers } from '../../../test/helpers/manual-timers.ts';
import type { Executor } from '../executor/index.ts';
import type { LineHandlers, PeerLink } from '../peers/index.ts';
import { tempDir } from '../../../test/helpers/process.ts';
import { until } from '../../../test/helpers/cluster.ts';
import { Agent } from './agent.ts';
import { execResultPath, type SessionMessage } from './messages.ts';

/** A link to the managers whose sessions `openLines` opens; requests answer 204 and are kept. */
function linkOpening(openLines: PeerLink['openLines']) {
  const posted: Array<{ path: string; body: unknown }> = [];
  const link: PeerLink = {
    request: async (_addr, _method, path, body) => {
      posted.push({ path, body: body ? JSON.parse(new TextDecoder().decode(body)) : null });
      return { status: 204, body: new Uint8Array() };
    },
    openLines,
    openStream: () => {
      throw new Error('no Raft here');
    },
    retired: () => false,
    reset: () => {},
    setTls: () => {},
    closeAll: () => {},
  };
  return { link, posted };
}

/** A link whose every session brings `lines` and then ends; it records what the agent posts. */
function sessionsBringing(lines: readonly SessionMessage[]) {
  let sessions = 0;
  const { link, posted } = linkOpening(async (_addr, _path, handlers) => {
    sessions++;
    queueMicrotask(() => {
      for (const line of lines) handlers.onLine(JSON.stringify(line));
      setTimeout(() => handlers.onEnd(null), 10);
    });
    return { status: 200, body: '', close: () => {} };
  });
  return { link, posted, sessions: () => sessions };
}

/** An agent of node n1 on `link`, with an executor that runs no task. */
function agentOn(link: PeerLink, runDir: string, timers: Timers): Agent {
  return new Agent({
    nodeId: 'n1',
    managers: () => ['127.0.0.1:1'],
    peers: link,
    executor: {
      runDir,
      onExit: () => {},
      sweep: async () => [],
      reconcile: async () => {},
    } as unknown as Executor,
    timers,
    log: () => {},
  });
}

describe('Agent exec', () => {
  test('an exec brought again by a later session runs once, and is answered once', async () => {
    using dir = tempDir('secretd-agent-exec-');
    const exec: SessionMessage = { type: 'exec', id: 'e'.repeat(25), taskId: 't1', argv: ['true'] };
    const other: SessionMessage = {
      type: 'exec',
      id: 'f'.repeat(25),
      taskId: 't1',
      argv: ['true'],
    };
    const { link, posted, sessions } = sessionsBringing([exec, exec, other]);
    const agent = agentOn(link, dir.path, systemTimers);
    agent.start();
    try {
      await until('three sessions', 10_000, () => (sessions() >= 3 ? true : undefined));
    } finally {
      await agent.stop();
    }
    const answers = posted.filter((p) => p.path === execResultPath);
    expect(answers.map((a) => (a.body as { Id: string }).Id)).toEqual([exec.id, other.id]);
    expect(answers[0]!.body).toMatchObject({ Id: exec.id, code: 126 });
  });
});

describe('Agent session', () => {
  test('a session whose connection is retired (a renewal, the GOAWAY of a manager) is closed and the next opens at once; one that ends waits its pause', async () => {
    using dir = tempDir('secretd-agent-session-');
    const timers = new ManualTimers();
    const opened: Array<{ closed: boolean; handlers: LineHandlers }> = [];
    const { link } = linkOpening(async (_addr, _path, handlers) => {
      const session = { closed: false, handlers };
      opened.push(session);
      return {
        status: 200,
        body: '',
        close: () => {
          session.closed = true;
          queueMicrotask(() => handlers.onEnd(null));
        },
      };
    });
    const agent = agentOn(link, dir.path, timers);
    agent.start();
    try {
      await until('the first session', 10_000, () => (opened.length === 1 ? true : undefined));
      opened[0]!.handlers.onRetired!();
      await until('the second session, with no time passed', 10_000, () =>
        opened.length === 2 ? true : undefined,
      );
      expect({ closed: opened.map((o) => o.closed), time: timers.time }).toEqual({
        closed: [true, false],
        time: 0,
      });
      // A session that just ends: the next waits the loop's pause (100 ms after a served one).
      opened[1]!.handlers.onEnd(null);
      await new Promise((resolve) => setImmediate(resolve));
      expect(opened.length).toBe(2);
      timers.advance(100);
      await until('the third session, after the pause', 10_000, () =>
        opened.length === 3 ? true : undefined,
      );
    } finally {
      const stopping = agent.stop();
      timers.advance(2000);
      await stopping;
    }
  });
});
