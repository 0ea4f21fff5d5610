/**
 * The leader's dispatcher: one session per node (a long-lived stream of newline-delimited JSON),
 * heartbeats both ways, node liveness, and assignments. A session starts with the node's complete
 * assignment set, then carries changes in order: tasks, and only the secrets those tasks
 * reference, counted per node; when no task on a node references a secret any more, the node is
 * told to drop it. A node missing `heartbeatsMissedMax` heartbeats is marked down.
 *
 * Grants ride the same stream: every secret one of whose grants matches the node (its id,
 * hostname, role and labels, as the store has them now) is pushed at the version its grants name
 * (grantedVersion), and withdrawn when none matches any more (grant removed, labels or role
 * changed, secret removed); a new version an unpinned grant follows is pushed as it comes.
 *
 * One process per node id: each session carries its agent process's instance id (SessionClaim). A
 * session request from the same instance replaces the old session (a reconnect); one from another
 * instance while the old session lives (open, heartbeats within the miss limit) is refused with
 * `conflict` (409): a copy of the node's data dir running elsewhere must not take its tasks. Once
 * the old session misses its heartbeats it is closed and the other process may take over.
 */
import { SecretdError } from '../../errors.ts';
import {
  execOutputBytesMax,
  heartbeatPeriodMs,
  heartbeatsMissedMax,
  nodeCertExpirySlackMs,
} from '../../limits.ts';
import { newId, type Random } from '../../crypto/index.ts';
import { systemRandom } from '../../io/system.ts';
import type { Timers } from '../../io/timers.ts';
import type {
  ExecResult,
  GrantDelivery,
  SecretDelivery,
  SecretKey,
  SessionClaim,
  SessionMessage,
  TaskAssignment,
} from './messages.ts';
import type { Command, TaskStatusUpdate } from '../store/index.ts';
import type { AuditEntry } from '../audit/index.ts';
import { toBase64, type Store } from '../store/index.ts';
import { isDead, type ContainerSpec, type NodeStatus } from '../store/index.ts';
import { nodeCertExpiryOf, nodeCertExpiryText } from '../store/index.ts';
import { grantedVersion, type NodeRecord } from '../store/index.ts';

/** Renewal asks kept for sending again (the oldest is dropped past it): one per node. */
const renewalAsksKept = 16_384;

interface Session {
  readonly nodeId: string;
  /** The agent process's instance id; undefined (an agent that sent none) never matches another. */
  readonly instance: string | undefined;
  readonly address: string;
  readonly send: (message: SessionMessage) => void;
  readonly close: () => void;
  /** Task id → the desired state and secret versions last sent. */
  sentTasks: Map<string, string>;
  /** `${secretId}:${version}` of secrets the node holds. */
  sentSecrets: Set<string>;
  /** Secret id → the version the node holds by grant. */
  sentGrants: Map<string, number>;
  /** The role in the certificate the session presented (unknown: never asked to renew). */
  readonly certificateRole: 'manager' | 'worker' | undefined;
  /** When that certificate ends (ms since the epoch; unknown: never asked to renew for it). */
  readonly certificateNotAfter: number | undefined;
  /** Why a renewal was last asked for in this session (each reason is asked once per session). */
  renewalAskedFor: string | null;
}

export interface DispatcherOptions {
  readonly store: () => Store;
  readonly propose: (command: Command) => Promise<unknown>;
  readonly timers: Timers;
  readonly now: () => string;
  readonly log: (line: string) => void;
  /** Draws the ids of exec requests (default: the system's random source); the simulator passes a seeded one. */
  readonly random?: Random;
  /**
   * Audit records of secret versions sent to a node (`secret-deliver`) and dropped by it
   * (`secret-release`), naming the node, the tasks that hold it there, the secret and the version;
   * the manager's recorder proposes them in batches (audit/recorder.ts).
   */
  readonly record?: (entry: AuditEntry) => void;
}

