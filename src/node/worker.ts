/**
 * A worker node: no Raft, no store — an agent that keeps a session with the leader's dispatcher and
 * runs its tasks, plus a local admin socket for what only this machine can do (import an image,
 * run a command in one of its own containers). Its certificate lets it reach nothing but its own
 * session on the managers. A certificate naming a manager (a renewal after `node promote`) makes it
 * say so (`onPromoted`): daemon.ts turns the process into a manager, taking its agent on.
 */
import { readFile } from 'node:fs/promises';
import { keyPkcs8ToPem, parseIdentity } from '../crypto/index.ts';
import { systemNow, systemRandom } from '../io/system.ts';
import { systemTimers } from '../io/timers.ts';
import {
  CertRenewer,
  checkNodeCertificate,
  reportCertificateInUse,
  samePemSet,
} from './certs/index.ts';
import type { Agent } from './task-dispatch/index.ts';
import { openPeerClient, startAgent } from './_node-agent.ts';
import { dataDirPaths, type DataDirPaths } from './data-dir/index.ts';
import type { Executor } from './executor/index.ts';
import { readNodeKeys, readTlsPair, writeFileAtomic, writeRenewedPair } from './data-dir/index.ts';
import { readNodeState, type NodeState } from './data-dir/index.ts';
import type { PeerClient } from './peers/index.ts';

export class Worker {
  readonly paths: DataDirPaths;
  readonly state: NodeState;
  #agent: Agent | null;
  readonly executor: Executor;
  readonly #peers: PeerClient;
  readonly #renewer: CertRenewer;

  private constructor(
    paths: DataDirPaths,
    state: NodeState,
    agent: Agent,
    executor: Executor,
    peers: PeerClient,
    renewer: CertRenewer,
  ) {
    this.paths = paths;
    this.state = state;
    this.#agent = agent;
    this.executor = executor;
    this.#peers = peers;
    this.#renewer = renewer;
  }

  static async open(options: {
    dataDir: string;
    executor: Executor;
    log: (line: string) => void;
    /** An agent this process already runs (a demoted manager's): taken on with its tasks. */
    agent?: Agent | null;
    /** This node's certificate names a manager now (promoted): called once, after it is on disk. */
    onPromoted?: () => void;
  }): Promise<Worker> {
    const paths = dataDirPaths(options.dataDir);
    const state = await readNodeState(paths.nodeState, options.dataDir);
    // An expired certificate cannot be renewed: say so instead of failing every handshake.
    let certPem = await checkNodeCertificate(paths, { now: systemNow(), log: options.log });
    // A worker's keys file is never autolocked: workers hold no sealed store.
    const keys = await readNodeKeys(paths.nodeKeys, null);
    // The roots this worker trusts: replaced by a renewal's answer (both during a root CA rotation).
    let caPem = await readFile(paths.caCert, 'utf8');
    const peers = await openPeerClient(paths, { tlsKey: keys.tlsKey });
    keys.dek.fill(0);
    const managers = (): string[] => state.peers.map((p) => p.addr);
    let renewer: CertRenewer | null = null;
    const agent = startAgent(
      {
        nodeId: state.nodeId,
        managers,
        peers,
        executor: options.executor,
        timers: systemTimers,
        log: options.log,
        onRenewCertificate: (reason) => renewer?.renewNow(reason),
      },
      options.agent,
    );
    let promoted = false;
    const checkRole = (): void => {
      if (promoted || parseIdentity(certPem).role !== 'manager') return;
      promoted = true;
      options.onPromoted?.();
    };
    renewer = new CertRenewer({
      nodeId: state.nodeId,
      clusterId: state.clusterId,
      caPem: () => caPem,
      certificate: () => certPem,
      managers,
      peers,
      timers: systemTimers,
      now: systemNow,
      random: systemRandom,
      persist: async (pair) => {
        // The roots first: during a rotation they include the old one, which the old pair chains to.
        if (!samePemSet(pair.caPem, caPem)) await writeFileAtomic(paths.caCert, pair.caPem, 0o644);
        const current = await readNodeKeys(paths.nodeKeys, null);
        current.dek.fill(0);
        await writeRenewedPair(
          paths,
          { ...current, tlsKey: pair.keyPkcs8, tlsCert: pair.certPem },
          null,
          systemRandom,
        );
      },
      apply: (pair) => {
        certPem = pair.certPem;
        caPem = pair.caPem;
        // New connections present it; the open dispatcher session moves to one (PeerClient.setTls).
        peers.setTls({ ca: caPem, cert: pair.certPem, key: keyPkcs8ToPem(pair.keyPkcs8) });
        checkRole();
      },
      // The managers count it for a root CA rotation (certs/report.ts).
      report: () => reportCertificateInUse(peers, managers()),
      log: options.log,
    });
    renewer.start();
    // A manager's certificate at start: promoted while a switch was cut short, or demoted while
    // its renewal was. A renewal now says which (its answer names the role the store gives now).
    if (parseIdentity(certPem).role === 'manager')
      renewer.renewNow('this worker holds a manager certificate: asking which role it has now');
    return new Worker(paths, state, agent, options.executor, peers, renewer);
  }

  get agent(): Agent {
    if (!this.#agent) throw new Error('Worker.agent: handed over to a manager');
    return this.#agent;
  }

  /** Its agent, handed over (promoted): `stop` leaves it and its tasks running. */
  detachAgent(): Agent | null {
    const agent = this.#agent;
    this.#agent = null;
    return agent;
  }

  /** The key pair in use now, from the keys file (a copy: the caller zeroes it). */
  currentKeys(): Promise<{ tlsKey: Uint8Array; tlsCert: string }> {
    return readTlsPair(this.paths);
  }

  async stop(): Promise<void> {
    this.#renewer.stop();
    await this.#agent?.stop();
    this.#peers.closeAll();
  }

  /** Renewals stop, and a renewal under way ends first: the keys file is then this worker's last word. */
  async settle(): Promise<void> {
    this.#renewer.stop();
    await this.#renewer.settled;
  }
}
