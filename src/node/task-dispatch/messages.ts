/**
 * What flows on a node's session with the leader's dispatcher (newline-delimited JSON on one
 * long-lived HTTP/2 stream), and back. Secrets travel only inside assignments, only to the node
 * that runs a task referencing them or that one of their grants matches; there is no request by
 * which a node can ask for one.
 */
import type { ContainerSpec, DesiredState } from '../store/index.ts';
import { peerPaths } from '../peers/index.ts';

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

/**
 * A secret this node now holds by grant (granted.ts), at this version, with its data: pushed because
 * the node matches one of the secret's grants, never asked for.
 */
export interface GrantDelivery {
  readonly id: string;
  readonly name: string;
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
      /**
       * Secrets held by grant: in a full set, every one the node holds (the rest are withdrawn);
       * otherwise those it now holds at a new version. Absent from dispatchers without grants.
       */
      readonly grants?: readonly GrantDelivery[];
      /** Secret ids the node no longer holds by grant (never in a full set). */
      readonly removedGrants?: readonly string[];
    }
  | { readonly type: 'heartbeat'; readonly periodMs: number }
  | {
      readonly type: 'exec';
      readonly id: string;
      readonly taskId: string;
      readonly argv: readonly string[];
    }
  /**
   * Renew this node's certificate now (peerPaths.renewCertificate): the store gives the node
   * another role than the certificate its session presented (a promotion or a demotion: `role` is
   * the role the new certificate will name), its certificate outlasts the cluster's setting, or a
   * root CA rotation wants it on the new root.
   */
  | {
      readonly type: 'renew-certificate';
      readonly reason: string;
      readonly role?: 'manager' | 'worker';
    };

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export const sessionPath = peerPaths.session;
export const heartbeatPath = peerPaths.heartbeat;
export const statusPath = peerPaths.status;
export const execResultPath = peerPaths.execResult;

/**
 * Who opens a session. Every agent process draws a random instance id once and sends it with each
 * session request (`?instance=…` on sessionPath): a new session from the same process replaces
 * its old one at once (a dropped connection), while one from another process claiming the same
 * node id (a copied data dir started elsewhere) is refused with 409 as long as the first keeps up
 * its heartbeats. `address` is where the request came from, for messages only.
 */
export interface SessionClaim {
  readonly instance?: string | undefined;
  readonly address?: string | undefined;
  /** The role (OU) of the certificate the session's connection presented; the dispatcher asks for a renewal when the store's differs. */
  readonly certificateRole?: 'manager' | 'worker' | undefined;
  /** When that certificate ends (ms since the epoch); one lasting longer than the cluster now issues is renewed. */
  readonly certificateNotAfter?: number | undefined;
}

export const sessionInstanceParam = 'instance';
export const sessionInstancePattern = /^[A-Za-z0-9_-]{16,64}$/;

/** The session request path carrying this agent process's instance id. */
export function sessionPathFor(instance: string): string {
  return `${sessionPath}?${sessionInstanceParam}=${encodeURIComponent(instance)}`;
}

/** A fresh instance id: 16 random bytes, base64url (22 characters). */
export function newSessionInstance(random: (bytes: number) => Uint8Array): string {
  return Buffer.from(random(16)).toString('base64url');
}
