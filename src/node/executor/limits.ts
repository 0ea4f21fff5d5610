/** The executor's limits, as the files of this folder import them; they are defined in src/limits.ts. */
export {
  commandOutputBytesMax,
  commandTimeoutMs,
  containerStartTimeoutMs,
  execTimeoutMsDefault,
  exitPollIntervalMs,
  imageImportTimeoutMs,
  imageNameCharsMax,
  killWaitMs,
  secretsPerTaskMax,
  secretsTmpfsBytesMin,
  secretTargetCharsMax,
  secretTargetComponentCharsMax,
  stopGraceMsDefault,
  taskIdCharsMax,
  tmpfsPageBytes,
} from '../../limits.ts';
