/**
 * Commands are what the store's Raft log carries. The proposer fills in everything that is not
 * deterministic (ids, timestamps, random tokens and keys) so that applying a command gives the same
 * state on every manager. The log seals each entry on disk.
 *
 * Entry forms (encodeCommand/decodeCommand). A command that carries a secret's value (`data` of
 * `secret-create` and `secret-version-add`) is a binary entry: byte 0 is `binaryEntryTag` (0x01,
 * which cannot start JSON), bytes 1–4 the length N of the command's JSON without `data` (u32, big
 * endian), then those N bytes of UTF-8 JSON, then the value's raw bytes to the end of the entry.
 * Every other command is the JSON of the command. Entries written before the binary form carried
 * the value as base64 in the JSON; they still decode, and parseCommand turns that base64 into bytes.
 * In the process the value is a Uint8Array; base64 only at the edges that are JSON by nature: the
 * Docker-shaped API body and the write one manager forwards to the leader (wireCommand/parseCommand).
 */
import type { Role } from '../../crypto/ca.ts';
import type { ContainerSpec, DesiredState, NodeStatus, ServiceSpec, TaskState } from './types.ts';
import {
  checkClientCertRecord,
  checkRecordedScope,
  isSerial,
  type ClientCertRecord,
  type ClientCertRole,
} from './client-certs.ts';
import { invalid, SecretdError } from '../../errors.ts';
import {
  checkLabels,
  checkSecretData,
  checkSecretName,
  checkVersionNumber,
  checkVersionsKept,
  onUpdateSignals,
} from './secret-rules.ts';
import { checkNodeCertExpiry } from './cluster-rules.ts';
import { checkGrantConstraints, sameConstraints } from './grants.ts';
import { checkServiceConstraints } from './node-constraints.ts';
import { taskStateRank } from './task-states.ts';
import { checkAuditKept } from './audit-log.ts';
import { checkAuditEntry, type AuditEntry, type AuditTag } from '../audit/index.ts';
import { auditBatchRecordsMax } from '../../limits.ts';
import { checkRootRotation, type RootRotation } from './root-rotation.ts';

export interface NodeSpec {
  readonly id: string;
  readonly role: Role;
  readonly hostname: string;
  readonly addr: string;
  /** What the node reported when it joined (absent for nodes of older versions). */
  readonly resources?: NodeResources;
}

export interface NodeResources {
  readonly nanoCpus: number;
  readonly memoryBytes: number;
}

