/** The orchestration room's door: what other parts of secretd may use of it. */
export { taskHistoryPerSlot } from './_plan.ts';
export { WorkloadLoop } from './control-loop.ts';
export { emptyOrchestratorMemory, type OrchestratorMemory, type OrchestratorPlan, reconcileServices } from './orchestrator.ts';
export { schedule } from './scheduler.ts';
export { isDead } from './task-view.ts';
