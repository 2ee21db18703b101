// What /proc/self/mountinfo lists at or below a directory: tests check that nothing they
// mounted is left, and clean up (deepest first) what a failed test left.
import { readFile } from 'node:fs/promises';

export interface MountedPoint {
  /** Mount point (mountinfo's octal escapes decoded). */
  path: string;
  /** File system type, e.g. `fuse.clip`, `overlay`, `tmpfs`. */
  type: string;
}

/** Mounts at `dir` or below it, in mountinfo order (parents before what is mounted on them). */
export async function mountsUnder(dir: string): Promise<MountedPoint[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const mounts: MountedPoint[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const path = fields[4]?.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    const dash = fields.indexOf('-');
    if (path && (path === dir || path.startsWith(`${dir}/`))) mounts.push({ path, type: fields[dash + 1] ?? '' });
  }
  return mounts;
}