export class Dispatcher {
  readonly #options: DispatcherOptions;
  readonly #sessions = new Map<string, Session>();
  readonly #lastSeen = new Map<string, number>();
  /** Node id → the refused instance last logged, so a retrying second process is logged once. */
  readonly #refusalsLogged = new Map<string, string>();
  /**
   * Renewals asked of nodes (askRenewal: a root CA rotation), by node id, with the end of the
   * certificate the node presented when asked. A session can end with the ask in flight (its
   * connection moved: a renewal, a GOAWAY), so the ask goes again on each new session of the node
   * until one presents another certificate (it renewed).
   */
  readonly #asks = new Map<
    string,
    { readonly reason: string; readonly notAfter: number | undefined }
  >();
  /**
   * Execs waiting for their node's answer, by id. Each is sent again on every new session of its
   * node until answered (a session can end with one in flight: its message lost); the agent runs
   * an id once.
   */
  readonly #execs = new Map<
    string,
    {
      readonly nodeId: string;
      readonly message: Extract<SessionMessage, { type: 'exec' }>;
      resolve: (r: ExecResult) => void;
      reject: (e: Error) => void;
    }
  >();
  #active = false;
  #activeSince = 0;
  #dirty = false;
  #stopTicking: (() => void) | null = null;

  constructor(options: DispatcherOptions) {
    this.#options = options;
  }

