/**
 * The audit trail's room: the request's audit context, the record and its hash chain, the
 * verification of a chain (on the cluster and of an exported file), the queries, and the recorder
 * of records that no state change carries. The records themselves live in the store
 * (store/audit-log.ts), appended in the same Raft entry as the change they describe.
 */
export {
  auditActorOf,
  auditContext,
  auditForwardParam,
  auditTagOf,
  type AuditContext,
  type AuditIdentity,
  type AuditTag,
} from './context.ts';
export {
  canonical,
  chainHash,
  checkAuditEntry,
  clip,
  genesisHash,
  hashOfLine,
  parseRecordLine,
  recordLine,
  seqOfLine,
  type AuditActor,
  type AuditActorKind,
  type AuditEntry,
  type AuditRecord,
} from './record.ts';
export {
  ChainVerifier,
  exportEnd,
  exportHeader,
  verifyExport,
  type ChainAnchor,
  type VerifyOutcome,
} from './verify.ts';
export {
  auditQueryFields,
  isEmptyQuery,
  matchesAuditQuery,
  parseAuditQuery,
  parseAuditTime,
  type AuditQuery,
} from './query.ts';
export { AuditRecorder, type AuditAppendCommand, type AuditRecorderOptions } from './recorder.ts';
export {
  auditRefusedCaller,
  auditRequest,
  type AuditBackend,
  type AuditedRequest,
  type AuditSink,
  type AuditTrail,
} from './audited.ts';
export { auditedOps, auditSubject, type AuditLookups, type AuditSubject } from './subject.ts';
