/** Who uses which version of a secret, for `secret versions` (never the data). */
import { isLive, type SecretRecord, type Store } from '../store/index.ts';
import type { SecretVersionView } from './backend.ts';

export function secretVersionViews(store: Store, secret: SecretRecord): SecretVersionView[] {
  const newest = secret.versions.at(-1)?.version;
  return secret.versions.map((v) => {
    const services: Array<{ id: string; name: string; pinned: boolean }> = [];
    for (const service of store.workloads.services.values()) {
      const ref = service.spec.container.secrets.find((r) => r.secretId === secret.id);
      if (ref === undefined) continue;
      if (ref.version === v.version)
        services.push({ id: service.id, name: service.spec.name, pinned: true });
      else if (ref.version === undefined && v.version === newest)
        services.push({ id: service.id, name: service.spec.name, pinned: false });
    }
    const tasks: Array<{ id: string; name: string }> = [];
    for (const task of store.workloads.tasks.values()) {
      if (!isLive(task)) continue;
      if (task.status.secretVersions[secret.id] === v.version)
        tasks.push({ id: task.id, name: store.workloads.taskName(task) });
    }
    tasks.sort((a, b) => a.name.localeCompare(b.name));
    return { version: v.version, createdAt: v.createdAt, services, tasks };
  });
}
