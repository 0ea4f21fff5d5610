/**
 * Who holds what now, and each node's certificate and lock state: reads for operators (the
 * console), answered by the leader, whose dispatcher holds every node's session. Metadata only.
 *
 *   GET /secretd/secrets/{id}/holders → [{NodeID, Hostname, Version, By: "task"|"grant", TaskID?}]
 *       what the leader's dispatcher sent over the open sessions: a version per task and per grant
 *       (containers of other engines use a node's grant copy, node-local: not reported here);
 *   GET /secretd/nodes/state → [{NodeID, Hostname, Role, Session, CertificateNotAfter, Locked}]
 *       the certificate each node's session presented (the answering leader's own from its
 *       certificate; null: unknown), and each manager's lock state as its `/info` answered (null: a
 *       worker, or a manager that did not answer). Docker's `GET /nodes` stays Docker's shape.
 *
 * Another manager forwards both to the leader's internal routes, as it does node reads.
 */
import { Hono } from 'hono';
import { SecretdError } from '../../../errors.ts';
import { allow, type AppEnv } from '../_gate.ts';
import type { Backend } from '../backend.ts';

export const holdingsPaths = {
  holders: '/secretd/secrets/:id/holders',
  nodeStates: '/secretd/nodes/state',
  /** The leader's end, for another manager: `${internalHolders}/{id}`. */
  internalHolders: '/secretd/internal/holders',
  internalNodeStates: '/secretd/internal/node-states',
} as const;

export interface SecretHolderView {
  readonly NodeID: string;
  readonly Hostname: string;
  readonly Version: number;
  readonly By: 'task' | 'grant';
  /** The task holding it (By: task). */
  readonly TaskID?: string;
}

export interface NodeStateView {
  readonly NodeID: string;
  readonly Hostname: string;
  readonly Role: string;
  /** The node holds a dispatcher session with the leader now. */
  readonly Session: boolean;
  /** When its certificate ends (ISO 8601); null: unknown (no session, and not the leader itself). */
  readonly CertificateNotAfter: string | null;
  /** A manager's lock state as it answered; null: a worker, or a manager that did not answer. */
  readonly Locked: boolean | null;
}

export function holdingsRoutes(backend: Backend): Hono<AppEnv> {
  const api = new Hono<AppEnv>();
  const { holders, nodeStates, internalHolders, internalNodeStates } = holdingsPaths;

  api.get(holders, allow(`GET ${holders}`, backend), async (c) =>
    c.json(await secretHolders(backend, c.req.param('id'))),
  );
  api.get(`${internalHolders}/:id`, allow(`GET ${internalHolders}/:id`), async (c) =>
    c.json(await secretHolders(backend, c.req.param('id'))),
  );
  api.get(nodeStates, allow(`GET ${nodeStates}`), async (c) => c.json(await states(backend)));
  api.get(internalNodeStates, allow(`GET ${internalNodeStates}`), async (c) =>
    c.json(await states(backend)),
  );
  return api;
}

function secretHolders(backend: Backend, ref: string): Promise<readonly SecretHolderView[]> {
  if (!backend.secretHolders) throw leaderOnly('list who holds a secret');
  return backend.secretHolders(ref);
}

function states(backend: Backend): Promise<readonly NodeStateView[]> {
  if (!backend.nodeStates) throw leaderOnly("read the nodes' state");
  return backend.nodeStates();
}

function leaderOnly(what: string): SecretdError {
  return new SecretdError(
    'unimplemented',
    `Cannot ${what} here: managers answer it, this node is not one`,
  );
}
