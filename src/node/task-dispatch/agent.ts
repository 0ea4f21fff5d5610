/**
 * The node's agent: keeps one session with the leader's dispatcher, runs what it is assigned
 * through the executor, reports task status, and holds the secrets its tasks need in memory only
 * (and in those tasks' tmpfs): a secret version no task here uses any more is zeroed and dropped.
 * When an assignment says a running task must now hold another version of a secret (it follows the
 * newest, and a new one came), the executor writes it beside the old file and renames it over it,
 * then the task's on-update signal, if any, goes to its main process; its status reports the
 * versions it holds. No restart: on-update restart is the orchestrator's (it replaces the task).
 * After a restart (even after SIGKILL) the first complete assignment set decides which containers
 * and mounts left from before are kept; everything else is stopped and erased.
 *
 * A secret lives here exactly as long as a running container needs it. Every way a task ends:
 *   exits on its own   the executor erases its tmpfs before the exit reaches `onExit`; the task is
 *                      then reported complete or failed, never started again (a restart is a new
 *                      task with a fresh tmpfs), and secret versions no other task needs are zeroed
 *   fails to start     the executor erased what it made; reported rejected, never retried
 *   told to stop       (service rm or update, scale down, drain, move, a new leader's full set
 *                      without it) stopped, deleted, erased, then reported shutdown; a task told to
 *                      stop that never started here is confirmed shut down at once, so it cannot
 *                      stay assigned for ever
 *   agent restart      the first full set decides (see above); a kept task whose container ended
 *                      meanwhile is erased and reported failed
 *   anything missed    a sweep every agentSweepIntervalMs erases any task directory or secrets
 *                      mount that no starting or running container owns
 */
import { SecretdError } from '../../errors.ts';
import { agentSweepIntervalMs, heartbeatPeriodMs } from '../../limits.ts';
import { sleep, type Timers } from '../../io/timers.ts';
import type { ExecResult, SessionMessage, TaskAssignment } from './messages.ts';
import { GrantedSecrets } from './granted.ts';
import { LocalContainers } from './local-containers.ts';
import {
  execResultPath,
  heartbeatPath,
  newSessionInstance,
  sessionPathFor,
  statusPath,
} from './messages.ts';
import { systemRandom } from '../../io/system.ts';
import type { Executor, TaskSecret } from '../executor/index.ts';
import type { PeerLink } from '../peers/index.ts';
import type { TaskStatusUpdate } from '../store/index.ts';
import { fromBase64 } from '../store/index.ts';
import type { TaskState } from '../store/index.ts';

/** Exec ids remembered, to run each once (far more than execs in flight at once). */
const execIdsKept = 1024;

export interface AgentOptions {
  readonly nodeId: string;
  /** Managers to try, best first; the dispatcher's answer names the leader when it is elsewhere. */
  readonly managers: () => readonly string[];
  readonly peers: PeerLink;
  readonly executor: Executor;
  readonly timers: Timers;
  readonly log: (line: string) => void;
  /** Draws this agent's session instance id (see SessionClaim). Default: the system's randomness. */
  readonly random?: (bytes: number) => Uint8Array;
  /** The dispatcher asks this node to renew its certificate now (its role changed). */
  /** `role`: the role the new certificate will name, when the renewal is for a role change. */
  readonly onRenewCertificate?: (reason: string, role?: 'manager' | 'worker') => void;
}