export type Command =
  | {
      readonly op: 'cluster-init';
      readonly at: string;
      readonly clusterId: string;
      readonly caCertPem: string;
      readonly caKey: string; // base64 PKCS#8
      readonly joinTokens: { readonly worker: string; readonly manager: string };
      readonly unlockKey: string | null; // base64
      readonly node: NodeSpec;
    }
  | {
      readonly op: 'cluster-update';
      readonly at: string;
      readonly expectedIndex: number | null;
      readonly labels?: Readonly<Record<string, string>>;
      readonly joinTokens?: { readonly worker: string; readonly manager: string };
      /** Present to change it: base64 of a new KEK, or null to turn autolock off. */
      readonly unlockKey?: string | null;
      /** Present to change the version retention of every secret. */
      readonly secretVersionsKept?: number;
      /** Present to change the validity of node certificates issued from now on. */
      readonly nodeCertExpiryMs?: number;
      /** Present to change how many audit records are kept (`--audit-kept`). */
      readonly auditKept?: number;
    }
  | {
      readonly op: 'secret-create';
      readonly at: string;
      readonly id: string;
      readonly name: string;
      readonly labels: Readonly<Record<string, string>>;
      /** The value: raw bytes in a log entry, base64 only on the JSON wire (see the header). */
      readonly data: Uint8Array;
    }
  | {
      readonly op: 'secret-update';
      readonly at: string;
      readonly id: string;
      readonly expectedIndex: number;
      readonly labels: Readonly<Record<string, string>>;
    }
  | { readonly op: 'secret-remove'; readonly at: string; readonly ids: readonly string[] }
  /**
   * A new version of a secret's data. Data equal to the newest version's changes nothing (so a
   * deploy script can run again); `ifVersion` makes it compare-and-set against the newest version.
   */
  | {
      readonly op: 'secret-version-add';
      readonly at: string;
      readonly id: string;
      readonly data: Uint8Array;
      readonly ifVersion: number | null;
    }
  /** Version `to`'s data becomes the newest version (a new number: history only grows). */
  | {
      readonly op: 'secret-rollback';
      readonly at: string;
      readonly id: string;
      readonly to: number;
      readonly ifVersion: number | null;
    }
  /**
   * A grant (grants.ts): nodes matching every one of `constraints` (normalized, sorted) hold the
   * secret, at `version` or the newest; the same constraints again change only the version.
   */
  | {
      readonly op: 'secret-grant';
      readonly at: string;
      readonly id: string;
      readonly constraints: readonly string[];
      readonly version: number | null;
    }
  /** Removes the grant with exactly these constraints. */
  | {
      readonly op: 'secret-ungrant';
      readonly at: string;
      readonly id: string;
      readonly constraints: readonly string[];
    }
  /** Drops one old version; refused for the newest and for one a pinned reference uses. */
  | {
      readonly op: 'secret-version-remove';
      readonly at: string;
      readonly id: string;
      readonly version: number;
    }
  | { readonly op: 'node-add'; readonly at: string; readonly node: NodeSpec }
  | {
      readonly op: 'node-update';
      readonly at: string;
      readonly id: string;
      readonly expectedIndex: number | null;
      readonly role?: Role;
      readonly availability?: 'active' | 'pause' | 'drain';
      readonly labels?: Readonly<Record<string, string>>;
      /** Set when a manager is recovered alone (--force-new-cluster): its new address, if it changed. */
      readonly addr?: string;
    }
  /** Removed nodes' ids are never reused and their certificates stop working at once. */
  | { readonly op: 'node-remove'; readonly at: string; readonly ids: readonly string[] }
  /** Every manager seals its log under a new DEK (`cluster rotate-keys`; ClusterRecord.dekRotations). */
  | { readonly op: 'dek-rotate'; readonly at: string }
  /** A root CA rotation begins (root-rotation.ts); `forceRotate`: Docker's counter that asked for it. */
  | {
      readonly op: 'ca-rotation-start';
      readonly at: string;
      readonly rotation: RootRotation;
      readonly forceRotate?: number;
    }
  /** The key that signed the certificate a node uses now, as the node showed it (root-rotation.ts). */
  | {
      readonly op: 'node-cert-issuer';
      readonly at: string;
      readonly id: string;
      readonly issuerKey: string;
    }
  /** Every node has converged: the new root replaces the old, with new join tokens. */
  | {
      readonly op: 'ca-rotation-finish';
      readonly at: string;
      readonly rotationId: string;
      readonly joinTokens: { readonly worker: string; readonly manager: string };
    }
  | {
      readonly op: 'node-status';
      readonly at: string;
      readonly id: string;
      readonly status: NodeStatus;
    }
  | {
      readonly op: 'service-create';
      readonly at: string;
      readonly id: string;
      readonly spec: ServiceSpec;
    }
  | {
      readonly op: 'service-update';
      readonly at: string;
      readonly id: string;
      readonly expectedIndex: number;
      readonly spec: ServiceSpec;
    }
  | { readonly op: 'service-remove'; readonly at: string; readonly id: string }
  /** The orchestrator's and scheduler's decisions: new tasks, placements, desired-state changes. */
  | { readonly op: 'tasks-put'; readonly at: string; readonly tasks: readonly TaskPut[] }
  /** What agents report about their tasks. */
  | {
      readonly op: 'task-status';
      readonly at: string;
      readonly nodeId: string;
      readonly updates: readonly TaskStatusUpdate[];
    }
  | { readonly op: 'tasks-remove'; readonly at: string; readonly ids: readonly string[] }
  /** A client certificate just signed, recorded before it is handed out (client-certs.ts). */
  | { readonly op: 'client-cert-issue'; readonly at: string; readonly cert: ClientCertRecord }
  /** `ca update`: a new role and scope for these serials, from the next request on (client-certs.ts). */
  | {
      readonly op: 'client-cert-update';
      readonly at: string;
      readonly serials: readonly string[];
      readonly role: ClientCertRole;
      readonly scope: readonly string[];
    }
  /** Every manager refuses these serials from the moment it applies this (client-certs.ts). */
  | {
      readonly op: 'client-cert-revoke';
      readonly at: string;
      readonly serials: readonly string[];
    }
  /**
   * The leader's prune: records of client certificates and removed nodes whose certificates
   * expired long enough before `at` (`certRecordsPruneGraceMs`; checked again when applied).
   */
  /**
   * Audit records no state change carries (denials, refused requests, exec, unlock attempts,
   * deliveries and releases), proposed in batches (audit/recorder.ts); each is numbered and chained
   * as it is applied.
   */
  | { readonly op: 'audit-append'; readonly at: string; readonly records: readonly AuditEntry[] }
  | {
      readonly op: 'cert-records-prune';
      readonly at: string;
      readonly clientCerts: readonly string[];
      readonly removedNodes: readonly string[];
    };

