/**
 * Rolling updates, internal to the orchestrator. A live task whose spec version is older than its
 * service's is outdated. Outdated slots are replaced in batches of `update.parallelism` (0: all at
 * once), lowest slot (or node id) first. A batch is done when each of its slots has a live task of
 * the current version in state running (or the slot went away); the next batch starts
 * `update.delayMs` after that. A newer spec version cancels the batch in flight and starts over at
 * once, as Docker does. A task not placed yet is replaced at once, outside any batch: it runs
 * nowhere, so replacing it interrupts nothing.
 *
 * A task that keeps failing keeps its batch open, so the update waits (like Docker's default
 * failure action, pause) while the slot restarts with back-off.
 */
import type { ServiceRecord } from '../store/index.ts';
import type { PlanBuilder, RolloutMemory } from './_plan.ts';
import type { SettledSlot } from './_slot.ts';

/** Chooses the slots whose live task is replaced in this round, and records the rollout's progress. */
export function chooseReplacements(
  plan: PlanBuilder,
  service: ServiceRecord,
  slots: readonly SettledSlot[],
  memory: RolloutMemory | undefined,
): ReadonlySet<string> {
  const version = service.specVersion;
  const stale = slots.filter((s) => s.mayStart && s.live !== null && s.live.specVersion < version);
  // A task not placed yet runs nowhere: replacing it interrupts nothing, so it needs no batch.
  const unplaced = stale.filter((s) => s.live?.nodeId === null).map((s) => s.key);
  const outdated = stale.filter((s) => s.live?.nodeId !== null).map((s) => s.key);
  const batch = chooseBatch(plan, service, slots, outdated, memory);
  return new Set([...unplaced, ...batch]);
}

function chooseBatch(
  plan: PlanBuilder,
  service: ServiceRecord,
  slots: readonly SettledSlot[],
  outdated: readonly string[],
  memory: RolloutMemory | undefined,
): readonly string[] {
  const version = service.specVersion;
  let rollout = memory?.specVersion === version ? memory : undefined;
  if (rollout && rollout.batchSlotKeys.length > 0) {
    if (!batchDone(rollout, slots, version)) {
      plan.rollouts.set(service.id, rollout);
      return [];
    }
    rollout = {
      specVersion: version,
      batchSlotKeys: [],
      nextBatchAtMs: plan.now + service.spec.update.delayMs,
    };
  }
  if (outdated.length === 0) return [];
  const nextBatchAtMs = rollout?.nextBatchAtMs ?? 0;
  if (nextBatchAtMs > plan.now) {
    plan.lookAt(nextBatchAtMs);
    plan.rollouts.set(service.id, { specVersion: version, batchSlotKeys: [], nextBatchAtMs });
    return [];
  }
  const { parallelism } = service.spec.update;
  const batch = parallelism === 0 ? outdated : outdated.slice(0, parallelism);
  plan.rollouts.set(service.id, { specVersion: version, batchSlotKeys: batch, nextBatchAtMs: 0 });
  return batch;
}

function batchDone(
  rollout: RolloutMemory,
  slots: readonly SettledSlot[],
  version: number,
): boolean {
  const byKey = new Map(slots.map((s) => [s.key, s]));
  return rollout.batchSlotKeys.every((key) => {
    const slot = byKey.get(key);
    // A slot that went away (scaled down, node drained or paused) no longer holds the batch open.
    if (!slot || !slot.mayStart) return true;
    return (
      slot.live !== null &&
      slot.live.specVersion === version &&
      slot.live.status.state === 'running'
    );
  });
}
