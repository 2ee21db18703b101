// Resolves a path inside an image the way the kernel would inside a chroot of it: symlinks
// in any component are followed, absolute targets restart at the image root, `..` never
// leaves the root.
import { PathNotFoundError, SymlinkLoopError } from '@clip/shared';
import type { Inode } from '@clip/archive-format';

const MAX_SYMLINKS = 40;

export interface PathLookup {
  lookup(path: string): Inode | undefined;
}

export interface ResolvedPath {
  path: string;
  inode: Inode;
}

/** Follows symlinks (all components, including the last) to an inode; throws PathNotFoundError. */
export function resolveImagePath(archive: PathLookup, path: string): ResolvedPath {
  let pending = split(path);
  const done: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const component = pending.shift()!;
    if (component === '.') continue;
    if (component === '..') {
      done.pop();
      continue;
    }
    const candidate = `/${[...done, component].join('/')}`;
    const inode = archive.lookup(candidate);
    if (!inode) throw new PathNotFoundError(path);
    if (inode.type === 'symlink') {
      if (++hops > MAX_SYMLINKS) throw new SymlinkLoopError(path);
      const target = inode.linkTarget ?? '';
      if (target.startsWith('/')) done.length = 0;
      pending = [...split(target), ...pending];
      continue;
    }
    if (pending.length > 0 && inode.type !== 'directory') throw new PathNotFoundError(path);
    done.push(component);
  }
  const resolved = `/${done.join('/')}`;
  const inode = archive.lookup(resolved);
  if (!inode) throw new PathNotFoundError(path);
  return { path: resolved, inode };
}

function split(path: string): string[] {
  return path.split('/').filter((part) => part !== '');
}
