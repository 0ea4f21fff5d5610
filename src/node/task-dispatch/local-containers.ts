/**
 * Secrets for containers this node's agent did not start: containers that docker, docker-compose or
 * podman start through `secretd oci-runtime` (secretd-runc), and host processes under
 * `secretd spawn`. Only secrets this node holds by grant (`agent.granted`) can be given, so a
 * node still never asks the cluster for anything.
 *
 * Each container gets a fresh tmpfs exactly like a task's (the executor's SecretMount: nodev,
 * nosuid, noexec, noswap, mode 0700, verified from the kernel's mount table before the first byte),
 * its files written with their uid, gid and mode. The runtime then bind-mounts `run/` read-only at
 * /run/secrets (and each absolute target file by file). Layout, beside the executor's tasks:
 *
 *   <runDir>/containers/<id>/container.json   the record: ids, names, versions, targets; never a value
 *   <runDir>/containers/<id>/secrets/         the tmpfs
 *
 * A container's secrets live until:
 *   delete      the runtime's `delete` asks for the erase (zeroed, unlinked, unmounted)
 *   withdraw    the grant goes: the agent has zeroed its copy, and every file of that secret is
 *               zeroed and unlinked from every container's tmpfs here (the file disappears from the
 *               running container's /run/secrets at once)
 *   engine gone a sweep (every agent sweep) erases containers that runc no longer lists as live
 *               under the `--root` recorded at create (one `runc list` per root), and spawns
 *               whose process is gone (pid and start time)
 * A new version of a granted secret is written beside the old file and renamed over it (relative
 * targets: the directory bind shows the new file at once), then the reference's on-update signal
 * goes to the container's init (`runc kill`) or to the spawned process. Absolute targets are bound
 * file by file and keep the version they were created with (the rename cannot reach the container).
 *
 * Values: copied out of `granted` at once into the tmpfs (the copy is zeroed by the mount once
 * written); never in the record, an answer, a log line or an error message.
 */
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SecretdError } from '../../errors.ts';
import { systemNow } from '../../io/system.ts';
import { containersDirOf } from '../../io/run-dir.ts';
import { containerStartTimeoutMs, localContainersMax } from '../../limits.ts';
import {
  RuncRuntime,
  SecretMount,
  checkSecretRefs,
  eraseSecretsDir,
  secretsTmpfsBytes,
  type SecretFile,
} from '../executor/index.ts';
import type { GrantedChange, GrantedSecrets } from './granted.ts';

/** What a container asks for: one reference in `--secret` syntax, already parsed by the caller. */
export interface LocalSecretRef {
  /** The secret's name or id, as granted to this node. */
  readonly secret: string;
  /** A pinned version (`source=NAME@3`); absent: whatever version this node holds (it follows the grant). */
  readonly version?: number;
  readonly target: string;
  readonly uid: string;
  readonly gid: string;
  readonly mode: number;
  /** `none` or `signal:SIGHUP`; `restart` is refused (nobody here can restart an engine's container). */
  readonly onUpdate: string;
}

/** Who holds the container: an OCI runtime's container (its runc root) or a spawned host process. */
export type LocalOwner =
  | { readonly kind: 'runc'; readonly root: string | null; readonly binary: string }
  | { readonly kind: 'process'; readonly pid: number; readonly startTime: string };

export interface PrepareRequest {
  readonly containerId: string;
  readonly owner: LocalOwner;
  readonly refs: readonly LocalSecretRef[];
}

/** Where the runtime finds what to mount (host paths; none holds a value outside the tmpfs). */
export interface Prepared {
  /** The directory to bind read-only at /run/secrets, or null when no target is relative. */
  readonly secretsDir: string | null;
  /** Absolute targets, each a file to bind read-only. */
  readonly fileMounts: readonly { readonly source: string; readonly destination: string }[];
}

