// `clip run`: one foreground container from a lazy mount. Acquire the image's shared mount,
// prepare a bundle (overlay root + config.json) in the state directory, run it with the OCI
// runtime, then remove container, overlay and state and release the mount, whatever happened.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger, writeFileAtomically, type Logger } from '@clip/shared';
import { prepareBundle, removeBundle, type PrepareBundleOptions, type PreparedBundle } from './bundle.js';
import { ContainerConfigError, StateDirError } from './errors.js';
import type { ImageMountPool } from './mount-pool.js';
import { pidAlive } from './mount-server.js';
import { OciRuntime } from './oci-runtime.js';

export interface RunContainerOptions extends Omit<PrepareBundleOptions, 'id' | 'holder'> {
  /** Container id; default 12 random hex digits. */
  name?: string;
  /** OCI runtime binary (runc, crun, ...); default `runc`. */
  runtime?: string;
  /** The runtime's --root; default `<stateDir>/runtime`. */
  runtimeRoot?: string;
  /** Global runtime flags (e.g. crun's `--cgroup-manager=disabled` on a cgroup v1 hybrid host). */
  runtimeFlags?: string[];
  /** Keep the container's upper directory after exit. */
  keep?: boolean;
  /** After a forwarded SIGINT/SIGTERM, kill the container this much later (default 10 s). */
  stopTimeoutMs?: number;
  /** Kill the container this long after it started (OciRuntime RunOptions.timeLimitMs). */
  timeLimitMs?: number;
  /** No terminal input; the container's stdout goes to stderr. */
  detachStdio?: boolean;
  logger?: Logger;
}

export interface ContainerSummary {
  id: string;
  image: string;
  imageKey: string;
  manifestDigest: string;
  archiveDigest: string;
  mountReused: boolean;
  exitCode: number;
  /** Killed at timeLimitMs. */
  timedOut?: boolean;
  /** Milliseconds: mount acquired, bundle ready, container process started (from the beginning). */
  timings: { acquireAndPrepareMs: number; timeToExecMs?: number; runMs: number; cleanupMs: number; totalMs: number };
  /** Compressed bytes the image's mount fetched while this container ran (shared mounts: all its users). */
  fetchedBytes?: number;
  keptUpper?: string;
  /** Cleanup failed (logged; something may be left in the state directory). */
  cleanupError?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

export async function runContainer(pool: ImageMountPool, image: string, options: RunContainerOptions = {}): Promise<ContainerSummary> {
  const logger = options.logger ?? silentLogger;
  const id = options.name ?? randomBytes(6).toString('hex');
  if (!NAME.test(id))
    throw new ContainerConfigError(`invalid container name ${JSON.stringify(id)}: letters, digits, '_', '.', '-' (at most 64)`);
  const runtime = new OciRuntime({
    root: options.runtimeRoot ?? join(pool.stateDir, 'runtime'),
    ...(options.runtime ? { path: options.runtime } : {}),
    ...(options.runtimeFlags ? { flags: options.runtimeFlags } : {}),
    logger,
  });
  await pool.checkStateDir();
  await runtime.check();
  await pruneContainers(pool, runtime, logger);
  const dir = await claimContainerDir(pool, id);

  // A signal before the container runs cancels the start, with the same cleanup.
  let cancelled: NodeJS.Signals | undefined;
  const cancel = (signal: NodeJS.Signals) => (cancelled ??= signal);
  for (const signal of SIGNALS) process.on(signal, cancel);
  const began = performance.now();
  let bundle: PreparedBundle | undefined;
  let exitCode = 0;
  let timedOut = false;
  let timeToExecMs: number | undefined;
  let fetchedBefore: number | undefined;
  let fetchedAfter: number | undefined;
  let runMs = 0;
  let preparedMs = 0;
  let keptUpper: string | undefined;
  let cleanupStart = 0;
  let cleanupError: string | undefined;
  try {
    // Who runs this container: a later clip run cleans up after a clip run that was killed.
    await writeFileAtomically(join(dir, OWNER_FILE), Buffer.from(`${JSON.stringify({ pid: process.pid, image })}\n`));
    bundle = await prepareBundle(pool, image, dir, { ...options, id, holder: `container:${id}` });
    const prepared = performance.now();
    preparedMs = prepared - began;
    // A new mount fetched nothing before this container (its /etc/passwd read counts as its own).
    fetchedBefore = bundle.lease.reused ? await pool.fetchedBytes(bundle.lease.imageKey) : 0;
    for (const signal of SIGNALS) process.off(signal, cancel);
    if (cancelled) {
      exitCode = 128 + (SIGNAL_NUMBERS[cancelled] ?? 0);
    } else {
      const lease = bundle.lease;
      const result = await runtime.run(id, dir, {
        ...(options.stopTimeoutMs !== undefined ? { stopTimeoutMs: options.stopTimeoutMs } : {}),
        ...(options.timeLimitMs !== undefined ? { timeLimitMs: options.timeLimitMs } : {}),
        ...(options.detachStdio ? { detachStdio: true } : {}),
        onStarted: (afterMs) => {
          timeToExecMs = prepared - began + afterMs;
          logger.info('container started', {
            id,
            image,
            archive_digest: lease.archiveDigest,
            manifest_digest: lease.manifestDigest,
            mount_reused: lease.reused,
            time_to_exec_ms: Math.round(timeToExecMs),
          });
        },
      });
      exitCode = result.exitCode;
      timedOut = result.timedOut ?? false;
      runMs = performance.now() - prepared;
    }
    fetchedAfter = await pool.fetchedBytes(bundle.lease.imageKey);
  } finally {
    for (const signal of SIGNALS) process.off(signal, cancel);
    cleanupStart = performance.now();
    if (!bundle) await rm(dir, { recursive: true, force: true });
    else ({ keptUpper, cleanupError } = await removeContainer(pool, runtime, id, dir, options.keep ?? false, logger));
  }
  const lease = bundle!.lease;
  const end = performance.now();
  return {
    id,
    image,
    imageKey: lease.imageKey,
    manifestDigest: lease.manifestDigest,
    archiveDigest: lease.archiveDigest,
    mountReused: lease.reused,
    exitCode,
    ...(timedOut ? { timedOut } : {}),
    timings: {
      acquireAndPrepareMs: Math.round(preparedMs),
      ...(timeToExecMs !== undefined ? { timeToExecMs: Math.round(timeToExecMs) } : {}),
      runMs: Math.round(runMs),
      cleanupMs: Math.round(end - cleanupStart),
      totalMs: Math.round(end - began),
    },
    ...(fetchedBefore !== undefined && fetchedAfter !== undefined ? { fetchedBytes: fetchedAfter - fetchedBefore } : {}),
    ...(keptUpper ? { keptUpper } : {}),
    ...(cleanupError ? { cleanupError } : {}),
  };
}

const OWNER_FILE = 'clip-run.json';

/** Creates the container's state directory; mkdir without `recursive` is the atomic claim of the name (two runs with one --name cannot both get it). */
async function claimContainerDir(pool: ImageMountPool, id: string): Promise<string> {
  const dir = join(pool.stateDir, 'containers', id);
  await mkdir(join(pool.stateDir, 'containers'), { recursive: true });
  await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EEXIST')
      throw new StateDirError(`a container named ${id} exists in ${pool.stateDir} (${dir}); pick another --name or remove it`);
    throw new StateDirError(`cannot create ${dir}: ${error.message}`, { cause: error });
  });
  return dir;
}

