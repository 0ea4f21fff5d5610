/**
 * Between managers: writes forwarded to the leader, and the node operations and exec that only the
 * leader can do, forwarded by another manager (manager certificates only); the Raft status, which
 * admins read too. The Raft stream itself is in stream-routes.ts, the join routes in join.ts, and
 * every path here is one of peers/paths.ts's, which the calling side uses too.
 */
import { Hono } from 'hono';
import { peerPaths } from '../../peers/index.ts';
import { parseCommand } from '../../store/index.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend, NodeUpdate } from '../backend.ts';
import { parseBoolParam, readExecRequest, readJsonObject } from '../request.ts';

export function peerRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();

  api.get(peerPaths.raftStatus, allow(`GET ${peerPaths.raftStatus}`), (c) =>
    c.json(backend.raftStatus()),
  );

  api.post(peerPaths.propose, allow(`POST ${peerPaths.propose}`), async (c) => {
    const body = await readJsonObject(c, 'forwarded write', ['Command']);
    // The schema every command meets (the store checks it again before applying): a malformed one is a 400, never a log entry.
    const command = parseCommand(body.Command);
    try {
      return c.json(await backend.proposeForwarded(command));
    } finally {
      // A secret's value, decoded from the base64 of the wire: the log entry holds its own copy by
      // now (proposing encodes it at once). Zeroed, best effort under a GC.
      if ('data' in command) command.data.fill(0);
    }
  });

  api.post(peerPaths.internalExec, allow(`POST ${peerPaths.internalExec}`), async (c) => {
    const { task, cmd } = readExecRequest(await readJsonObject(c, 'exec request', ['Task', 'Cmd']));
    return c.json(await backend.exec(task, cmd));
  });

  api.get(peerPaths.internalNodes, allow(`GET ${peerPaths.internalNodes}`), async (c) =>
    c.json(await backend.listNodes()),
  );

  api.get(
    `${peerPaths.internalNodes}/:id`,
    allow(`GET ${peerPaths.internalNodes}/:id`),
    async (c) => c.json(await backend.getNode(c.req.param('id'))),
  );

  api.post(
    `${peerPaths.internalNodes}/:id/update`,
    allow(`POST ${peerPaths.internalNodes}/:id/update`),
    async (c) => {
      const body = await readJsonObject(c, 'node update', ['ExpectedIndex', 'Update']);
      await backend.updateNode(
        c.req.param('id'),
        Number(body.ExpectedIndex),
        body.Update as NodeUpdate,
      );
      return c.json(null);
    },
  );

  api.delete(
    `${peerPaths.internalNodes}/:id`,
    allow(`DELETE ${peerPaths.internalNodes}/:id`),
    async (c) => {
      await backend.removeNode(c.req.param('id'), parseBoolParam(c.req.query('force')));
      return c.json(null);
    },
  );

  return api;
}
