// What `clip inspect` says about an archive's access profile (the file next to the archive,
// as pulled with it from the registry or written by `clip profile`): digest, size, files,
// and the file bytes it makes a worker prefetch.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { ClipArchive } from '@clip/archive-format';

export interface ProfileReport {
  path: string;
  digest: string;
  bytes: number;
  files: number;
  /** File bytes the listed ranges cover (whole-file lines count the file's size). */
  listedBytes: number;
}

export async function describeProfile(archivePath: string, archive: ClipArchive): Promise<ProfileReport | undefined> {
  const [{ profileSidecarPath }, { readPrefetchList }] = await Promise.all([import('@clip/registry-fetch'), import('@clip/mounter')]);
  const path = profileSidecarPath(archivePath);
  const bytes = await readFile(path).catch(() => undefined);
  if (!bytes) return undefined;
  const entries = await readPrefetchList(path);
  let listedBytes = 0;
  for (const entry of entries) {
    const size = archive.lookup(entry.path)?.size ?? 0;
    listedBytes += entry.ranges
      ? entry.ranges.reduce((sum, [start, end]) => sum + Math.max(0, Math.min(end, size) - Math.min(start, size)), 0)
      : size;
  }
  return {
    path,
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    bytes: bytes.length,
    files: entries.length,
    listedBytes,
  };
}
