/** Every limit in one place. Names end in their unit. */

/** Largest secret value (Docker: 500 KiB - 1). */
export const secretBytesMax = 1024 * 1024;
/** Largest secret name, as Docker. */
export const secretNameCharsMax = 64;
/** Largest label key plus value set on one object, in bytes of JSON. */
export const labelsBytesMax = 64 * 1024;
/** Largest HTTP request body: a base64 secret of secretBytesMax plus room for the envelope. */
export const requestBodyBytesMax = Math.ceil((secretBytesMax * 4) / 3) + 64 * 1024;
/** Largest single WAL record body; a header claiming more is garbage, refused before allocating. */
export const walRecordBytesMax = 8 * 1024 * 1024;
/** WAL segment size at which the writer starts a new segment. */
export const walSegmentBytesTarget = 64 * 1024 * 1024;
/** Entries taken into one WAL batch (one fsync). */
export const walBatchEntriesMax = 1024;
/** Applied entries after which a snapshot is taken and the log compacted behind it. */
export const snapshotEntriesInterval = 10_000;
/** Entries in one Raft append message. */
export const raftEntriesPerMessageMax = 256;
/** Unacknowledged append messages to one follower. */
export const raftInflightMessagesMax = 64;
/** Proposals waiting for the raft loop; past this, callers get 503. */
export const proposalQueueMax = 16_384;
/** Snapshot transfer chunk. */
export const snapshotChunkBytes = 1024 * 1024;
/** Node certificate lifetime (90 days, as Docker). */
export const nodeCertLifetimeMs = 90 * 24 * 3600 * 1000;
/** Root CA lifetime (20 years, as Docker). */
export const rootCertLifetimeMs = 20 * 365 * 24 * 3600 * 1000;
/** Certificates are backdated so small clock skew does not reject them (Docker: 1 h). */
export const certBackdateMs = 3600 * 1000;
/** Request ids whose outcome the store remembers, so a retried write is applied once. */
export const requestIdsRemembered = 10_000;
/** Largest Raft message batch on the wire (a snapshot travels in one; Docker's gRPC limit is 4 MiB per chunk). */
export const raftBatchBytesMax = 256 * 1024 * 1024;
/** Messages queued for one peer while its previous batch is in flight; beyond it they are dropped (Raft retries). */
export const raftPeerQueueMax = 4096;
/** One Raft tick. Elections start after raftElectionTicks to 2× that without a leader (0.5–1 s). */
export const raftTickMs = 50;
export const raftElectionTicks = 10;
/** Dispatcher heartbeat period; a node missing three in a row is marked down (Docker: 5 s). */
export const heartbeatPeriodMs = 1000;
export const heartbeatsMissedMax = 3;
/**
 * How often an agent sweeps its run directory for secrets no running container owns (a missed
 * exit, a failed erase to retry): the safety net behind erase-on-exit, which is immediate.
 */
export const agentSweepIntervalMs = 5000;
/** Output kept from `secretd exec` (each of stdout and stderr). */
export const execOutputBytesMax = 1024 * 1024;
/** Versions of a secret kept by default; older ones go when a new one is added, unless a pinned reference uses them. */
export const secretVersionsKeptDefault = 10;
/** The most versions per secret the retention setting may ask for. */
export const secretVersionsKeptMax = 1000;
/** Highest version number accepted in input (references, --if-version, --to). */
export const secretVersionMax = 2 ** 31 - 1;
/**
 * Unlock back-off: after a wrong unlock key the next attempt waits unlockBackoffInitialMs, doubling
 * with each wrong key in a row up to unlockBackoffMaxMs; a right key resets it. Attempts that arrive
 * meanwhile wait their turn, one at a time; past unlockAttemptsWaitingMax waiting, callers get 503.
 */
export const unlockBackoffInitialMs = 100;
export const unlockBackoffMaxMs = 5000;
export const unlockAttemptsWaitingMax = 16;
