// The serving half of `clip mount`: a child process of the supervisor (see
// superviseMount in @clip/mounter) that prepares everything (archive, fetcher, caches, metadata
// table), waits until the supervisor says `attach` (at once, or later for a standby), attaches
// to the FUSE connection the supervisor holds (inherited as a descriptor) and answers reads
// until it is told to stop, the mount is detached from outside, or the supervisor is gone.
// Several of these live one after the other on the same mount: each logs
// `serving reads pid=…`; only the first logs `mounted`.
import type { AttachMessage, PrepareMessage, ServerRole } from '@clip/mounter';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { DigestMismatchError, type Logger, UsageError } from '@clip/shared';

export interface ServeOptions {
  /** `<fd>:<active|standby>:<base64 FUSE_INIT>` from the supervisor. */
  connection: string;
  /** The archive location the supervisor resolved (file or URL): no second registry lookup. */
  location?: string;
  /**
   * Started while the supervisor was still looking the archive up: location, locationDigest,
   * profile and profileDigest come in its `prepare` message.
   */
  deferred?: boolean;
  /** `sha256:<hex>` the file at `location` must still have (a resolved reference's archive). */
  locationDigest?: string;
  mountpoint: string;
  cacheDir?: string;
  /** containerd hosts.toml directory (mirrors), as resolved by the supervisor. */
  hostsDir?: string;
  cacheSize: number;
  memoryCache: number;
  prefetch?: string;
  /** The archive's access profile (applied unless `prefetch` is given). */
  profile?: string;
  /** `sha256:<hex>` the profile must still have (as the supervisor found it next to the archive). */
  profileDigest?: string;
  record?: string;
  metrics?: string;
  insecure: boolean;
  readMs: number;
  retries: number;
  logger: Logger;
}

/** How long unmounting (cache flush, connections closed) may take before the process leaves anyway. */
const UNMOUNT_BUDGET_MS = 10_000;
/** After unmounting, give the event loop this long to drain before exiting anyway. */
const EXIT_GRACE_MS = 3000;

export function parseConnection(spec: string): { fd: number; role: ServerRole; init: Uint8Array } {
  const [fd, role, init] = spec.split(':');
  const parsed = { fd: Number(fd), role: role as ServerRole, init: Buffer.from(init ?? '', 'base64') };
  if (!Number.isInteger(parsed.fd) || parsed.fd < 0 || (role !== 'active' && role !== 'standby') || parsed.init.length === 0) {
    throw new UsageError(`invalid --serve-connection ${JSON.stringify(spec)} (internal: set by clip mount for its serving process)`);
  }
  return parsed;
}

/** The supervisor's `attach` message: its generation (1 at once without an IPC channel). */
class Turn {
  readonly generation: Promise<number>;
  /** This process is the active one (started as such, or told so), perhaps not yet prepared. */
  promoted: boolean;

  constructor(role: ServerRole) {
    this.promoted = !process.send || role === 'active';
    this.generation = !process.send
      ? Promise.resolve(1)
      : new Promise((resolve) => {
          const onMessage = (message: unknown) => {
            const { kind, generation } = message as Partial<AttachMessage>;
            if (kind !== 'attach' || typeof generation !== 'number') return;
            process.off('message', onMessage);
            this.promoted = true;
            resolve(generation);
          };
          process.on('message', onMessage);
        });
  }
}

/** The supervisor's `prepare` message (listened for from the start: it may come at once). */
function prepareMessage(): Promise<Partial<Pick<ServeOptions, 'location' | 'locationDigest' | 'profile' | 'profileDigest'>>> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      if ((message as Partial<PrepareMessage>).kind !== 'prepare') return;
      process.off('message', onMessage);
      const text = (key: string) => {
        const value = (message as Record<string, unknown>)[key];
        return typeof value === 'string' ? { [key]: value } : {};
      };
      resolve({ ...text('location'), ...text('locationDigest'), ...text('profile'), ...text('profileDigest') });
    };
    process.on('message', onMessage);
  });
}

