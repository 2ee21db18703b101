// File reads of a read-only image mount: FUSE asks for (inode, offset, size) and gets the
// bytes through the LayerReader. Metadata never comes here (the FUSE addon answers it).
import type { Inode } from '@clip/archive-format';
import type { Logger } from '@clip/shared';
import type { StatfsValues } from '@clip/native-fuse';
import type { MountableArchive } from './archive-view.js';
import { BLOCK_SIZE } from './metadata-table.js';
import type { MountMetrics } from './metrics.js';
import { Readahead, type SpanLocator } from './readahead.js';

export interface FileReader extends SpanLocator {
  readFile(inode: Inode, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
}

export interface ReadHandlerOptions {
  archive: MountableArchive;
  reader: FileReader;
  metrics: MountMetrics;
  logger: Logger;
  /** Longest a FUSE read waits for data before answering EIO. */
  readTimeoutMs: number;
  /** Called after every successful read (for `--record`). */
  onRead?: (inode: Inode, position: number, length: number) => void;
}

/** Rejections carry the errno FUSE answers with. */
export class ReadError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
    this.name = 'ReadError';
  }
}

const EIO = 5;
const EINVAL = 22;
const ENOENT = 2;
/**
 * A failed read is remembered this long for its byte range: the kernel retries a failed
 * readahead page synchronously, and without this one read() would wait for the registry
 * twice (2 × the read timeout) before seeing EIO.
 */
const FAILED_RANGE_MS = 1000;
/** Decoded inodes and sequential-read state are kept for this many recently read files. */
const RECENT_FILES = 4096;

/** A Map that forgets its oldest entry beyond `max` entries; get() refreshes. */
class RecentMap<V> {
  readonly #map = new Map<number, V>();
  constructor(private readonly max: number) {}

  get(key: number): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  set(key: number, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value!);
  }
}

/** Recently failed byte ranges per inode. */
class FailedRanges {
  readonly #ranges = new Map<number, Array<{ start: number; end: number; until: number }>>();

  add(ino: number, start: number, end: number): void {
    const list = this.#live(ino);
    list.push({ start, end, until: Date.now() + FAILED_RANGE_MS });
    this.#ranges.set(ino, list);
  }

  has(ino: number, start: number, end: number): boolean {
    return this.#live(ino).some((range) => range.start < end && start < range.end);
  }

  #live(ino: number): Array<{ start: number; end: number; until: number }> {
    const now = Date.now();
    const list = (this.#ranges.get(ino) ?? []).filter((range) => range.until > now);
    if (list.length === 0) this.#ranges.delete(ino);
    return list;
  }
}

export type ReadHandler = (ino: number, position: number, length: number) => Promise<Buffer>;

export function createReadHandler(options: ReadHandlerOptions): ReadHandler {
  const { archive, reader, metrics, logger } = options;
  const inodes = new RecentMap<Inode>(RECENT_FILES);
  const readaheads = new RecentMap<Readahead>(RECENT_FILES);
  const failed = new FailedRanges();
  const background = (promise: Promise<void>) => {
    metrics.add('readaheadSpans');
    promise.catch((error: unknown) => logger.debug('readahead failed', { error: (error as Error).message }));
  };
  const readaheadFor = (ino: number): Readahead => {
    let readahead = readaheads.get(ino);
    if (!readahead) {
      readahead = new Readahead(reader, background);
      readaheads.set(ino, readahead);
    }
    return readahead;
  };

  return async (ino, position, length) => {
    let inode = inodes.get(ino);
    if (!inode) {
      inode = archive.inode(ino);
      if (!inode) throw new ReadError(`no inode ${ino}`, ENOENT);
      if (inode.type !== 'file') throw new ReadError(`inode ${ino} is not a regular file`, EINVAL);
      inodes.set(ino, inode);
    }
    metrics.add('reads');
    if (failed.has(ino, position, position + length)) {
      metrics.add('readErrors');
      throw new ReadError('this range failed a moment ago', EIO);
    }
    const started = process.hrtime.bigint();
    try {
      const data = await reader.readFile(inode, position, length, AbortSignal.timeout(options.readTimeoutMs));
      metrics.observeReadSeconds(Number(process.hrtime.bigint() - started) / 1e9);
      metrics.add('readBytes', data.length);
      readaheadFor(ino).observe(inode, position, data.length);
      options.onRead?.(inode, position, data.length);
      return data;
    } catch (error) {
      metrics.observeReadSeconds(Number(process.hrtime.bigint() - started) / 1e9);
      metrics.add('readErrors');
      failed.add(ino, position, position + length);
      logger.warn('read failed', { ino, offset: position, length, error: describe(error) });
      throw new ReadError(describe(error), EIO);
    }
  };
}

/** statfs of the mount: read-only, sized like the image. */
export function imageStatfs(archive: MountableArchive): StatfsValues {
  const totalBytes = archive.layers.reduce((sum, layer) => sum + layer.uncompressedSize, 0);
  return {
    bsize: BLOCK_SIZE,
    frsize: BLOCK_SIZE,
    blocks: Math.ceil(totalBytes / BLOCK_SIZE),
    bfree: 0,
    bavail: 0,
    files: archive.inodeCount,
    ffree: 0,
    favail: 0,
    fsid: 0,
    flag: 1, // ST_RDONLY
    namemax: 255,
  };
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.name === 'TimeoutError' ? 'timed out waiting for the registry' : error.message;
  return String(error);
}