/**
 * Deletes the runtime's container, removes its bundle (overlay, state; the upper directory kept
 * with `keep`) and releases its hold on the mount. A failure is reported, not thrown: the
 * container's exit code stays the result, scripts depend on it.
 */
async function removeContainer(
  pool: ImageMountPool,
  runtime: OciRuntime,
  id: string,
  dir: string,
  keep: boolean,
  logger: Logger,
): Promise<{ keptUpper?: string; cleanupError?: string }> {
  // Cleanup must finish even when the user presses Ctrl-C again.
  const hold = () => logger.warn('cleaning up the container; please wait', { id });
  for (const signal of SIGNALS) process.on(signal, hold);
  try {
    await runtime.delete(id);
    const { keptUpper } = await removeBundle(pool, dir, { keepUpper: keep, lazyUnmount: true });
    await rm(dir, { recursive: true, force: true });
    return keptUpper ? { keptUpper } : {};
  } catch (error) {
    const message = (error as Error).message;
    logger.error('cleaning up the container failed', { id, error: message });
    return { cleanupError: message };
  } finally {
    for (const signal of SIGNALS) process.off(signal, hold);
  }
}

/**
 * Removes containers whose `clip run` died without cleaning up (SIGKILL, crash): the runtime's
 * container, the overlay and its state, and their hold on the image mount.
 */
export async function pruneContainers(pool: ImageMountPool, runtime: OciRuntime, logger: Logger = silentLogger): Promise<string[]> {
  const root = join(pool.stateDir, 'containers');
  const pruned: string[] = [];
  for (const id of await readdir(root).catch(() => [] as string[])) {
    const dir = join(root, id);
    const owner = await readOwner(join(dir, OWNER_FILE));
    // No owner file yet: a clip run is just creating it.
    if (!owner || pidAlive(owner.pid)) continue;
    logger.warn('removing a container whose clip run is gone', { id, pid: owner.pid });
    await runtime
      .delete(id)
      .catch((error: unknown) => logger.warn('cannot delete stale container', { id, error: (error as Error).message }));
    await removeBundle(pool, dir, { lazyUnmount: true }).catch((error: unknown) =>
      logger.warn('cannot remove stale bundle', { id, error: (error as Error).message }),
    );
    const imageKey = await imageKeyOf(pool, id);
    if (imageKey) await pool.release(imageKey, `container:${id}`).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    pruned.push(id);
  }
  return pruned;
}

/** The image key a container holds (from the holder files), for a release after a crash. */
async function imageKeyOf(pool: ImageMountPool, id: string): Promise<string | undefined> {
  return (await pool.list()).find((mount) => mount.holders.includes(`container:${id}`))?.imageKey;
}

/** The owner record, or undefined when it is missing or not (yet) valid. */
async function readOwner(path: string): Promise<{ pid: number } | undefined> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8')) as { pid?: unknown };
    return typeof owner.pid === 'number' ? { pid: owner.pid } : undefined;
  } catch {
    return undefined;
  }
}
