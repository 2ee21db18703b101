// The mounts containerd performs for a snapshot: overlayfs over the parents' directories,
// the image's lazy clip mount standing in for every layer from the nearest remote one down.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SnapshotPreconditionError } from './errors.js';
import type { SnapshotRecord } from './store.js';

export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export function snapshotDir(root: string, id: number): string {
  return join(root, 'snapshots', String(id));
}

export function fsDir(root: string, id: number): string {
  return join(snapshotDir(root, id), 'fs');
}

export function workDir(root: string, id: number): string {
  return join(snapshotDir(root, id), 'work');
}

/** The nearest remote ancestor, checked to be usable as a whole-image lower directory. */
export function remoteBase(ancestors: readonly SnapshotRecord[]): SnapshotRecord | undefined {
  const remote = ancestors.find((a) => a.remote);
  if (remote?.remote && remote.remote.layerIndex !== remote.remote.layerCount - 1) {
    const r = remote.remote;
    throw new SnapshotPreconditionError(
      `snapshot ${remote.name} is layer ${r.layerIndex + 1} of ${r.layerCount} of ${r.imageRef}, served lazily: clip mounts whole images, so only an image's top layer can be a parent ` +
        '(pull the image that shares this layer in another containerd namespace, or publish a clip archive for it)',
    );
  }
  return remote;
}

/**
 * Mounts for an active or view snapshot. `imageMountpoint` is the lazy mount serving the
 * nearest remote ancestor (required when there is one).
 */
export function buildMounts(root: string, record: SnapshotRecord, ancestors: readonly SnapshotRecord[], imageMountpoint?: string): Mount[] {
  const lowers: string[] = [];
  for (const ancestor of ancestors) {
    if (ancestor.remote) {
      if (!imageMountpoint) throw new Error(`internal: no image mount for remote snapshot ${ancestor.name}`);
      lowers.push(imageMountpoint);
      break;
    }
    lowers.push(fsDir(root, ancestor.id));
  }
  if (record.kind === 'ACTIVE') {
    if (lowers.length === 0) return [{ type: 'bind', source: fsDir(root, record.id), target: '', options: ['rw', 'rbind'] }];
    return [
      {
        type: 'overlay',
        source: 'overlay',
        target: '',
        options: [`workdir=${workDir(root, record.id)}`, `upperdir=${fsDir(root, record.id)}`, `lowerdir=${lowers.join(':')}`],
      },
    ];
  }
  if (lowers.length === 0) return [{ type: 'bind', source: fsDir(root, record.id), target: '', options: ['ro', 'rbind'] }];
  if (lowers.length === 1) return [{ type: 'bind', source: lowers[0] as string, target: '', options: ['ro', 'rbind'] }];
  return [{ type: 'overlay', source: 'overlay', target: '', options: [`lowerdir=${lowers.join(':')}`] }];
}

/** Bytes (allocated blocks) and inodes under `dir`, hard links counted once. */
export async function diskUsage(dir: string): Promise<{ size: number; inodes: number }> {
  const seen = new Set<string>();
  let size = 0;
  const walk = async (path: string): Promise<void> => {
    const st = await lstat(path).catch(() => undefined);
    if (!st) return;
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
      size += st.blocks * 512;
    }
    if (st.isDirectory()) {
      for (const name of await readdir(path).catch(() => [] as string[])) await walk(join(path, name));
    }
  };
  await walk(dir);
  return { size, inodes: seen.size };
}
