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
/**
 * The last WAL segment is extended this far at a time ahead of its writes (AppendOptions), so an
 * fdatasync need not record a new size; recovery reads and cuts off at most this many zeros.
 */
export const walPreallocateBytes = 4 * 1024 * 1024;
/**
 * Appends (WAL batches, a snapshot's own file) up to this size are made on the event loop with
 * writeSync (src/io/node-fs.ts): a page-cache copy of a few KiB is cheaper there than Bun's
 * hand-off of FileHandle.write to a thread. A new file's bytes (writeFile) always go to a thread.
 */
export const syncWriteBytesMax = 256 * 1024;
/**
 * The WAL keeps the buffer of its largest batch up to this size and seals the next batches into
 * it, once the write of the one before has returned (src/raft/_spare-bytes.ts says why).
 */
export const walBatchBufferBytesMax = 4 * 1024 * 1024;
/** Entries taken into one WAL batch (one fsync). */
export const walBatchEntriesMax = 1024;
/** Applied entries after which a snapshot is taken and the log compacted behind it. */
export const snapshotEntriesInterval = 10_000;
/**
 * Bytes of applied entry data after which a snapshot is taken whatever the entry count, so that
 * large values (10,000 entries of 64 KiB secrets would be 640 MiB) do not pile up in the log the
 * Raft core keeps in memory until the next compaction. A snapshot costs the values added since
 * the last one (each large value is a piece written once), so this can be small.
 */
export const snapshotLogBytesInterval = 16 * 1024 * 1024;
/**
 * A member whose applied index has not moved for this long takes a snapshot of what it applied
 * since the last one and starts a new WAL segment first, so the segments before it are deleted: an
 * idle manager holds no log in memory and replays nothing at restart that a snapshot holds.
 */
export const snapshotIdleMs = 1000;
/**
 * Plaintext bytes sealed per chunk of a snapshot or a piece (format 3): a snapshot is sealed and
 * written chunk by chunk, and opened chunk by chunk, so it never needs a second whole copy.
 */
export const snapshotSealChunkBytes = 1024 * 1024;
/**
 * A secret version whose value has at least this many bytes is a shared snapshot piece of its
 * own: written to disk once, and referred to by later snapshots (a version never changes).
 */
export const snapshotVersionPieceBytesMin = 1024;
/**
 * Secrets a snapshot writes between two turns of the event loop (Store.snapshotPiecesInSlices):
 * under a millisecond each. 1,000 (about 3 ms) put the slices among the longest waits at C=16:
 * p99 of 64 B creates 8.5 against 9.5 ms, medians of 21 rounds each (bench/README.md, thirteenth
 * session); 100 was no better than 250.
 */
export const snapshotSecretsPerSlice = 250;
/**
 * Shared pieces a snapshot save hashes and seals into its pack at once, each holding its bytes
 * meanwhile, with a turn of the event loop between groups.
 */
export const snapshotPieceWritesInFlight = 16;
/**
 * A snapshot's new pieces are written into its pack this many bytes at a time: above
 * syncWriteBytesMax, so on a thread rather than the event loop.
 */
export const snapshotPackWriteBytes = 2 * 1024 * 1024;
/** Largest buffer a snapshot store keeps between writes, for the next to fill (SpareBytes). */
export const snapshotSpareBytesMax = 2 * snapshotPackWriteBytes;
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
/** Grants per secret (`secret grant`): each is one alternative set of node constraints. */
export const secretGrantsMax = 64;
/** Node constraints in one grant (all must hold). */
export const grantConstraintsMax = 16;
/** Characters in one node constraint expression (`node.labels.role==db`). */
export const nodeConstraintCharsMax = 256;
/** Placement constraints of one service (`service create --constraint`; all must hold). */
export const serviceConstraintsMax = 16;
/**
 * Unlock back-off: after a wrong unlock key the next attempt waits unlockBackoffInitialMs, doubling
 * with each wrong key in a row up to unlockBackoffMaxMs; a right key resets it. Attempts that arrive
 * meanwhile wait their turn, one at a time; past unlockAttemptsWaitingMax waiting, callers get 503.
 */
export const unlockBackoffInitialMs = 100;
export const unlockBackoffMaxMs = 5000;
export const unlockAttemptsWaitingMax = 16;