export interface TaskPut {
  readonly id: string;
  readonly serviceId: string;
  readonly slot: number;
  readonly nodeId: string | null;
  readonly specVersion: number;
  readonly container: ContainerSpec;
  readonly desiredState: DesiredState;
  /** Set when the orchestrator or scheduler decides a state (new, pending, assigned, orphaned…). */
  readonly state?: TaskState;
  readonly message?: string;
}

export interface TaskStatusUpdate {
  readonly id: string;
  readonly state: TaskState;
  readonly message: string;
  readonly error: string;
  readonly exitCode: number | null;
  readonly secretVersions: Readonly<Record<string, number>>;
}

export type CommandOp = Command['op'];

/**
 * Any command may carry a request id; a command whose id the store has already applied is not
 * applied again and gets the first outcome (a retried write lands once).
 */
export type TaggedCommand = Command & {
  readonly requestId?: string;
  /** Who proposed it, from where (a request's audit context): the store appends its record in this same entry. */
  readonly audit?: AuditTag;
};

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The ops whose `data` is a secret's value, carried as raw bytes in a binary entry. */
const dataOps: ReadonlySet<string> = new Set<CommandOp>(['secret-create', 'secret-version-add']);
/** Byte 0 of a binary entry (a JSON entry starts with `{`). */
export const binaryEntryTag = 0x01;
/** The tag and the u32 length of the JSON that follows it. */
const binaryHeaderBytes = 5;

/**
 * A command as a log entry (the forms are in the header). The value is copied once, into the
 * entry; the command's own bytes are left as they are (the caller zeroes them when done).
 */
export function encodeCommand(command: TaggedCommand): Uint8Array {
  const data = (command as { readonly data?: unknown }).data;
  if (!dataOps.has(command.op) || !(data instanceof Uint8Array))
    return encoder.encode(JSON.stringify(command));
  const { data: _value, ...rest } = command as TaggedCommand & { readonly data: Uint8Array };
  const json = encoder.encode(JSON.stringify(rest));
  const entry = new Uint8Array(binaryHeaderBytes + json.length + data.length);
  // The JSON's length as a big-endian u32, byte by byte (a DataView would give the new array an
  // ArrayBuffer of its own, which costs more than the write).
  entry[0] = binaryEntryTag;
  entry[1] = json.length >>> 24;
  entry[2] = json.length >>> 16;
  entry[3] = json.length >>> 8;
  entry[4] = json.length;
  entry.set(json, binaryHeaderBytes);
  entry.set(data, binaryHeaderBytes + json.length);
  return entry;
}

/**
 * Bytes of a log entry back to the command a proposer encoded, either form. Only the framing is
 * checked here (JSON, an object with an op; in a binary entry, lengths within the entry and an op
 * that carries data): the store validates every field with parseCommand() when it applies, so that
 * a malformed entry fails as a write, never as the process. A binary entry's value is copied out
 * of the entry, so the command owns its bytes (the store keeps them) and the entry, which the Raft
 * log still holds and sends to followers, is never zeroed or kept alive by the store.
 */
export function decodeCommand(bytes: Uint8Array): TaggedCommand {
  if (bytes[0] !== binaryEntryTag) return commandOf(bytes);
  if (bytes.length < binaryHeaderBytes)
    throw corruptEntry(
      `it holds ${bytes.length} of the ${binaryHeaderBytes} bytes of the binary header`,
    );
  const jsonBytes = ((bytes[1]! << 24) | (bytes[2]! << 16) | (bytes[3]! << 8) | bytes[4]!) >>> 0;
  const dataAt = binaryHeaderBytes + jsonBytes;
  if (dataAt > bytes.length)
    throw corruptEntry(`its JSON of ${jsonBytes} bytes runs past its end (${bytes.length} bytes)`);
  const command = commandOf(bytes.subarray(binaryHeaderBytes, dataAt));
  if (!dataOps.has(command.op) || 'data' in command)
    throw corruptEntry(`a binary entry must hold a command with data, outside its JSON`);
  (command as unknown as { data: Uint8Array }).data = bytes.slice(dataAt);
  return command;
}

