// `--prefetch <file>`: paths (one per line, as `--record` writes them) fetched in the
// background after mounting, a few files at a time, so a workload's start-up files are
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
  prefetch(layerIndex: number, offset: number, length: number): Promise<void>;
}

/** Fetches the listed files' spans; resolves when done or stopped, never rejects. */
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
  const queue = options.paths
    .map((path) => ({ path, inode: archive.lookup(path) }))
    .filter((item): item is { path: string; inode: Inode } => item.inode?.type === 'file' && item.inode.data !== undefined);
  let files = 0;
  let failed = 0;
  const worker = async () => {
    for (let item = queue.shift(); item && !signal?.aborted; item = queue.shift()) {
      try {
        await reader.prefetch(item.inode.data!.layer, item.inode.data!.offset, item.inode.size);
        files++;
        options.onFile?.();
      } catch (error) {
        failed++;
        logger.debug('prefetch failed', { path: item.path, error: (error as Error).message });
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 2 }, worker));
  return { files, failed };
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
