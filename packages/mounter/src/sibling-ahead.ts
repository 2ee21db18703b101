// Fetch-ahead by directory locality: programs read files of one directory together (Python
// imports a package's modules from one `__pycache__`, Node requires a package's files), and
// an image layer stores a directory's files next to each other. The first read of a file in
// a directory fetches, in the background, its small siblings nearest to it in the layer,
// bounded per directory and per mount. Each directory is warmed once.
import type { Inode } from '@clip/archive-format';
import type { Logger } from '@clip/shared';
import type { MountableArchive } from './archive-view.js';
import type { Prefetcher } from './prefetch-list.js';

export interface SiblingAheadOptions {
  archive: MountableArchive;
  reader: Prefetcher;
  /** Parent directory inode of `ino` (0 when unknown). */
  parentOf: (ino: number) => number;
  logger: Logger;
  signal?: AbortSignal;
  /** Siblings larger than this are left alone (default 128 KiB). */
  maxFileBytes?: number;
  /** Uncompressed bytes warmed per directory (default 1 MiB). */
  maxDirBytes?: number;
  /** Uncompressed bytes warmed per mount (default 64 MiB). */
  maxTotalBytes?: number;
}

export class SiblingAhead {
  readonly #options: SiblingAheadOptions;
  readonly #warmed = new Set<number>();
  #total = 0;
  /** Files and bytes asked for (for logs and tests). */
  readonly stats = { directories: 0, files: 0, bytes: 0 };
  readonly #pending = new Set<Promise<unknown>>();

  constructor(options: SiblingAheadOptions) {
    this.#options = options;
  }

  /** Called after each successful read of `inode`. */
  observe(inode: Inode): void {
    const { archive, parentOf, signal } = this.#options;
    if (signal?.aborted || !inode.data) return;
    const maxTotal = this.#options.maxTotalBytes ?? 64 * 2 ** 20;
    if (this.#total >= maxTotal) return;
    const dir = parentOf(inode.ino);
    if (dir === 0 || this.#warmed.has(dir)) return;
    this.#warmed.add(dir);
    const maxFile = this.#options.maxFileBytes ?? 128 * 1024;
    const maxDir = Math.min(this.#options.maxDirBytes ?? 2 ** 20, maxTotal - this.#total);
    const here = inode.data;
    const candidates: Inode[] = [];
    for (const child of archive.childNames(dir) ?? []) {
      if (child.ino === inode.ino) continue;
      const sibling = archive.inode(child.ino);
      if (sibling?.type === 'file' && sibling.data && sibling.size > 0 && sibling.size <= maxFile && sibling.data.layer === here.layer)
        candidates.push(sibling);
    }
    // Nearest in the layer first: those share the span (and its fetch) with the file read.
    candidates.sort((a, b) => Math.abs(a.data!.offset - here.offset) - Math.abs(b.data!.offset - here.offset));
    const ranges: Array<{ layer: number; offset: number; length: number }> = [];
    let bytes = 0;
    for (const sibling of candidates) {
      if (bytes + sibling.size > maxDir) break;
      bytes += sibling.size;
      ranges.push({ layer: sibling.data!.layer, offset: sibling.data!.offset, length: sibling.size });
    }
    if (ranges.length === 0) return;
    // In layer order: one growing prefix per span instead of jumps back and forth.
    ranges.sort((a, b) => a.offset - b.offset);
    this.#total += bytes;
    this.stats.directories++;
    this.stats.files += ranges.length;
    this.stats.bytes += bytes;
    const work = this.#options.reader
      .prefetchRanges(ranges, { concurrency: 2, ...(signal ? { signal } : {}) })
      .catch((error: unknown) => this.#options.logger.debug('sibling fetch-ahead failed', { error: (error as Error).message }));
    this.#pending.add(work);
    void work.finally(() => this.#pending.delete(work));
  }

  /** Settles when every fetch started so far has. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}
