// `clip mount <file.clip> <mountpoint>`: serve the image read-only through FUSE in the
// foreground, fetching layer bytes lazily from the archive's registry. Unmounts on
// SIGINT/SIGTERM and prints a JSON metrics summary to stderr.
import type { Command } from 'commander';
import { createLogger, parseSize, UsageError } from '@clip/shared';
import { checkMountpoint } from '@clip/mounter';
import { addTrustOptions, trustOptionsFrom, type TrustFlags } from '../archive-trust/cli-options.js';

interface MountCommandOptions extends TrustFlags {
  cacheDir?: string;
  cacheSize: string;
  memoryCache: string;
  prefetch?: string;
  record?: string;
  metrics?: string;
  insecure?: boolean;
  readTimeout: string;
  retries: string;
  forceUnmountStale?: boolean;
}

/** After unmounting, give the event loop this long to drain before exiting anyway. */
const EXIT_GRACE_MS = 3000;

export function register(program: Command): void {
  const command = program
    .command('mount')
    .description('mount an image read-only through FUSE, fetching only the bytes that are read (foreground)')
    .argument('<archive>', '.clip archive (file or http(s) URL), or a registry reference whose published archive is downloaded (cached)')
    .argument('<mountpoint>', 'existing empty directory')
    .option('--cache-dir <dir>', 'disk cache of decoded blocks, shareable between mounts')
    .option('--cache-size <size>', 'disk cache bound', '4GiB')
    .option('--memory-cache <size>', 'memory cache bound (0 disables it)', '512MiB')
    .option('--prefetch <file>', 'fetch the files (or the byte ranges of them) a --record file lists, in the background after mounting')
    .option('--record <file>', 'on unmount, write which byte ranges of which files were read, in first-read order (input for --prefetch)')
    .option('--metrics <host:port>', 'serve Prometheus metrics on http://host:port/metrics')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--read-timeout <seconds>', 'a read that waits longer for the registry fails with EIO', '30')
    .option('--retries <n>', 'retries of a failed registry request', '2')
    .option('--force-unmount-stale', 'detach a stale FUSE mount at the mountpoint instead of refusing');
  addTrustOptions(command).action(async (archivePath: string, mountpoint: string, options: MountCommandOptions) => {
      const readTimeoutSeconds = Number(options.readTimeout);
      if (!(readTimeoutSeconds > 0)) throw new UsageError(`invalid --read-timeout ${JSON.stringify(options.readTimeout)}: expected seconds > 0`);
      const retries = Number(options.retries);
      if (!Number.isInteger(retries) || retries < 0) throw new UsageError(`invalid --retries ${JSON.stringify(options.retries)}`);
      const cacheSize = parseSize(options.cacheSize);
      const memoryCache = parseSize(options.memoryCache);
      const logger = createLogger();
      const trust = await trustOptionsFrom(options);

      // Refuse a bad mountpoint before touching the network.
      await checkMountpoint(mountpoint, { forceUnmountStale: options.forceUnmountStale ?? false, logger });
      // FUSE, HTTP and registry clients load here, not at startup: other commands skip them.
      const [{ mount, openArchiveFetcher, openArchiveLocation, isArchiveUrl }, { resolveArchiveArgument }] = await Promise.all([
        import('@clip/mounter'),
        import('@clip/registry-fetch'),
      ]);
      const readMs = readTimeoutSeconds * 1000;
      const insecure = options.insecure ?? false;
      // A URL is read by range (data-carrying archives stay remote); a reference is downloaded.
      const location = isArchiveUrl(archivePath) ? archivePath : await resolveArchiveArgument(archivePath, { logger, insecure, ...trust });
      const opened = await openArchiveLocation(location, { insecure, logger, timeoutMs: readMs, retries });
      const archive = opened.archive;
      const fetcher = await openArchiveFetcher(opened, { insecure, logger, requestTimeoutMs: readMs, retries });
      let handle;
      try {
        handle = await mount({
          archive,
          mountpoint,
          fetcher,
          cacheSize,
          memoryCache,
          logger,
          timeouts: { readMs },
          ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
          ...(options.prefetch ? { prefetch: options.prefetch } : {}),
          ...(options.record ? { record: options.record } : {}),
          ...(options.metrics ? { metrics: options.metrics } : {}),
        });
      } catch (error) {
        await fetcher.close();
        throw error;
      }
      logger.info('mounted', {
        mountpoint: handle.mountpoint,
        reference: fetcher.reference,
        mode: opened.mode,
        layers: archive.layers.length,
        files: archive.inodeCount,
        metrics: handle.metricsAddress,
      });

      // Runs until a signal, or until the mount is detached from outside (umount, fusermount -u).
      const stop = await Promise.race([
        new Promise<NodeJS.Signals>((resolve) => {
          process.once('SIGINT', () => resolve('SIGINT'));
          process.once('SIGTERM', () => resolve('SIGTERM'));
        }),
        handle.ended.then(() => 'detached' as const),
      ]);
      logger.info('unmounting', { mountpoint: handle.mountpoint, ...(stop === 'detached' ? { reason: 'detached from outside' } : { signal: stop }) });
      // A second signal while unmounting means "now".
      const forceExit = () => process.exit(1);
      process.once('SIGINT', forceExit);
      process.once('SIGTERM', forceExit);
      await handle.unmount();
      process.stderr.write(`${JSON.stringify({ metrics: handle.metrics() })}\n`);
      logger.info('unmounted', { mountpoint: handle.mountpoint });
      setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
    });
}
