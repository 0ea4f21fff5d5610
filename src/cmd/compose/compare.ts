/**
 * Whether a service as the API shows it (`GET /services/{id}`) already has the spec a deploy
 * wants, so that an unchanged stack is not updated at all (no new spec version, no task restarted).
 * Compared on what the spec means: ids, defaults the manager fills in and the order of secret
 * references aside; delays at the manager's millisecond resolution.
 */
import type { ServiceSpecBody } from './translate.ts';

/** The spec as `GET /services/{id}` answers it (the fields compared; others ignored). */
export interface CurrentSpec {
  readonly Name: string;
  readonly Labels?: Record<string, string>;
  readonly TaskTemplate: {
    readonly ContainerSpec: {
      readonly Image: string;
      readonly Command?: readonly string[];
      readonly Args?: readonly string[];
      readonly Env?: readonly string[];
      readonly Secrets?: ReadonlyArray<{
        readonly SecretName: string;
        readonly File?: {
          readonly Name: string;
          readonly UID?: string;
          readonly GID?: string;
          readonly Mode?: number;
        };
        readonly Secretd?: { readonly Version?: number; readonly OnUpdate?: string };
      }>;
    };
  };
  readonly Mode: { readonly Replicated?: { readonly Replicas?: number }; readonly Global?: object };
  readonly UpdateConfig?: { readonly Parallelism?: number; readonly Delay?: number };
}

export function sameSpec(current: CurrentSpec, wanted: ServiceSpecBody): boolean {
  return canonical(current) === canonical(wanted as unknown as CurrentSpec);
}

function canonical(spec: CurrentSpec): string {
  const container = spec.TaskTemplate.ContainerSpec;
  const secrets = (container.Secrets ?? [])
    .map((s) => ({
      name: s.SecretName,
      target: s.File?.Name ?? s.SecretName,
      uid: String(s.File?.UID ?? '0'),
      gid: String(s.File?.GID ?? '0'),
      mode: s.File?.Mode ?? 0o444,
      version: s.Secretd?.Version ?? null,
      onUpdate: s.Secretd?.OnUpdate ?? 'none',
    }))
    .sort((a, b) => a.name.localeCompare(b.name) || a.target.localeCompare(b.target));
  const labels = Object.entries(spec.Labels ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify({
    name: spec.Name,
    labels,
    image: container.Image,
    command: container.Command ?? [],
    args: container.Args ?? [],
    env: container.Env ?? [],
    secrets,
    mode: spec.Mode.Global ? 'global' : (spec.Mode.Replicated?.Replicas ?? 1),
    parallelism: spec.UpdateConfig?.Parallelism ?? 1,
    delayMs: Math.round((spec.UpdateConfig?.Delay ?? 0) / 1e6),
  });
}