/*
 * The TLS port against clients that never finish (issue 11): every connection and request has a
 * deadline, connections are capped in total and per peer address, and a connection without a
 * client certificate gets a small budget of its own so that it can never starve certified peers
 * (the admin socket is a separate server and has none of these limits). Enforced in
 * src/node/api/connection-guard.ts and the body readers; listed in the README ("Limits").
 */
/** A TLS handshake must complete within this, from the moment the connection is accepted. */
export const tlsHandshakeTimeoutMs = 10_000;
/** HTTP/1.1: a connection with no request in progress (keep-alive, or headers still arriving) is closed after this. */
export const requestHeadersTimeoutMs = 10_000;
/** A request body that brings no new byte for this long is refused and its stream (HTTP/2) or connection (HTTP/1.1) closed. */
export const requestBodyIdleTimeoutMs = 10_000;
/** A request body must arrive whole within this, from when its route starts reading it. */
export const requestBodyTimeoutMs = 60_000;
/**
 * An HTTP/2 connection with a client certificate and no open stream is closed after this. A Raft
 * stream or a dispatcher session is an open stream: long-lived authenticated traffic is never cut.
 */
export const idleConnectionTimeoutMs = 120_000;
/** A connection without a client certificate: closed after this with no open stream (HTTP/2) or request (HTTP/1.1)… */
export const anonymousIdleTimeoutMs = 10_000;
/** …and after this in any case (fetching the CA and joining take well under a second). */
export const anonymousConnectionLifetimeMs = 30_000;
/** Connections the TLS port holds at once; a new one beyond this is closed as it is accepted. */
export const connectionsMax = 4096;
/** Connections with a client certificate from one peer address; a new one beyond this is closed. */
export const certifiedConnectionsPerAddressMax = 512;
/**
 * Connections still in their TLS handshake, in all and per peer address. When either is full the
 * oldest such connection is closed to make room: a flood of stalled handshakes cannot keep a
 * certified peer from connecting, it only shortens how long each stalled one is kept.
 */
export const handshakingConnectionsMax = 1024;
export const handshakingConnectionsPerAddressMax = 64;
/** Connections without a client certificate, in all and per peer address; a new one beyond either is closed at once. */
export const anonymousConnectionsMax = 128;
export const anonymousConnectionsPerAddressMax = 8;
/** Streams open at once on an HTTP/2 connection without a client certificate (more are refused), and each one's flow-control window. */
export const anonymousStreamsMax = 4;
export const anonymousStreamWindowBytes = 16 * 1024;
/** Largest join request body: a P-256 CSR, the token, an address, a host name and resources take about 1 KiB. */
export const joinRequestBytesMax = 8 * 1024;
/** Request-body bytes that the routes of one connection buffer at once; a body past it is refused (503). */
export const connectionBodyBytesMax = 4 * requestBodyBytesMax;
/**
 * HTTP/2 flow-control windows of a connection with a client certificate: each stream's (one
 * largest request body) and the whole connection's. With HTTP/2's defaults (64 KiB each), 16
 * writers of 64 KiB values waited on WINDOW_UPDATEs, all of them whenever the event loop was busy:
 * 453 → 583–700 creates/s, max latency 1.3 s → 0.11–0.14 s (bench/create-secrets.ts --size 65536,
 * C=16, 2026-12-06). The connection's window stays under twice a stream's: Bun (1.4.5) sends a
 * stream's WINDOW_UPDATE only once the stream has taken half the connection's window, so with a
 * larger one a stream that outgrows its own window (a Raft stream, a body over the limit) waits
 * for good (server.test.ts sends more than both windows down one stream).
 */
export const certifiedStreamWindowBytes = requestBodyBytesMax;
export const certifiedSessionWindowBytes = Math.floor(1.5 * certifiedStreamWindowBytes);
/** Request-body bytes buffered at once across all connections without a client certificate (503 past it). */
export const anonymousBodyBytesMax = 256 * 1024;
/** Largest answer a joiner reads from the manager it joins through (CA, certificate, manager list: a few KiB). */
export const joinAnswerBytesMax = 256 * 1024;
/** How long a joiner waits for each answer of the manager it joins through. */
export const joinAnswerTimeoutMs = 30_000;

/*
 * The orchestrator (src/node/orchestration/): restart back-off, how long a stopping task is waited
 * for, and the task history kept for `service ps`.
 */
