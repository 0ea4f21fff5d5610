/**
 * This manager's two private keys on disk.
 *
 *   unlock key (KEK, from the replicated store; null when autolock is off)
 *    ├── wraps the DEK (32 random bytes, this node's only: seals every WAL record and snapshot)
 *    └── wraps the TLS private key (PKCS#8)
 *
 * With autolock off they are stored as Docker stores them: in a root-only (0600) file, in the
 * clear. That protects the data from anyone who gets the disk without this file (a backup of raft/,
 * a copied volume), not from root on a running machine. With autolock on, the file alone is useless
 * without the unlock key, which lives only in the managers' memory and in the sealed store.
 *
 * DEK rotation (swarmkit's raft-dek / raft-dek-pending): `beginDekRotation` adds a pending DEK
 * beside the current one (wrapped the same way) before anything is sealed with it; new records
 * are sealed with the pending DEK at once while the current one still opens older records; once
 * none remains on disk, `finishDekRotation` makes the pending DEK the only one. Each step is one
 * atomic write of this file, so a crash leaves a node that starts with the keys its log needs.
 */
import { unwrapKey, wrapKey } from '../../crypto/key-wrap.ts';
import type { Random } from '../../crypto/random.ts';
import { SecretdError } from '../../errors.ts';
import type { FileSystem } from '../../io/fs.ts';
import { fromBase64, toBase64 } from '../store/index.ts';
import { readTextFile, systemFs, writeFileAtomic } from './layout.ts';

export interface NodeKeys {
  readonly dek: Uint8Array;
  readonly dekKeyId: number;
  readonly tlsKey: Uint8Array;
  /**
   * The certificate for `tlsKey` (public, never wrapped), kept beside its key so that one rename
   * replaces both when the certificate is renewed; certificates/node.pem is its copy for people
   * and tools, put right at start-up (`restoreNodeCertificate`). Absent in files written before
   * renewal existed: node.pem is then the certificate.
   */
  readonly tlsCert?: string;
  /** The DEK being rotated to: new records are sealed with it, `dek` still opens older ones. */
  readonly pendingDek?: DataKeyPair;
  /** The cluster's DEK rotation count this node's DEK answers; absent: not recorded yet. */
  readonly dekRotation?: number;
  /**
   * The role these keys were written for by a role switch in place (role-switch.ts): the switch's
   * commit point, node.json follows. Absent (a join, an init): node.json's role.
   */
  readonly role?: 'manager' | 'worker';
}

/** A DEK and its key id (the id sealed envelopes carry). */
export interface DataKeyPair {
  readonly dek: Uint8Array;
  readonly keyId: number;
}

interface NodeKeysFile {
  format: 1;
  autolock: boolean;
  dekKeyId: number;
  dek: string;
  tlsKey: string;
  tlsCert?: string;
  pendingDek?: string;
  pendingDekKeyId?: number;
  dekRotation?: number;
  role?: 'manager' | 'worker';
}

/** Step one of a DEK rotation (pure): `next` becomes the pending DEK, answering `rotation`. */
export function beginDekRotation(keys: NodeKeys, next: DataKeyPair, rotation: number): NodeKeys {
  if (keys.pendingDek !== undefined)
    throw new SecretdError(
      'conflict',
      `Cannot start DEK rotation ${rotation}: the rotation to key id ${keys.pendingDek.keyId} is not finished`,
    );
  if (next.keyId === keys.dekKeyId || next.dek.length !== 32)
    throw new SecretdError(
      'internal',
      `Cannot start DEK rotation ${rotation}: the new DEK must be 32 bytes with a key id other than ${keys.dekKeyId}`,
    );
  return { ...keys, pendingDek: next, dekRotation: rotation };
}

/** The last step (pure): the pending DEK becomes the only one; the old one is forgotten. */
export function finishDekRotation(keys: NodeKeys): NodeKeys {
  const pending = keys.pendingDek;
  if (pending === undefined)
    throw new SecretdError('internal', 'Cannot finish a DEK rotation: none is under way');
  const { pendingDek: _, ...rest } = keys;
  return { ...rest, dek: pending.dek, dekKeyId: pending.keyId };
}

