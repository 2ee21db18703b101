// Local cache of archives downloaded from registries, keyed by the image manifest digest
// (the archive of one manifest never changes meaning): `<dir>/sha256-<hex>.clip`.
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '@clip/shared';

/** `$CLIP_ARCHIVE_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/clip/archives`. */
export function defaultArchiveCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['CLIP_ARCHIVE_CACHE'];
  if (explicit) return explicit;
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg?.startsWith('/') ? xdg : join(homedir(), '.cache'), 'clip', 'archives');
}

export function cachedArchivePath(cacheDir: string, manifestDigest: Digest): string {
  return join(cacheDir, `${manifestDigest.replace(':', '-')}.clip`);
}

export { writeFileAtomically } from '@clip/shared';
