/** Docker Engine API shapes for the swarm objects secretd serves. Secret data never appears here. */
import { heartbeatPeriodMs, raftElectionTicks, snapshotEntriesInterval } from '../../limits.ts';
import { taskHistoryPerSlot } from '../../limits.ts';
import { nodeCertExpiryOf, type ClusterRecord, type SecretRecord } from '../store/index.ts';
import type { SecretGrant } from '../store/index.ts';
import type { NodeView } from './backend.ts';
import { issuerInfo } from '../../crypto/index.ts';

export function secretJSON(secret: SecretRecord): object {
  return {
    ID: secret.id,
    Version: { Index: secret.metaIndex },
    CreatedAt: secret.createdAt,
    UpdatedAt: secret.updatedAt,
    Spec: { Name: secret.name, Labels: secret.labels },
    // secretd's own, only when there are some (Docker's clients compare the rest with Swarm's):
    // which nodes may hold it outside of services (routes/grants.ts).
    ...(secret.grants === undefined || secret.grants.length === 0
      ? {}
      : { Grants: grantListJSON(secret.grants) }),
  };
}

/** A secret's grants as the API shows them (its inspect's `Grants`, routes/grants.ts). */
export function grantListJSON(grants: readonly SecretGrant[] | undefined): object[] {
  return (grants ?? []).map((g) => ({
    Constraints: g.constraints,
    Version: g.version,
    CreatedAt: g.createdAt,
  }));
}

export function swarmJSON(cluster: ClusterRecord, withTokens: boolean): object {
  return {
    ID: cluster.id,
    Version: { Index: cluster.metaIndex },
    CreatedAt: cluster.createdAt,
    UpdatedAt: cluster.updatedAt,
    Spec: {
      Name: 'default',
      Labels: cluster.labels,
      // secretd's own settings (fixed, not configurable), in Docker's fields and units.
      Orchestration: { TaskHistoryRetentionLimit: taskHistoryPerSlot },
      Raft: {
        SnapshotInterval: snapshotEntriesInterval,
        KeepOldSnapshots: 0,
        LogEntriesForSlowFollowers: 0,
        ElectionTick: raftElectionTicks,
        HeartbeatTick: 1,
      },
      Dispatcher: { HeartbeatPeriod: heartbeatPeriodMs * 1e6 },
      CAConfig: {
        NodeCertExpiry: nodeCertExpiryOf(cluster) * 1e6,
        // Docker's counter, omitted at 0 as Docker's: `docker swarm ca --rotate` sends it back
        // incremented (routes/swarm.ts).
        ...(cluster.forceRotate ? { ForceRotate: cluster.forceRotate } : {}),
      },
      TaskDefaults: {},
      EncryptionConfig: { AutoLockManagers: cluster.unlockKey !== null },
    },
    TLSInfo: rootTLSInfo(cluster.caCertPem),
    RootRotationInProgress: cluster.rootRotation !== undefined,
    ...(withTokens
      ? { JoinTokens: { Worker: cluster.joinTokens.worker, Manager: cluster.joinTokens.manager } }
      : {}),
  };
}

/** The root as Docker's `TLSInfo` gives it: what a converged node's TLSInfo matches (`docker swarm ca --rotate` waits on it). */
function rootTLSInfo(caCertPem: string): object {
  const info = issuerInfo(caCertPem);
  return {
    TrustRoot: caCertPem,
    CertIssuerSubject: Buffer.from(info.subjectDer).toString('base64'),
    CertIssuerPublicKey: Buffer.from(info.publicKeyDer).toString('base64'),
  };
}

export function nodeJSON(node: NodeView): object {
  return {
    ID: node.id,
    Version: { Index: node.metaIndex },
    CreatedAt: node.createdAt,
    UpdatedAt: node.updatedAt,
    Spec: { Labels: node.labels, Role: node.role, Availability: node.availability },
    Description: {
      Hostname: node.hostname,
      Platform: {
        Architecture: process.arch === 'x64' ? 'x86_64' : process.arch,
        OS: process.platform,
      },
      Resources: node.resources
        ? { NanoCPUs: node.resources.nanoCpus, MemoryBytes: node.resources.memoryBytes }
        : {},
      Engine: { EngineVersion: 'secretd' },
      TLSInfo: {
        TrustRoot: node.tls.trustRoot,
        CertIssuerSubject: node.tls.issuerSubject,
        CertIssuerPublicKey: node.tls.issuerPublicKey,
      },
    },
    Status: { State: node.state, Addr: node.addr.replace(/:\d+$/, '').replace(/^\[|\]$/g, '') },
    ...(node.manager
      ? {
          ManagerStatus: {
            Leader: node.manager.leader,
            Reachability: node.manager.reachability,
            Addr: node.addr,
          },
        }
      : {}),
  };
}
