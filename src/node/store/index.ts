/** The store room's door: what other parts of secretd may use of it. */
export {
  type Command,
  decodeCommand,
  encodeCommand,
  type NodeResources,
  parseCommand,
  type TaggedCommand,
  type TaskPut,
  type TaskStatusUpdate,
  decodeStandardBase64,
  isStandardBase64,
  toBase64,
  wireCommand,
} from './commands.ts';
export {
  certRecordsToPrune,
  checkRoleAndScope,
  clientCertNamePattern,
  clientCertRoles,
  inScope,
  normalizeSerial,
  revocationMessage,
  scopeGlobMatches,
  type ClientCertRecord,
  type ClientCertRole,
  type RemovedNodeRecord,
} from './client-certs.ts';
export {
  filterTasks,
  resolveByRef,
  resolveNode,
  resolveService,
  resolveSpecSecrets,
  resolveTask,
} from './lookup.ts';
export {
  checkLabels,
  checkSecretData,
  checkSecretName,
  checkVersionNumber,
  checkVersionsKept,
  onUpdateText,
  parseOnUpdate,
} from './secret-rules.ts';
export { parseSecretFlag, type SecretFlag } from './secret-flag.ts';
export { type ApplyResult, fromBase64, Store } from './store.ts';
export { checkGrantConstraints, grantedVersion, grantText, type SecretGrant } from './grants.ts';
export {
  checkServiceConstraints,
  constraintHolds,
  type NodeConstraint,
  nodeMatches,
  normalizeNodeConstraint,
  parseNodeConstraint,
} from './node-constraints.ts';
export { isDead, isLive, isStopping, taskStateRank } from './task-states.ts';
export {
  type Availability,
  type ClusterRecord,
  type ContainerSpec,
  type DesiredState,
  type Labels,
  type NodeId,
  type NodeRecord,
  type NodeStatus,
  type OnUpdate,
  type SecretRefInput,
  type SecretRecord,
  type SecretReference,
  type ServiceId,
  type ServiceMode,
  type ServiceRecord,
  type ServiceSpec,
  type ServiceSpecInput,
  type TaskId,
  type TaskRecord,
  type TaskState,
  nodeCertExpiryOf,
  terminalTaskStates,
} from './types.ts';
export { checkNodeCertExpiry, nodeCertExpiryText } from './cluster-rules.ts';
export { Workloads } from './workloads.ts';
export { AuditLog, auditKeptOf, checkAuditKept, type AuditLogSnapshot } from './audit-log.ts';
export {
  nodeIssuerKey,
  rootKeyOf,
  rotationProgress,
  type RootRotation,
  type RotationProgress,
} from './root-rotation.ts';
