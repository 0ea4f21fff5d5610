/**
 * The Docker Engine endpoints secretd has nothing behind: an honest 501 naming what secretd does
 * not do (and what to use instead), never a fake success. Paths nobody defines stay 404.
 */
import { SecretdError } from '../../errors.ts';

const answers: [RegExp, string][] = [
  [/^\/(services|tasks)\/[^/]+\/logs$/, 'secretd does not collect container logs'],
  [
    /^\/(containers|exec|commit)(\/|$)/,
    'secretd runs containers only as service tasks: use `docker service` commands (there are no docker ps, run, logs or exec; `secretd exec TASK CMD…` runs a command in a task)',
  ],
  [
    /^\/(images|build|distribution|auth)(\/|$)/,
    'secretd does not pull, build or list images: each node runs root filesystems imported with `secretd image import NAME ROOTFS.tar`',
  ],
  [/^\/networks(\/|$)/, 'secretd has no networks: containers run without networking of their own'],
  [/^\/volumes(\/|$)/, 'secretd has no volumes'],
  [/^\/plugins(\/|$)/, 'secretd has no plugins'],
  [/^\/configs(\/|$)/, 'secretd has no configs: use secrets'],
  [/^\/(events|system)(\/|$)/, 'secretd has no Docker event stream or system usage report'],
  [/^\/swarm\/init$/, 'secretd creates a cluster with `secretd init`, on the first manager'],
  [/^\/swarm\/join$/, 'secretd nodes join with `secretd join --token TOKEN MANAGER`'],
  [
    /^\/swarm\/leave$/,
    'secretd nodes leave by being removed: `docker node rm` (or `secretd node rm`) on a manager',
  ],
  [
    /^\/services\/[^/]+\/rollback$/,
    'secretd does not roll services back to their previous spec: update them again',
  ],
];

/** The 501 for a Docker endpoint secretd does not implement, or null for an unknown path. */
export function notImplemented(method: string, path: string): SecretdError | null {
  for (const [pattern, message] of answers) {
    if (pattern.test(path))
      return new SecretdError('unimplemented', `${message} (${method} ${path.slice(0, 120)})`);
  }
  return null;
}
