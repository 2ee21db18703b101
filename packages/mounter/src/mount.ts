// Mounts a clip archive read-only at a directory: FUSE ops over the archive's file table,
// file data fetched lazily by byte range from the image's registry, decoded spans kept in
// a memory LRU and (optionally) a bounded disk cache shared between processes.
import { readdir, realpath, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { FetchRange, Inode } from '@clip/archive-format';
import { FuseSession, type HeldConnection } from '@clip/native-fuse';
import { DiskSpanCache, LayerReader, MemorySpanCache } from '@clip/read-engine';
import { silentLogger, type Logger } from '@clip/shared';
import type { MountableArchive } from './archive-view.js';
import { archiveTable, pathOf } from './metadata-table.js';
import { MountMetrics, type MetricsSnapshot } from './metrics.js';
import { startMetricsServer, type MetricsServer } from './metrics-server.js';
import { lockMountpoint, type MountLock } from './mount-lock.js';
import { checkMountpoint } from './mountpoint.js';
import { prefetchFiles, readPrefetchList, ReadRecorder } from './prefetch-list.js';
import { PrefetchUsage } from './prefetch-usage.js';
import { createReadHandler, imageStatfs } from './read-handler.js';
import type { LayerFetcher } from './layer-fetcher.js';
import { TieredSpanCache } from './tiered-cache.js';
import { type FirstRunTechniques, parseFirstRun } from './first-run.js';
import { startFirstRun } from './first-run-start.js';

export const DEFAULT_MEMORY_CACHE = 512 * 2 ** 20;
export const DEFAULT_DISK_CACHE = 4 * 2 ** 30;
export const DEFAULT_READ_TIMEOUT_MS = 30_000;
/** Disk writes of a span wait this long for the span to be extended further (flushed on unmount). */
const DISK_WRITE_DELAY_MS = 250;
/** Kernel caching of attributes and entries: the image never changes under a mount. */
const KERNEL_CACHE_SECONDS = 86_400;

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
  /** The archive's access profile (same format), applied when no `prefetch` list is given; logged as such. */
  profile?: string;
  /** File to write what was read (paths and byte ranges, first-read order) to, on unmount. */
  record?: string;
  /** `host:port` to serve Prometheus metrics on. */
  metrics?: string;
  /** Unmount a stale FUSE mount at the mountpoint instead of refusing. */
  forceUnmountStale?: boolean;
  /** Mount over a directory that has entries (hidden while mounted) instead of refusing. */
  allowNonEmpty?: boolean;
  /**
   * Serve a connection a supervisor mounted and holds (see supervisor.ts) instead of mounting.
   * A function is awaited once everything else is ready (a standby waits there for its turn).
   */
  attach?: HeldConnection | (() => Promise<HeldConnection>);
  logger?: Logger;
  timeouts?: { readMs?: number };
  /** First-run techniques (first-run.ts); default from `CLIP_FIRST_RUN`. */
  firstRun?: FirstRunTechniques;
}

export interface MountHandle {
  readonly mountpoint: string;
  /** `host:port` the metrics server listens on, when one was asked for. */
  readonly metricsAddress: string | undefined;
  /** Settles when the prefetch list has been fetched (immediately without one). */
  readonly prefetchDone: Promise<void>;
  /** Settles when the kernel ended the mount: unmount() or someone's umount/fusermount -u. */
  readonly ended: Promise<void>;
  /** Attached mounts: errno of the FUSE_NOTIFY_RESEND sent on attaching (0: it worked). */
  readonly resendError: number;
  metrics(): MetricsSnapshot;
  unmount(): Promise<void>;
}

export function mountOptions(): string[] {
  const options = ['ro', 'fsname=clip', 'subtype=clip', 'default_permissions'];
  // As root, let every user (and containers) in, and keep setuid bits and device nodes working.
  if (process.getuid?.() === 0) options.push('allow_other', 'suid', 'dev');
  // Without root (fusermount3) only the mounting user may enter, unless the administrator
  // allowed more: fusermount3 refuses allow_other without user_allow_other in /etc/fuse.conf.
  else if (userAllowOther()) options.push('allow_other');
  return options;
}