export class Agent {
  readonly #options: AgentOptions;
  readonly #assigned = new Map<string, TaskAssignment>();
  /** Secret id → version → value: every version a task here must hold, and no other. */
  readonly #secrets = new Map<string, Map<number, Uint8Array>>();
  /** Running task → the version of each secret its tmpfs holds. */
  readonly #taskVersions = new Map<string, Readonly<Record<string, number>>>();
  /** Tasks whose container this agent started (or adopted) and has not yet seen end. */
  readonly #running = new Set<string>();
  /** Tasks being stopped: a stop waits out the grace period, so it runs beside the queue. */
  readonly #stopping = new Map<string, Promise<void>>();
  /**
   * Assigned tasks whose container ran here and ended (or never could start): never started again.
   * Each with the final status this node reported (null while its stop is under way), sent again to
   * every new session's leader while the task is still listed: a report to a leader that died
   * right after it was sent is lost with it.
   */
  readonly #ended = new Map<string, TaskStatusUpdate | null>();
  /** Tasks told to stop that never ran here, already confirmed shut down to this session's leader. */
  readonly #confirmed = new Set<string>();
  /**
   * The latest exec ids received: the dispatcher sends an unanswered exec again on each new
   * session, and one that arrived before its session ended must not run twice.
   */
  readonly #execIds = new Set<string>();
  #stopSweeping: (() => void) | null = null;
  /** Another process holds this node's session (its 409 was logged once). */
  #claimedElsewhere = false;
  #queue: Promise<void> = Promise.resolve();
  #stopped = false;
  #adopted = false;
  #leader: string | null = null;
  #closeSession: (() => void) | null = null;
  /** The session was ended to move it to a new connection (its own was retired): the next one opens at once. */
  #moving = false;
  /** This agent process's instance id, drawn once, sent with every session request. */
  #instance: string | null = null;
  /** The cluster refused this node's session (and everything here was erased since). */
  #refused = false;
  /** Count of secret deliveries received, without values: for tests and diagnostics. */
  secretsReceived = 0;
  /** What this node holds by grant, outside of any task (memory only; zeroed on withdraw and on stop). */
  readonly granted: GrantedSecrets;
  /** Granted secrets in containers other engines start (secretd-runc) and in `secretd spawn` processes. */
  readonly containers: LocalContainers;

  constructor(options: AgentOptions) {
    this.#options = options;
    this.granted = new GrantedSecrets((error) =>
      options.log(`secretd: agent: a granted-secrets listener failed: ${(error as Error).message}`),
    );
    this.containers = new LocalContainers({
      runDir: options.executor.runDir,
      granted: this.granted,
      log: options.log,
      ready: () => this.#adopted,
    });
    // The executor reports an exit only once the container's secrets are erased.
    options.executor.onExit((taskId, exitCode) => {
      if (!this.#running.delete(taskId)) return;
      this.#taskVersions.delete(taskId);
      const desired = this.#assigned.get(taskId)?.desiredState;
      const state: TaskState =
        desired === 'shutdown' ? 'shutdown' : exitCode === 0 ? 'complete' : 'failed';
      const final = {
        id: taskId,
        state,
        message:
          state === 'failed' ? `container exited with code ${exitCode ?? 'unknown'}` : 'finished',
        error: state === 'failed' ? `task: non-zero exit (${exitCode ?? 'unknown'})` : '',
        exitCode,
        secretVersions: {},
      };
      this.#ended.set(taskId, final);
      this.#dropUnneededSecrets();
      void this.#report([final]);
    });
  }

  start(): void {
    void this.#sessionLoop();
    this.#stopSweeping = this.#options.timers.every(agentSweepIntervalMs, () =>
      this.#enqueue(() => this.#sweep()),
    );
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopSweeping?.();
    this.#closeSession?.();
    await this.#queue;
    await Promise.all(this.#stopping.values());
    this.containers.close();
    this.#dropAllSecrets();
  }

  #dropAllSecrets(): void {
    for (const versions of this.#secrets.values())
      for (const data of versions.values()) data.fill(0);
    this.#secrets.clear();
    this.granted.withdrawAllBut();
  }

  #dropSecret(id: string, version: number): void {
    const versions = this.#secrets.get(id);
    const data = versions?.get(version);
    if (versions === undefined || data === undefined) return;
    data.fill(0);
    versions.delete(version);
    if (versions.size === 0) this.#secrets.delete(id);
  }

