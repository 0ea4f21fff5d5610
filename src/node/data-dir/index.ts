/** The data-dir room's door: what other parts of secretd may use of it. */
export {
  dataDirPaths,
  type DataDirPaths,
  defaultDataDir,
  ensureDir,
  exists,
  readTextFile,
  removeIfPresent,
  systemFs,
  writeFileAtomic,
} from './layout.ts';
export {
  beginDekRotation,
  type DataKeyPair,
  finishDekRotation,
  type NodeKeys,
  nodeKeysLocked,
  nodeKeysRole,
  openingKeys,
  sealingKey,
  readNodeCertificate,
  readNodeKeys,
  readTlsPair,
  restoreNodeCertificate,
  writeNodeKeys,
  writeRenewedPair,
} from './node-keys.ts';
export { type NodeState, readNodeState, writeNodeState } from './node-state.ts';
