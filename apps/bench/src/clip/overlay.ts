// A container root as a runtime would build it: overlayfs with the read-only image as the
// lower layer and a writable upper/work pair in a temporary directory.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { onCleanup } from '../util/cleanup.js';
import { run } from '../util/exec.js';

export interface Overlay {
  merged: string;
  unmount(): Promise<void>;
}

export async function mountOverlay(lower: string, dir: string): Promise<Overlay> {
  const upper = join(dir, 'upper');
  const work = join(dir, 'work');
  const merged = join(dir, 'merged');
  for (const path of [upper, work, merged]) await mkdir(path, { recursive: true });
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged]);
  const unmount = async () => {
    await run('umount', [merged], { allowFailure: true });
  };
  const dispose = onCleanup(`unmount overlay ${merged}`, unmount);
  return {
    merged,
    unmount: async () => {
      dispose();
      await unmount();
    },
  };
}