/** First restart delay of a slot whose task exited; it doubles with each exit in a row. */
export const restartDelayMinMs = 500;
/** Longest restart delay. */
export const restartDelayMaxMs = 30_000;
/** A task that ran this long before it exited restarts after the first delay again. */
export const restartResetAfterRunMs = 10_000;
/** Longest wait for a stopping task before its successor starts anyway (Docker: one minute). */
export const stopWaitMaxMs = 60_000;
/** Tasks kept per slot, the live one included, for `service ps` (Docker's TaskHistoryRetentionLimit). */
export const taskHistoryPerSlot = 5;
/** After a failed orchestration round (leadership moved, a write failed), the next one starts this much later. */
export const orchestratorRetryDelayMs = 500;

/* The node-side executor (src/node/executor/): containers through the OCI runtime, secrets in a per-task tmpfs. */
/** Smallest secrets tmpfs; small secrets still take a 4 KiB page each. */
export const secretsTmpfsBytesMin = 1024 * 1024;
/** tmpfs accounts in pages: every file costs at least one. */
export const tmpfsPageBytes = 4096;
/** Secret files per task (Docker has no limit; ours bounds the tmpfs and the bundle). */
export const secretsPerTaskMax = 512;
/** Longest secret target path, in characters. */
export const secretTargetCharsMax = 1024;
/** Longest path component of a target (NAME_MAX). */
export const secretTargetComponentCharsMax = 255;
/** Task ids name containers, directories and cgroups. */
export const taskIdCharsMax = 128;
/** Image names, as Docker's references. */
export const imageNameCharsMax = 128;
/** Any short runtime or mount command (state, kill, delete, list, mount, umount). */
export const commandTimeoutMs = 30_000;
/** From `runc run` to the container's process running. */
export const containerStartTimeoutMs = 30_000;
/** Containers (and `secretd spawn` processes) one node holds granted secrets for at once (local-containers.ts). */
export const localContainersMax = 4096;
/** Secret references one `secretd oci-runtime create` or `secretd spawn` may name. */
export const localSecretRefsMax = 64;
/** A bundle's config.json larger than this is refused by `secretd oci-runtime create`. */
export const ociConfigBytesMax = 4 * 1024 * 1024;
/** How long `secretd oci-runtime` and `secretd spawn` wait for the agent's answer on the admin socket. */
export const localAgentTimeoutMs = 20_000;
/** Default for `exec` when the caller gives none. */
export const execTimeoutMsDefault = 30_000;
/** Output kept from one exec or command, per stream; the rest is dropped. */
export const commandOutputBytesMax = 1024 * 1024;
/** After SIGKILL, how long to wait for the container to be gone before deleting it anyway. */
export const killWaitMs = 10_000;
/** Default grace between SIGTERM and SIGKILL, as Docker's `stop`. */
export const stopGraceMsDefault = 10_000;
/** How often containers we did not start (adopted after a restart) are polled for exit. */
export const exitPollIntervalMs = 1_000;
/** Extracting an image tarball. */
export const imageImportTimeoutMs = 10 * 60_000;
/** The shortest node certificate validity `cluster update --cert-expiry` takes (Docker's is 1 h; ours is lower so that renewal can be tested end to end). */
export const nodeCertExpiryMinMs = 60_000;
/** A validity under this is accepted with a warning: every node renews every few minutes. */
export const nodeCertExpiryWarnBelowMs = 3600_000;
/** A node renews its certificate at a random point between these fractions of its validity (Docker: 50–80%). */
export const certRenewalWindowStart = 0.5;
export const certRenewalWindowEnd = 0.8;
/** A failed renewal is retried after this, doubling with each failure in a row up to certRenewalBackoffMaxMs (Docker: 5 s to 1 h). */
export const certRenewalBackoffBaseMs = 5000;
export const certRenewalBackoffMaxMs = 3600_000;
/** The renewer never waits longer than this before looking at the clock again (timers cap near 24.8 days; the wall clock may jump). */
export const certRenewalCheckMaxMs = 3600_000;
/** One renewal request, per manager tried. */
export const certRenewalTimeoutMs = 15_000;
/** A client certificate's validity when `ca issue-client` is given no --expiry (Docker's node default). */
export const clientCertLifetimeMsDefault = 90 * 24 * 3600 * 1000;
/** The shortest validity `ca issue-client --expiry` takes. */
export const clientCertLifetimeMsMin = 60_000;
/** The most `--scope` globs one client certificate's record holds (a writer's; README, Access control). */
export const clientCertScopesMax = 32;
/** Records of revoked client certificates and removed nodes are pruned this long after their certificates expired (Docker: 7 days). */
export const certRecordsPruneGraceMs = 24 * 3600 * 1000;
/** How often the leader looks for records to prune. */
export const certRecordsPruneIntervalMs = 10 * 60_000;
/** How long `ca revoke` waits for each other manager to confirm it applied the revocation. */
export const revocationConfirmTimeoutMs = 10_000;
/** Records dropped by one prune command at most (the rest go in the next round). */
export const certRecordsPrunedPerCommandMax = 1000;
/** A node whose certificate lasts longer than the cluster's validity setting by more than this is told to renew (the setting was shortened). */
export const nodeCertExpirySlackMs = 60_000;
/** Certificates presented with a leaf that verifyChain considers (secretd's chains hold one, during a root rotation); more is refused, so a path search stays small. */
export const certChainIntermediatesMax = 4;
/**
 * Under Deno only, the TLS server closes an HTTP/2 session (gracefully) once it has carried this
 * many streams: Deno's nghttp2 binding aborts when a client closes a session after about 100
 * (denoland/deno#36788); clients retry a refused request on a new session.
 */
