// `clip mount <file.clip> <mountpoint>`: serve the image read-only through FUSE in the
// foreground, fetching layer bytes lazily from the archive's registry. Unmounts on
// SIGINT/SIGTERM and prints a JSON metrics summary to stderr. This process mounts and holds
// the connection (@clip/mounter's superviseMount); serving child processes (./mount-serve.ts,
// the same command with --serve-connection) answer reads and are replaced when they die.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { createLogger, parseSize, UsageError } from '@clip/shared';
import { addTrustOptions, trustOptionsFrom, type TrustFlags } from '../archive-trust/cli-options.js';
import { HOSTS_DIR_HELP, hostsDirOption } from '../hosts-option.js';

interface MountCommandOptions extends TrustFlags {
  hostsDir?: string;
  cacheDir?: string;
  cacheSize: string;
  memoryCache: string;
  /** A list file, or false for --no-prefetch (no access profile either). */
  prefetch?: string | false;
  record?: string;
  metrics?: string;
  insecure?: boolean;
  readTimeout: string;
  retries: string;
  forceUnmountStale?: boolean;
  allowNonEmpty?: boolean;
  standby: boolean;
  serveConnection?: string;
  serveLocation?: string;
  serveDeferred?: boolean;
  serveLocationDigest?: string;
  serveProfile?: string;
  serveProfileDigest?: string;
}

/** After unmounting, give the event loop this long to drain before exiting anyway. */
const EXIT_GRACE_MS = 3000;

export function register(program: Command): void {
  const command = program
    .command('mount')
    .description(
      'mount an image read-only through FUSE, fetching only the bytes that are read (foreground; SIGINT/SIGTERM unmount, ' +
        'SIGUSR2 replaces the serving process, which is also replaced when it dies)',
    )
    .argument('<archive>', '.clip archive (file or http(s) URL), or a registry reference whose published archive is downloaded (cached)')
    .argument('<mountpoint>', 'existing empty directory')
    .option('--cache-dir <dir>', 'disk cache of decoded spans, shareable between mounts')
    .option('--cache-size <size>', 'disk cache bound', '4GiB')
    .option('--memory-cache <size>', 'memory cache bound (0 disables it)', '512MiB')
    .option(
      '--prefetch <file>',
      "fetch the files (or the byte ranges of them) a --record file lists, in the background after mounting (instead of the archive's access profile)",
    )
    .option(
      '--no-prefetch',
      'apply no access profile (by default the profile published with the archive is prefetched; see docs/mounter.md)',
    )
    .option('--record <file>', 'on unmount, write which byte ranges of which files were read, in first-read order (input for --prefetch)')
    .option('--metrics <host:port>', 'serve Prometheus metrics on http://host:port/metrics')
    .option('--insecure', 'allow plain HTTP / unverified TLS to a non-loopback registry')
    .option('--read-timeout <seconds>', 'a read that waits longer for the registry fails with EIO', '30')
    .option('--retries <n>', 'retries of a failed registry request', '2')
    .option('--hosts-dir <dir>', HOSTS_DIR_HELP)
    .option('--force-unmount-stale', 'detach a stale FUSE mount at the mountpoint instead of refusing')
    .option('--allow-non-empty', 'mount over a directory that has entries (hidden while mounted) instead of refusing')
    .option(
      '--no-standby',
      'keep no prepared standby serving process (saves its memory; a replacement for a dead one then starts from scratch)',
    )
    // Internal: how `clip mount` starts its serving processes (./mount-serve.ts).
    .addOption(new Option('--serve-connection <fd:role:init>').hideHelp())
    .addOption(new Option('--serve-location <location>').hideHelp())
    .addOption(new Option('--serve-deferred').hideHelp())
    .addOption(new Option('--serve-location-digest <sha256:hex>').hideHelp())
    .addOption(new Option('--serve-profile <file>').hideHelp())
    .addOption(new Option('--serve-profile-digest <sha256:hex>').hideHelp());
  addTrustOptions(command).action(async (archivePath: string, mountpoint: string, options: MountCommandOptions) => {
    const readTimeoutSeconds = Number(options.readTimeout);
    if (!(readTimeoutSeconds > 0))
      throw new UsageError(`invalid --read-timeout ${JSON.stringify(options.readTimeout)}: expected seconds > 0`);
    const retries = Number(options.retries);
    if (!Number.isInteger(retries) || retries < 0) throw new UsageError(`invalid --retries ${JSON.stringify(options.retries)}`);
    const cacheSize = parseSize(options.cacheSize);
    const memoryCache = parseSize(options.memoryCache);
    const logger = createLogger();

    const serving = {
      cacheSize,
      memoryCache,
      insecure: options.insecure ?? false,
      readMs: readTimeoutSeconds * 1000,
      retries,
      logger,
      ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
      ...(options.prefetch ? { prefetch: options.prefetch } : {}),
      ...(options.serveProfile && !options.prefetch ? { profile: options.serveProfile } : {}),
      ...(options.serveProfileDigest ? { profileDigest: options.serveProfileDigest } : {}),
      ...(options.record ? { record: options.record } : {}),
      ...(options.metrics ? { metrics: options.metrics } : {}),
    };
    if (options.serveConnection) {
      const { serveMount } = await import('./mount-serve.js');
      await serveMount({
        ...serving,
        connection: options.serveConnection,
        ...(options.serveDeferred ? { deferred: true } : { location: options.serveLocation ?? archivePath }),
        ...(options.serveLocationDigest ? { locationDigest: options.serveLocationDigest } : {}),
        mountpoint,
        ...hostsDirOption(options),
      });
      return;
    }
    // FUSE, HTTP and registry clients load here, not at startup: other commands skip them.
    const [mounter, { resolveArchiveArgument }] = await Promise.all([import('@clip/mounter'), import('@clip/registry-fetch')]);
    const { checkMountpoint, lockMountpoint, mountOptions, superviseMount, SERVER_CONNECTION_FD, isArchiveUrl } = mounter;
    // The supervisor decides which archive is trusted; serving processes open what it chose.
    const trust = await trustOptionsFrom(options);
    // Refuse a bad mountpoint before touching the network.
    const checked = await checkMountpoint(mountpoint, {
      forceUnmountStale: options.forceUnmountStale ?? false,
      allowNonEmpty: options.allowNonEmpty ?? false,
      logger,
    });
    // One clip mount per mountpoint: held by this (supervising) process until it exits.
    const lock = await lockMountpoint(checked);
    if (options.allowNonEmpty && (await readdir(checked).catch(() => [])).length > 0) {
      logger.warn('mounting over a non-empty directory: its entries are hidden while mounted', { mountpoint: checked });
    }
    // The archive is looked up while the first serving process starts (its node start and module
    // loading overlap the registry round trips); it gets the result as a `prepare` message.
    let resolved: ResolvedLocation | undefined;
    const resolving = resolveLocation(archivePath, options, {
      isArchiveUrl,
      resolve: (reference) =>
        resolveArchiveArgument(reference, { logger, insecure: serving.insecure, ...trust, ...hostsDirOption(options) }),
    }).then((value) => {
      resolved = value;
      return { ...value };
    });
    resolving.catch(() => {}); // superviseMount throws it (or fails to mount first)
    // This process holds the mount and never serves a read; serving children come and go
    // (see superviseMount in @clip/mounter and ./mount-serve.ts).
    try {
      process.exitCode = await superviseMount({
        mountpoint: checked,
        options: mountOptions(),
        standby: options.standby,
        logger,
        deferred: resolving,
        serverArgs: (init, role) => [
          process.argv[1]!,
          ...process.argv.slice(2),
          '--serve-connection',
          `${SERVER_CONNECTION_FD}:${role}:${init}`,
          ...(resolved ? locationArgs(resolved) : ['--serve-deferred']),
        ],
      });
    } finally {
      await lock.release();
    }
    setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
  });
}

