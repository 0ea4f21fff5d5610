/**
 * What a manager reaches outside its process through, besides the clock and randomness (which come
 * in through `ManagerOptions`' `timers`, `now`, `random` and `electionRandom`): its data dir's disk,
 * the hashing of snapshot pieces (WebCrypto) and its link to the other nodes.
 * Production passes nothing and gets the real ones (`node:fs`, WebCrypto, HTTP/2 over mutual
 * TLS); the simulator (test/sim/manager-sim.test.ts) passes a simulated disk, hashing that resolves
 * in the seed's order, and a link that delivers to the other managers' API in memory, so the same
 * manager code runs there.
 */
import type { FileSystem } from '../../io/fs.ts';
import type { Sha256 } from '../../crypto/sha256.ts';
import { webCryptoSha256 } from '../../io/sha256.ts';
import { systemFs } from '../data-dir/index.ts';
import { PeerClient, type PeerLink, type PeerTls } from '../peers/index.ts';

export interface ManagerPorts {
  /** Every read and write of the data dir: node state, keys file, certificates, the log and snapshots. */
  readonly fs: FileSystem;
  /** How snapshot pieces' content ids are hashed: WebCrypto in production (src/io/sha256.ts). */
  readonly sha256: Sha256;
  /**
   * The link to the other nodes on this node's certificate (the Raft transport, forwarded writes,
   * the agent's session, renewals); `localAddress`: the IP to originate connections from, if any.
   */
  readonly peers: (tls: PeerTls, localAddress: string | undefined) => PeerLink;
}

/** The real disk, WebCrypto and HTTP/2 mutual TLS. */
export const systemPorts: ManagerPorts = {
  fs: systemFs,
  sha256: webCryptoSha256,
  peers: (tls, localAddress) => new PeerClient(tls, localAddress),
};