  /** Zeroes every secret version that no task here is running or about to start with. */
  #dropUnneededSecrets(): void {
    const needed = new Set<string>();
    for (const task of this.#assigned.values()) {
      if (task.desiredState !== 'running' || this.#ended.has(task.id)) continue;
      for (const [id, version] of Object.entries(task.secretVersions ?? {}))
        needed.add(`${id}:${version}`);
    }
    for (const [id, versions] of [...this.#secrets])
      for (const version of [...versions.keys()])
        if (!needed.has(`${id}:${version}`)) this.#dropSecret(id, version);
  }

  /** The safety net: erases what no running container owns (after the first full set only). */
  async #sweep(): Promise<void> {
    if (this.#stopped) return;
    // Other engines' containers and spawned processes: their own liveness decides, not assignments.
    const gone = await this.containers.sweep();
    if (gone.length > 0)
      this.#options.log(
        `secretd: agent: erased the secrets of ${gone.length} container(s) or spawned process(es) no longer running: ${gone.join(', ')}`,
      );
    if (!this.#adopted) return;
    const erased = await this.#options.executor.sweep();
    if (erased.length > 0)
      this.#options.log(
        `secretd: agent: swept the secrets of ${erased.length} task(s) no running container owned: ${erased.join(', ')}`,
      );
  }

  /** Secrets held in memory right now (ids only). */
  heldSecretIds(): string[] {
    return [...this.#secrets.keys()];
  }

  /** Counts for `/info`, never values: deliveries received so far and secrets held in memory now (by task or by grant). */
  secretCounts(): { received: number; held: number } {
    let held = this.granted.size;
    for (const versions of this.#secrets.values()) held += versions.size;
    return { received: this.secretsReceived, held };
  }

  exec(taskId: string, argv: readonly string[]): Promise<ExecResult> {
    if (!this.#assigned.has(taskId))
      throw new SecretdError('not_found', `Task ${taskId} does not run on this node`);
    return this.#options.executor.exec(taskId, [...argv], { timeoutMs: 60_000 });
  }

  async #sessionLoop(): Promise<void> {
    let attempt = 0;
    while (!this.#stopped) {
      const candidates = [
        ...new Set([...(this.#leader ? [this.#leader] : []), ...this.#options.managers()]),
      ];
      let served = false;
      for (const addr of candidates) {
        if (this.#stopped) return;
        try {
          served = await this.#runSession(addr);
          if (served) break;
        } catch {
          // try the next manager
        }
      }
      attempt = served ? 0 : attempt + 1;
      if (served && this.#moving) {
        this.#moving = false;
        continue;
      }
      await sleep(this.#options.timers, Math.min(100 * 2 ** Math.min(attempt, 4), 2000));
    }
  }

  /** One session: resolves when it ends; false when this manager would not serve it. */
  async #runSession(addr: string): Promise<boolean> {
    let ended: (value: void) => void = () => {};
    const done = new Promise<void>((resolve) => (ended = resolve));
    this.#instance ??= newSessionInstance(this.#options.random ?? systemRandom);
    let close: (() => void) | null = null;
    let retired = false;
    const opened = await this.#options.peers.openLines(addr, sessionPathFor(this.#instance), {
      onLine: (line) => this.#onMessage(addr, JSON.parse(line) as SessionMessage),
      onEnd: () => ended(),
      // A renewal (or the manager's GOAWAY) retired the connection: the session moves to a new
      // one now rather than going on under the old certificate. The dispatcher takes the next
      // session as a reconnect of this process, and sends again any exec left unanswered.
      onRetired: () => {
        if (this.#stopped) return;
        this.#moving = true;
        retired = true;
        close?.();
      },
    });
    if (opened.status !== 200) {
      const answer = safeJson(opened.body) as { Leader?: string; message?: string } | null;
      if (opened.status === 403) this.#onRefused(answer?.message ?? 'permission denied');
      // 409: another process holds this node's session (a copied data dir). What runs here is its,
      // not ours: erase nothing, start nothing, say so once, and keep trying until it goes away.
      if (opened.status === 409 && !this.#claimedElsewhere) {
        this.#claimedElsewhere = true;
        this.#options.log(
          `secretd: agent: ${answer?.message ?? "another process holds this node's session"}`,
        );
      }
      const hint = answer?.Leader;
      this.#leader = hint && hint !== addr ? hint : null;
      return false;
    }
    this.#refused = false;
    this.#claimedElsewhere = false;
    this.#leader = addr;
    close = opened.close;
    this.#closeSession = close;
    if (retired) close();
    await done;
    this.#closeSession = null;
    return true;
  }

  #onMessage(addr: string, message: SessionMessage): void {
    switch (message.type) {
      case 'heartbeat':
        void this.#options.peers
          .request(addr, 'POST', heartbeatPath, null, { timeoutMs: heartbeatPeriodMs * 2 })
          .catch(() => {});
        return;
      case 'exec':
        if (this.#execIds.has(message.id)) return;
        this.#execIds.add(message.id);
        if (this.#execIds.size > execIdsKept)
          this.#execIds.delete(this.#execIds.values().next().value!);
        void this.#execFor(addr, message.id, message.taskId, message.argv);
        return;
      case 'assignments':
        this.#applyAssignments(message);
        return;
      case 'renew-certificate':
        this.#options.onRenewCertificate?.(message.reason, message.role);
        return;
    }
  }

  /**
   * A manager refused this node's certificate: it was removed from the cluster (say with `node rm
   * --force` while it was down) and no assignment will ever come to say what to keep, so nothing
   * here may keep running with a secret. Every task stops and every secret is erased, in memory
   * and in the tmpfs, including what an earlier agent process left.
   */
  #onRefused(reason: string): void {
    if (this.#refused) return;
    this.#refused = true;
    this.#eraseEverything(`the cluster refused this node (${reason})`);
  }

  /**
   * This node is leaving the cluster (a demoted manager's process stops): nothing may stay running
   * here with a secret once it is gone, since no agent will be left to erase it. Every task stops
   * and every secret is erased, in memory and in the tmpfs; resolves when that is done.
   */
  async leave(reason: string): Promise<void> {
    this.#stopped = true;
    this.#stopSweeping?.();
    this.#closeSession?.();
    this.#eraseEverything(reason);
    await this.#queue;
    await Promise.all(this.#stopping.values());
  }

  #eraseEverything(why: string): void {
    this.#options.log(`secretd: agent: ${why}; stopping its tasks and erasing their secrets`);
    this.#assigned.clear();
    this.#dropAllSecrets();
    this.#enqueue(async () => {
      for (const id of [...this.#running]) this.#stopTask(id, false);
      await Promise.all(this.#stopping.values());
      await this.#options.executor.reconcile(new Set());
    });
  }

  #applyAssignments(message: Extract<SessionMessage, { type: 'assignments' }>): void {
    if (message.full) {
      this.#assigned.clear();
      // A new session (perhaps a new leader): confirm again what it still lists.
      this.#confirmed.clear();
    }
    for (const id of message.removedTasks) this.#assigned.delete(id);
    for (const task of message.tasks) this.#assigned.set(task.id, task);
    for (const id of [...this.#ended.keys()]) if (!this.#assigned.has(id)) this.#ended.delete(id);
    for (const id of [...this.#confirmed]) if (!this.#assigned.has(id)) this.#confirmed.delete(id);
    for (const key of message.removedSecrets) this.#dropSecret(key.id, key.version);
    for (const delivery of message.secrets) {
      let versions = this.#secrets.get(delivery.id);
      if (versions?.has(delivery.version)) continue;
      if (versions === undefined) this.#secrets.set(delivery.id, (versions = new Map()));
      versions.set(delivery.version, fromBase64(delivery.data));
      this.secretsReceived++;
    }
    // Anything no task here will run with must go, whatever the dispatcher's removals said.
    this.#dropUnneededSecrets();
    this.#applyGrants(message);
    this.#enqueue(() => this.#reconcile(message.full));
  }

  /** Secrets held by grant (granted.ts): what the message says this node holds now. */
  #applyGrants(message: Extract<SessionMessage, { type: 'assignments' }>): void {
    this.secretsReceived += this.granted.apply(message);
  }

  #enqueue(work: () => Promise<void>): void {
    this.#queue = this.#queue
      .then(work)
      .catch((error: unknown) => this.#options.log(`secretd: agent: ${(error as Error).message}`));
  }

  async #reconcile(full: boolean): Promise<void> {
    const executor = this.#options.executor;
    if (full && this.#adopted) {
      // A new session: its leader may not have heard how the tasks that ended here ended.
      const finals = [...this.#ended]
        .filter(([id, final]) => final !== null && this.#assigned.has(id))
        .map(([, final]) => final!);
      if (finals.length > 0) await this.#report(finals);
    }
    if (full && !this.#adopted) {
      this.#adopted = true;
      const keep = new Set(
        [...this.#assigned.values()].filter((t) => t.desiredState === 'running').map((t) => t.id),
      );
      await executor.reconcile(keep);
      const adopted: TaskStatusUpdate[] = [];
      for (const id of keep) {
        if ((await executor.state(id)).status !== 'running') {
          // It ended while no agent watched (reconcile erased it): its exit code is lost with the old agent.
          const final = statusUpdate(
            id,
            'failed',
            'the container ended while the agent was not running',
            'task: exit not seen (agent restarted)',
          );
          this.#ended.set(id, final);
          adopted.push(final);
          continue;
        }
        this.#running.add(id);
        adopted.push(statusUpdate(id, 'running', 'running (adopted after an agent restart)', ''));
      }
      if (adopted.length > 0) await this.#report(adopted);
      this.#dropUnneededSecrets();
    }
    for (const id of [...this.#running]) {
      const task = this.#assigned.get(id);
      if (!task || task.desiredState === 'shutdown') this.#stopTask(id, task !== undefined);
    }
    // Told to stop before it ever ran here (say, a service removed right after it was created):
    // nothing to stop, but the cluster waits for this node to say so.
    const neverRan: TaskStatusUpdate[] = [];
    for (const task of this.#assigned.values()) {
      if (
        task.desiredState !== 'shutdown' ||
        this.#running.has(task.id) ||
        this.#stopping.has(task.id) ||
        this.#ended.has(task.id) ||
        this.#confirmed.has(task.id)
      )
        continue;
      this.#confirmed.add(task.id);
      neverRan.push(statusUpdate(task.id, 'shutdown', 'shut down before it started', ''));
    }
    if (neverRan.length > 0) await this.#report(neverRan);
    // Running tasks whose assignment names other versions than they hold get them in place, in parallel.
    await Promise.all(
      [...this.#running].map((id) => {
        const task = this.#assigned.get(id);
        const held = this.#taskVersions.get(id);
        if (
          task === undefined ||
          task.desiredState !== 'running' ||
          sameVersions(held, task.secretVersions)
        )
          return undefined;
        // An adopted task's files are as the last agent left them: rewrite what differs, but a
        // signal now could be one the task already got.
        return this.#refreshSecrets(task, held !== undefined);
      }),
    );
    for (const task of this.#assigned.values()) {
      if (
        task.desiredState === 'running' &&
        !this.#running.has(task.id) &&
        !this.#stopping.has(task.id) &&
        !this.#ended.has(task.id)
      )
        await this.#startTask(task);
    }
  }

  /** Puts the versions the assignment names into a running task's tmpfs (atomic per file), then signals it if asked. */
  async #refreshSecrets(task: TaskAssignment, signal: boolean): Promise<void> {
    const held = this.#taskVersions.get(task.id) ?? {};
    const copied = this.#copySecrets(task);
    if ('missing' in copied) {
      this.#options.log(
        `secretd: agent: task ${task.id}: version ${copied.missing.version ?? '?'} of secret ${copied.missing.secretId} was not delivered; keeping the one it has`,
      );
      return;
    }
    const secrets = copied.secrets;
    const signals = new Set<string>();
    for (const ref of task.container.secrets) {
      if (
        held[ref.secretId] !== task.secretVersions[ref.secretId] &&
        ref.onUpdate?.kind === 'signal'
      )
        signals.add(ref.onUpdate.signal);
    }
    try {
      await this.#options.executor.setSecrets(task.id, secrets);
    } catch (error) {
      this.#options.log(
        `secretd: agent: task ${task.id}: cannot update its secrets: ${(error as Error).message}`,
      );
      return;
    }
    this.#taskVersions.set(task.id, { ...task.secretVersions });
    let message = 'secrets updated';
    if (signal) {
      for (const name of signals) {
        try {
          await this.#options.executor.signal(task.id, name);
          message = `secrets updated, ${name} sent`;
        } catch (error) {
          this.#options.log(
            `secretd: agent: task ${task.id}: cannot send ${name} after a secret update: ${(error as Error).message}`,
          );
        }
      }
    }
    if (this.#running.has(task.id))
      await this.#report([
        {
          ...statusUpdate(task.id, 'running', message, ''),
          secretVersions: { ...task.secretVersions },
        },
      ]);
  }

  /**
   * Copies of the secret versions a task's assignment names, for the executor (which zeroes them
   * once written); or the first reference whose version was not delivered, with every copy made so
   * far zeroed.
   */
  #copySecrets(
    task: TaskAssignment,
  ):
    | { secrets: TaskSecret[]; versions: Record<string, number> }
    | { missing: { secretId: string; secretName: string; version: number | undefined } } {
    const secrets: TaskSecret[] = [];
    const versions: Record<string, number> = {};
    for (const ref of task.container.secrets) {
      const version = task.secretVersions[ref.secretId];
      const data =
        version === undefined ? undefined : this.#secrets.get(ref.secretId)?.get(version);
      if (version === undefined || data === undefined) {
        for (const secret of secrets) secret.data.fill(0);
        return { missing: { secretId: ref.secretId, secretName: ref.secretName, version } };
      }
      secrets.push({
        secretId: ref.secretId,
        target: ref.target,
        uid: ref.uid,
        gid: ref.gid,
        mode: ref.mode,
        data: data.slice(),
        version,
      });
      versions[ref.secretId] = version;
    }
    return { secrets, versions };
  }

  async #startTask(task: TaskAssignment): Promise<void> {
    const copied = this.#copySecrets(task);
    if ('missing' in copied) {
      const final = statusUpdate(
        task.id,
        'rejected',
        'secret not delivered',
        `secret ${copied.missing.secretName} was not delivered to this node`,
      );
      this.#ended.set(task.id, final);
      await this.#report([final]);
      return;
    }
    const { secrets, versions } = copied;
    await this.#report([statusUpdate(task.id, 'preparing', 'preparing', '')]);
    try {
      this.#running.add(task.id);
      await this.#options.executor.start({
        taskId: task.id,
        image: task.container.image,
        command: [...task.container.command, ...task.container.args],
        env: [...task.container.env],
        secrets,
      });
      // It may already have ended (and been reported): a command that exits at once.
      if (!this.#running.has(task.id)) return;
      this.#taskVersions.set(task.id, versions);
      await this.#report([
        { ...statusUpdate(task.id, 'running', 'started', ''), secretVersions: versions },
      ]);
    } catch (error) {
      // The executor erased whatever it had made; a task id is started once, so this one is over.
      this.#running.delete(task.id);
      const final = statusUpdate(task.id, 'rejected', 'failed to start', (error as Error).message);
      this.#ended.set(task.id, final);
      this.#dropUnneededSecrets();
      await this.#report([final]);
    }
  }

  #stopTask(taskId: string, stillAssigned: boolean): void {
    this.#running.delete(taskId);
    this.#taskVersions.delete(taskId);
    if (!this.#ended.has(taskId)) this.#ended.set(taskId, null);
    if (this.#stopping.has(taskId)) return;
    const stopping = (async () => {
      try {
        await this.#options.executor.stop(taskId);
        const final = statusUpdate(taskId, 'shutdown', 'shut down', '');
        if (this.#ended.has(taskId)) this.#ended.set(taskId, final);
        if (stillAssigned) await this.#report([final]);
      } catch (error) {
        this.#options.log(`secretd: agent: stopping task ${taskId}: ${(error as Error).message}`);
      } finally {
        this.#stopping.delete(taskId);
      }
    })();
    this.#stopping.set(taskId, stopping);
  }

  async #execFor(addr: string, id: string, taskId: string, argv: readonly string[]): Promise<void> {
    let result: ExecResult;
    try {
      result = await this.exec(taskId, argv);
    } catch (error) {
      result = { code: 126, stdout: '', stderr: `${(error as Error).message}\n` };
    }
    const body = new TextEncoder().encode(JSON.stringify({ Id: id, ...result }));
    await this.#options.peers
      .request(addr, 'POST', execResultPath, body, {
        timeoutMs: 10_000,
        contentType: 'application/json',
      })
      .catch(() => {});
  }

  async #report(updates: TaskStatusUpdate[]): Promise<void> {
    const addr = this.#leader;
    if (!addr) return;
    const body = new TextEncoder().encode(JSON.stringify({ Updates: updates }));
    await this.#options.peers
      .request(addr, 'POST', statusPath, body, {
        timeoutMs: 10_000,
        contentType: 'application/json',
      })
      .catch(() => {});
  }
}

function sameVersions(
  a: Readonly<Record<string, number>> | undefined,
  b: Readonly<Record<string, number>>,
): boolean {
  if (a === undefined) return false;
  const keys = Object.keys(b);
  return keys.length === Object.keys(a).length && keys.every((key) => a[key] === b[key]);
}

function statusUpdate(
  id: string,
  state: TaskState,
  message: string,
  error: string,
): TaskStatusUpdate {
  return { id, state, message, error, exitCode: null, secretVersions: {} };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
