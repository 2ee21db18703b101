// A container's writable root: overlayfs with the (read-only, shared) lazy mount as the lower
// directory and a private upper/work directory pair.
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { isMounted } from '@clip/mounter/mountpoint';
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
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${dirs.lower},upperdir=${dirs.upper},workdir=${dirs.work}`, dirs.target]);
  } catch (error) {
    const detail = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim();
    throw new OverlayError(`cannot mount the overlay root at ${dirs.target} (lower ${dirs.lower}): ${detail}`, { cause: error });
  }
}

/** Unmounts an overlay root; lazily when something still holds it. No-op when not mounted. */
export async function unmountOverlay(target: string): Promise<void> {
  if (!(await isMounted(target))) return;
  try {
    await run('umount', [target]);
  } catch {
    await run('umount', ['-l', target]).catch((error: unknown) => {
      throw new OverlayError(`cannot unmount the overlay root ${target}: ${(error as Error).message}`, { cause: error });
    });
  }
}
