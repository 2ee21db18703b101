// The image mounts come from @clip/runtime's ImageMountPool (issue #16): the same durable
// pool `clip run` uses, so with the same state directory a containerd container and a
// `clip run` container of one image share one lazy mount. This adapter maps the
// snapshotter's holders ("snapshot:<id>") onto it and never touches other holders.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageMountPool as RuntimeMountPool, type ImageMountPoolOptions } from '@clip/runtime';
import { ImageMountError } from './errors.js';
import type { ImageMountInfo, ImageMountLease, ImageMountPool, ImageToMount } from './image-mounts.js';

export const SNAPSHOT_HOLDER_PREFIX = 'snapshot:';

export class RuntimeImageMountPool implements ImageMountPool {
  private readonly pool: RuntimeMountPool;
  private readonly refs = new Map<string, string>();

  constructor(private readonly options: ImageMountPoolOptions) {
    this.pool = new RuntimeMountPool(options);
  }

  async acquire(image: ImageToMount, holder: string): Promise<ImageMountLease> {
    let lease;
    try {
      // A local, verified archive: the pool serves it as it is.
      lease = await this.pool.acquire(image.archivePath, holder);
    } catch (error) {
      throw new ImageMountError(`cannot mount ${image.imageRef}: ${error instanceof Error ? error.message : String(error)}`, {
        cause: error,
      });
    }
    this.refs.set(lease.imageKey, image.imageRef);
    return {
      imageKey: lease.imageKey,
      mountpoint: lease.mountpoint,
      manifestDigest: lease.manifestDigest,
      reused: lease.reused,
      release: lease.release,
    };
  }

  release(imageKey: string, holder: string): Promise<void> {
    return this.pool.release(imageKey, holder);
  }

  async list(): Promise<ImageMountInfo[]> {
    const mounts = await this.pool.list();
    const infos: ImageMountInfo[] = [];
    for (const m of mounts) {
      const server = await readFile(join(this.options.stateDir, 'mounts', m.imageKey, 'server.json'), 'utf8').then(
        (t) => JSON.parse(t) as { metrics?: string },
        () => undefined,
      );
      infos.push({
        imageKey: m.imageKey,
        imageRef: this.refs.get(m.imageKey) ?? m.image,
        mountpoint: m.mountpoint,
        pid: m.pid,
        holders: m.holders,
        ...(server?.metrics ? { metrics: server.metrics } : {}),
      });
    }
    return infos;
  }

  /** Drops this snapshotter's holders that `keep` rejects; the pool stops mounts left without holders. */
  async sweep(keep: (holder: string) => boolean): Promise<number> {
    let stopped = 0;
    for (const mount of await this.pool.list()) {
      const stale = mount.holders.filter((h) => h.startsWith(SNAPSHOT_HOLDER_PREFIX) && !keep(h));
      for (const holder of stale) await this.pool.release(mount.imageKey, holder);
      if (stale.length > 0 && stale.length === mount.holders.length) stopped++;
    }
    return stopped;
  }
}
