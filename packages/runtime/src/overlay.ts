// A container's writable root: overlayfs with the (read-only, shared) lazy mount as the lower
// directory and a private upper/work directory pair.
import { execFile } from 'node:child_process';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { isMounted } from '@clip/mounter';
import { OverlayError } from './errors.js';

const run = promisify(execFile);

export interface OverlayDirs {
  lower: string;
  upper: string;
  work: string;
  /** Where the merged tree is mounted. */
  target: string;
}

/** overlayfs separates options with ',' and lower dirs with ':'; such paths cannot be passed. */
function checkPath(path: string): void {
  if (/[,:\\]/.test(path)) throw new OverlayError(`cannot use ${path} in an overlay mount: the path contains ',', ':' or '\\'`);
}

export async function mountOverlay(dirs: OverlayDirs): Promise<void> {
  for (const path of Object.values(dirs)) checkPath(path);
  await Promise.all([dirs.upper, dirs.work, dirs.target].map((dir) => mkdir(dir, { recursive: true })));
  try {
    await run('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${dirs.lower},upperdir=${dirs.upper},workdir=${dirs.work}`,
      dirs.target,
    ]);
  } catch (error) {
    const detail = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim();
    throw new OverlayError(`cannot mount the overlay root at ${dirs.target} (lower ${dirs.lower}): ${detail}`, { cause: error });
  }
}

/**
 * Unmounts an overlay root; no-op when not mounted. A busy root (a container still runs in it)
 * is an error unless `lazy`, which detaches it and lets the kernel finish when it is free.
 */
export async function unmountOverlay(target: string, options: { lazy?: boolean } = {}): Promise<void> {
  if (!(await isMounted(target))) return;
  // A container pivots into the root in its own mount namespace: umount here would succeed and
  // leave it running on a root whose image mount is about to go. Look for its processes instead.
  if (!options.lazy) {
    const users = await processesRootedAt(target);
    if (users.length > 0)
      throw new OverlayError(
        `cannot unmount the root ${target} (is a container still running in it?): ${users.length === 1 ? 'process' : 'processes'} ${users.slice(0, 5).join(', ')} ${users.length === 1 ? 'uses' : 'use'} it as root`,
      );
  }
  try {
    await run('umount', [target]);
  } catch (error) {
    const detail = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim();
    if (!options.lazy)
      throw new OverlayError(`cannot unmount the root ${target} (is a container still running in it?): ${detail}`, { cause: error });
    await run('umount', ['-l', target]).catch((lazyError: unknown) => {
      throw new OverlayError(`cannot unmount the overlay root ${target}: ${(lazyError as Error).message}`, { cause: lazyError });
    });
  }
}

/** pids whose root directory (`/proc/<pid>/root`) is the directory `root` (same device and inode). */
export async function processesRootedAt(root: string): Promise<number[]> {
  const target = await stat(root).catch(() => undefined);
  if (!target) return [];
  const pids: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const info = await stat(`/proc/${name}/root`).catch(() => undefined);
    if (info && info.dev === target.dev && info.ino === target.ino) pids.push(Number(name));
  }
  return pids;
}
