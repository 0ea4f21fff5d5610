/**
 * What every node builds to reach the managers, manager and worker alike: a peer client on this
 * node's certificate (the CA and certificate from the data dir, the TLS key from its keys file),
 * and the agent that keeps a session with the leader's dispatcher and runs this node's tasks.
 * Private to src/node: manager/manager.ts and worker.ts wire their agents through it.
 */
import { keyPkcs8ToPem } from '../crypto/index.ts';
import type { FileSystem } from '../io/fs.ts';
import {
  readNodeCertificate,
  readTextFile,
  systemFs,
  type DataDirPaths,
} from './data-dir/index.ts';
import { PeerClient } from './peers/index.ts';
import { Agent } from './task-dispatch/index.ts';

/** `localAddress`: the IP to originate connections from (none: the system picks); `fs`: the data dir's disk. */
export async function openPeerClient(
  paths: DataDirPaths,
  options: {
    readonly tlsKey: Uint8Array;
    readonly localAddress?: string | undefined;
    readonly fs?: FileSystem;
  },
): Promise<PeerClient> {
  const fs = options.fs ?? systemFs;
  // The certificate the keys file pairs with the key (node.pem is its copy).
  const [ca, cert] = await Promise.all([
    readTextFile(paths.caCert, fs),
    readNodeCertificate(paths.nodeKeys, paths.nodeCert, fs),
  ]);
  return new PeerClient({ ca, cert, key: keyPkcs8ToPem(options.tlsKey) }, options.localAddress);
}

/** A started agent. */
export function startAgent(options: ConstructorParameters<typeof Agent>[0]): Agent {
  const agent = new Agent(options);
  agent.start();
  return agent;
}