  /** Becomes the cluster's dispatcher (this manager leads) or stops being it. */
  setActive(active: boolean): void {
    if (active === this.#active) return;
    this.#active = active;
    if (active) {
      this.#activeSince = this.#options.timers.now();
      this.#stopTicking = this.#options.timers.every(heartbeatPeriodMs, () => this.#tick());
    } else {
      this.#stopTicking?.();
      for (const session of [...this.#sessions.values()]) session.close();
      this.#sessions.clear();
      for (const exec of this.#execs.values())
        exec.reject(
          new SecretdError('unavailable', 'The dispatcher moved to another manager; try again'),
        );
      this.#execs.clear();
      this.#asks.clear();
    }
  }

  get active(): boolean {
    return this.#active;
  }

  /**
   * Opens a node's session; the returned stream is its response body. Throws `conflict` while
   * another process (another instance id) holds a live session for this node id.
   */
  openSession(nodeId: string, claim: SessionClaim = {}): ReadableStream<Uint8Array> {
    if (!this.#active)
      throw new SecretdError('unavailable', 'Not the leader: sessions are served by the leader');
    const address = claim.address ?? 'unknown';
    const previous = this.#sessions.get(nodeId);
    if (previous) {
      const sameProcess = previous.instance !== undefined && previous.instance === claim.instance;
      if (!sameProcess && this.#alive(nodeId))
        throw this.#refuse(nodeId, previous, claim.instance ?? '', address);
      previous.close();
    }
    this.#refusalsLogged.delete(nodeId);
    const encoder = new TextEncoder();
    let session: Session | null = null;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        const current: Session = {
          nodeId,
          instance: claim.instance,
          address,
          sentTasks: new Map(),
          sentSecrets: new Set(),
          sentGrants: new Map(),
          certificateRole: claim.certificateRole,
          certificateNotAfter: claim.certificateNotAfter,
          renewalAskedFor: null,
          send: (message) => {
            try {
              controller.enqueue(encoder.encode(`${JSON.stringify(message)}\n`));
            } catch {
              current.close();
            }
          },
          close: () => {
            if (this.#sessions.get(nodeId) === current) this.#sessions.delete(nodeId);
            try {
              controller.close();
            } catch {
              // already closed by the client
            }
          },
        };
        session = current;
        this.#sessions.set(nodeId, current);
        this.#lastSeen.set(nodeId, this.#options.timers.now());
        this.#push(current, true);
        for (const exec of this.#execs.values())
          if (exec.nodeId === nodeId) current.send(exec.message);
        const ask = this.#asks.get(nodeId);
        if (ask !== undefined && ask.notAfter !== claim.certificateNotAfter)
          this.#asks.delete(nodeId);
        else if (ask !== undefined) current.send({ type: 'renew-certificate', reason: ask.reason });
        this.#checkCertificate(current);
        void this.#setStatus(nodeId, 'ready');
      },
      cancel: () => {
        if (session && this.#sessions.get(nodeId) === session) this.#sessions.delete(nodeId);
      },
    });
  }

  /** A session whose node was heard from within the miss limit. */
  #alive(nodeId: string): boolean {
    const seen = this.#lastSeen.get(nodeId);
    return (
      seen !== undefined &&
      this.#options.timers.now() - seen <= heartbeatPeriodMs * heartbeatsMissedMax
    );
  }

  #refuse(nodeId: string, holder: Session, instance: string, address: string): SecretdError {
    if (this.#refusalsLogged.get(nodeId) !== instance) {
      if (this.#refusalsLogged.size >= 1024) this.#refusalsLogged.clear();
      this.#refusalsLogged.set(nodeId, instance);
      this.#options.log(
        `secretd: dispatcher: refused a session for node ${nodeId} from ${address}: another process (address ${holder.address}) holds this node's session; two processes claim this node's identity (a copied data dir?)`,
      );
    }
    return new SecretdError(
      'conflict',
      `Node ${nodeId} already has a session from another process (address ${holder.address}): two processes claim this node's identity (a copied data dir?); this one is refused while that one keeps its heartbeats`,
    );
  }

  heartbeat(nodeId: string): void {
    this.#lastSeen.set(nodeId, this.#options.timers.now());
  }

  async reportStatus(nodeId: string, updates: readonly TaskStatusUpdate[]): Promise<void> {
    this.heartbeat(nodeId);
    if (updates.length > 0)
      await this.#options.propose({ op: 'task-status', at: this.#options.now(), nodeId, updates });
  }

  /** The store changed: recompute every session's assignments (coalesced into one pass). */
  storeChanged(): void {
    if (!this.#active || this.#dirty) return;
    this.#dirty = true;
    queueMicrotask(() => {
      this.#dirty = false;
      for (const session of this.#sessions.values()) {
        this.#push(session, false);
        this.#checkCertificate(session);
      }
    });
  }

  /**
   * A node is told to renew at once, once per session and reason, when the certificate its session
   * presented names another role than the store gives it now (promoted, demoted), or lasts longer
   * than the cluster now issues (`cluster update --cert-expiry` shortened it). The session itself
   * stays on the certificate it opened with, so each reason is asked once per session.
   */
  #checkCertificate(session: Session): void {
    const why = this.#renewalReason(session);
    if (why === null || session.renewalAskedFor === why.key) return;
    session.renewalAskedFor = why.key;
    session.send({
      type: 'renew-certificate',
      reason: why.reason,
      ...(why.role ? { role: why.role } : {}),
    });
  }

  /**
   * Asks a node to renew now, over its session (a root CA rotation), and again on each new session
   * until the node presents another certificate; false: it has no session here.
   */
  askRenewal(nodeId: string, reason: string): boolean {
    const session = this.#sessions.get(nodeId);
    if (!this.#active || !session) return false;
    this.#asks.delete(nodeId);
    if (this.#asks.size >= renewalAsksKept) this.#asks.delete(this.#asks.keys().next().value!);
    this.#asks.set(nodeId, { reason, notAfter: session.certificateNotAfter });
    session.send({ type: 'renew-certificate', reason });
    return true;
  }

  #renewalReason(
    session: Session,
  ): { key: string; reason: string; role?: 'manager' | 'worker' } | null {
    const store = this.#options.store();
    const role = store.node(session.nodeId)?.role;
    const named = session.certificateRole;
    if (role !== undefined && role !== 'admin' && named !== undefined && role !== named)
      return {
        key: `role ${role}`,
        reason: `the node is a ${role} now, its certificate says ${named}`,
        role,
      };
    const notAfter = session.certificateNotAfter;
    if (notAfter === undefined || !store.cluster) return null;
    const expiryMs = nodeCertExpiryOf(store.cluster);
    if (notAfter - Date.parse(this.#options.now()) <= expiryMs + nodeCertExpirySlackMs) return null;
    return {
      key: `expiry ${expiryMs}`,
      reason: `the cluster's certificates now last ${nodeCertExpiryText(expiryMs)}, this one until ${new Date(notAfter).toISOString()}`,
    };
  }

  exec(
    nodeId: string,
    taskId: string,
    argv: readonly string[],
    timeoutMs: number,
  ): Promise<ExecResult> {
    const session = this.#sessions.get(nodeId);
    if (!session)
      return Promise.reject(
        new SecretdError(
          'unavailable',
          `Node ${nodeId} has no session with the dispatcher (is it down?)`,
        ),
      );
    const id = newId(this.#options.random ?? systemRandom);
    return new Promise<ExecResult>((resolve, reject) => {
      const cancel = this.#options.timers.after(timeoutMs, () => {
        this.#execs.delete(id);
        reject(
          new SecretdError(
            'unavailable',
            `Node ${nodeId} did not answer the exec within ${timeoutMs} ms`,
          ),
        );
      });
      const message = { type: 'exec', id, taskId, argv } as const;
      this.#execs.set(id, {
        nodeId,
        message,
        resolve: (result) => {
          cancel();
          resolve(result);
        },
        reject: (error) => {
          cancel();
          reject(error);
        },
      });
      session.send(message);
    });
  }

  execResult(nodeId: string, id: string, result: ExecResult): void {
    const exec = this.#execs.get(id);
    if (!exec || exec.nodeId !== nodeId)
      throw new SecretdError('not_found', 'No such exec is waiting for this node');
    this.#execs.delete(id);
    exec.resolve({
      code: result.code,
      stdout: result.stdout.slice(0, execOutputBytesMax),
      stderr: result.stderr.slice(0, execOutputBytesMax),
    });
  }

  /** Nodes known to be connected right now. */
  connected(nodeId: string): boolean {
    return this.#sessions.has(nodeId);
  }

  /**
   * Who holds secret `secretId` now, as this dispatcher sent it over the open sessions: a version
   * per task (the task's id) and per grant. Metadata only; empty while not the leader.
   */
  holdersOf(
    secretId: string,
  ): Array<{ nodeId: string; version: number; by: 'task' | 'grant'; taskId?: string }> {
    const held: Array<{ nodeId: string; version: number; by: 'task' | 'grant'; taskId?: string }> =
      [];
    for (const session of this.#sessions.values()) {
      for (const [taskId, sent] of session.sentTasks) {
        // `${desiredState} ${JSON of secret id → version}`, as #push wrote it.
        const versions = JSON.parse(sent.slice(sent.indexOf(' ') + 1)) as Record<string, number>;
        const version = versions[secretId];
        if (version !== undefined)
          held.push({ nodeId: session.nodeId, version, by: 'task', taskId });
      }
      const granted = session.sentGrants.get(secretId);
      if (granted !== undefined)
        held.push({ nodeId: session.nodeId, version: granted, by: 'grant' });
    }
    return held;
  }

  /** Each open session's node id → when the certificate it presented ends (ms since the epoch; undefined: unknown). */
  sessionCertificates(): Map<string, number | undefined> {
    const ends = new Map<string, number | undefined>();
    for (const session of this.#sessions.values())
      ends.set(session.nodeId, session.certificateNotAfter);
    return ends;
  }

  /** Per session: `${secretId}:${version}` → the tasks that hold it on that node (for release records). */
  readonly #secretTasks = new WeakMap<Session, Map<string, string[]>>();

  #push(session: Session, full: boolean): void {
    const store = this.#options.store();
    const holders = new Map<string, string[]>();
    const tasks: TaskAssignment[] = [];
    const wanted = new Map<string, string>();
    const wantedSecrets = new Map<string, SecretKey>();
    for (const task of store.workloads.tasks.values()) {
      if (task.nodeId !== session.nodeId || isDead(task)) continue;
      const secretVersions =
        task.desiredState === 'running' ? versionsFor(store, task.container) : {};
      const sent = `${task.desiredState} ${JSON.stringify(secretVersions)}`;
      wanted.set(task.id, sent);
      if (full || session.sentTasks.get(task.id) !== sent) {
        const service = store.workloads.services.get(task.serviceId);
        tasks.push({
          id: task.id,
          serviceId: task.serviceId,
          serviceName: service?.spec.name ?? task.serviceId,
          slot: task.slot,
          container: task.container,
          desiredState: task.desiredState,
          secretVersions,
        });
      }
      for (const [id, version] of Object.entries(secretVersions)) {
        wantedSecrets.set(`${id}:${version}`, { id, version });
        const tasksHolding = holders.get(`${id}:${version}`);
        if (tasksHolding) tasksHolding.push(task.id);
        else holders.set(`${id}:${version}`, [task.id]);
      }
    }
    const removedTasks = full ? [] : [...session.sentTasks.keys()].filter((id) => !wanted.has(id));
    const secrets: SecretDelivery[] = [];
    for (const [key, { id, version }] of wantedSecrets) {
      if (!full && session.sentSecrets.has(key)) continue;
      const data = store.secret(id)?.versions.find((v) => v.version === version)?.data;
      if (data) secrets.push({ id, version, data: toBase64(data) });
    }
    const removedSecrets = full
      ? []
      : [...session.sentSecrets].filter((key) => !wantedSecrets.has(key)).map(parseSecretKey);
    this.#recordHoldings(session, store, secrets, holders);
    session.sentTasks = wanted;
    session.sentSecrets = new Set(wantedSecrets.keys());
    const { grants, removedGrants } = this.#grantChanges(session, store, full);
    const changes = tasks.length + removedTasks.length + secrets.length + removedSecrets.length;
    if (full || changes + grants.length + removedGrants.length > 0) {
      session.send({
        type: 'assignments',
        full,
        tasks,
        removedTasks,
        secrets,
        removedSecrets,
        // Left out when empty (a full set without them withdraws every grant).
        ...(grants.length > 0 ? { grants } : {}),
        ...(removedGrants.length > 0 ? { removedGrants } : {}),
      });
    }
  }

  /**
   * What the node must hold by grant now against what it was sent: the deliveries (every held one
   * in a full set) and the withdrawals, recorded in the audit trail; `session.sentGrants` updated.
   */
  #grantChanges(
    session: Session,
    store: Store,
    full: boolean,
  ): { grants: GrantDelivery[]; removedGrants: string[] } {
    const node = store.node(session.nodeId);
    const wanted = node === undefined ? new Map<string, number>() : grantedTo(store, node);
    const grants: GrantDelivery[] = [];
    const released: Array<{ id: string; version: number }> = [];
    for (const [id, version] of wanted) {
      const sent = session.sentGrants.get(id);
      if (!full && sent === version) continue;
      const secret = store.secret(id)!;
      const data = secret.versions.find((v) => v.version === version)!.data;
      grants.push({ id, name: secret.name, version, data: toBase64(data) });
      if (sent !== undefined && sent !== version) released.push({ id, version: sent });
    }
    const removedGrants: string[] = [];
    for (const [id, version] of session.sentGrants) {
      if (wanted.has(id)) continue;
      released.push({ id, version });
      if (!full) removedGrants.push(id);
    }
    session.sentGrants = wanted;
    this.#recordGrants(session, store, grants, released);
    return { grants, removedGrants };
  }

  /** Deliveries and releases by grant, as for tasks' secrets, with `by grant` in their detail and no task. */
  #recordGrants(
    session: Session,
    store: Store,
    delivered: readonly GrantDelivery[],
    released: ReadonlyArray<{ id: string; version: number }>,
  ): void {
    const record = this.#options.record;
    if (!record) return;
    const entry = (action: string, id: string, version: number, name?: string): void =>
      record(this.#secretEntry(session, store, action, id, version, { detail: 'by grant' }, name));
    for (const { id, version } of released) entry('secret-release', id, version);
    for (const { id, version, name } of delivered) entry('secret-deliver', id, version, name);
  }

  /** The audit record of one secret version sent to (`secret-deliver`) or dropped by (`secret-release`) a node. */
  #secretEntry(
    session: Session,
    store: Store,
    action: string,
    id: string,
    version: number,
    by: { readonly detail: string } | { readonly task: string },
    name: string | undefined = store.secret(id)?.name,
  ): AuditEntry {
    return {
      at: this.#options.now(),
      actor: { kind: 'node', name: 'dispatcher', role: 'manager' },
      source: 'dispatcher',
      action,
      object: name === undefined ? { id } : { id, name },
      version,
      node: session.nodeId,
      ...by,
      result: 'ok',
    };
  }

  /** Deliveries (the versions in `secrets`) and releases (versions the node held, no task of it wants now). */
  #recordHoldings(
    session: Session,
    store: Store,
    secrets: readonly SecretDelivery[],
    holders: Map<string, string[]>,
  ): void {
    const record = this.#options.record;
    if (!record) return;
    const before = this.#secretTasks.get(session) ?? new Map<string, string[]>();
    this.#secretTasks.set(session, holders);
    const entry = (action: string, id: string, version: number, tasks: readonly string[]): void =>
      record(
        this.#secretEntry(session, store, action, id, version, {
          task: tasks.join(',').slice(0, 256),
        }),
      );
    for (const { id, version } of secrets)
      entry('secret-deliver', id, version, holders.get(`${id}:${version}`) ?? []);
    for (const key of session.sentSecrets) {
      if (holders.has(key)) continue;
      const { id, version } = parseSecretKey(key);
      entry('secret-release', id, version, before.get(key) ?? []);
    }
  }

  #tick(): void {
    const now = this.#options.timers.now();
    const limit = heartbeatPeriodMs * heartbeatsMissedMax;
    for (const session of this.#sessions.values()) {
      session.send({ type: 'heartbeat', periodMs: heartbeatPeriodMs });
      // A settings change wakes no session: the validity is looked at with every heartbeat.
      this.#checkCertificate(session);
    }
    // A new leader gives every node a full period to find it before calling it down.
    if (now - this.#activeSince < limit) return;
    for (const node of this.#options.store().nodes()) {
      const seen = this.#lastSeen.get(node.id) ?? this.#activeSince;
      if (now - seen > limit) {
        this.#sessions.get(node.id)?.close();
        if (node.status !== 'down') void this.#setStatus(node.id, 'down');
      } else if (this.#sessions.has(node.id) && node.status !== 'ready')
        void this.#setStatus(node.id, 'ready');
    }
  }

  async #setStatus(nodeId: string, status: NodeStatus): Promise<void> {
    const node = this.#options.store().node(nodeId);
    if (!node || node.status === status) return;
    try {
      await this.#options.propose({
        op: 'node-status',
        at: this.#options.now(),
        id: nodeId,
        status,
      });
      if (status === 'down')
        this.#options.log(
          `secretd: node ${nodeId} missed ${heartbeatsMissedMax} heartbeats: marked down`,
        );
    } catch {
      // Leadership moved or the write failed: the next tick (or the next leader) tries again.
    }
  }
}

/** The version of each secret a task must hold: its pinned one, else the newest. */
function versionsFor(store: Store, container: ContainerSpec): Record<string, number> {
  const versions: Record<string, number> = {};
  for (const ref of container.secrets) {
    const version = ref.version ?? store.secret(ref.secretId)?.versions.at(-1)?.version;
    if (version !== undefined) versions[ref.secretId] = version;
  }
  return versions;
}

/** Secret id → the version a node holds by grant, for every secret one of whose grants matches it. */
function grantedTo(store: Store, node: NodeRecord): Map<string, number> {
  const granted = new Map<string, number>();
  for (const secret of store.secrets()) {
    if (secret.grants === undefined) continue;
    const version = grantedVersion(secret, node);
    if (version !== null) granted.set(secret.id, version);
  }
  return granted;
}

function parseSecretKey(key: string): SecretKey {
  const colon = key.lastIndexOf(':');
  return { id: key.slice(0, colon), version: Number(key.slice(colon + 1)) };
}
