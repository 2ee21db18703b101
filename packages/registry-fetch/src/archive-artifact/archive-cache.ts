// Local cache of archives downloaded from registries, keyed by registry, repository and
// archive digest (never by manifest digest alone: another registry's archive of the same
// image stores its layers elsewhere): `<dir>/<registry>/<repository>/sha256-<hex>.clip`.
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

/** The registry's `host:port` keeps its colon escaped; repository names cannot hold `..`. */
export function cachedArchivePath(cacheDir: string, location: { registry: string; repository: string }, archiveDigest: Digest): string {
  const segments = location.repository.split('/').filter((segment) => segment !== '' && segment !== '.' && segment !== '..');
  return join(cacheDir, encodeURIComponent(location.registry.toLowerCase()), ...segments, `${archiveDigest.replace(':', '-')}.clip`);
}

export { writeFileAtomically } from '@clip/shared';
