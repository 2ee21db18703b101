// OCI bundles over a lazy mount: `<dir>/config.json` from the image config and `<dir>/rootfs`
// an overlay (lower: the image's shared mount; upper/work: private, in the state directory).
// `clip run` uses them for its containers; workers with their own runtime use them directly.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isMounted } from '@clip/mounter';
import { StateDirError } from './errors.js';
import type { ImageMountLease, ImageMountPool } from './mount-pool.js';
import { buildRuntimeSpec, checkImageConfig, type ContainerOptions, type RuntimeSpec } from './oci-spec.js';
import { mountOverlay, unmountOverlay } from './overlay.js';
import { resolveUser } from './users.js';

/** Static inits Docker and Debian ship (tini): pid 1 that forwards signals and reaps zombies. */
const INIT_CANDIDATES = ['/usr/bin/tini-static', '/usr/bin/docker-init', '/usr/libexec/docker/docker-init'];

export function findInit(): string | undefined {
  return INIT_CANDIDATES.find((path) => existsSync(path));
}

export interface PrepareBundleOptions extends ContainerOptions {
  /** Container id (hostname default, cgroup name); default derived from the directory. */
  id?: string;
  /** Holder name in the mount pool; default `bundle:<dir>`. */
  holder?: string;
  /** Static init as pid 1: a path, false for none, default the first of tini-static/docker-init found. */
  init?: string | false;
}

export interface PreparedBundle {
  dir: string;
  rootfs: string;
  /** The container's writable layer. */
  upper: string;
  id: string;
  lease: ImageMountLease;
  spec: RuntimeSpec;
}

interface BundleRecord {
  dir: string;
  imageKey: string;
  holder: string;
  upper: string;
}

/** Per-bundle private state (upper, work, record), keyed by the bundle directory. */
function bundleStateDir(pool: ImageMountPool, dir: string): string {
  return join(pool.stateDir, 'bundles', createHash('sha256').update(dir).digest('hex').slice(0, 24));
}

export async function prepareBundle(
  pool: ImageMountPool,
  image: string,
  bundleDir: string,
  options: PrepareBundleOptions = {},
): Promise<PreparedBundle> {
  const dir = resolve(bundleDir);
  const rootfs = join(dir, 'rootfs');
  const state = bundleStateDir(pool, dir);
  if (existsSync(join(dir, 'config.json')) || existsSync(state)) {
    throw new StateDirError(
      `${dir} already holds a bundle (config.json or its state exists); remove it first (clip bundle --remove ${dir})`,
    );
  }
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw new StateDirError(`cannot create the bundle directory ${dir}: ${(error as Error).message}`, { cause: error });
  }
  if (await isMounted(rootfs)) throw new StateDirError(`${rootfs} is already a mount point`);
  const holder = options.holder ?? `bundle:${dir}`;
  const id = options.id ?? createHash('sha256').update(dir).digest('hex').slice(0, 12);
  const lease = await pool.acquire(image, holder);
  const upper = join(state, 'upper');
  const cleanup = async () => {
    await unmountOverlay(rootfs, { lazy: true }).catch(() => undefined);
    await rmdir(rootfs).catch(() => undefined);
    await rm(state, { recursive: true, force: true });
    await lease.release();
  };
  try {
    await mkdir(state, { recursive: true });
    const record: BundleRecord = { dir, imageKey: lease.imageKey, holder, upper };
    await writeFile(join(state, 'bundle.json'), `${JSON.stringify(record)}\n`);
    await mountOverlay({ lower: lease.mountpoint, upper, work: join(state, 'work'), target: rootfs });
    // The user is looked up in the image itself (its lower layer: nothing the container wrote).
    checkImageConfig(lease.imageConfig);
    const user = await resolveUser(lease.mountpoint, options.user ?? lease.imageConfig.user, image);
    const init = options.init === false ? undefined : (options.init ?? findInit());
    const spec = buildRuntimeSpec({ config: lease.imageConfig, options, user, id, ...(init ? { init } : {}) });
    await writeFile(join(dir, 'config.json'), `${JSON.stringify(spec, null, 2)}\n`);
    return { dir, rootfs, upper, id, lease, spec };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

export interface RemoveBundleOptions {
  /** Keep the upper (written) directory for inspection; its path is returned. */
  keepUpper?: boolean;
  /** Detach a busy rootfs lazily instead of failing (the caller knows its container is gone). */
  lazyUnmount?: boolean;
}

/** Unmounts the bundle's rootfs, removes config.json and its state, releases the image mount. */
export async function removeBundle(
  pool: ImageMountPool,
  bundleDir: string,
  options: RemoveBundleOptions = {},
): Promise<{ keptUpper?: string }> {
  const dir = resolve(bundleDir);
  const state = bundleStateDir(pool, dir);
  const text = await readFile(join(state, 'bundle.json'), 'utf8').catch(() => undefined);
  if (text === undefined) throw new StateDirError(`${dir} is not a bundle prepared by clip with state directory ${pool.stateDir}`);
  const record = JSON.parse(text) as BundleRecord;
  await unmountOverlay(join(dir, 'rootfs'), { lazy: options.lazyUnmount ?? false });
  await rmdir(join(dir, 'rootfs')).catch(() => undefined);
  await rm(join(dir, 'config.json'), { force: true });
  if (options.keepUpper) {
    await rm(join(state, 'work'), { recursive: true, force: true });
    await rm(join(state, 'bundle.json'), { force: true });
  } else {
    await rm(state, { recursive: true, force: true });
  }
  await pool.release(record.imageKey, record.holder);
  return options.keepUpper ? { keptUpper: record.upper } : {};
}