/** JSON bytes to an object with an op, or `corrupt`. */
function commandOf(json: Uint8Array): TaggedCommand {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(json));
  } catch {
    throw corruptEntry();
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as { op?: unknown }).op !== 'string'
  ) {
    throw corruptEntry();
  }
  return value as TaggedCommand;
}

function corruptEntry(why?: string): SecretdError {
  return new SecretdError(
    'corrupt',
    why === undefined
      ? 'Log entry is not a valid command'
      : `Log entry is not a valid command: ${why}`,
  );
}

/**
 * A command as JSON can carry it between managers (a forwarded write): its value in base64, which
 * parseCommand() on the leader turns back into bytes. The base64 string is a copy of the value no
 * one can zero (a string); it lives as long as the forwarding request.
 */
export function wireCommand(command: TaggedCommand): unknown {
  const data = (command as { readonly data?: unknown }).data;
  if (!(data instanceof Uint8Array)) return command;
  return {
    ...command,
    data: toBase64(data),
  };
}

/**
 * The one schema of a command, every op and every field the store reads, with the same rules the
 * API applies to its input (secret names, data sizes, labels, version numbers). Used where a
 * command comes from another manager (a forwarded write) and by the store before it applies any
 * entry, so that nothing shaped wrongly reaches the state machine. Fields it does not know are
 * left alone. Throws `invalid` (or `too_large` for secret data) naming the field, never a value.
 *
 * A secret's value is bytes (a command built in the process, or decoded from a binary entry),
 * checked where it is; or base64 (the JSON wire, an entry written before the binary form), decoded
 * once and returned in a new command object as bytes that the command owns.
 */