export interface LocalContainerSecret {
  readonly secretId: string;
  readonly name: string;
  readonly version: number;
  readonly target: string;
}

/** One row of the list route: never a value. */
export interface LocalContainerInfo {
  readonly containerId: string;
  readonly owner: 'runc' | 'process';
  readonly secrets: readonly LocalContainerSecret[];
}

interface Held {
  readonly secretId: string;
  readonly name: string;
  version: number;
  readonly pinned: boolean;
  readonly file: SecretFile;
  readonly signal: string | null;
}

interface Record {
  readonly containerId: string;
  readonly owner: LocalOwner;
  readonly preparedAtMs: number;
  readonly held: Held[];
}

interface Entry extends Record {
  mount: SecretMount | null;
  queue: Promise<unknown>;
}

export interface LocalContainersOptions {
  /** The executor's run directory: containers live under `<runDir>/containers`. */
  readonly runDir: string;
  readonly granted: GrantedSecrets;
  readonly log: (line: string) => void;
  /** Whether the agent has had its first complete set from a dispatcher (before that, nothing is granted yet). */
  readonly ready: () => boolean;
  /** The clock, in milliseconds; default the system's (io/system.ts). */
  readonly nowMs?: () => number;
  /** Sends a signal to a spawned process; default process.kill. */
  readonly killProcess?: (pid: number, signal: string) => void;
}

