// Mounts a clip archive read-only at a directory: FUSE ops over the archive's file table,
// file data fetched lazily by byte range from the image's registry, decoded blocks kept in
// a memory LRU and (optionally) a bounded disk cache shared between processes.
import { FuseSession } from '@clip/native-fuse';
import type { FetchRange, Inode } from '@clip/archive-format';
import { DiskBlockCache, LayerReader, MemoryBlockCache } from '@clip/read-engine';
import { silentLogger, type Logger } from '@clip/shared';
import type { MountableArchive } from './archive-view.js';
import { archiveTable, pathOf } from './metadata-table.js';
import { MountMetrics, type MetricsSnapshot } from './metrics.js';
import { startMetricsServer, type MetricsServer } from './metrics-server.js';
import { checkMountpoint } from './mountpoint.js';
import { prefetchFiles, readPrefetchList, ReadRecorder } from './prefetch-list.js';
import { createReadHandler, imageStatfs } from './read-handler.js';
import { TieredBlockCache } from './tiered-cache.js';

export const DEFAULT_MEMORY_CACHE = 512 * 2 ** 20;
export const DEFAULT_DISK_CACHE = 4 * 2 ** 30;
export const DEFAULT_READ_TIMEOUT_MS = 30_000;
/** Disk writes of a block wait this long for the span to be extended further (flushed on unmount). */
const DISK_WRITE_DELAY_MS = 250;
/** Kernel caching of attributes and entries: the image never changes under a mount. */
const KERNEL_CACHE_SECONDS = 86_400;

/** Reads byte ranges of layer blobs; `close` is called on unmount. */
export interface LayerFetcher {
  fetchRange: FetchRange;
  close?(): Promise<void>;
}

export interface MountOptions {
  archive: MountableArchive;
  mountpoint: string;
  /** Where layer bytes come from (the CLI opens the archive's storage reference). */
  fetcher: LayerFetcher;
  /** Disk cache directory; none when absent. */
  cacheDir?: string;
  /** Disk cache bound in bytes (default 4 GiB). */
  cacheSize?: number;
  /** Memory cache bound in bytes (default 512 MiB; 0 disables it). */
  memoryCache?: number;
  /** Prefetch list (paths, optionally with byte ranges; see prefetch-list.ts) fetched in the background after mounting. */
  prefetch?: string;
  /** File to write what was read (paths and byte ranges, first-read order) to, on unmount. */
  record?: string;
  /** `host:port` to serve Prometheus metrics on. */
  metrics?: string;
  /** Unmount a stale FUSE mount at the mountpoint instead of refusing. */
  forceUnmountStale?: boolean;
  logger?: Logger;
  timeouts?: { readMs?: number };
}

export interface MountHandle {
  readonly mountpoint: string;
  /** `host:port` the metrics server listens on, when one was asked for. */
  readonly metricsAddress: string | undefined;
  /** Settles when the prefetch list has been fetched (immediately without one). */
  readonly prefetchDone: Promise<void>;
  /** Settles when the kernel ended the mount: unmount() or someone's umount/fusermount -u. */
  readonly ended: Promise<void>;
  metrics(): MetricsSnapshot;
  unmount(): Promise<void>;
}

function mountOptions(): string[] {
  const options = ['ro', 'fsname=clip', 'subtype=clip', 'default_permissions'];
  // As root, let every user (and containers) in, and keep setuid bits and device nodes working.
  if (process.getuid?.() === 0) options.push('allow_other', 'suid', 'dev');
  return options;
}

export async function mount(options: MountOptions): Promise<MountHandle> {
  const logger = options.logger ?? silentLogger;
  const { archive, fetcher } = options;
  const mountpoint = await checkMountpoint(options.mountpoint, { forceUnmountStale: options.forceUnmountStale, logger });
  const metrics = new MountMetrics();

  const memory = options.memoryCache === 0 ? undefined : new MemoryBlockCache(options.memoryCache ?? DEFAULT_MEMORY_CACHE);
  let disk: DiskBlockCache | undefined;
  if (options.cacheDir) {
    disk = new DiskBlockCache(options.cacheDir, options.cacheSize ?? DEFAULT_DISK_CACHE, {
      logger,
      writeDelayMs: DISK_WRITE_DELAY_MS,
      onCorrupt: () => metrics.add('diskCacheCorrupt'),
    });
    await disk.open();
  }
  const countingFetch: FetchRange = async (digest, start, end, signal) => {
    metrics.add('fetchRequests');
    try {
      const bytes = await fetcher.fetchRange(digest, start, end, signal);
      metrics.add('fetchBytes', bytes.length);
      return bytes;
    } catch (error) {
      metrics.add('fetchErrors');
      throw error;
    }
  };
  const reader = new LayerReader(archive, {
    fetchRange: countingFetch,
    cache: new TieredBlockCache(memory, disk, metrics),
    onEvent: (event) => {
      if (event.kind === 'digest-mismatch') {
        metrics.add('digestMismatches');
        logger.warn('piece digest mismatch', { layer: event.layer, span: event.span, attempt: event.attempt });
      }
    },
  });

  const table = archiveTable(archive);
  const recorder = options.record ? new ReadRecorder(options.record, logger, (inode) => pathOf(archive, table, inode.ino)) : undefined;
  const read = createReadHandler({
    archive,
    reader,
    metrics,
    logger,
    readTimeoutMs: options.timeouts?.readMs ?? DEFAULT_READ_TIMEOUT_MS,
    ...(recorder ? { onRead: (inode: Inode, position: number, length: number) => recorder.record(inode, position, length) } : {}),
  });

  let server: MetricsServer | undefined;
  if (options.metrics) server = await startMetricsServer(options.metrics, metrics);
  let unmounting: Promise<void> | undefined;
  let fuse: FuseSession;
  try {
    fuse = await FuseSession.mount({
      mountpoint,
      options: mountOptions(),
      table,
      statfs: imageStatfs(archive),
      cacheSeconds: KERNEL_CACHE_SECONDS,
      read,
      onExit: () => {
        if (!unmounting) logger.warn('the mount was detached from outside (umount or fusermount -u)', { mountpoint });
      },
    });
  } catch (error) {
    await server?.close();
    throw error;
  }
  metrics.attachExternal(() => fuse.counters());

  const stopPrefetch = new AbortController();
  const prefetchDone = options.prefetch
    ? readPrefetchList(options.prefetch)
        .then((entries) =>
          prefetchFiles({ archive, reader, entries, logger, signal: stopPrefetch.signal, onFile: () => metrics.add('prefetchedFiles') }),
        )
        .then(
          (result) => logger.info('prefetch finished', { files: result.files, failed: result.failed }),
          (error: unknown) => logger.warn('prefetch list unusable', { file: options.prefetch, error: (error as Error).message }),
        )
    : Promise.resolve();

  return {
    mountpoint,
    metricsAddress: server?.address,
    prefetchDone,
    ended: fuse.ended,
    metrics: () => metrics.snapshot(),
    unmount() {
      unmounting ??= (async () => {
        stopPrefetch.abort();
        await fuse.unmount();
        // Cache writes run behind the reads: finish them, so the next mount finds the blocks.
        await reader.flush();
        await disk?.flush();
        await server?.close();
        await recorder?.flush();
        await fetcher.close?.();
      })();
      return unmounting;
    },
  };
}
