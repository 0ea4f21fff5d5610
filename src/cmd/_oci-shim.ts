/**
 * `secretd oci-runtime install`: writes `secretd-runc` as a POSIX sh script, so that a container
 * without references never starts the secretd executable (docker runs the runtime four times per
 * container: create, start, delete, delete --force). The script finds runc's command after its
 * global flags and:
 *
 *   create, run   execs secretd (`oci-runtime`) when the bundle's config.json mentions
 *                 SECRETD_SECRET or io.secretd.secret. (grep -F), runc otherwise;
 *   delete        execs secretd when the agent holds a directory for that container id
 *                 (`<runDir>/containers/<id>`, where local-containers.ts keeps its record), runc
 *                 otherwise;
 *   the rest      execs runc.
 *
 * Any doubt (a flag it does not know, no command, an id it cannot use as a path, a config.json it
 * cannot read) goes through secretd, which handles every call. Paths are baked in at install time;
 * the data dir and runc reach secretd through SECRETD_DATA_DIR and SECRETD_RUNC.
 */
import { chmodSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
// The shim's path loads no more than cmd/oci-runtime.ts needs (src/main.ts): not src/node.
import { containersDirOf, runDirOf } from '../io/run-dir.ts';

export interface ShimPaths {
  /** The secretd command: the executable, or [bun, main.ts] when run from source. */
  readonly secretd: readonly string[];
  readonly runc: string;
  readonly grep: string;
  readonly dataDir: string;
}

/** A word for sh, single-quoted. */
export function shQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

// runc's global flags (urfave/cli: one or two dashes), and create's/run's.
const globalValue = ['root', 'log', 'log-format', 'criu', 'rootless'];
const globalBool = ['debug', 'systemd-cgroup', 'help', 'h', 'version', 'v'];
const createValue = ['bundle', 'b', 'console-socket', 'pid-file', 'preserve-fds'];
const createBool = ['detach', 'd', 'keep', 'no-subreaper', 'no-pivot', 'no-new-keyring'];
/** Commands that never need secretd. */
const runcOnly = [
  'checkpoint',
  'events',
  'exec',
  'features',
  'kill',
  'list',
  'pause',
  'ps',
  'restore',
  'resume',
  'spec',
  'start',
  'state',
  'update',
];

const dashed = (names: readonly string[], suffix = ''): string =>
  names.flatMap((name) => [`-${name}${suffix}`, `--${name}${suffix}`]).join('|');

/** The script's text. */
export function shimScript(paths: ShimPaths): string {
  const secretd = paths.secretd.map(shQuote).join(' ');
  const containers = containersDirOf(runDirOf(paths.dataDir));
  return `#!/bin/sh
# secretd-runc: written by \`secretd oci-runtime install\` (run it again to change a path).
# Containers without references go straight to runc; the rest through secretd.
runc=${shQuote(paths.runc)}
containers=${shQuote(containers)}
SECRETD_DATA_DIR=${shQuote(resolve(paths.dataDir))}
SECRETD_RUNC=$runc
export SECRETD_DATA_DIR SECRETD_RUNC
skip= cmd= bundle=. id= seen=
for a in "$@"; do
  if [ -n "$skip" ]; then
    [ "$skip" != bundle ] || bundle=$a
    skip=; continue
  fi
  if [ -z "$seen" ]; then
    case $a in
      ${dashed(globalValue)}) skip=1 ;;
      ${dashed(globalValue, '=*')}|${dashed(globalBool)}|${dashed(['debug', 'systemd-cgroup'], '=*')}) ;;
      -*) exec ${secretd} oci-runtime "$@" ;;
      *) seen=1 cmd=$a ;;
    esac
    continue
  fi
  case $cmd in
    ${runcOnly.join('|')}) exec "$runc" "$@" ;;
    create|run|delete) ;;
    *) exec ${secretd} oci-runtime "$@" ;;
  esac
  case $a in
    ${dashed(['b', 'bundle'])}) skip=bundle ;;
    ${dashed(createValue.filter((f) => f !== 'b' && f !== 'bundle'))}) skip=1 ;;
    -b=*|--b=*|-bundle=*|--bundle=*) bundle=\${a#*=} ;;
    ${dashed(
      createValue.filter((f) => f !== 'b' && f !== 'bundle'),
      '=*',
    )}|${dashed(createBool)}) ;;
    -f|--f|-force|--force|-force=*|--force=*) ;;
    -*) exec ${secretd} oci-runtime "$@" ;;
    *) [ -n "$id" ] || id=$a ;;
  esac
done
case $cmd in
  ${runcOnly.join('|')}) exec "$runc" "$@" ;;
  create|run)
    [ -n "$id" ] || exec ${secretd} oci-runtime "$@"
    [ -r "$bundle/config.json" ] || exec ${secretd} oci-runtime "$@"
    ${shQuote(paths.grep)} -qF -e SECRETD_SECRET -e io.secretd.secret. "$bundle/config.json"
    [ $? -eq 1 ] && exec "$runc" "$@"
    exec ${secretd} oci-runtime "$@" ;;
  delete)
    case $id in
      ''|.|..|*/*) exec ${secretd} oci-runtime "$@" ;;
    esac
    [ -e "$containers/$id" ] && exec ${secretd} oci-runtime "$@"
    exec "$runc" "$@" ;;
esac
exec ${secretd} oci-runtime "$@"
`;
}

/** Writes the script at `path` (mode 0755), through a temp file renamed over it. */
export function writeShim(path: string, paths: ShimPaths): void {
  const temp = `${path}.secretd-${process.pid}`;
  try {
    writeFileSync(temp, shimScript(paths), { mode: 0o755 });
    chmodSync(temp, 0o755);
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}
