/**
 * The field names of Docker's ServiceSpec, as far down as secretd reads them: what a body's keys are
 * matched against (case-insensitively, as Go's encoding/json does; request.ts `canonicalKeys`) and
 * the fields any other key is refused beside. A null leaf is a value, or a map whose keys are data
 * (`Labels`), or an object secretd only checks for emptiness (service-unsupported.ts).
 */
import type { FieldTree } from './request.ts';

/** Docker's UpdateConfig, also the shape of RollbackConfig. */
const updateConfigFields: FieldTree = {
  Parallelism: null,
  Delay: null,
  FailureAction: null,
  Monitor: null,
  MaxFailureRatio: null,
  Order: null,
};

const secretReferenceFields: FieldTree = {
  File: { Name: null, UID: null, GID: null, Mode: null },
  SecretID: null,
  SecretName: null,
  // secretd's extension (service-shapes.ts).
  Secretd: { Version: null, OnUpdate: null },
};

const containerSpecFields: FieldTree = {
  Image: null,
  Command: null,
  Args: null,
  Env: null,
  Secrets: secretReferenceFields,
  Labels: null,
  Init: null,
  Isolation: null,
  StopGracePeriod: null,
  Hostname: null,
  Dir: null,
  User: null,
  TTY: null,
  OpenStdin: null,
  Mounts: null,
  Configs: null,
  Privileges: null,
  DNSConfig: null,
  Hosts: null,
  StopSignal: null,
  Healthcheck: null,
  Groups: null,
  ReadOnly: null,
  Sysctls: null,
  CapabilityAdd: null,
  CapabilityDrop: null,
  Ulimits: null,
  OomScoreAdj: null,
  Duration: null,
};

export const serviceSpecFields: FieldTree = {
  Name: null,
  Labels: null,
  TaskTemplate: {
    ContainerSpec: containerSpecFields,
    RestartPolicy: { Condition: null, Delay: null, MaxAttempts: null, Window: null },
    Resources: { Limits: null, Reservations: null },
    Placement: { Constraints: null, Preferences: null, Platforms: null, MaxReplicas: null },
    ForceUpdate: null,
    Runtime: null,
    Networks: null,
    LogDriver: null,
  },
  Mode: {
    Replicated: { Replicas: null },
    Global: {},
    ReplicatedJob: { MaxConcurrent: null, TotalCompletions: null },
    GlobalJob: {},
  },
  UpdateConfig: updateConfigFields,
  RollbackConfig: updateConfigFields,
  Networks: null,
  EndpointSpec: { Mode: null, Ports: null },
};
