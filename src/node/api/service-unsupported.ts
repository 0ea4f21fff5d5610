/**
 * Docker ServiceSpec fields secretd has nothing behind. The docker CLI sends some of them on every
 * create or update with their default (`Init: false`, `DNSConfig: {}`, empty `Resources`, an
 * `EndpointSpec` in vip mode…), and sends back on update whatever inspect returned; those are
 * accepted. Any other value asks for a feature secretd does not have, and is refused (501) naming
 * it, rather than stored and silently ignored.
 */
import { SecretdError } from '../../errors.ts';

type Check = (value: unknown) => boolean;

const absent = (value: unknown): boolean => value === undefined || value === null;
const emptyList: Check = (v) => absent(v) || (Array.isArray(v) && v.length === 0);
const emptyObject: Check = (v) =>
  absent(v) ||
  (typeof v === 'object' && !Array.isArray(v) && Object.values(v as object).every(absent));
const emptyString: Check = (v) => absent(v) || v === '';
const isFalse: Check = (v) => absent(v) || v === false;
const oneOf =
  (...allowed: unknown[]): Check =>
  (v) =>
    absent(v) || allowed.includes(v);
const objectWhere =
  (fields: Record<string, Check>): Check =>
  (v) =>
    absent(v) ||
    (typeof v === 'object' &&
      !Array.isArray(v) &&
      Object.entries(v as Record<string, unknown>).every(([key, inner]) =>
        (fields[key] ?? absent)(inner),
      ));

/** Docker's defaults for the restart policy: what secretd's orchestrator does (restart on any exit, with back-off). */
const restartPolicy = objectWhere({
  Condition: oneOf('any'),
  Delay: () => true,
  MaxAttempts: oneOf(0),
  Window: oneOf(0),
});

const containerRules: [string, Check, string][] = [
  ['Labels', emptyObject, 'container labels (--container-label)'],
  ['Init', isFalse, 'an init process in containers (--init)'],
  ['Isolation', oneOf('default', ''), 'container isolation modes (--isolation)'],
  [
    'StopGracePeriod',
    oneOf(10_000_000_000),
    'a custom stop grace period (--stop-grace-period; tasks get 10 s)',
  ],
  ['StopSignal', emptyString, 'a custom stop signal (--stop-signal)'],
  ['Hostname', emptyString, 'container hostnames (--hostname)'],
  ['Dir', emptyString, 'a working directory (--workdir)'],
  ['User', emptyString, 'running as another user (--user)'],
  ['Groups', emptyList, 'supplementary groups (--group)'],
  ['TTY', isFalse, 'a TTY (--tty)'],
  ['OpenStdin', isFalse, 'stdin (--interactive)'],
  ['ReadOnly', isFalse, 'read-only root filesystems (--read-only)'],
  ['Mounts', emptyList, 'mounts and volumes (--mount)'],
  ['Configs', emptyList, 'configs (--config): use secrets'],
  ['Privileges', emptyObject, 'credential specs and SELinux labels (--credential-spec)'],
  ['DNSConfig', emptyObject, 'DNS settings (--dns*)'],
  ['Hosts', emptyList, 'extra hosts entries (--host)'],
  ['Healthcheck', emptyObject, 'health checks (--health-*)'],
  ['Sysctls', emptyObject, 'sysctls (--sysctl)'],
  ['CapabilityAdd', emptyList, 'added capabilities (--cap-add)'],
  ['CapabilityDrop', emptyList, 'dropped capabilities (--cap-drop)'],
  ['Ulimits', emptyList, 'ulimits (--ulimit)'],
  ['OomScoreAdj', oneOf(0), 'an OOM score adjustment (--oom-score-adj)'],
  ['Duration', absent, 'jobs with a duration'],
];

const templateRules: [string, Check, string][] = [
  [
    'Resources',
    objectWhere({ Limits: emptyObject, Reservations: emptyObject }),
    'resource limits and reservations (--limit-*, --reserve-*)',
  ],
  [
    'RestartPolicy',
    restartPolicy,
    'restart policies other than restarting on any exit (--restart-*)',
  ],
  ['Runtime', oneOf('container', ''), 'task runtimes other than containers'],
  [
    'Networks',
    emptyList,
    'networks (--network): secretd runs containers without networking of their own',
  ],
  ['LogDriver', absent, 'log drivers (--log-driver)'],
];

/**
 * Constraints are taken (the scheduler matches them, store/node-constraints.ts). Placement by
 * platform is not: secretd's scheduler does not read a node's platform (each node runs the root
 * filesystems it was given).
 */
const placementRules: [string, Check, string][] = [
  ['Preferences', emptyList, 'placement preferences (--placement-pref)'],
  ['MaxReplicas', oneOf(0), 'a maximum of replicas per node (--replicas-max-per-node)'],
  ['Platforms', emptyList, 'placement by platform'],
];

const serviceRules: [string, Check, string][] = [
  [
    'Networks',
    emptyList,
    'networks (--network): secretd runs containers without networking of their own',
  ],
  [
    'EndpointSpec',
    objectWhere({ Mode: oneOf('vip'), Ports: emptyList }),
    'published ports and DNS round-robin (--publish, --endpoint-mode)',
  ],
  [
    'RollbackConfig',
    emptyObject,
    'rolling services back, so it takes no rollback settings (--rollback-*)',
  ],
];

const modeRules: [string, Check, string][] = [
  ['ReplicatedJob', absent, 'jobs (--mode replicated-job)'],
  ['GlobalJob', absent, 'jobs (--mode global-job)'],
];

/**
 * FailureAction `pause` and `continue` are both taken and kept, and secretd does the same for
 * either: a batch whose new task fails waits while it restarts with back-off, and the rollout goes on
 * once it runs. Any other value than these and `rollback` is a 400 (service-shapes.ts).
 */
const updateRules: [string, Check, string][] = [
  [
    'FailureAction',
    (v) => v !== 'rollback',
    'rolling back a failed update (--update-failure-action rollback)',
  ],
  [
    'Monitor',
    oneOf(0),
    'a monitoring period after each updated task (--update-monitor): a batch is done once its new tasks run',
  ],
  ['MaxFailureRatio', oneOf(0), 'an update failure ratio (--update-max-failure-ratio)'],
  ['Order', oneOf('stop-first', ''), 'start-first updates (--update-order)'],
];

/** Run on a body whose keys are Docker's field names (service-shapes.ts canonicalises them first). */
export function refuseUnsupported(body: Record<string, unknown>): void {
  check(body, serviceRules, '');
  const template = body.TaskTemplate;
  if (isRecord(template)) {
    check(template, templateRules, 'TaskTemplate.');
    if (isRecord(template.ContainerSpec))
      check(template.ContainerSpec, containerRules, 'TaskTemplate.ContainerSpec.');
    if (isRecord(template.Placement))
      check(template.Placement, placementRules, 'TaskTemplate.Placement.');
  }
  if (isRecord(body.Mode)) check(body.Mode, modeRules, 'Mode.');
  if (isRecord(body.UpdateConfig)) check(body.UpdateConfig, updateRules, 'UpdateConfig.');
}

function check(
  object: Record<string, unknown>,
  rules: readonly [string, Check, string][],
  prefix: string,
): void {
  for (const [field, isDefault, feature] of rules) {
    if (!isDefault(object[field]))
      throw new SecretdError(
        'unimplemented',
        `secretd does not support ${feature} (${prefix}${field})`,
      );
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