const systemNowMs = (): number => systemNow().getTime();
const containerIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export class LocalContainers {
  readonly #options: LocalContainersOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #unsubscribe: () => void;
  #loaded: Promise<void> | null = null;
  #filesWritten = 0;

  constructor(options: LocalContainersOptions) {
    this.#options = options;
    this.#unsubscribe = options.granted.onChange((change) => this.#onGrantChange(change));
  }

  get dir(): string {
    return containersDirOf(this.#options.runDir);
  }

  close(): void {
    this.#unsubscribe();
  }

  /** Counts for `/info`: containers holding secrets, files held now, files written so far. */
  counts(): { containers: number; filesHeld: number; filesWritten: number } {
    let held = 0;
    for (const entry of this.#entries.values()) held += entry.held.length;
    return { containers: this.#entries.size, filesHeld: held, filesWritten: this.#filesWritten };
  }

  list(): LocalContainerInfo[] {
    return [...this.#entries.values()]
      .map((entry) => ({
        containerId: entry.containerId,
        owner: entry.owner.kind,
        secrets: entry.held.map((h) => ({
          secretId: h.secretId,
          name: h.name,
          version: h.version,
          target: h.file.target,
        })),
      }))
      .sort((a, b) => a.containerId.localeCompare(b.containerId));
  }

  /**
   * Mounts a fresh tmpfs for `containerId` with the granted secrets its references name; anything
   * refused (not granted, bad reference, restart) throws before a byte is written, naming the
   * secret and the reason. A container prepared before (an engine restarting it under the same id)
   * has its old tmpfs erased first.
   */
  async prepare(request: PrepareRequest): Promise<Prepared> {
    await this.#load();
    const id = request.containerId;
    const context = `Cannot give secrets to container '${id.slice(0, 80)}'`;
    if (!containerIdPattern.test(id))
      throw new SecretdError(
        'invalid',
        `${context}: the id must match ${containerIdPattern.source}`,
      );
    if (request.refs.length === 0)
      throw new SecretdError('invalid', `${context}: no secret references`);
    if (!this.#entries.has(id) && this.#entries.size >= localContainersMax)
      throw new SecretdError(
        'too_large',
        `${context}: this node already holds secrets for ${localContainersMax} containers`,
      );
    const chosen = request.refs.map((ref) => this.#choose(context, ref));
    const files = checkSecretRefs(
      context,
      request.refs.map((ref, i) => ({
        secretId: chosen[i]!.secretId,
        target: ref.target,
        uid: ref.uid,
        gid: ref.gid,
        mode: ref.mode,
        version: chosen[i]!.version,
      })),
    );
    const previous = this.#entries.get(id);
    if (previous !== undefined) await this.#serial(previous, () => this.#erase(previous));
    const entry: Entry = {
      containerId: id,
      owner: request.owner,
      preparedAtMs: (this.#options.nowMs ?? systemNowMs)(),
      held: files.map((file, i) => ({
        secretId: chosen[i]!.secretId,
        name: chosen[i]!.name,
        version: chosen[i]!.version,
        pinned: request.refs[i]!.version !== undefined,
        file,
        signal: chosen[i]!.signal,
      })),
      mount: null,
      queue: Promise.resolve(),
    };
    this.#entries.set(id, entry);
    try {
      return await this.#serial(entry, () => this.#create(context, entry));
    } catch (error) {
      await this.#serial(entry, () => this.#erase(entry)).catch(() => undefined);
      throw error;
    }
  }

  /** Erases a container's secrets (zeroed, unlinked, unmounted); nothing held is not an error. */
  async erase(containerId: string): Promise<boolean> {
    await this.#load();
    if (!containerIdPattern.test(containerId))
      throw new SecretdError(
        'invalid',
        `Cannot erase the secrets of container '${containerId.slice(0, 80)}': the id must match ${containerIdPattern.source}`,
      );
    const entry = this.#entries.get(containerId);
    if (entry !== undefined) {
      await this.#serial(entry, () => this.#erase(entry));
      return true;
    }
    // Not known in memory: still make sure nothing is left at its path.
    const dir = join(this.dir, containerId);
    const existed = await readdir(dir).then(
      () => true,
      () => false,
    );
    await eraseSecretsDir(join(dir, 'secrets'));
    await rm(dir, { recursive: true, force: true });
    return existed;
  }

  /**
   * Erases every container whose runtime no longer lists it as live (created, running or paused)
   * under its recorded root, and every spawn whose process is gone; a container prepared less than
   * the start timeout ago is left (its `runc create` may still be under way). Returns the ids.
   */
  async sweep(): Promise<string[]> {
    await this.#load();
    const now = (this.#options.nowMs ?? systemNowMs)();
    const erased: string[] = [];
    // One `runc list` per root, not a `runc state` per container.
    const listings = new Map<string, Promise<ReadonlyMap<string, string> | null>>();
    for (const entry of [...this.#entries.values()]) {
      if (await this.#alive(entry, now, listings)) continue;
      if (this.#entries.get(entry.containerId) !== entry) continue;
      await this.#serial(entry, () => this.#erase(entry)).then(
        () => erased.push(entry.containerId),
        (error: unknown) =>
          this.#options.log(
            `secretd: agent: cannot erase the secrets of container ${entry.containerId}: ${(error as Error).message}`,
          ),
      );
    }
    // Directories without a record (a crash between mkdir and the record): erase them too.
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (this.#entries.has(name) || !containerIdPattern.test(name)) continue;
      await this.erase(name).catch(() => undefined);
      erased.push(name);
    }
    return erased.sort();
  }

  #choose(
    context: string,
    ref: LocalSecretRef,
  ): { secretId: string; name: string; version: number; signal: string | null } {
    const fail = (code: 'invalid' | 'not_found' | 'unavailable', why: string): SecretdError =>
      new SecretdError(code, `${context}: secret '${ref.secret}' ${why}`);
    let signal: string | null = null;
    if (ref.onUpdate === 'restart')
      throw fail(
        'invalid',
        'asks for on-update=restart, which secretd cannot do for a container it did not start: use none or signal:SIG',
      );
    if (ref.onUpdate.startsWith('signal:')) signal = ref.onUpdate.slice('signal:'.length);
    else if (ref.onUpdate !== 'none')
      throw fail(
        'invalid',
        `has on-update '${ref.onUpdate.slice(0, 40)}': expected none or signal:SIG`,
      );
    const held = this.#options.granted.get(ref.secret);
    if (held === undefined) {
      if (!this.#options.ready())
        throw fail(
          'unavailable',
          "cannot be given yet: this node's agent has no session with a manager (is the cluster down, or the manager locked?)",
        );
      throw fail(
        'not_found',
        'is not granted to this node (secretd secret grant NAME --node-constraint …)',
      );
    }
    if (ref.version !== undefined && ref.version !== held.version)
      throw fail(
        'not_found',
        `version ${ref.version} is not granted to this node (it holds version ${held.version})`,
      );
    if (ref.version !== undefined && signal !== null)
      throw fail('invalid', 'is pinned to a version, which never changes: on-update cannot apply');
    return { secretId: held.secretId, name: held.name, version: held.version, signal };
  }

  async #create(context: string, entry: Entry): Promise<Prepared> {
    const dir = join(this.dir, entry.containerId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await this.#writeRecord(entry);
    const copies = this.#copies(context, entry.held);
    const mount = await SecretMount.create(
      join(dir, 'secrets'),
      secretsTmpfsBytes(copies.map((c) => c.length)),
    );
    entry.mount = mount;
    for (let i = 0; i < entry.held.length; i++) {
      await mount.writeFile(entry.held[i]!.file, copies[i]!);
      this.#filesWritten++;
    }
    const relative = entry.held.some((h) => h.file.placement.kind === 'relative');
    return {
      secretsDir: relative ? mount.relativeDir : null,
      fileMounts: entry.held
        .filter((h) => h.file.placement.kind === 'absolute')
        .map((h) => ({ source: mount.hostPath(h.file), destination: h.file.target })),
    };
  }

  /** Copies of each held version, out of `granted` (which keeps the only other copy). */
  #copies(context: string, held: readonly Held[]): Uint8Array[] {
    const copies: Uint8Array[] = [];
    for (const h of held) {
      const secret = this.#options.granted.get(h.secretId);
      if (secret === undefined || secret.version !== h.version) {
        for (const copy of copies) copy.fill(0);
        throw new SecretdError(
          'conflict',
          `${context}: secret '${h.name}' changed while it was being prepared; try again`,
        );
      }
      copies.push(secret.data.slice());
    }
    return copies;
  }

  async #erase(entry: Entry): Promise<void> {
    const dir = join(this.dir, entry.containerId);
    if (this.#entries.get(entry.containerId) === entry) this.#entries.delete(entry.containerId);
    entry.mount = null;
    await eraseSecretsDir(join(dir, 'secrets'));
    await rm(dir, { recursive: true, force: true });
  }

  #onGrantChange(change: GrantedChange): void {
    for (const entry of this.#entries.values()) {
      if (!entry.held.some((h) => h.secretId === change.secretId)) continue;
      void this.#serial(entry, () => this.#apply(entry, change)).catch((error: unknown) =>
        this.#options.log(
          `secretd: agent: container ${entry.containerId}: cannot apply the change of secret ${change.name}: ${(error as Error).message}`,
        ),
      );
    }
  }

  /** A new version written in place (then the signal), or the withdrawn secret's files erased. */
  async #apply(entry: Entry, change: GrantedChange): Promise<void> {
    const mount = entry.mount;
    if (mount === null || this.#entries.get(entry.containerId) !== entry) return;
    const affected = entry.held.filter((h) => h.secretId === change.secretId);
    if (change.version === null) {
      for (const h of affected) await mount.removeFile(h.file.target);
      entry.held.splice(0, entry.held.length, ...entry.held.filter((h) => !affected.includes(h)));
      await this.#writeRecord(entry);
      this.#options.log(
        `secretd: agent: container ${entry.containerId}: secret ${change.name} withdrawn from this node; its files were erased`,
      );
      return;
    }
    const signals = new Set<string>();
    for (const h of affected) {
      if (h.pinned || h.version === change.version) continue;
      if (h.file.placement.kind === 'absolute') {
        this.#options.log(
          `secretd: agent: container ${entry.containerId}: target ${h.file.target} is bound file by file, so it keeps version ${h.version} of secret ${change.name}`,
        );
        continue;
      }
      const secret = this.#options.granted.get(change.secretId);
      if (secret === undefined || secret.version !== change.version) return;
      const copy = secret.data.slice();
      await mount.ensureSize(secretsTmpfsBytes([...entry.held.map(() => copy.length)]));
      await mount.writeFile(h.file, copy);
      this.#filesWritten++;
      h.version = change.version;
      if (h.signal !== null) signals.add(h.signal);
    }
    await this.#writeRecord(entry);
    for (const signal of signals) await this.#signal(entry, signal);
  }

  async #signal(entry: Entry, signal: string): Promise<void> {
    const owner = entry.owner;
    if (owner.kind === 'process') {
      (this.#options.killProcess ?? ((pid, sig) => process.kill(pid, sig as NodeJS.Signals)))(
        owner.pid,
        signal,
      );
      return;
    }
    await this.#runtime(owner).kill(entry.containerId, signal);
  }

  async #alive(
    entry: Entry,
    now: number,
    listings: Map<string, Promise<ReadonlyMap<string, string> | null>>,
  ): Promise<boolean> {
    const owner = entry.owner;
    if (owner.kind === 'process') return processStartTime(owner.pid) === owner.startTime;
    const key = `${owner.root ?? ''}\0${owner.binary}`;
    let listing = listings.get(key);
    if (listing === undefined) {
      listing = this.#runtime(owner)
        .list()
        .then(
          (states) => new Map(states.map((state) => [state.id, state.status])),
          // The runtime cannot say (missing binary, unreadable root): keep, and try next sweep.
          () => null,
        );
      listings.set(key, listing);
    }
    const statuses = await listing;
    if (statuses === null) return true;
    const status = statuses.get(entry.containerId);
    if (status !== undefined && status !== 'stopped') return true;
    // Not there yet (or stopped before `start`): `runc create` may still be under way.
    return status === undefined && now - entry.preparedAtMs < containerStartTimeoutMs;
  }

  #runtime(owner: Extract<LocalOwner, { kind: 'runc' }>): RuncRuntime {
    return new RuncRuntime({
      rootDir: owner.root ?? '/run/runc',
      binary: owner.binary,
    });
  }

  async #writeRecord(entry: Entry): Promise<void> {
    const record: Record = {
      containerId: entry.containerId,
      owner: entry.owner,
      preparedAtMs: entry.preparedAtMs,
      held: entry.held,
    };
    const path = join(this.dir, entry.containerId, 'container.json');
    await writeFile(`${path}.tmp`, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }

  /** After an agent restart: takes over the records and mounts the last process left. */
  #load(): Promise<void> {
    this.#loaded ??= (async () => {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      for (const name of await readdir(this.dir)) {
        if (!containerIdPattern.test(name) || this.#entries.has(name)) continue;
        const record = await readFile(join(this.dir, name, 'container.json'), 'utf8')
          .then((text) => JSON.parse(text) as Record)
          .catch(() => null);
        if (record === null || record.containerId !== name) continue;
        const mount = await SecretMount.open(
          join(this.dir, name, 'secrets'),
          record.held.map((h) => h.file),
        ).catch(() => null);
        this.#entries.set(name, {
          ...record,
          held: record.held.map((h) => ({ ...h })),
          mount,
          queue: Promise.resolve(),
        });
      }
    })();
    return this.#loaded;
  }

  #serial<T>(entry: Entry, fn: () => Promise<T>): Promise<T> {
    const result = entry.queue.then(fn, fn);
    entry.queue = result.catch(() => undefined);
    return result;
  }
}

/** Field 22 of /proc/PID/stat (the start time in clock ticks): tells a pid from a reused one; null when gone. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