export async function serveMount(options: ServeOptions): Promise<void> {
  const prepared = options.deferred && process.send ? prepareMessage() : undefined;
  let connection: ReturnType<typeof parseConnection>;
  try {
    connection = parseConnection(options.connection);
  } catch (error) {
    process.channel?.unref();
    throw error;
  }
  // Listen from the start: the supervisor may say `attach` before we are prepared.
  const turn = new Turn(connection.role);
  // Until attached: told to stop, it just leaves (the supervisor detaches the mount if needed).
  // Orphaned, a standby just leaves (the active one unmounts); the active one, not yet
  // attached, is the only one left to unmount: it does.
  const state = { attached: false };
  const leave = (reason: string) => {
    if (state.attached) return;
    if (reason !== 'disconnect' || !turn.promoted) process.exit(0);
    void import('@clip/mounter').then(({ forceUnmount }) => forceUnmount(options.mountpoint)).finally(() => process.exit(1));
  };
  const onSigint = () => leave('SIGINT');
  const onSigterm = () => leave('SIGTERM');
  const onSighup = () => leave('SIGHUP');
  const onDisconnect = () => leave('disconnect');
  process.once('SIGINT', onSigint).once('SIGTERM', onSigterm).once('SIGHUP', onSighup).once('disconnect', onDisconnect);
  // The supervisor may have died while this process was still starting (its 'disconnect' then
  // came before anyone listened).
  if (process.send && !process.connected) onDisconnect();
  const stopLeaving = () =>
    process.off('SIGINT', onSigint).off('SIGTERM', onSigterm).off('SIGHUP', onSighup).off('disconnect', onDisconnect);
  try {
    await serve(options, prepared, connection, turn, () => {
      state.attached = true;
      stopLeaving();
    });
  } catch (error) {
    // Failed before serving: let the process end (the IPC channel would keep it alive).
    stopLeaving();
    process.channel?.unref();
    throw error;
  }
}