export function parseCommand(value: unknown): TaggedCommand {
  let c = object(value, 'command');
  if (c.requestId !== undefined) text(c.requestId, 'requestId');
  if (c.audit !== undefined) auditTag(c.audit, 'audit');
  text(c.at, 'at');
  const op = c.op;
  switch (op) {
    case 'cluster-init':
      id(c.clusterId, 'clusterId');
      text(c.caCertPem, 'caCertPem');
      base64(c.caKey, 'caKey');
      joinTokens(c.joinTokens, 'joinTokens');
      nullable(c.unlockKey, 'unlockKey', base64);
      nodeSpec(c.node, 'node');
      break;
    case 'cluster-update':
      nullable(c.expectedIndex, 'expectedIndex', count);
      optional(c.labels, 'labels', labels);
      optional(c.joinTokens, 'joinTokens', joinTokens);
      optional(c.unlockKey, 'unlockKey', (v, path) => nullable(v, path, base64));
      optional(c.secretVersionsKept, 'secretVersionsKept', (v) => checkVersionsKept(v));
      optional(c.nodeCertExpiryMs, 'nodeCertExpiryMs', (v) => checkNodeCertExpiry(v));
      optional(c.auditKept, 'auditKept', (v) => checkAuditKept(v));
      break;
    case 'secret-create':
      id(c.id, 'id');
      checkSecretName(c.name);
      labels(c.labels, 'labels');
      c = withData(c, secretData(c.data, 'data'));
      break;
    case 'secret-update':
      id(c.id, 'id');
      count(c.expectedIndex, 'expectedIndex');
      labels(c.labels, 'labels');
      break;
    case 'secret-version-add':
      id(c.id, 'id');
      c = withData(c, secretData(c.data, 'data'));
      nullable(c.ifVersion, 'ifVersion', version);
      break;
    case 'secret-rollback':
      id(c.id, 'id');
      version(c.to, 'to');
      nullable(c.ifVersion, 'ifVersion', version);
      break;
    case 'secret-version-remove':
      id(c.id, 'id');
      version(c.version, 'version');
      break;
    case 'secret-grant':
      id(c.id, 'id');
      grantConstraints(c.constraints, 'constraints');
      nullable(c.version, 'version', version);
      break;
    case 'secret-ungrant':
      id(c.id, 'id');
      grantConstraints(c.constraints, 'constraints');
      break;
    case 'node-add':
      nodeSpec(c.node, 'node');
      break;
    case 'node-update':
      id(c.id, 'id');
      nullable(c.expectedIndex, 'expectedIndex', count);
      optional(c.role, 'role', (v, path) => oneOf(v, path, roles));
      optional(c.availability, 'availability', (v, path) =>
        oneOf(v, path, ['active', 'pause', 'drain']),
      );
      optional(c.labels, 'labels', labels);
      optional(c.addr, 'addr', text);
      break;
    case 'dek-rotate':
      break;
    case 'ca-rotation-start':
      checkRootRotation(c.rotation, 'rotation');
      optional(c.forceRotate, 'forceRotate', count);
      break;
    case 'node-cert-issuer':
      id(c.id, 'id');
      if (base64(c.issuerKey, 'issuerKey') === '') throw wrong('issuerKey', 'non-empty base64');
      break;
    case 'ca-rotation-finish':
      id(c.rotationId, 'rotationId');
      joinTokens(c.joinTokens, 'joinTokens');
      break;
    case 'node-status':
      id(c.id, 'id');
      oneOf(c.status, 'status', ['unknown', 'ready', 'down']);
      break;
    case 'secret-remove':
    case 'node-remove':
    case 'tasks-remove':
      list(c.ids, 'ids', id);
      break;
    case 'service-create':
      id(c.id, 'id');
      serviceSpec(c.spec, 'spec');
      break;
    case 'service-update':
      id(c.id, 'id');
      count(c.expectedIndex, 'expectedIndex');
      serviceSpec(c.spec, 'spec');
      break;
    case 'service-remove':
      id(c.id, 'id');
      break;
    case 'tasks-put':
      list(c.tasks, 'tasks', taskPut);
      break;
    case 'task-status':
      id(c.nodeId, 'nodeId');
      list(c.updates, 'updates', taskStatusUpdate);
      break;
    case 'client-cert-issue':
      checkClientCertRecord(c.cert, 'cert');
      break;
    case 'client-cert-update':
      nonEmptyList(c.serials, 'serials', serial);
      checkRecordedScope(c.role, c.scope, 'update');
      break;
    case 'client-cert-revoke':
      nonEmptyList(c.serials, 'serials', serial);
      break;
    case 'audit-append': {
      const records = list(c.records, 'records', checkAuditEntry);
      if (records.length === 0 || records.length > auditBatchRecordsMax + 1)
        throw wrong('records', `a list of 1 to ${auditBatchRecordsMax + 1} records`);
      break;
    }
    case 'cert-records-prune':
      list(c.clientCerts, 'clientCerts', serial);
      list(c.removedNodes, 'removedNodes', id);
      break;
    default:
      throw invalid(
        `Invalid command: unknown op ${JSON.stringify(typeof op === 'string' ? op.slice(0, 40) : (op ?? null))}`,
      );
  }
  return c as unknown as TaggedCommand;
}

type Fields = Record<string, unknown>;
type Reader<T> = (value: unknown, path: string) => T;

const roles: readonly Role[] = ['manager', 'worker', 'admin'];
// Every state a task can be in: the one ordered list (task-states.ts).
const taskStates = Object.keys(taskStateRank) as readonly TaskState[];
/** Strict standard base64, as Go's encoding/json decodes []byte: the one check, for commands and the API. */
export function isStandardBase64(text: string): boolean {
  return decodeStandardBase64(text) !== null;
}

/** Standard base64 of the bytes (the text `decodeStandardBase64` reads back). */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Strict standard base64 (the alphabet with + and /, padded to a multiple of 4, nothing between),
 * decoded into one new array; null for anything else. `Uint8Array.fromBase64` (Bun and Deno alike)
 * refuses other characters and misplaced padding; what it would let through is refused around it:
 * a missing padding (a length not a multiple of 4) before, ASCII whitespace (which it skips) after,
 * by the length: a text of n characters ending in p `=` (p ≤ 2) holds 3n/4 - p bytes, and with
 * w ≥ 1 whitespace characters skipped fromBase64 decodes at most 3(n - w - p)/4, which is less.
 * That check replaced a regular expression's scan of the whole text (on a 64 KiB value, 10–16 µs
 * of the 25–40 the decode took); the expression had replaced a full one, 10× slower.
 */
