/** Compose files for `secretd stack deploy`: load (parse, interpolate, check, merge), translate, compare. */
export { loadCompose, type ComposeFileText, type Loaded, type LoadOptions } from './load.ts';
export {
  translate,
  checkStackName,
  type StackPlan,
  type SecretPlan,
  type ServiceSpecBody,
  type TranslateOptions,
} from './translate.ts';
export { sameSpec, type CurrentSpec } from './compare.ts';
export { namespaceLabel, imageLabel, type ComposeProject } from './model.ts';
