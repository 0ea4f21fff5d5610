/** The node-side executor: containers through the OCI runtime, secrets in a per-task tmpfs. */
export {
  cgroupParentOf,
  Executor,
  type ExecutorOptions,
  type ExecutorStats,
  type ExitListener,
  type TaskRun,
  type TaskSecret,
  type TaskState,
  type TaskStatus,
} from './executor.ts';
export {
  ImageStore,
  normalizeImageName,
  type ImageInfo,
  type ImageStoreOptions,
} from './images.ts';
export { RuncRuntime, type RuncRuntimeOptions } from './runc-runtime.ts';
export type {
  ContainerState,
  ContainerStatus,
  ExecOptions,
  ExecResult,
  RunOptions,
  Runtime,
  RunningContainer,
} from './runtime.ts';
export {
  SecretMount,
  eraseSecretsDir,
  secretsTmpfsBytes,
  secretsMountSource,
} from './secret-mount.ts';
export { ociConfig, writeBundle, type BundleOptions } from './bundle.ts';
export { checkSecretFiles, checkSecretRefs, type SecretFile, type SecretRef } from './targets.ts';
export { stopGraceMsDefault } from './limits.ts';
