/**
 * The executor's limits, named in one place. (They belong beside `src/limits.ts`; they live here
 * until that shared module is next edited, so this folder stays self-contained.)
 */

/** Smallest secrets tmpfs; small secrets still take a 4 KiB page each. */
export const secretsTmpfsBytesMin = 1024 * 1024;
/** tmpfs accounts in pages: every file costs at least one. */
export const tmpfsPageBytes = 4096;
/** Secret files per task (Docker has no limit; ours bounds the tmpfs and the bundle). */
export const secretsPerTaskMax = 512;
/** Longest secret target path, in characters. */
export const secretTargetCharsMax = 1024;
/** Longest path component of a target (NAME_MAX). */
export const secretTargetComponentCharsMax = 255;
/** Task ids name containers, directories and cgroups. */
export const taskIdCharsMax = 128;
/** Image names, as Docker's references. */
export const imageNameCharsMax = 128;
/** Any short runtime or mount command (state, kill, delete, list, mount, umount). */
export const commandTimeoutMs = 30_000;
/** From `runc run` to the container's process running. */
export const containerStartTimeoutMs = 30_000;
/** Default for `exec` when the caller gives none. */
export const execTimeoutMsDefault = 30_000;
/** Output kept from one exec or command, per stream; the rest is dropped. */
export const commandOutputBytesMax = 1024 * 1024;
/** After SIGKILL, how long to wait for the container to be gone before deleting it anyway. */
export const killWaitMs = 10_000;
/** Default grace between SIGTERM and SIGKILL, as Docker's `stop`. */
export const stopGraceMsDefault = 10_000;
/** How often containers we did not start (adopted after a restart) are polled for exit. */
export const exitPollIntervalMs = 1_000;
/** Extracting an image tarball. */
export const imageImportTimeoutMs = 10 * 60_000;
