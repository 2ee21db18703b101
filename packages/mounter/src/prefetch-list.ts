// `--prefetch <file>`: paths (one per line, as `--record` writes them) fetched in the
// background after mounting, many spans at a time, so a workload's start-up files are
// local before it asks. `--record <file>` writes the order in which files were first read.
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import type { Inode } from '@clip/shared/archive/model';
import type { Logger } from '@clip/shared/log';
import type { MountableArchive } from './archive-view.js';

export async function readPathList(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
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
  paths: string[];
  logger: Logger;
  concurrency?: number;
  signal?: AbortSignal;
  onFile?: () => void;
}): Promise<{ files: number; failed: number }> {
  const { archive, reader, logger, signal } = options;
  const files = options.paths
    .map((path) => ({ path, inode: archive.lookup(path) }))
    .filter((item): item is { path: string; inode: Inode } => item.inode?.type === 'file' && item.inode.data !== undefined);
  const ranges = files.map(({ inode }) => ({ layer: inode.data!.layer, offset: inode.data!.offset, length: inode.size }));
  const result = await reader.prefetchRanges(ranges, {
    concurrency: options.concurrency ?? DEFAULT_PREFETCH_CONCURRENCY,
    ...(signal ? { signal } : {}),
    onError: (error) => logger.debug('prefetch failed', { error: (error as Error).message }),
  });
  const done = result.failed === 0 && !signal?.aborted ? files.length : 0;
  for (let i = 0; i < done; i++) options.onFile?.();
  return { files: done, failed: result.failed };
}

/** Appends first-read paths to a file, in order, one write at a time. */
export class ReadRecorder {
  #chain: Promise<void>;

  constructor(private readonly file: string, private readonly logger: Logger) {
    this.#chain = writeFile(file, '').catch((error: unknown) => this.#fail(error));
  }

  record(path: string): void {
    this.#chain = this.#chain.then(() => appendFile(this.file, `${path}\n`)).catch((error: unknown) => this.#fail(error));
  }

  flush(): Promise<void> {
    return this.#chain;
  }

  #fail(error: unknown): void {
    this.logger.warn('cannot write record file', { file: this.file, error: (error as Error).message });
  }
}