export const denoSessionStreamsMax = 90;

// --- audit trail (src/node/audit/, src/node/store/audit-log.ts) ---
/** Audit records kept when the cluster sets nothing (`cluster update --audit-kept`). */
export const auditKeptDefault = 1_000_000;
/** The fewest and most records `--audit-kept` takes. */
export const auditKeptMin = 4096;
export const auditKeptMax = 100_000_000;
/** Records are dropped in whole segments of this many, oldest first (the chain then starts at an anchor). */
export const auditSegmentRecords = 4096;
/** Records appended by one `audit-append` entry at most (denials, exec, unlocks, deliveries, releases). */
export const auditBatchRecordsMax = 256;
/** A manager proposes its queued records this long after the first one is queued (or at once, when a batch is full). */
export const auditFlushMs = 250;
/** Records a manager holds while it cannot propose (locked, no leader); past this the oldest go, counted in a record. */
export const auditPendingMax = 10_000;
/** Denials recorded one by one per identity and window; the rest are counted in one summary record. */
export const auditDenialsPerWindow = 10;
export const auditDenialWindowMs = 10_000;
/** Identities whose denials are counted apart in one window; past this they share one count. */
export const auditDenialActorsMax = 1000;
/** Bytes of one record field (names, sources, details) at most: longer is cut. */
export const auditFieldBytesMax = 256;

// --- root CA rotation (src/node/certs/ca-rotation*.ts) ---
/** How often the leader looks at a root CA rotation: asks nodes to renew, finishes it once all have (Docker: 3 s). */
export const caRotationReconcileMs = 3000;
/** Nodes asked to renew in one pass at most (Docker's IssuanceStateRotateMaxBatchSize: 30). */
export const caRotationRenewBatchMax = 30;
/** A node asked to renew for a rotation is asked again after this if it has still not converged. */
export const caRotationRenewAgainMs = 30_000;
/** How often `secretd ca rotate` reads the rotation's progress while it waits. */
export const caRotationPollMs = 500;

// --- the web console (src/console/) ---
/** How often the console reads the cluster for the views no watch covers (nodes, Raft, tasks), while a page listens. */
export const consolePollMs = 2000;
/** Audit records the console's audit page and a secret's history show at most (the newest). */
export const consoleAuditRecordsMax = 500;
/** Pages listening for live updates at once, per console. */
export const consoleEventClientsMax = 32;
/** How long the leader waits for a manager's `/info` when reporting which managers are locked (GET /secretd/nodes/state). */
export const managerLockProbeTimeoutMs = 2000;

// --- backup and restore (src/crypto/backup-format.ts, src/node/backup/) ---
/** Plaintext bytes per sealed chunk of a backup file: what restore holds of the file at once. */
export const backupChunkBytes = 64 * 1024;
/** A backup file's readable header (magic line and JSON line) is at most this long. */
export const backupHeaderBytesMax = 4096;
/** A file holding an unlock key or a backup key larger than this is not one (a key is under 100 bytes). */
export const keyFileBytesMax = 4096;
