/**
 * runc removes a container's own cgroup when it deletes the container, but not the parents it
 * created (`/secretd/<instance>`). This removes them once empty, best effort: rmdir fails on a
 * cgroup that still has children or processes, which is exactly when it must stay.
 */
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readMounts } from './_mountinfo.ts';

export async function removeEmptyCgroupParent(parent: string): Promise<void> {
  const hierarchies = (await readMounts()).filter(
    (m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2',
  );
  for (const hierarchy of hierarchies) {
    // Innermost first: /secretd/<instance>, then /secretd if nothing else (another node) uses it.
    for (let dir = parent; dir !== '/' && dir !== ''; dir = dir.slice(0, dir.lastIndexOf('/'))) {
      const removed = await rmdir(join(hierarchy.mountPoint, dir)).then(
        () => true,
        () => false,
      );
      if (!removed) break;
    }
  }
}
