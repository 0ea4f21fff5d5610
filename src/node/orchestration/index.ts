/** The orchestration room's door: what other parts of secretd may use of it. */
export { WorkloadLoop, type WorkloadLoopOptions } from './control-loop.ts';
export {
  emptyOrchestratorMemory,
  type OrchestratorMemory,
  type OrchestratorPlan,
  reconcileServices,
} from './orchestrator.ts';
export { schedule } from './scheduler.ts';
/** Defined in src/limits.ts (import it from there); kept here for the API's swarm shape. */
