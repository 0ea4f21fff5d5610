/** The sealing options of one member's log and snapshot store, shared by opening and --force-new-cluster. */
import type { Random } from '../../crypto/random.ts';
import type { FileSystem } from '../../io/fs.ts';
import type { Sha256 } from '../../crypto/sha256.ts';
import { webCryptoSha256 } from '../../io/sha256.ts';
import type { DataKey } from './raft-node.ts';

/** How the log and snapshots of this member are sealed and opened: one key to seal, older ones to open. */
export function sealingOf(options: {
  readonly dek: Uint8Array;
  readonly dekKeyId: number;
  readonly olderKeys?: readonly DataKey[];
  readonly random: Random;
  readonly fs: FileSystem;
  readonly sha256?: Sha256;
}): {
  dek: Uint8Array;
  keyId: number;
  olderKeys: readonly DataKey[];
  random: Random;
  fs: FileSystem;
  sha256: Sha256;
} {
  return {
    dek: options.dek,
    keyId: options.dekKeyId,
    olderKeys: options.olderKeys ?? [],
    random: options.random,
    fs: options.fs,
    sha256: options.sha256 ?? webCryptoSha256,
  };
}