/** Whether /etc/fuse.conf has a `user_allow_other` line (fusermount3's rule, uncommented). */
export function userAllowOther(conf = '/etc/fuse.conf'): boolean {
  try {
    return readFileSync(conf, 'utf8')
      .split('\n')
      .some((line) => line.trim() === 'user_allow_other');
  } catch {
    return false;
  }
}

export async function mount(options: MountOptions): Promise<MountHandle> {
  const logger = options.logger ?? silentLogger;
  // Hold the mountpoint's lock from the check until unmounted: concurrent mounts of one
  // directory would otherwise both pass the check and stack.
  // A serving process attaching to a supervisor's connection does not lock: the supervisor
  // holds the lock for the life of the mount.
  const lock = options.attach
    ? { release: async () => {} }
    : await lockMountpoint(await realpath(options.mountpoint).catch(() => resolvePath(options.mountpoint)));
  try {
    return await mountLocked(options, logger, lock);
  } catch (error) {
    await lock.release();
    throw error;
  }
}

async function mountLocked(options: MountOptions, logger: Logger, lock: MountLock): Promise<MountHandle> {
  const { archive, fetcher } = options;
  const mountpoint = await prepareMountpoint(options, logger);
  const metrics = new MountMetrics();
  const firstRun = options.firstRun ?? parseFirstRun(process.env['CLIP_FIRST_RUN']);
  const disk = await openDiskCache(options, logger, metrics);
  const reader = createLayerReader(options, logger, metrics, disk, firstRun);
  const table = archiveTable(archive);
  const recorder = options.record ? new ReadRecorder(options.record, logger, (inode) => pathOf(archive, table, inode.ino)) : undefined;
  const usage = options.prefetch || options.profile ? new PrefetchUsage() : undefined;
  if (usage) metrics.addComputed(() => usage.totals());
  const stopPrefetch = new AbortController();
  const guesses = startFirstRun({
    archive,
    reader,
    table,
    logger,
    techniques: firstRun,
    hasPrefetchList: !!(options.prefetch || options.profile),
    signal: stopPrefetch.signal,
  });
  const read = createReadHandler({
    archive,
    reader,
    metrics,
    logger,
    readTimeoutMs: options.timeouts?.readMs ?? DEFAULT_READ_TIMEOUT_MS,
    onRead: (inode: Inode, position: number, length: number) => {
      recorder?.record(inode, position, length);
      usage?.read(inode, position, length);
      guesses.onRead(inode, position);
    },
  });

  // Before the metrics port is taken: a standby must not hold it while another process serves.
  const attach = typeof options.attach === 'function' ? await options.attach() : options.attach;
  // Our turn to serve (a standby waits above): start guessing while the kernel side is set up.
  guesses.mounted();
  let server: MetricsServer | undefined;
  if (options.metrics) server = await startMetricsServer(options.metrics, metrics, options.fetcher.prometheus?.bind(options.fetcher));
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
      ...(attach ? { attach } : {}),
      onExit: () => {
        if (!unmounting) logger.warn('the mount was detached from outside (umount or fusermount -u)', { mountpoint });
      },
    });
  } catch (error) {
    stopPrefetch.abort();
    reader.close();
    await server?.close();
    throw error;
  }
  metrics.attachExternal(() => fuse.counters());
  const prefetchDone = startPrefetch(options, reader, logger, metrics, stopPrefetch.signal, usage);

  return {
    mountpoint,
    metricsAddress: server?.address,
    prefetchDone,
    ended: fuse.ended,
    resendError: attach ? fuse.resendError() : 0,
    metrics: () => metrics.snapshot(),
    unmount() {
      unmounting ??= (async () => {
        stopPrefetch.abort();
        guesses.stop();
        let flushFailure: { error: unknown } | undefined;
        try {
          await fuse.unmount();
          reader.close();
          // Cache writes run behind the reads: finish them, so the next mount finds the spans.
          await reader.flush();
          await disk?.flush();
        } catch (error) {
          flushFailure = { error };
        }
        // Closed even when a flush failed (e.g. the cache directory was removed): a metrics port
        // or a connection left open would keep the process alive after the mount is gone.
        const closed = await Promise.allSettled([server?.close(), recorder?.flush(), fetcher.close?.()]);
        await lock.release();
        if (flushFailure) throw flushFailure.error;
        for (const result of closed) if (result.status === 'rejected') throw result.reason;
      })();
      return unmounting;
    },
  };
}

