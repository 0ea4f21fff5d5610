/**
 * The docker CLI's `--secret` forms: `name`, or `source=name,target=path,uid=0,gid=0,mode=0444`,
 * plus secretd's: `source=name@3` pins version 3 (no `@`: follow the newest) and
 * `on-update=none|signal:SIGHUP|restart` says what a running task gets when that version changes.
 */
import { SecretdError } from '../errors.ts';
import type { SecretFlag } from '../node/index.ts';

/** The parser lives with the node (its agent reads the same syntax): src/node/store/secret-flag.ts. */
export { parseSecretFlag, type SecretFlag } from '../node/index.ts';

export function checkDuplicateTargets(secrets: readonly SecretFlag[]): void {
  const seen = new Set<string>();
  for (const s of secrets) {
    if (seen.has(s.File.Name))
      throw new SecretdError('invalid', `Duplicate secret target for ${s.File.Name} not allowed`);
    seen.add(s.File.Name);
  }
}
