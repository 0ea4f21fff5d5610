/** A cluster's record as the store holds it (CA, key, join tokens), made fresh, for join tests. */
import { createRootCA, generateJoinToken, newId } from '../../src/crypto/index.ts';
import { systemRandom } from '../../src/io/system.ts';
import type { ClusterRecord } from '../../src/node/store/index.ts';

export async function freshClusterRecord(): Promise<ClusterRecord> {
  const ca = await createRootCA({ now: new Date() });
  const at = new Date().toISOString();
  return {
    id: newId(systemRandom),
    createdAt: at,
    updatedAt: at,
    metaIndex: 1,
    caCertPem: ca.certPem,
    caKey: ca.keyPkcs8,
    joinTokens: {
      worker: generateJoinToken(ca.certDer, systemRandom),
      manager: generateJoinToken(ca.certDer, systemRandom),
    },
    unlockKey: null,
    labels: {},
  };
}
