/**
 * The deterministic state machine. `apply` is the only way state changes; it is called with each
 * committed entry in log order on every manager, and must give the same result everywhere: it reads
 * no clock and no randomness (the proposer put those into the command). A command that conflicts
 * with the state at apply time (a name taken by a racing create, a stale version) changes nothing
 * and returns an error result, the same on every manager.
 *
 * Apply is total: an entry that is not a valid command (parseCommand()), or whose application
 * throws anything but a broken invariant, changes nothing it has not already changed and fails as
 * a write (its proposer gets the error), the same on every manager, since the outcome depends only
 * on the entry and the store. Only an AssertionError (a corrupt state) stops the process. A
 * malformed entry is refused before it touches anything; the catch-all is the backstop for a bug.
 */
import { AssertionError, assert, SecretdError, type ErrorCode } from '../../errors.ts';
import {
  decodeCommand,
  decodeStandardBase64,
  parseCommand,
  type Command,
  type NodeSpec,
  type TaggedCommand,
  toBase64,
} from './commands.ts';
import {
  certRecordsPruneGraceMs,
  nodeCertLifetimeMs,
  requestIdsRemembered,
  snapshotSecretsPerSlice,
} from '../../limits.ts';
import {
  ClientCerts,
  expiredBefore,
  type ClientCertRecord,
  type RemovedNodeRecord,
} from './client-certs.ts';
import type {
  ClusterRecord,
  Labels,
  NodeId,
  NodeRecord,
  SecretId,
  SecretRecord,
  ServiceRecord,
  TaskRecord,
} from './types.ts';
import { Workloads } from './workloads.ts';
import { auditKeptOf, AuditLog, type AuditLogSnapshot } from './audit-log.ts';
import { joinPieces, type ReleasedPiece } from '../../raft/snapshot-store.ts';
import { PieceWriter, ValueHolds, writeSecrets } from './_snapshot-pieces.ts';
import type { SnapshotPiece, SnapshotSpan } from '../../raft/types.ts';
import { auditedOps, auditSubject, type AuditSubject } from '../audit/index.ts';
import { rotationProgress } from './root-rotation.ts';
import { resolveByRef } from './lookup.ts';
import { addGrant, grantedRemovalRefusal, grantPins, removeGrant } from './grants.ts';
import {
  addVersion,
  removeVersion,
  rollBack,
  type VersionChange,
  type VersionContext,
} from './secret-versions.ts';

export type ApplyResult =
  | {
      readonly ok: true;
      readonly id?: string;
      readonly version?: number;
      readonly changed?: boolean;
    }
  | { readonly ok: false; readonly code: ErrorCode; readonly message: string };

export type StoreEvent =
  | { readonly kind: 'cluster'; readonly cluster: ClusterRecord }
  | { readonly kind: 'secret-removed'; readonly id: SecretId }
  | { readonly kind: 'node'; readonly node: NodeRecord }
  | { readonly kind: 'node-removed'; readonly id: NodeId }
  /** Client certificates revoked by an applied command: open connections using them are closed. */
  | { readonly kind: 'client-certs-revoked'; readonly serials: readonly string[] };

