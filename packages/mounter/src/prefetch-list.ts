// `--record <file>` writes which parts of which files a workload read, in the order it first
// read them; `--prefetch <file>` fetches exactly those parts in the background after mounting,
// many spans at a time, so the workload finds them local.
//
// Format: one file per line, `<path>` (the whole file) or `<path>\t<start>-<end>[,<start>-<end>…]`
// (byte ranges of the file, end exclusive, in RANGE_GRAIN units except at the file's end).
// Lines starting with `#` are comments. Recording ranges instead of whole files matters for
// shared libraries: a loader maps a 7 MB library and touches a fraction of it.
import { readFile } from 'node:fs/promises';
import type { Inode } from '@clip/archive-format';
import { type Logger, parsePrefetchList, type PrefetchEntry, writeFileAtomically } from '@clip/shared';
import type { MountableArchive } from './archive-view.js';

/** Recorded ranges are widened to this grain, so a file's list stays short. */
export const RANGE_GRAIN = 64 * 1024;

export type { PrefetchEntry } from '@clip/shared';

export async function readPrefetchList(file: string): Promise<PrefetchEntry[]> {
  return parsePrefetchList(await readFile(file, 'utf8'));
}

export interface Prefetcher {
  prefetchRanges(
    ranges: ReadonlyArray<{ layer: number; offset: number; length: number }>,
    options: { concurrency?: number; signal?: AbortSignal; onError?: (error: unknown) => void },
  ): Promise<{ spans: number; failed: number }>;
}

/** Spans fetched at once for a prefetch list (the registry client keeps 8 connections per host). */
export const DEFAULT_PREFETCH_CONCURRENCY = 8;

/**
 * Fetches what the listed files need, all up front: their ranges are merged per span (one
 * fetch and decode per span, up to the last listed byte in it, not the whole span) and
 * fetched `concurrency` spans at a time, in list order. Resolves when done or stopped, never
 * rejects.
 */
export async function prefetchFiles(options: {
  archive: MountableArchive;
  reader: Prefetcher;
  entries: readonly PrefetchEntry[];
  logger: Logger;
  concurrency?: number;
  signal?: AbortSignal;
  onFile?: () => void;
  /** The files found in the archive and the ranges of each about to be fetched (usage metrics). */
  onPlan?: (files: Array<{ inode: Inode; ranges: Array<[number, number]> }>) => void;
}): Promise<{ files: number; failed: number }> {
  const { archive, reader, logger, signal } = options;
  const files = options.entries
    .map((entry) => ({ entry, inode: archive.lookup(entry.path) }))
    .filter((item): item is { entry: PrefetchEntry; inode: Inode } => item.inode?.type === 'file' && item.inode.data !== undefined);
  const planned = files.map(({ entry, inode }) => ({
    inode,
    ranges: (entry.ranges ?? [[0, inode.size]])
      .map(([start, end]): [number, number] => [Math.min(start, inode.size), Math.min(end, inode.size)])
      .filter(([start, end]) => end > start),
  }));
  options.onPlan?.(planned);
  const ranges = planned.flatMap(({ inode, ranges: parts }) => {
    const { layer, offset } = inode.data!;
    return parts.map(([start, end]) => ({ layer, offset: offset + start, length: end - start }));
  });
  const result = await reader.prefetchRanges(ranges, {
    concurrency: options.concurrency ?? DEFAULT_PREFETCH_CONCURRENCY,
    ...(signal ? { signal } : {}),
    onError: (error) => logger.debug('prefetch failed', { error: (error as Error).message }),
  });
  const done = result.failed === 0 && !signal?.aborted ? files.length : 0;
  for (let i = 0; i < done; i++) options.onFile?.();
  return { files: done, failed: result.failed };
}

/** Collects what a workload reads (per file, in first-read order) and writes it on flush(). */
export class ReadRecorder {
  /** ino → path and merged ranges; Map keeps first-read order. */
  readonly #files = new Map<number, { path: string; size: number; ranges: Array<[number, number]> }>();

  constructor(
    private readonly file: string,
    private readonly logger: Logger,
    private readonly pathOf: (inode: Inode) => string | undefined,
  ) {}

  record(inode: Inode, position: number, length: number): void {
    let file = this.#files.get(inode.ino);
    if (!file) {
      const path = this.pathOf(inode);
      if (path === undefined) return;
      file = { path, size: inode.size, ranges: [] };
      this.#files.set(inode.ino, file);
    }
    const start = Math.floor(position / RANGE_GRAIN) * RANGE_GRAIN;
    const end = Math.min(Math.ceil((position + length) / RANGE_GRAIN) * RANGE_GRAIN, file.size);
    if (end > start) addRange(file.ranges, start, end);
  }

  async flush(): Promise<void> {
    const lines = [...this.#files.values()].map(
      (file) => `${file.path}\t${file.ranges.map(([start, end]) => `${start}-${end}`).join(',')}`,
    );
    try {
      await writeFileAtomically(this.file, Buffer.from(lines.length ? `${lines.join('\n')}\n` : ''));
    } catch (error) {
      this.logger.warn('cannot write record file', { file: this.file, error: (error as Error).message });
    }
  }
}

/** Adds [start, end) to sorted, disjoint `ranges`, merging what touches it. */
export function addRange(ranges: Array<[number, number]>, start: number, end: number): void {
  let i = 0;
  while (i < ranges.length && ranges[i]![1] < start) i++;
  let j = i;
  while (j < ranges.length && ranges[j]![0] <= end) {
    start = Math.min(start, ranges[j]![0]);
    end = Math.max(end, ranges[j]![1]);
    j++;
  }
  ranges.splice(i, j - i, [start, end]);
}
