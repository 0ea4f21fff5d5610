/** The task-dispatch room's door: what other parts of secretd may use of it. */
export { Agent } from './agent.ts';
export { Dispatcher } from './dispatcher.ts';
export {
  LocalContainers,
  processStartTime,
  type LocalContainerInfo,
  type LocalOwner,
  type LocalSecretRef,
  type Prepared,
} from './local-containers.ts';
export {
  type GrantedChange,
  type GrantedListener,
  type GrantedSecret,
  type GrantedSecretInfo,
  GrantedSecrets,
} from './granted.ts';
export {
  type ExecResult,
  execResultPath,
  heartbeatPath,
  type SessionClaim,
  sessionInstanceParam,
  sessionInstancePattern,
  sessionPath,
  statusPath,
} from './messages.ts';