export class Store {
  #cluster: ClusterRecord | null = null;
  readonly #secrets = new Map<SecretId, SecretRecord>();
  /** Lower-cased name → id: names are unique ignoring case, as Docker's. */
  readonly #secretNames = new Map<string, SecretId>();
  readonly #nodes = new Map<NodeId, NodeRecord>();
  /** Removed nodes' ids, refused until their certificates have expired (then pruned). */
  readonly #removedNodes = new Map<string, RemovedNodeRecord>();
  /** Client certificates issued, by serial (client-certs.ts). */
  readonly clientCerts = new ClientCerts();
  /** Services and tasks. */
  readonly workloads = new Workloads();
  /** The audit trail (audit-log.ts): records appended by the entries they describe. */
  #audit = new AuditLog();
  #appliedIndex = 0;
  /** Outcomes of recent tagged commands, oldest first (a Map keeps insertion order). */
  readonly #requests = new Map<string, ApplyResult>();
  /**
   * The remembered request ids, oldest first, as a ring: the oldest is dropped by name. (Dropping
   * `keys().next()` made JSC walk the map's deleted slots from the start on every apply.)
   */
  readonly #requestOrder: (string | undefined)[] = new Array<string | undefined>(
    requestIdsRemembered,
  );
  #requestNext = 0;
  readonly #listeners: Array<(event: StoreEvent) => void> = [];
  readonly #appliedListeners: Array<(op: Command['op']) => void> = [];

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  get cluster(): ClusterRecord | null {
    return this.#cluster;
  }

  get audit(): AuditLog {
    return this.#audit;
  }

  onEvent(listener: (event: StoreEvent) => void): void {
    this.#listeners.push(listener);
  }

  /** Called after every applied command, with its operation (the dispatcher and orchestrator coalesce these). */
  onApplied(listener: (op: Command['op']) => void): void {
    this.#appliedListeners.push(listener);
  }

  /** Entries without a command (a leader's no-op, a membership change) still advance the index. */
  skip(index: number): void {
    this.#advance(index);
  }

  /** A committed entry's bytes: decoded and applied; bytes that are no command fail as a write. */
  applyEntry(index: number, data: Uint8Array): ApplyResult {
    let command: TaggedCommand;
    try {
      command = decodeCommand(data);
    } catch (error) {
      this.#advance(index);
      return failed(error, index, 'entry');
    }
    return this.apply(index, command);
  }

  /** Applies a command; `command` is validated here (parseCommand), whatever its static type. */
  apply(index: number, command: unknown): ApplyResult {
    this.#advance(index);
    let parsed: TaggedCommand;
    try {
      parsed = parseCommand(command);
    } catch (error) {
      return failed(error, index, 'entry');
    }
    const requestId = parsed.requestId;
    if (requestId !== undefined) {
      const earlier = this.#requests.get(requestId);
      if (earlier) return earlier;
    }
    // Read before the change: a removed secret's record still names it.
    const audit =
      parsed.audit !== undefined && auditedOps(parsed.op) ? this.#auditSubject(parsed) : null;
    let result: ApplyResult;
    try {
      result = this.#apply(index, parsed);
    } catch (error) {
      result = failed(error, index, parsed.op);
    }
    // The change's record, in the same entry: its outcome is the apply's (ok, or the error code).
    if (audit !== null) this.#appendAudit(parsed, audit, result);
    if (requestId !== undefined) this.#remember(requestId, result);
    for (const listener of this.#appliedListeners) listener(parsed.op);
    return result;
  }

  #auditSubject(command: TaggedCommand): AuditSubject {
    return auditSubject(command as unknown as Readonly<Record<string, unknown>> & { op: string }, {
      secretName: (id) => this.#secrets.get(id as SecretId)?.name,
      serviceName: (id) => this.workloads.services.get(id as never)?.spec.name,
      node: (id) => this.#nodes.get(id as NodeId) as Readonly<Record<string, unknown>> | undefined,
    });
  }

  #appendAudit(command: TaggedCommand, subject: AuditSubject, result: ApplyResult): void {
    const tag = command.audit!;
    const version = !result.ok
      ? undefined
      : command.op === 'secret-create'
        ? 1
        : command.op === 'secret-version-remove'
          ? command.version
          : result.version;
    this.#audit.append(
      {
        at: command.at,
        actor: tag.actor,
        source: tag.source,
        action: subject.action,
        ...(subject.object === undefined ? {} : { object: subject.object }),
        ...(version === undefined ? {} : { version }),
        ...(subject.detail === undefined ? {} : { detail: subject.detail }),
        result: result.ok ? 'ok' : result.code,
        ...(tag.requestId === undefined ? {} : { requestId: tag.requestId }),
      },
      auditKeptOf(this.#cluster),
    );
  }

  #remember(requestId: string, result: ApplyResult): void {
    if (this.#requests.has(requestId)) {
      this.#requests.set(requestId, result);
      return;
    }
    const oldest = this.#requestOrder[this.#requestNext];
    if (oldest !== undefined) this.#requests.delete(oldest);
    this.#requestOrder[this.#requestNext] = requestId;
    this.#requestNext = (this.#requestNext + 1) % requestIdsRemembered;
    this.#requests.set(requestId, result);
  }

  #advance(index: number): void {
    assert(index > this.#appliedIndex, `store applies index ${index} after ${this.#appliedIndex}`);
    this.#appliedIndex = index;
  }

  #apply(index: number, command: Command): ApplyResult {
    switch (command.op) {
      case 'cluster-init':
        return this.#initCluster(index, command);
      case 'cluster-update':
        return this.#updateCluster(index, command);
      case 'secret-create':
        return this.#createSecret(index, command);
      case 'secret-update':
        return this.#updateSecret(index, command);
      case 'secret-remove':
        return this.#removeSecrets(command.ids);
      case 'secret-version-add':
        return this.#changeVersions(index, command, (secret, context) =>
          addVersion(secret, command.data, command.ifVersion, context),
        );
      case 'secret-rollback':
        return this.#changeVersions(index, command, (secret, context) =>
          rollBack(secret, command.to, command.ifVersion, context),
        );
      case 'secret-version-remove':
        return this.#changeVersions(index, command, (secret, context) =>
          removeVersion(secret, command.version, context),
        );
      case 'secret-grant':
      case 'secret-ungrant':
        return this.#changeGrants(index, command);
      case 'node-add':
        return this.#addNode(index, command.at, command.node);
      case 'node-update':
        return this.#updateNode(index, command);
      case 'node-remove':
        return this.#removeNodes(command.at, command.ids);
      case 'dek-rotate': {
        const cluster = this.#cluster;
        if (!cluster)
          return { ok: false, code: 'unavailable', message: 'Cluster is not initialized' };
        const dekRotations = (cluster.dekRotations ?? 0) + 1;
        this.#setCluster({ ...cluster, updatedAt: command.at, metaIndex: index, dekRotations });
        return { ok: true, id: cluster.id };
      }
      case 'ca-rotation-start':
      case 'node-cert-issuer':
      case 'ca-rotation-finish':
        return this.#rotateRoot(index, command);
      case 'node-status': {
        const node = this.#nodes.get(command.id as NodeId);
        if (!node) return { ok: false, code: 'not_found', message: `Node ${command.id} not found` };
        const updated = { ...node, status: command.status, metaIndex: index };
        this.#nodes.set(node.id, updated);
        this.#emit({ kind: 'node', node: updated });
        return { ok: true, id: node.id };
      }
      case 'service-create':
        this.workloads.createService(index, command.at, command.id, command.spec, (id) =>
          this.#secrets.get(id as SecretId),
        );
        return { ok: true, id: command.id };
      case 'service-update':
        this.workloads.updateService(
          index,
          command.at,
          command.id,
          command.expectedIndex,
          command.spec,
          (id) => this.#secrets.get(id as SecretId),
        );
        return { ok: true, id: command.id };
      case 'service-remove':
        this.workloads.removeService(command.at, command.id, index);
        return { ok: true, id: command.id };
      case 'tasks-put':
        this.workloads.putTasks(
          index,
          command.at,
          command.tasks,
          (id) => this.#secrets.get(id as SecretId)?.versions.at(-1)?.version,
        );
        return { ok: true };
      case 'task-status':
        this.workloads.reportStatus(index, command.at, command.nodeId, command.updates);
        return { ok: true };
      case 'tasks-remove':
        this.workloads.removeTasks(command.ids);
        return { ok: true };
      case 'client-cert-issue':
        this.clientCerts.issue(command.cert);
        return { ok: true, id: command.cert.serial };
      case 'client-cert-update':
        this.clientCerts.update(command.serials, command.role, command.scope);
        return { ok: true };
      case 'client-cert-revoke': {
        const serials = this.clientCerts.revoke(command.at, command.serials);
        if (serials.length > 0) this.#emit({ kind: 'client-certs-revoked', serials });
        return { ok: true };
      }
      case 'cert-records-prune':
        this.clientCerts.prune(command.at, command.clientCerts, certRecordsPruneGraceMs);
        this.#pruneRemovedNodes(command.at, command.removedNodes);
        return { ok: true };
      case 'audit-append':
        for (const record of command.records)
          this.#audit.append(record, auditKeptOf(this.#cluster));
        return { ok: true };
      default:
        throw new SecretdError(
          'corrupt',
          `Log entry has unknown operation ${JSON.stringify((command as { op: unknown }).op)}`,
        );
    }
  }

  #initCluster(index: number, command: Extract<Command, { op: 'cluster-init' }>): ApplyResult {
    if (this.#cluster)
      return { ok: false, code: 'conflict', message: 'Cluster is already initialized' };
    this.#setCluster({
      id: command.clusterId,
      createdAt: command.at,
      updatedAt: command.at,
      metaIndex: index,
      caCertPem: command.caCertPem,
      caKey: fromBase64(command.caKey),
      joinTokens: command.joinTokens,
      unlockKey: command.unlockKey === null ? null : fromBase64(command.unlockKey),
      labels: {},
    });
    this.#addNode(index, command.at, command.node);
    return { ok: true, id: command.clusterId };
  }

  #addNode(index: number, at: string, node: NodeSpec): ApplyResult {
    if (this.#removedNodes.has(node.id) || this.#nodes.has(node.id as NodeId))
      return { ok: false, code: 'conflict', message: `Node id ${node.id} is already in use` };
    this.#nodes.set(node.id as NodeId, {
      ...node,
      id: node.id as NodeId,
      availability: 'active',
      labels: {},
      status: 'unknown',
      createdAt: at,
      updatedAt: at,
      metaIndex: index,
    });
    return { ok: true, id: node.id };
  }

  #updateNode(index: number, command: Extract<Command, { op: 'node-update' }>): ApplyResult {
    const node = this.#nodes.get(command.id as NodeId);
    if (!node) return { ok: false, code: 'not_found', message: `Node ${command.id} not found` };
    if (command.expectedIndex !== null && command.expectedIndex !== node.metaIndex)
      return staleVersion(`node ${node.id}`, command.expectedIndex, node.metaIndex);
    const updated: NodeRecord = {
      ...node,
      role: command.role ?? node.role,
      availability: command.availability ?? node.availability,
      labels: command.labels ?? node.labels,
      addr: command.addr ?? node.addr,
      updatedAt: command.at,
      metaIndex: index,
    };
    this.#nodes.set(node.id, updated);
    this.#emit({ kind: 'node', node: updated });
    return { ok: true, id: node.id };
  }

  #removeNodes(at: string, ids: readonly string[]): ApplyResult {
    const missing = ids.filter((id) => !this.#nodes.has(id as NodeId));
    if (missing.length > 0)
      return { ok: false, code: 'not_found', message: `Node ${missing.join(', ')} not found` };
    const certsExpireAt = this.#nodeCertsExpireAt(at);
    for (const id of ids) {
      this.#nodes.delete(id as NodeId);
      this.#removedNodes.set(id, { id, certsExpireAt });
      this.#emit({ kind: 'node-removed', id: id as NodeId });
    }
    return { ok: true };
  }

  /**
   * The latest a certificate held by a node removed at `at` can expire: no node certificate
   * outlives its issue by more than the longer of the default lifetime and the cluster's setting
   * now (one issued under an even longer setting since lowered may outlive this bound; the prune
   * grace covers clocks, not that). Null (never pruned) when `at` is not a time.
   */
  #nodeCertsExpireAt(at: string): string | null {
    const atMs = Date.parse(at);
    if (!Number.isFinite(atMs)) return null;
    const setting = this.#cluster?.nodeCertExpiryMs ?? 0;
    return new Date(atMs + Math.max(nodeCertLifetimeMs, setting)).toISOString();
  }

  #pruneRemovedNodes(at: string, ids: readonly string[]): void {
    const atMs = Date.parse(at);
    for (const id of ids) {
      const record = this.#removedNodes.get(id);
      if (record && expiredBefore(record.certsExpireAt, atMs, certRecordsPruneGraceMs))
        this.#removedNodes.delete(id);
    }
  }

  /** A removed node's id: never reused, and its certificate is refused (until pruned, once it has expired). */
  isRemovedNode(id: string): boolean {
    return this.#removedNodes.has(id);
  }

  removedNodes(): IterableIterator<RemovedNodeRecord> {
    return this.#removedNodes.values();
  }

  #updateCluster(index: number, command: Extract<Command, { op: 'cluster-update' }>): ApplyResult {
    const cluster = this.#cluster;
    if (!cluster) return { ok: false, code: 'unavailable', message: 'Cluster is not initialized' };
    if (command.expectedIndex !== null && command.expectedIndex !== cluster.metaIndex) {
      return staleVersion('cluster', command.expectedIndex, cluster.metaIndex);
    }
    this.#setCluster({
      ...cluster,
      updatedAt: command.at,
      metaIndex: index,
      labels: command.labels ?? cluster.labels,
      joinTokens: command.joinTokens ?? cluster.joinTokens,
      unlockKey:
        command.unlockKey === undefined
          ? cluster.unlockKey
          : command.unlockKey === null
            ? null
            : fromBase64(command.unlockKey),
      ...(command.secretVersionsKept === undefined
        ? {}
        : { secretVersionsKept: command.secretVersionsKept }),
      // Turning autolock on rotates every manager's DEK: the old one was on disk in the clear.
      ...(cluster.unlockKey === null && typeof command.unlockKey === 'string'
        ? { dekRotations: (cluster.dekRotations ?? 0) + 1 }
        : {}),
      ...(command.nodeCertExpiryMs === undefined
        ? {}
        : { nodeCertExpiryMs: command.nodeCertExpiryMs }),
      ...(command.auditKept === undefined ? {} : { auditKept: command.auditKept }),
    });
    return { ok: true, id: cluster.id };
  }

  /** The root CA's rotation (root-rotation.ts): start, a node's report, finish. */
  #rotateRoot(
    index: number,
    command: Extract<
      Command,
      { op: 'ca-rotation-start' | 'node-cert-issuer' | 'ca-rotation-finish' }
    >,
  ): ApplyResult {
    const cluster = this.#cluster;
    if (!cluster) return { ok: false, code: 'unavailable', message: 'Cluster is not initialized' };
    const rotation = cluster.rootRotation;
    const stamp = { updatedAt: command.at, metaIndex: index };
    switch (command.op) {
      case 'ca-rotation-start': {
        if (rotation)
          return {
            ok: false,
            code: 'conflict',
            message: `A root CA rotation is already in progress (started at ${rotation.startedAt})`,
          };
        const forced =
          command.forceRotate === undefined ? {} : { forceRotate: command.forceRotate };
        this.#setCluster({ ...cluster, ...stamp, ...forced, rootRotation: command.rotation });
        return { ok: true, id: command.rotation.id };
      }
      case 'node-cert-issuer': {
        const node = this.#nodes.get(command.id as NodeId);
        if (!node) return { ok: false, code: 'not_found', message: `Node ${command.id} not found` };
        if (node.certIssuerKey === command.issuerKey) return { ok: true, id: node.id };
        const updated = { ...node, certIssuerKey: command.issuerKey, metaIndex: index };
        this.#nodes.set(node.id, updated);
        this.#emit({ kind: 'node', node: updated });
        return { ok: true, id: node.id };
      }
      case 'ca-rotation-finish': {
        if (rotation?.id !== command.rotationId)
          return {
            ok: false,
            code: 'conflict',
            message: `Cannot finish root CA rotation ${command.rotationId}: it is not the one in progress`,
          };
        const { pending } = rotationProgress(rotation, this.#nodes.values());
        if (pending.length > 0)
          return {
            ok: false,
            code: 'conflict',
            message: `Cannot finish the root CA rotation: ${pending.length} node(s) have no certificate from the new root yet (${pending.slice(0, 5).join(', ')})`,
          };
        const { rootRotation: _, ...rest } = cluster;
        this.#setCluster({
          ...rest,
          ...stamp,
          caCertPem: rotation.caCertPem,
          caKey: fromBase64(rotation.caKey),
          joinTokens: command.joinTokens,
        });
        return { ok: true, id: rotation.id };
      }
    }
  }

  #setCluster(cluster: ClusterRecord): void {
    this.#cluster = cluster;
    this.#emit({ kind: 'cluster', cluster });
  }

  /**
   * Keeps the command's bytes as version 1, without a copy: a command decoded from an entry owns
   * them (decodeCommand, parseCommand). A refused create's value is zeroed (best effort under a GC).
   */
  #createSecret(index: number, command: Extract<Command, { op: 'secret-create' }>): ApplyResult {
    const key = command.name.toLowerCase();
    if (this.#secretNames.has(key)) {
      command.data.fill(0);
      return { ok: false, code: 'conflict', message: `Secret ${command.name} already exists` };
    }
    const id = command.id as SecretId;
    if (this.#secrets.has(id)) {
      command.data.fill(0);
      return { ok: false, code: 'conflict', message: `Secret id ${id} is already in use` };
    }
    const record: SecretRecord = {
      id,
      name: command.name,
      labels: command.labels,
      createdAt: command.at,
      updatedAt: command.at,
      metaIndex: index,
      versions: [{ version: 1, data: command.data, createdAt: command.at }],
    };
    this.#secrets.set(id, record);
    this.#secretNames.set(key, id);
    return { ok: true, id };
  }

  #updateSecret(index: number, command: Extract<Command, { op: 'secret-update' }>): ApplyResult {
    const secret = this.#secrets.get(command.id as SecretId);
    if (!secret) return { ok: false, code: 'not_found', message: `Secret ${command.id} not found` };
    if (secret.metaIndex !== command.expectedIndex)
      return staleVersion(`secret ${secret.name}`, command.expectedIndex, secret.metaIndex);
    this.#secrets.set(secret.id, {
      ...secret,
      labels: command.labels,
      updatedAt: command.at,
      metaIndex: index,
    });
    return { ok: true, id: secret.id };
  }

  /**
   * A change to a secret's versions. A new newest version rolls the tasks of services that follow
   * it with on-update restart; others get it in place through the dispatcher.
   */
  #changeVersions(
    index: number,
    command: { at: string; id: string },
    change: (secret: SecretRecord, context: VersionContext) => VersionChange,
  ): ApplyResult {
    const secret = this.#secrets.get(command.id as SecretId);
    if (!secret) return { ok: false, code: 'not_found', message: `Secret ${command.id} not found` };
    const before = secret.versions.at(-1)!.version;
    const context: VersionContext = {
      index,
      at: command.at,
      kept: this.#cluster?.secretVersionsKept,
      pinnedBy: (version) => [
        ...this.workloads.pinnedUsers(secret.id, version),
        ...grantPins(secret, version),
      ],
    };
    const result = change(secret, context);
    if (!result.changed)
      return { ok: true, id: secret.id, version: result.version, changed: false };
    this.#secrets.set(secret.id, result.record);
    // The log and snapshots keep their own sealed copies; this zeroes the in-memory one.
    for (const dropped of result.dropped) this.#valueHolds.zero(dropped.data);
    if (result.version !== before) this.workloads.secretVersionAdded(index, command.at, secret.id);
    return { ok: true, id: secret.id, version: result.version, changed: true };
  }

  /** A grant added or changed, or removed (grants.ts); the dispatcher pushes or withdraws. */
  #changeGrants(
    index: number,
    command: Extract<Command, { op: 'secret-grant' | 'secret-ungrant' }>,
  ): ApplyResult {
    const secret = this.#secrets.get(command.id as SecretId);
    if (!secret) return { ok: false, code: 'not_found', message: `Secret ${command.id} not found` };
    const stamp = { at: command.at, index };
    const change =
      command.op === 'secret-grant'
        ? addGrant(secret, command.constraints, command.version, stamp)
        : removeGrant(secret, command.constraints, stamp);
    if (change.changed) this.#secrets.set(secret.id, change.record);
    const pinned = command.op === 'secret-grant' && command.version !== null;
    return {
      ok: true,
      id: secret.id,
      changed: change.changed,
      ...(pinned ? { version: command.version! } : {}),
    };
  }

  #removeSecrets(ids: readonly string[]): ApplyResult {
    const missing = ids.filter((id) => !this.#secrets.has(id as SecretId));
    if (missing.length > 0)
      return { ok: false, code: 'not_found', message: `Secret ${missing.join(', ')} not found` };
    for (const id of ids) {
      const users = this.workloads.servicesUsing(id).map((s) => s.spec.name);
      if (users.length > 0) {
        const name = this.#secrets.get(id as SecretId)!.name;
        return {
          ok: false,
          code: 'invalid',
          message: `Secret '${name}' is in use by the following ${users.length === 1 ? 'service' : 'services'}: ${users.join(', ')}`,
        };
      }
      const granted = grantedRemovalRefusal(this.#secrets.get(id as SecretId)!);
      if (granted !== null) return { ok: false, code: 'conflict', message: granted };
    }
    for (const id of ids) {
      const secret = this.#secrets.get(id as SecretId)!;
      this.#secrets.delete(secret.id);
      this.#secretNames.delete(secret.name.toLowerCase());
      for (const version of secret.versions) this.#valueHolds.zero(version.data);
      this.#emit({ kind: 'secret-removed', id: secret.id });
    }
    return { ok: true };
  }

  #emit(event: StoreEvent): void {
    for (const listener of this.#listeners) listener(event);
  }

  // --- queries -------------------------------------------------------------------------------

  secret(id: string): SecretRecord | undefined {
    return this.#secrets.get(id as SecretId);
  }

  secretByName(name: string): SecretRecord | undefined {
    const id = this.#secretNames.get(name.toLowerCase());
    return id === undefined ? undefined : this.#secrets.get(id);
  }

  secrets(): IterableIterator<SecretRecord> {
    return this.#secrets.values();
  }

  nodes(): IterableIterator<NodeRecord> {
    return this.#nodes.values();
  }

  node(id: string): NodeRecord | undefined {
    return this.#nodes.get(id as NodeId);
  }

  /**
   * Docker's resolution order: full id, then exact name (ignoring case), then a unique id prefix.
   * Name prefixes never resolve.
   */
  resolveSecret(ref: string): SecretRecord {
    return resolveByRef(
      'Secret',
      ref,
      this.#secrets.get(ref as SecretId) ?? this.secretByName(ref),
      this.#secrets.values(),
    );
  }

  // --- snapshots -----------------------------------------------------------------------------

  /** Secret values' zeroing, held back while a snapshot being written refers to them (_snapshot-pieces.ts). */
  readonly #valueHolds = new ValueHolds();

  /** The whole store, serialized: the bytes of snapshotPieces() in order. */
  snapshot(): Uint8Array {
    const pieces = this.snapshotPieces();
    try {
      return joinPieces(pieces);
    } finally {
      for (const piece of pieces) (piece as Partial<ReleasedPiece>).release?.();
    }
  }

  /**
   * The snapshot in pieces for the snapshot store, which writes a shared piece once: the audit
   * trail's full segments (AuditLog.snapshotPieces) and every secret value of at least
   * snapshotVersionPieceBytesMin bytes (_snapshot-pieces.ts) are shared pieces whose bytes are
   * made only if they must be written; the rest is inline. The JSON is the same as ever. Every
   * list this returns must be saved (SnapshotStore.save releases the values it holds) or released.
   */
  snapshotPieces(): SnapshotPiece[] {
    const { head, tail } = this.#snapshotFrame();
    const out = new PieceWriter().text(head);
    writeSecrets(out, this.#secrets.values(), this.#valueHolds);
    return out
      .text(tail.text)
      .piece(...tail.pieces)
      .text('}')
      .done();
  }

  /**
   * snapshotPieces() as of this call, with the secrets written `perSlice` at a time and `pause()`
   * awaited between slices, so that a store of many secrets does not hold the event loop while it
   * is written (10,000 secrets took 40–115 ms at once). Everything else is taken now; the secrets
   * are the records of this moment (a change sets a new record, never edits one), and the zeroing
   * of every value is held back until the slices are written (a large value's piece then holds
   * its own until the snapshot store releases it). Same contract: save or release the list.
   */
  async snapshotPiecesInSlices(
    pause: () => Promise<void>,
    perSlice = snapshotSecretsPerSlice,
  ): Promise<SnapshotPiece[]> {
    const { head, tail } = this.#snapshotFrame();
    const secrets = [...this.#secrets.values()];
    const holds = this.#valueHolds;
    const releaseAll = holds.holdAll(); // until the slices are written; pieces hold their own values
    const out = new PieceWriter().text(head);
    try {
      for (let at = 0; at < secrets.length; at += perSlice) {
        await pause(); // the first too: the caller's turn of the loop has done its share already
        if (at > 0) out.text(',');
        writeSecrets(out, secrets.slice(at, at + perSlice), holds);
        out.cut();
      }
      return out
        .text(tail.text)
        .piece(...tail.pieces)
        .text('}')
        .done();
    } catch (error) {
      for (const piece of out.done()) (piece as Partial<ReleasedPiece>).release?.();
      throw error;
    } finally {
      releaseAll();
    }
  }

  /** The snapshot's text before the secrets, and after them (the audit trail's pieces with it), as of now. */
  #snapshotFrame(): {
    readonly head: string;
    readonly tail: { readonly text: string; readonly pieces: SnapshotPiece[] };
  } {
    const cluster = this.#cluster && {
      ...this.#cluster,
      caKey: toBase64(this.#cluster.caKey),
      unlockKey: this.#cluster.unlockKey && toBase64(this.#cluster.unlockKey),
    };
    const head = {
      format: 1,
      appliedIndex: this.#appliedIndex,
      cluster,
      nodes: [...this.#nodes.values()],
      removedNodes: [...this.#removedNodes.keys()],
      removedNodesCertsExpireAt: [...this.#removedNodes.values()].map((n) => [
        n.id,
        n.certsExpireAt,
      ]),
      clientCerts: this.clientCerts.snapshot(),
    };
    const tail = { requests: [...this.#requests], ...this.workloads.snapshot() };
    // The audit trail is spliced in as pieces: its full segments never change either.
    return {
      head: `${JSON.stringify(head).slice(0, -1)},"secrets":[`,
      tail: {
        text: `],${JSON.stringify(tail).slice(1, -1)},"audit":`,
        pieces: this.#audit.snapshotPieces(),
      },
    };
  }

  /**
   * The store a snapshot's data holds; `shared`: where that data's shared pieces lay, when the
   * snapshot store loaded it from pieces (the audit trail's full segments take their ids).
   */
  static restore(bytes: Uint8Array, shared?: readonly SnapshotSpan[]): Store {
    const body = JSON.parse(new TextDecoder().decode(bytes)) as SnapshotBody;
    if (body.format !== 1)
      throw new SecretdError('corrupt', `Snapshot has unknown format ${String(body.format)}`);
    const store = new Store();
    store.#appliedIndex = body.appliedIndex;
    if (body.cluster) {
      store.#cluster = {
        ...body.cluster,
        caKey: fromBase64(body.cluster.caKey),
        unlockKey: body.cluster.unlockKey === null ? null : fromBase64(body.cluster.unlockKey),
      };
    }
    for (const node of body.nodes) store.#nodes.set(node.id, node);
    for (const [id, result] of (body.requests ?? []).slice(-requestIdsRemembered))
      store.#remember(id, result);
    // Snapshots from before expiry was recorded list ids only: those are never pruned.
    const expiry = new Map(body.removedNodesCertsExpireAt ?? []);
    for (const id of body.removedNodes ?? [])
      store.#removedNodes.set(id, { id, certsExpireAt: expiry.get(id) ?? null });
    store.clientCerts.restore(body.clientCerts ?? []);
    store.#audit = AuditLog.restore(
      body.audit,
      undefined,
      shared === undefined ? undefined : { data: bytes, shared },
    );
    store.workloads.restore(body);
    for (const s of body.secrets) {
      const record: SecretRecord = {
        ...s,
        versions: s.versions.map((v) => ({ ...v, data: fromBase64(v.data) })),
      };
      store.#secrets.set(record.id, record);
      store.#secretNames.set(record.name.toLowerCase(), record.id);
    }
    return store;
  }

  /** Restored state is announced to listeners (e.g. so a manager re-wraps its keys). */
  announce(): void {
    if (this.#cluster) this.#emit({ kind: 'cluster', cluster: this.#cluster });
  }
}

interface SnapshotBody {
  format: number;
  appliedIndex: number;
  cluster:
    | (Omit<ClusterRecord, 'caKey' | 'unlockKey'> & { caKey: string; unlockKey: string | null })
    | null;
  nodes: NodeRecord[];
  secrets: Array<
    Omit<SecretRecord, 'versions'> & {
      versions: Array<{ version: number; data: string; createdAt: string }>;
    }
  >;
  requests?: Array<[string, ApplyResult]>;
  removedNodes?: string[];
  removedNodesCertsExpireAt?: Array<[string, string | null]>;
  clientCerts?: ClientCertRecord[];
  audit?: AuditLogSnapshot;
  services?: ServiceRecord[];
  tasks?: TaskRecord[];
}

/**
 * The outcome of an entry that could not be applied. A SecretdError is an expected refusal; any
 * other error but a broken invariant is reported by its name only (its message could quote the
 * entry, and so secret data).
 */
function failed(error: unknown, index: number, what: string): ApplyResult {
  if (error instanceof AssertionError) throw error;
  if (error instanceof SecretdError) return { ok: false, code: error.code, message: error.message };
  const name = error instanceof Error ? error.name : typeof error;
  return {
    ok: false,
    code: 'internal',
    message: `Cannot apply the ${what} at index ${index}: it failed with ${name}`,
  };
}

function staleVersion(what: string, expected: number, actual: number): ApplyResult {
  return {
    ok: false,
    code: 'conflict',
    message: `Cannot update ${what}: version ${expected} is out of date (current version is ${actual})`,
  };
}

/**
 * Base64 to bytes the caller owns. Standard base64 (what secretd writes) is decoded in one step
 * (a restart decodes every value of its snapshot: 10,000 values took 9 ms the old way, 3 ms
 * this way); anything else as Buffer decodes it, as before.
 */
export function fromBase64(text: string): Uint8Array {
  return decodeStandardBase64(text) ?? new Uint8Array(Buffer.from(text, 'base64'));
}

export type { Labels };