/** The mountpoint, checked (unless attaching: the supervisor mounted there and checked it). */
async function prepareMountpoint(options: MountOptions, logger: Logger): Promise<string> {
  if (options.attach) return resolvePath(options.mountpoint);
  const mountpoint = await checkMountpoint(options.mountpoint, {
    forceUnmountStale: options.forceUnmountStale,
    allowNonEmpty: options.allowNonEmpty,
    logger,
  });
  if (options.allowNonEmpty && (await readdir(mountpoint).catch(() => [])).length > 0) {
    logger.warn('mounting over a non-empty directory: its entries are hidden while mounted', { mountpoint });
  }
  return mountpoint;
}

/** The disk span cache, opened, when a cache directory was given. */
async function openDiskCache(options: MountOptions, logger: Logger, metrics: MountMetrics): Promise<DiskSpanCache | undefined> {
  if (!options.cacheDir) return undefined;
  const disk = new DiskSpanCache(options.cacheDir, options.cacheSize ?? DEFAULT_DISK_CACHE, {
    logger,
    writeDelayMs: DISK_WRITE_DELAY_MS,
    onCorrupt: () => metrics.add('diskCacheCorrupt'),
  });
  await disk.open();
  return disk;
}

/** The read engine over the fetcher (fetches counted) and the memory and disk span caches. */
function createLayerReader(
  options: MountOptions,
  logger: Logger,
  metrics: MountMetrics,
  disk: DiskSpanCache | undefined,
  firstRun: FirstRunTechniques,
): LayerReader {
  const memory = options.memoryCache === 0 ? undefined : new MemorySpanCache(options.memoryCache ?? DEFAULT_MEMORY_CACHE);
  return new LayerReader(options.archive, {
    scheduler: { priorities: firstRun.priority, coalesce: firstRun.coalesce },
    fetchRange: countingFetchRange(options.fetcher, metrics),
    cache: new TieredSpanCache(memory, disk, metrics),
    onEvent: (event) => {
      if (event.kind === 'digest-mismatch') {
        metrics.add('digestMismatches');
        logger.warn('piece digest mismatch', { layer: event.layer, span: event.span, attempt: event.attempt });
      } else if (event.kind === 'window-fetch') {
        metrics.add('windowFetchRequests');
        metrics.add('windowFetchBytes', event.end - event.start);
      } else if (event.kind === 'window-mismatch') {
        metrics.add('digestMismatches');
        logger.warn('window digest mismatch', {
          windows_blob: event.blob,
          offset: event.offset,
          attempt: event.attempt,
          storage: options.fetcher.reference,
        });
      }
    },
  });
}

function countingFetchRange(fetcher: LayerFetcher, metrics: MountMetrics): FetchRange {
  return async (digest, start, end, signal) => {
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
}

/** Fetches the prefetch list's files in the background; settles when done (at once without one). */
function startPrefetch(
  options: MountOptions,
  reader: LayerReader,
  logger: Logger,
  metrics: MountMetrics,
  signal: AbortSignal,
  usage?: PrefetchUsage,
): Promise<void> {
  const list = options.prefetch ?? options.profile;
  if (!list) return Promise.resolve();
  const archive = options.archive;
  return readPrefetchList(list)
    .then(async (entries) => {
      if (!options.prefetch) {
        metrics.add('profileFiles', entries.length);
        logger.info('applying the access profile', { profile: list, bytes: (await stat(list)).size, files: entries.length });
      }
      return prefetchFiles({
        archive,
        reader,
        entries,
        logger,
        signal,
        onFile: () => metrics.add('prefetchedFiles'),
        ...(usage ? { onPlan: (files) => usage.planned(files) } : {}),
      });
    })
    .then(
      (result) => logger.info('prefetch finished', { files: result.files, failed: result.failed }),
      (error: unknown) => logger.warn('prefetch list unusable', { file: list, error: (error as Error).message }),
    );
}
