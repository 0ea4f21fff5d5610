/**
 * What every node builds to reach the managers, manager and worker alike: a peer client on this
 * node's certificate (the CA and certificate from the data dir, the TLS key from its keys file),
 * and the agent that keeps a session with the leader's dispatcher and runs this node's tasks.
 * Private to src/node: manager/manager.ts and worker.ts wire their agents through it. An agent
 * outlives a role switch in place (daemon.ts): the role started next takes it on (`startAgent`
 * with `carried`), and its session, manager list and renewal requests go to that role's wiring.
 */
import { keyPkcs8ToPem } from '../crypto/index.ts';
import type { FileSystem } from '../io/fs.ts';
import {
  readNodeCertificate,
  readTextFile,
  systemFs,
  type DataDirPaths,
} from './data-dir/index.ts';
import { PeerClient, type PeerLink } from './peers/index.ts';
import { Agent } from './task-dispatch/index.ts';

type AgentOptions = ConstructorParameters<typeof Agent>[0];

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

/** A started agent, or `carried` (an agent this process already runs) bound to these options. */
export function startAgent(options: AgentOptions, carried?: Agent | null): Agent {
  if (carried) {
    const binding = bindings.get(carried);
    if (!binding) throw new Error('startAgent: the carried agent was not started here');
    binding.target = options;
    return carried;
  }
  const binding: Binding = { target: options };
  const agent = new Agent({
    ...options,
    managers: () => binding.target.managers(),
    peers: switchingLink(binding),
    onRenewCertificate: (reason, role) => binding.target.onRenewCertificate?.(reason, role),
  });
  bindings.set(agent, binding);
  agent.start();
  return agent;
}

/**
 * What an agent reaches the managers through, switched when the node changes role in place
 * (role-switch.ts): the agent object, its executor and its running tasks stay; its session, the
 * manager list and renewal requests go to the new role's wiring. Its session instance id is the
 * agent's own, so the dispatcher takes the next session as a reconnect of the same process.
 */
interface Binding {
  target: AgentOptions;
}

const bindings = new WeakMap<Agent, Binding>();

function switchingLink(binding: Binding): PeerLink {
  const link = (): PeerLink => binding.target.peers;
  return {
    request: (addr, method, path, body, options) =>
      link().request(addr, method, path, body, options),
    openLines: (addr, path, handlers) => link().openLines(addr, path, handlers),
    openStream: (addr, path) => link().openStream(addr, path),
    retired: (stream) => link().retired(stream),
    reset: (addr) => link().reset(addr),
    setTls: (tls) => link().setTls(tls),
    closeAll: () => link().closeAll(),
  };
}