export function decodeStandardBase64(text: string): Uint8Array | null {
  if (text.length % 4 !== 0) return null;
  let bytes: Uint8Array;
  try {
    bytes = (Uint8Array as unknown as { fromBase64(text: string): Uint8Array }).fromBase64(text);
  } catch {
    return null;
  }
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  if (bytes.length === (text.length / 4) * 3 - padding) return bytes;
  bytes.fill(0); // a value's bytes, all the same
  return null;
}

const wrong = (path: string, expected: string): SecretdError =>
  invalid(`Invalid command: ${path} must be ${expected}`);

function object(value: unknown, path: string): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw wrong(path, 'an object');
  return value as Fields;
}

function text(value: unknown, path: string): string {
  if (typeof value !== 'string') throw wrong(path, 'a string');
  return value;
}

function id(value: unknown, path: string): string {
  if (typeof value !== 'string' || value.length === 0) throw wrong(path, 'a non-empty string');
  return value;
}

function serial(value: unknown, path: string): string {
  if (typeof value !== 'string' || !isSerial(value))
    throw wrong(path, 'a certificate serial (hex)');
  return value;
}

function count(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw wrong(path, 'a whole number, 0 or more');
  return value;
}

function amount(value: unknown, path: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0)
    throw wrong(path, 'a number, 0 or more');
  return value;
}

function version(value: unknown, path: string): number {
  if (typeof value !== 'number') throw wrong(path, 'a version number');
  return checkVersionNumber(value, `command ${path}`);
}

function base64(value: unknown, path: string): string {
  if (typeof value !== 'string' || !isStandardBase64(value)) throw wrong(path, 'base64');
  return value;
}

/** A secret's value as bytes (see parseCommand): the bytes given, or the base64 given decoded. */
function secretData(value: unknown, path: string): Uint8Array {
  if (value instanceof Uint8Array) {
    checkSecretData(value);
    return value;
  }
  const data = typeof value === 'string' ? decodeStandardBase64(value) : null;
  if (data === null) throw wrong(path, 'base64');
  try {
    checkSecretData(data);
  } catch (error) {
    data.fill(0); // a copy of the secret, refused: zeroed (best effort under a GC)
    throw error;
  }
  return data;
}

/** `c` itself when `data` is its own, else a copy of `c` with `data` (the caller's object is not changed). */
function withData(c: Fields, data: Uint8Array): Fields {
  return c.data === data ? c : { ...c, data };
}

function labels(value: unknown, path: string): void {
  const owner = path.replace(/\.?labels$/, '');
  checkLabels(object(value, path), owner === '' ? 'command' : `command ${owner}`);
}

function oneOf<T extends string>(value: unknown, path: string, options: readonly T[]): T {
  if (!options.includes(value as T)) throw wrong(path, `one of ${options.join(', ')}`);
  return value as T;
}

function optional<T>(value: unknown, path: string, read: Reader<T>): void {
  if (value !== undefined) read(value, path);
}

function nullable<T>(value: unknown, path: string, read: Reader<T>): void {
  if (value !== null) read(value, path);
}

function list<T>(value: unknown, path: string, read: Reader<T>): T[] {
  if (!Array.isArray(value)) throw wrong(path, 'a list');
  return value.map((item, i) => read(item, `${path}[${i}]`));
}

function nonEmptyList<T>(value: unknown, path: string, read: Reader<T>): T[] {
  const items = list(value, path, read);
  if (items.length === 0) throw wrong(path, 'a non-empty list');
  return items;
}

/** A command's audit tag: the record's actor, source and request id (audit/record.ts's rules). */
function auditTag(value: unknown, path: string): void {
  const tag = object(value, path);
  for (const key of Object.keys(tag))
    if (!['actor', 'source', 'requestId'].includes(key))
      throw wrong(`${path}.${key.slice(0, 40)}`, 'absent');
  checkAuditEntry(
    {
      at: '',
      action: '',
      result: '',
      actor: tag.actor,
      source: tag.source,
      ...(tag.requestId === undefined ? {} : { requestId: tag.requestId }),
    },
    path,
  );
}

/**
 * Node constraints exactly as a proposer writes them: a list of strings that `check` (the rule the
 * API applies, which normalizes) gives back unchanged; else `wrong` saying what `form` they must take.
 */
function storedConstraints(
  check: (value: unknown, path: string) => string[],
  form: string,
): Reader<void> {
  return (value, path) => {
    const given = list(value, path, text);
    const normalized = check(value, path);
    if (!sameConstraints(given, normalized)) throw wrong(path, form);
  };
}

