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
 */
import { readFile } from 'node:fs/promises';
import { unwrapKey, wrapKey } from '../../crypto/key-wrap.ts';
import type { Random } from '../../crypto/random.ts';
import { SecretdError } from '../../errors.ts';
import { fromBase64, toBase64 } from '../store/index.ts';
import { writeFileAtomic } from './layout.ts';

export interface NodeKeys {
  readonly dek: Uint8Array;
  readonly dekKeyId: number;
  readonly tlsKey: Uint8Array;
}

interface NodeKeysFile {
  format: 1;
  autolock: boolean;
  dekKeyId: number;
  dek: string;
  tlsKey: string;
}

export async function writeNodeKeys(
  path: string,
  keys: NodeKeys,
  kek: Uint8Array | null,
  random: Random,
): Promise<void> {
  const seal = (key: Uint8Array, label: string): string =>
    toBase64(kek ? wrapKey(kek, key, { label, random }) : key);
  const file: NodeKeysFile = {
    format: 1,
    autolock: kek !== null,
    dekKeyId: keys.dekKeyId,
    dek: seal(keys.dek, 'dek'),
    tlsKey: seal(keys.tlsKey, 'tls-key'),
  };
  await writeFileAtomic(path, JSON.stringify(file), 0o600);
}

async function readKeysFile(path: string): Promise<NodeKeysFile> {
  let file: NodeKeysFile;
  try {
    file = JSON.parse(await readFile(path, 'utf8')) as NodeKeysFile;
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

export async function nodeKeysLocked(path: string): Promise<boolean> {
  return (await readKeysFile(path)).autolock;
}

/** Opens the keys with the unlock key (required exactly when the file is autolocked). */
export async function readNodeKeys(path: string, kek: Uint8Array | null): Promise<NodeKeys> {
  const file = await readKeysFile(path);
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
  return { dek, dekKeyId: file.dekKeyId, tlsKey };
}