/** The key new records are sealed with: the pending DEK during a rotation, else the current one. */
export function sealingKey(keys: NodeKeys): DataKeyPair {
  return keys.pendingDek ?? { dek: keys.dek, keyId: keys.dekKeyId };
}

/** Keys that only open what is already on disk: the current DEK during a rotation, else none. */
export function openingKeys(keys: NodeKeys): DataKeyPair[] {
  return keys.pendingDek === undefined ? [] : [{ dek: keys.dek, keyId: keys.dekKeyId }];
}

export async function writeNodeKeys(
  path: string,
  keys: NodeKeys,
  kek: Uint8Array | null,
  random: Random,
  fs: FileSystem = systemFs,
): Promise<void> {
  const seal = (key: Uint8Array, label: string): string =>
    toBase64(kek ? wrapKey(kek, key, { label, random }) : key);
  const file: NodeKeysFile = {
    format: 1,
    autolock: kek !== null,
    dekKeyId: keys.dekKeyId,
    dek: seal(keys.dek, 'dek'),
    tlsKey: seal(keys.tlsKey, 'tls-key'),
    ...(keys.tlsCert === undefined ? {} : { tlsCert: keys.tlsCert }),
    ...(keys.pendingDek === undefined
      ? {}
      : {
          pendingDek: seal(keys.pendingDek.dek, 'dek-pending'),
          pendingDekKeyId: keys.pendingDek.keyId,
        }),
    ...(keys.dekRotation === undefined ? {} : { dekRotation: keys.dekRotation }),
    ...(keys.role === undefined ? {} : { role: keys.role }),
  };
  await writeFileAtomic(path, JSON.stringify(file), 0o600, fs);
}

async function readKeysFile(path: string, fs: FileSystem): Promise<NodeKeysFile> {
  let file: NodeKeysFile;
  try {
    file = JSON.parse(await readTextFile(path, fs)) as NodeKeysFile;
  } catch (error) {
    throw new SecretdError(
      'corrupt',
      `Cannot read this node's keys from ${path}: ${(error as Error).message.split('\n')[0]}`,
    );
  }
  if (
    file.format !== 1 ||
    typeof file.dek !== 'string' ||
    typeof file.tlsKey !== 'string' ||
    typeof file.autolock !== 'boolean'
  ) {
    throw new SecretdError('corrupt', `Cannot read this node's keys from ${path}: unknown format`);
  }
  return file;
}

/** The role a role switch wrote these keys for (readable while locked: it is public); null: none. */
export async function nodeKeysRole(
  path: string,
  fs: FileSystem = systemFs,
): Promise<'manager' | 'worker' | null> {
  const role = (await readKeysFile(path, fs)).role;
  return role === 'manager' || role === 'worker' ? role : null;
}

export async function nodeKeysLocked(path: string, fs: FileSystem = systemFs): Promise<boolean> {
  return (await readKeysFile(path, fs)).autolock;
}

/** Opens the keys with the unlock key (required exactly when the file is autolocked). */
export async function readNodeKeys(
  path: string,
  kek: Uint8Array | null,
  fs: FileSystem = systemFs,
): Promise<NodeKeys> {
  const file = await readKeysFile(path, fs);
  if (file.autolock && !kek)
    throw new SecretdError(
      'locked',
      'This manager is locked: run `secretd unlock` with the cluster unlock key',
    );
  const open = (text: string, label: string): Uint8Array =>
    file.autolock ? unwrapKey(kek!, fromBase64(text), { label }) : fromBase64(text);
  const dek = open(file.dek, 'dek');
  const tlsKey = open(file.tlsKey, 'tls-key');
  if (dek.length !== 32)
    throw new SecretdError(
      'corrupt',
      `Cannot read this node's keys from ${path}: the DEK has the wrong length`,
    );
  return {
    dek,
    dekKeyId: file.dekKeyId,
    tlsKey,
    ...(typeof file.tlsCert === 'string' ? { tlsCert: file.tlsCert } : {}),
    ...(file.role === 'manager' || file.role === 'worker' ? { role: file.role } : {}),
    ...readRotation(path, file, open),
  };
}

