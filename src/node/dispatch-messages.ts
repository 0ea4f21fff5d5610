/**
 * What flows on a node's session with the leader's dispatcher (newline-delimited JSON on one
 * long-lived HTTP/2 stream), and back. Secrets travel only inside assignments, only to the node
 * that runs a task referencing them; there is no request by which a node can ask for one.
 */
import type { ContainerSpec, DesiredState } from './store/types.ts';

export interface TaskAssignment {
  readonly id: string;
  readonly serviceId: string;
  readonly serviceName: string;
  readonly slot: number;
  readonly container: ContainerSpec;
  readonly desiredState: DesiredState;
  /**
   * Secret id → the version this task must hold now: its pinned version, or the newest. When a
   * secret the task follows gets a new version, the task is sent again with the new number (and the
   * node gets that version's data in the same message).
   */
  readonly secretVersions: Readonly<Record<string, number>>;
}

export interface SecretDelivery {
  readonly id: string;
  readonly version: number;
  readonly data: string; // base64
}

export interface SecretKey {
  readonly id: string;
  readonly version: number;
}

export type SessionMessage =
  | {
      readonly type: 'assignments';
      /** A full set replaces everything the node had; otherwise these are changes in order. */
      readonly full: boolean;
      readonly tasks: readonly TaskAssignment[];
      readonly removedTasks: readonly string[];
      readonly secrets: readonly SecretDelivery[];
      readonly removedSecrets: readonly SecretKey[];
    }
  | { readonly type: 'heartbeat'; readonly periodMs: number }
  | { readonly type: 'exec'; readonly id: string; readonly taskId: string; readonly argv: readonly string[] };

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export const sessionPath = '/secretd/dispatcher/session';
export const heartbeatPath = '/secretd/dispatcher/heartbeat';
export const statusPath = '/secretd/dispatcher/status';
export const execResultPath = '/secretd/dispatcher/exec-result';
