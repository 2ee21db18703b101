// Checks a mountpoint before mounting, so users get a clear message instead of libfuse's
// "fuse failed": missing, not a directory, already a mount, or a stale FUSE mount left by a
// crashed process (statfs fails with ENOTCONN, "Transport endpoint is not connected"; stat may
// still succeed from the kernel's attribute cache).
import { execFile } from 'node:child_process';
import { readFile, readdir, stat, statfs } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { silentLogger, type Logger } from '@clip/shared';
import { MountpointError } from './errors.js';

const run = promisify(execFile);

/** Mount points listed in /proc/self/mountinfo (octal escapes decoded). */
export async function mountedPaths(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const paths = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) paths.add(field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  }
  return paths;
}

export async function isMounted(path: string): Promise<boolean> {
  return (await mountedPaths()).has(resolve(path));
}

/** Detaches a (stale) mount: `fusermount3 -uz` (Debian fuse3; also without root), falling back to `umount -l`. */
export async function forceUnmount(path: string): Promise<void> {
  try {
    await run('fusermount3', ['-uz', path]);
  } catch {
    await run('umount', ['-l', path]);
  }
}

export async function checkMountpoint(
  mountpoint: string,
  options: { forceUnmountStale?: boolean; allowNonEmpty?: boolean; logger?: Logger } = {},
): Promise<string> {
  const path = resolve(mountpoint);
  const logger = options.logger ?? silentLogger;
  try {
    const info = await stat(path);
    if (!info.isDirectory()) throw new MountpointError(path, `mountpoint ${path} is not a directory`);
    await statfs(path);
  } catch (error) {
    if (error instanceof MountpointError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MountpointError(path, `mountpoint ${path} does not exist (create it with mkdir -p)`);
    // ECONNABORTED: the same, for a request that was waiting when the connection was aborted.
    if (code !== 'ENOTCONN' && code !== 'ECONNABORTED')
      throw new MountpointError(path, `mountpoint ${path} cannot be used: ${(error as Error).message}`);
    if (!options.forceUnmountStale) {
      throw new MountpointError(
        path,
        `mountpoint ${path} is a stale FUSE mount (Transport endpoint is not connected): ` +
          `clean it with "fusermount3 -u ${path}" or "umount -l ${path}", or pass --force-unmount-stale`,
      );
    }
    logger.warn('unmounting stale FUSE mount', { mountpoint: path });
    await forceUnmount(path);
    return checkMountpoint(path, { ...options, forceUnmountStale: false });
  }
  const busy = () => new MountpointError(path, `mountpoint ${path} is busy: something is already mounted there (unmount it first)`);
  if (await isMounted(path)) throw busy();
  // Mounting over entries hides them until unmount: usually a wrong path, so say so.
  // (mount() logs a warning when it is allowed.)
  const entries = options.allowNonEmpty ? [] : await readdir(path).catch(() => [] as string[]);
  if (entries.length > 0) {
    // Another mount may have landed between the check above and readdir (two mounts started
    // together): the entries are its files, so the directory is busy, not non-empty.
    if (await isMounted(path)) throw busy();
    throw new MountpointError(
      path,
      `mountpoint ${path} is not empty (${entries.length} entries, e.g. ${JSON.stringify(entries[0])}): ` +
        'the mount would hide them; use an empty directory, or pass --allow-non-empty',
    );
  }
  return path;
}
