// Local cache of archives downloaded from registries, keyed by the image manifest digest
// (the archive of one manifest never changes meaning): `<dir>/sha256-<hex>.clip`.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Digest } from '@clip/shared/digest';

/** `$CLIP_ARCHIVE_CACHE`, else `${XDG_CACHE_HOME:-~/.cache}/clip/archives`. */
export function defaultArchiveCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env['CLIP_ARCHIVE_CACHE'];
  if (explicit) return explicit;
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.cache'), 'clip', 'archives');
}

export function cachedArchivePath(cacheDir: string, manifestDigest: Digest): string {
  return join(cacheDir, `${manifestDigest.replace(':', '-')}.clip`);
}

/** Writes next to the target, flushes, renames: a reader never sees a partial file. */
export async function writeFileAtomically(path: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'w', 0o644);
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
