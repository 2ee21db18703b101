// FUSE (through fuse-native's high-level API) names files by absolute path. Resolving a path
// from the root costs a binary search per component; this keeps the inode numbers of recently
// used directories (LRU), so a lookup is one search in the parent directory: `find` or an
// import walk asks for every entry of a directory in a row.
import type { Inode } from '@clip/shared/archive/model';
import type { MountableArchive } from './archive-view.js';

export const DEFAULT_PATH_CACHE_DIRS = 4096;

export class PathCache {
  readonly #archive: MountableArchive;
  readonly #max: number;
  /** Directory path → inode number; insertion order = recency. */
  readonly #dirs = new Map<string, number>();

  constructor(archive: MountableArchive, maxDirectories = DEFAULT_PATH_CACHE_DIRS) {
    this.#archive = archive;
    this.#max = Math.max(1, maxDirectories);
  }

  lookup(path: string): Inode | undefined {
    const lookupChild = this.#archive.lookupChild?.bind(this.#archive);
    const slash = path.lastIndexOf('/');
    const name = path.slice(slash + 1);
    if (!lookupChild || !path.startsWith('/') || path === '/' || name === '' || name === '.' || name === '..') {
      return this.#archive.lookup(path);
    }
    const parentIno = this.#directoryIno(slash === 0 ? '/' : path.slice(0, slash));
    if (parentIno === undefined) return undefined;
    const inode = lookupChild(parentIno, name);
    if (inode?.type === 'directory') this.#remember(path, inode.ino);
    return inode;
  }

  #directoryIno(path: string): number | undefined {
    const cached = this.#dirs.get(path);
    if (cached !== undefined) {
      this.#dirs.delete(path);
      this.#dirs.set(path, cached);
      return cached;
    }
    const inode = this.lookup(path);
    if (inode?.type !== 'directory') return undefined;
    this.#remember(path, inode.ino);
    return inode.ino;
  }

  #remember(path: string, ino: number): void {
    this.#dirs.delete(path);
    this.#dirs.set(path, ino);
    if (this.#dirs.size > this.#max) this.#dirs.delete(this.#dirs.keys().next().value!);
  }
}
