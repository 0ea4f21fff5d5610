/**
 * A worker node: no Raft, no store — an agent that keeps a session with the leader's dispatcher and
 * runs its tasks, plus a local admin socket for what only this machine can do (import an image,
 * run a command in one of its own containers). Its certificate lets it reach nothing but its own
 * session on the managers.
 */
import { systemTimers } from '../io/timers.ts';
import type { Agent } from './task-dispatch/index.ts';
import { openPeerClient, startAgent } from './_node-agent.ts';
import { dataDirPaths, type DataDirPaths } from './data-dir/index.ts';
import type { Executor } from './executor/index.ts';
import { readNodeKeys } from './data-dir/index.ts';
import { readNodeState, type NodeState } from './data-dir/index.ts';
import type { PeerClient } from './peers/index.ts';

export class Worker {
  readonly paths: DataDirPaths;
  readonly state: NodeState;
  readonly agent: Agent;
  readonly executor: Executor;
  readonly #peers: PeerClient;

  private constructor(
    paths: DataDirPaths,
    state: NodeState,
    agent: Agent,
    executor: Executor,
    peers: PeerClient,
  ) {
    this.paths = paths;
    this.state = state;
    this.agent = agent;
    this.executor = executor;
    this.#peers = peers;
  }

  static async open(options: {
    dataDir: string;
    executor: Executor;
    log: (line: string) => void;
  }): Promise<Worker> {
    const paths = dataDirPaths(options.dataDir);
    const state = await readNodeState(paths.nodeState, options.dataDir);
    // A worker's keys file is never autolocked: workers hold no sealed store.
    const keys = await readNodeKeys(paths.nodeKeys, null);
    const peers = await openPeerClient(paths, { tlsKey: keys.tlsKey });
    keys.dek.fill(0);
    const agent = startAgent({
      nodeId: state.nodeId,
      managers: () => state.peers.map((p) => p.addr),
      peers,
      executor: options.executor,
      timers: systemTimers,
      log: options.log,
    });
    return new Worker(paths, state, agent, options.executor, peers);
  }

  async stop(): Promise<void> {
    await this.agent.stop();
    this.#peers.closeAll();
  }
}
