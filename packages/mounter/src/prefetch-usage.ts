// Whether prefetching paid off: the byte ranges of files a prefetch list (or access profile)
// fetched ahead, against the ranges the workload then read through FUSE. Prefetched bytes read
// by unmount time are "used", the rest "wasted" (fetched for nothing).
import type { Inode } from '@clip/archive-format';
import { addRange } from './prefetch-list.js';

interface FileUsage {
  prefetched: Array<[number, number]>;
  read: Array<[number, number]>;
}

export class PrefetchUsage {
  readonly #files = new Map<number, FileUsage>();

  /** The ranges the prefetch asked for, per file. */
  planned(files: ReadonlyArray<{ inode: Inode; ranges: ReadonlyArray<readonly [number, number]> }>): void {
    for (const { inode, ranges } of files) {
      const usage = this.#files.get(inode.ino) ?? { prefetched: [], read: [] };
      this.#files.set(inode.ino, usage);
      for (const [start, end] of ranges) addRange(usage.prefetched, start, end);
    }
  }

  /** A FUSE read (cheap for files the prefetch did not touch: one map lookup). */
  read(inode: Inode, position: number, length: number): void {
    const usage = this.#files.get(inode.ino);
    if (usage && length > 0) addRange(usage.read, position, Math.min(position + length, inode.size));
  }

  totals(): { prefetchBytes: number; prefetchUsedBytes: number; prefetchWastedBytes: number } {
    let prefetched = 0;
    let used = 0;
    for (const usage of this.#files.values()) {
      for (const [start, end] of usage.prefetched) {
        prefetched += end - start;
        for (const [readStart, readEnd] of usage.read) used += Math.max(0, Math.min(end, readEnd) - Math.max(start, readStart));
      }
    }
    return { prefetchBytes: prefetched, prefetchUsedBytes: used, prefetchWastedBytes: prefetched - used };
  }
}
