// Reading the kernel's mount table and detaching mounts (overlay and FUSE) we created.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export async function mountPoints(): Promise<Map<string, string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = new Map<string, string>();
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    const point = fields[4];
    const type = fields[sep + 1];
    if (point && type && sep > 0) points.set(unescape(point), type);
  }
  return points;
}

export async function isMounted(path: string): Promise<boolean> {
  return (await mountPoints()).has(path);
}

/** Mount points at or under `dir`. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return [...(await mountPoints()).keys()].filter((p) => p === dir || p.startsWith(prefix));
}

export async function lazyDetach(path: string): Promise<void> {
  await run('umount', ['-l', path]).catch(() => run('fusermount3', ['-uz', path]).catch(() => undefined));
}
