// Built images are cached under ~/.cache/clip-bench (override: CLIP_BENCH_CACHE), keyed by
// their spec, so repeated runs skip mmdebstrap and tar+gzip.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function cacheRoot(): string {
  return process.env['CLIP_BENCH_CACHE'] ?? join(homedir(), '.cache', 'clip-bench');
}

export function specKey(spec: unknown): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 12);
}

/** Returns the cached directory for `spec`, building it with `build(dir)` if absent. */
export async function cachedDir<T>(
  kind: string,
  name: string,
  spec: unknown,
  build: (dir: string) => Promise<T>,
): Promise<{ dir: string; meta: T }> {
  const dir = join(cacheRoot(), kind, `${name}-${specKey(spec)}`);
  const marker = join(dir, '.complete.json');
  try {
    return { dir, meta: JSON.parse(await readFile(marker, 'utf8')) as T };
  } catch {
    // not cached yet
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const meta = await build(dir);
  await writeFile(marker, JSON.stringify(meta ?? null));
  return { dir, meta };
}