/** A grant's constraints: valid, normalized, sorted, no duplicates. */
const grantConstraints = storedConstraints(
  (value, path) => checkGrantConstraints(value, `command ${path}`),
  'node constraints, normalized, sorted and without duplicates',
);

/** A service's placement constraints: valid and normalized, in the order given. */
const serviceConstraints = storedConstraints(
  checkServiceConstraints,
  'node constraints, normalized',
);

function joinTokens(value: unknown, path: string): void {
  const tokens = object(value, path);
  text(tokens.worker, `${path}.worker`);
  text(tokens.manager, `${path}.manager`);
}

function nodeSpec(value: unknown, path: string): void {
  const node = object(value, path);
  id(node.id, `${path}.id`);
  oneOf(node.role, `${path}.role`, roles);
  text(node.hostname, `${path}.hostname`);
  text(node.addr, `${path}.addr`);
  optional(node.resources, `${path}.resources`, (v, p) => {
    const resources = object(v, p);
    count(resources.nanoCpus, `${p}.nanoCpus`);
    count(resources.memoryBytes, `${p}.memoryBytes`);
  });
}

function serviceSpec(value: unknown, path: string): void {
  const spec = object(value, path);
  id(spec.name, `${path}.name`);
  labels(spec.labels, `${path}.labels`);
  containerSpec(spec.container, `${path}.container`);
  const mode = object(spec.mode, `${path}.mode`);
  if (oneOf(mode.kind, `${path}.mode.kind`, ['replicated', 'global']) === 'replicated')
    count(mode.replicas, `${path}.mode.replicas`);
  const update = object(spec.update, `${path}.update`);
  count(update.parallelism, `${path}.update.parallelism`);
  amount(update.delayMs, `${path}.update.delayMs`);
  optional(update.delayNs, `${path}.update.delayNs`, amount);
  optional(update.failureAction, `${path}.update.failureAction`, (v, p) =>
    oneOf(v, p, ['continue']),
  );
  optional(spec.forceUpdate, `${path}.forceUpdate`, count);
  optional(spec.constraints, `${path}.constraints`, serviceConstraints);
}

function containerSpec(value: unknown, path: string): void {
  const container = object(value, path);
  text(container.image, `${path}.image`);
  for (const field of ['command', 'args', 'env'] as const)
    list(container[field], `${path}.${field}`, text);
  list(container.secrets, `${path}.secrets`, secretReference);
}

function secretReference(value: unknown, path: string): void {
  const ref = object(value, path);
  id(ref.secretId, `${path}.secretId`);
  id(ref.secretName, `${path}.secretName`);
  optional(ref.version, `${path}.version`, version);
  optional(ref.onUpdate, `${path}.onUpdate`, (v, p) => {
    const onUpdate = object(v, p);
    if (oneOf(onUpdate.kind, `${p}.kind`, ['none', 'signal', 'restart']) === 'signal')
      oneOf(onUpdate.signal, `${p}.signal`, onUpdateSignals);
  });
  text(ref.target, `${path}.target`);
  text(ref.uid, `${path}.uid`);
  text(ref.gid, `${path}.gid`);
  count(ref.mode, `${path}.mode`);
}

function taskPut(value: unknown, path: string): void {
  const put = object(value, path);
  id(put.id, `${path}.id`);
  id(put.serviceId, `${path}.serviceId`);
  count(put.slot, `${path}.slot`);
  nullable(put.nodeId, `${path}.nodeId`, id);
  count(put.specVersion, `${path}.specVersion`);
  containerSpec(put.container, `${path}.container`);
  oneOf(put.desiredState, `${path}.desiredState`, ['running', 'shutdown']);
  optional(put.state, `${path}.state`, (v, p) => oneOf(v, p, taskStates));
  optional(put.message, `${path}.message`, text);
}

function taskStatusUpdate(value: unknown, path: string): void {
  const update = object(value, path);
  id(update.id, `${path}.id`);
  oneOf(update.state, `${path}.state`, taskStates);
  text(update.message, `${path}.message`);
  text(update.error, `${path}.error`);
  nullable(update.exitCode, `${path}.exitCode`, (v, p) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw wrong(p, 'a whole number or null');
  });
  const versions = object(update.secretVersions, `${path}.secretVersions`);
  for (const [secretId, n] of Object.entries(versions))
    count(n, `${path}.secretVersions[${JSON.stringify(secretId.slice(0, 40))}]`);
}