/** The pending DEK and rotation count, checked: a pending DEK needs its own key id and 32 bytes. */
function readRotation(
  path: string,
  file: NodeKeysFile,
  open: (text: string, label: string) => Uint8Array,
): Pick<NodeKeys, 'pendingDek' | 'dekRotation'> {
  const bad = (what: string): SecretdError =>
    new SecretdError('corrupt', `Cannot read this node's keys from ${path}: ${what}`);
  const keyId = (value: unknown): value is number =>
    typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
  if (file.dekRotation !== undefined && !keyId(file.dekRotation))
    throw bad('the DEK rotation count is not a whole number');
  const rotation = file.dekRotation === undefined ? {} : { dekRotation: file.dekRotation };
  if (file.pendingDek === undefined && file.pendingDekKeyId === undefined) return rotation;
  if (typeof file.pendingDek !== 'string' || !keyId(file.pendingDekKeyId))
    throw bad('the pending DEK or its key id is missing');
  if (file.pendingDekKeyId === file.dekKeyId)
    throw bad(`the pending DEK has the current DEK's key id ${file.dekKeyId}`);
  const dek = open(file.pendingDek, 'dek-pending');
  if (dek.length !== 32) throw bad('the pending DEK has the wrong length');
  return { ...rotation, pendingDek: { dek, keyId: file.pendingDekKeyId } };
}

/**
 * This node's certificate as its keys file pairs it with its key (readable while locked: it is
 * public), else certificates/node.pem for a keys file from before renewal.
 */
export async function readNodeCertificate(
  keysPath: string,
  certPath: string,
  fs: FileSystem = systemFs,
): Promise<string> {
  const file = await readKeysFile(keysPath, fs);
  return typeof file.tlsCert === 'string' ? file.tlsCert : readTextFile(certPath, fs);
}

/**
 * The TLS key and its certificate from a keys file that is not autolocked (a worker's, or one a
 * role switch reads): the DEK is zeroed, the key is the caller's to zero.
 */
export async function readTlsPair(
  paths: { readonly nodeKeys: string; readonly nodeCert: string },
  fs: FileSystem = systemFs,
): Promise<{ tlsKey: Uint8Array; tlsCert: string }> {
  const keys = await readNodeKeys(paths.nodeKeys, null, fs);
  keys.dek.fill(0);
  const tlsCert = keys.tlsCert ?? (await readTextFile(paths.nodeCert, fs));
  return { tlsKey: keys.tlsKey, tlsCert };
}

/**
 * At start-up: certificates/node.pem made equal to the certificate the keys file pairs with the
 * key. A renewal writes the keys file (new key and certificate, one rename), then node.pem; a crash
 * between the two leaves the old node.pem, put right here. Returns whether it had to.
 */
export async function restoreNodeCertificate(
  keysPath: string,
  certPath: string,
  fs: FileSystem = systemFs,
): Promise<boolean> {
  const file = await readKeysFile(keysPath, fs);
  if (typeof file.tlsCert !== 'string') return false;
  const onDisk = await readTextFile(certPath, fs).catch(() => null);
  if (onDisk === file.tlsCert) return false;
  await writeFileAtomic(certPath, file.tlsCert, 0o644, fs);
  return true;
}

/**
 * A renewed pair on disk, in the order a start-up can resolve: the keys file (the new key, wrapped
 * by `kek` under autolock, and its certificate) replaced in one rename, then certificates/node.pem.
 * A crash before the first rename leaves the old pair; after it, the new one (node.pem follows at
 * start-up).
 */
export async function writeRenewedPair(
  paths: { readonly nodeKeys: string; readonly nodeCert: string },
  keys: NodeKeys & { readonly tlsCert: string },
  kek: Uint8Array | null,
  random: Random,
  fs: FileSystem = systemFs,
): Promise<void> {
  await writeNodeKeys(paths.nodeKeys, keys, kek, random, fs);
  await writeFileAtomic(paths.nodeCert, keys.tlsCert, 0o644, fs);
}