/** What a serving process opens: the archive location, and the digests it must still have. */
interface ResolvedLocation {
  location: string;
  locationDigest?: string;
  profile?: string;
  profileDigest?: string;
}

async function resolveLocation(
  archivePath: string,
  options: { prefetch?: string | false },
  how: { isArchiveUrl(location: string): boolean; resolve(reference: string): Promise<string> },
): Promise<ResolvedLocation> {
  // A URL is read by range (data-carrying archives stay remote); a reference is downloaded.
  const location = how.isArchiveUrl(archivePath) ? archivePath : await how.resolve(archivePath);
  // Serving processes (also replacements, much later) reopen a resolved archive by path:
  // they check it still has the bytes the trust checks passed.
  const locationDigest = location !== archivePath && !how.isArchiveUrl(location) ? await fileDigest(location) : undefined;
  // The access profile published with the archive (kept next to it), unless a list was given or --no-prefetch.
  const profile = options.prefetch === undefined && !how.isArchiveUrl(location) ? await profileNextTo(location) : undefined;
  return {
    location,
    ...(locationDigest ? { locationDigest } : {}),
    ...(profile ? { profile, profileDigest: await fileDigest(profile) } : {}),
  };
}

function locationArgs(resolved: ResolvedLocation): string[] {
  return [
    '--serve-location',
    resolved.location,
    ...(resolved.locationDigest ? ['--serve-location-digest', resolved.locationDigest] : []),
    ...(resolved.profile ? ['--serve-profile', resolved.profile, '--serve-profile-digest', resolved.profileDigest!] : []),
  ];
}

async function profileNextTo(archive: string): Promise<string | undefined> {
  const { profileSidecarPath } = await import('@clip/registry-fetch');
  const path = profileSidecarPath(archive);
  return (await stat(path).catch(() => undefined))?.isFile() ? path : undefined;
}

async function fileDigest(path: string): Promise<string> {
  return `sha256:${createHash('sha256')
    .update(await readFile(path))
    .digest('hex')}`;
}