async function serve(
  given: ServeOptions,
  prepared: ReturnType<typeof prepareMessage> | undefined,
  connection: { fd: number; init: Uint8Array },
  turn: Turn,
  onAttach: () => void,
): Promise<void> {
  const { logger, readMs, insecure, retries } = given;
  let generation = 1;
  // Listened for from the moment of attaching: a signal or an orphaning while mount() finishes
  // still unmounts right after.
  let stopRequested: Promise<string> = new Promise(() => {});
  // Loaded before waiting for a deferred location: that is what the wait overlaps.
  const [{ mount, openArchiveFetcher, openArchiveLocation }] = await Promise.all([import('@clip/mounter'), import('@clip/registry-fetch')]);
  const options: ServeOptions = prepared ? { ...given, ...(await prepared) } : given;
  if (options.location === undefined) throw new UsageError('internal: a serving process was given no archive location');
  if (options.locationDigest) await checkDigest(options.location, options.locationDigest);
  const opened = await openArchiveLocation(options.location, { insecure, logger, timeoutMs: readMs, retries });
  const profile = options.profile && (await profileUnchanged(options.profile, options.profileDigest, logger)) ? options.profile : undefined;
  const archive = opened.archive;
  const fetcher = await openArchiveFetcher(opened, {
    insecure,
    logger,
    requestTimeoutMs: readMs,
    retries,
    ...(options.hostsDir ? { hostsDir: options.hostsDir } : {}),
  });
  let handle;
  try {
    handle = await mount({
      archive,
      mountpoint: options.mountpoint,
      fetcher,
      cacheSize: options.cacheSize,
      memoryCache: options.memoryCache,
      logger,
      timeouts: { readMs },
      attach: async () => {
        // Prepared: a supervisor replacing the active process (SIGUSR2) waits for this.
        process.send?.({ kind: 'ready' });
        generation = await turn.generation;
        onAttach();
        stopRequested = new Promise<string>((resolve) => {
          process.once('SIGINT', () => resolve('SIGINT'));
          process.once('SIGTERM', () => resolve('SIGTERM'));
          process.once('SIGHUP', () => resolve('SIGHUP'));
          process.once('disconnect', () => resolve('supervisor gone'));
          if (process.send && !process.connected) resolve('supervisor gone');
        });
        return { fd: connection.fd, init: connection.init };
      },
      ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
      ...(options.prefetch ? { prefetch: options.prefetch } : {}),
      ...(profile ? { profile } : {}),
      ...(options.record ? { record: options.record } : {}),
      ...(options.metrics ? { metrics: options.metrics } : {}),
    });
  } catch (error) {
    await fetcher.close?.();
    throw error;
  }
  if (generation === 1) {
    logger.info('mounted', {
      mountpoint: handle.mountpoint,
      reference: fetcher.reference,
      mode: opened.mode,
      layers: archive.layers.length,
      files: archive.inodeCount,
      metrics: handle.metricsAddress,
    });
  }
  if (handle.resendError !== 0) {
    logger.warn(
      'the kernel cannot resend requests a dead serving process had taken (needs Linux 6.9 or later); those reads never complete',
      {
        errno: handle.resendError,
      },
    );
  }
  // The metrics address too: with `--metrics host:0` each serving process gets its own port.
  logger.info('serving reads', { pid: process.pid, mountpoint: handle.mountpoint, generation, metrics: handle.metricsAddress });
  process.send?.({ kind: 'serving' });

  // Runs until a signal, the mount is detached from outside, or the supervisor is gone.
  const stop = await Promise.race([stopRequested, handle.ended.then(() => 'detached' as const)]);
  const reason =
    stop === 'detached' ? { reason: 'detached from outside' } : stop === 'supervisor gone' ? { reason: stop } : { signal: stop };
  logger.info('unmounting', { mountpoint: handle.mountpoint, ...reason });
  // A second signal while unmounting means "now".
  const forceExit = () => process.exit(1);
  process.once('SIGINT', forceExit);
  process.once('SIGTERM', forceExit);
  // Bounded, and a failed clean-up (a cache directory removed under us) is only a warning: the
  // mount is gone either way, and this process must not outlive it (an orphan kept alive by its
  // metrics port was seen after the snapshotter tests removed their directories).
  const finished = await Promise.race([
    handle.unmount().then(
      () => true,
      (error: unknown) => {
        logger.warn('unmount clean-up failed', { mountpoint: handle.mountpoint, error: (error as Error).message });
        return true;
      },
    ),
    new Promise<false>((resolve) => setTimeout(() => resolve(false), UNMOUNT_BUDGET_MS).unref()),
  ]);
  if (!finished)
    logger.warn('unmount cleanup did not finish in time; exiting anyway', { mountpoint: handle.mountpoint, ms: UNMOUNT_BUDGET_MS });
  const hostStats = fetcher.hostStats?.();
  process.stderr.write(`${JSON.stringify({ metrics: handle.metrics(), ...(hostStats ? { hosts: hostStats } : {}) })}\n`);
  logger.info('unmounted', { mountpoint: handle.mountpoint });
  process.channel?.unref();
  setTimeout(() => process.exit(process.exitCode ?? 0), EXIT_GRACE_MS).unref();
}

/** The profile is only a hint: one that changed since the supervisor found it is skipped, not fatal. */
async function profileUnchanged(path: string, expected: string | undefined, logger: Logger): Promise<boolean> {
  if (!expected) return true;
  const bytes = await readFile(path).catch(() => undefined);
  const actual = bytes ? `sha256:${createHash('sha256').update(bytes).digest('hex')}` : '(gone)';
  if (actual === expected) return true;
  logger.warn('the access profile changed since clip mount found it; not applying it', { profile: path, expected, actual });
  return false;
}

/** The archive the supervisor resolved must not have changed since (a file planted in the cache). */
async function checkDigest(path: string, expected: string): Promise<void> {
  const actual = `sha256:${createHash('sha256')
    .update(await readFile(path))
    .digest('hex')}`;
  if (actual !== expected) throw new DigestMismatchError(`archive ${path} (changed since clip mount checked it)`, expected, actual);
}
