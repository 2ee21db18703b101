// containerd's snapshotter semantics over the metadata store, with remote layers: a layer
// whose image has a clip archive is committed at once (containerd then skips its download)
// and containers on top of it get overlayfs over the image's shared lazy mount.
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger, type Logger } from '@clip/shared';
import type { Decision, FallbackReason, RemoteDecider } from './decision.js';
import { SnapshotArgumentError, SnapshotExistsError, SnapshotNotFoundError, SnapshotPreconditionError } from './errors.js';
import type { ImageMountPool } from './image-mounts.js';
import { SNAPSHOT_HOLDER_PREFIX } from './runtime-pool.js';
import { LABEL_CLIP_REMOTE, LABEL_SNAPSHOT_REF, parseLayerLabels } from './labels.js';
import { parseFilters } from './filters.js';
import { buildMounts, diskUsage, fsDir, type Mount, remoteBase, snapshotDir, workDir } from './overlay.js';
import { checkKey, MetadataStore, type SnapshotKind, type SnapshotRecord } from './store.js';
import type { SnapshotterMetrics } from './metrics.js';

export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: SnapshotKind;
  /** Nanoseconds since the epoch (containerd compares them at that precision). */
  createdAt: bigint;
  updatedAt: bigint;
  labels: Record<string, string>;
}

export interface SnapshotterOptions {
  root: string;
  decider: RemoteDecider;
  pool: ImageMountPool & { sweep?(keep: (holder: string) => boolean): Promise<number> };
  metrics: SnapshotterMetrics;
  logger?: Logger;
}

const holderOf = (id: number) => `${SNAPSHOT_HOLDER_PREFIX}${id}`;

export class ClipSnapshotter {
  private readonly root: string;
  private readonly logger: Logger;

  private constructor(
    private readonly store: MetadataStore,
    private readonly options: SnapshotterOptions,
  ) {
    this.root = options.root;
    this.logger = options.logger ?? silentLogger;
  }

  static async open(options: SnapshotterOptions): Promise<ClipSnapshotter> {
    await mkdir(join(options.root, 'snapshots'), { recursive: true });
    const store = await MetadataStore.open(options.root);
    // A crash between creating a directory and recording it leaves an orphan: never reuse its id.
    const ids = (await readdir(join(options.root, 'snapshots'))).map(Number).filter(Number.isInteger);
    store.reserveIdsUpTo(Math.max(0, ...ids));
    return new ClipSnapshotter(store, options);
  }

  prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.create('ACTIVE', key, parent, labels);
  }

  view(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.create('VIEW', key, parent, labels);
  }

  private async create(kind: 'ACTIVE' | 'VIEW', key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    checkKey(key);
    this.checkNew(key, parent);
    let fallback: FallbackReason | undefined;
    const parsed = kind === 'ACTIVE' ? parseLayerLabels(labels, key) : ({ kind: 'none' } as const);
    if (parsed.kind !== 'none') {
      const parentRecord = parent ? this.store.get(parent) : undefined;
      let decision: Decision;
      if (parsed.kind === 'incomplete') {
        decision = { kind: 'fallback', reason: 'missing_labels', detail: parsed.reason };
      } else {
        decision = await this.options.decider.decide(parsed.request, parentRecord?.labels[LABEL_SNAPSHOT_REF], parent !== '');
        if (decision.kind === 'remote') {
          const remote = await this.commitRemote(parsed.request.target, parent, labels, decision);
          if (remote instanceof SnapshotExistsError) throw remote;
          decision = { kind: 'fallback', reason: 'mount_failed', detail: remote.mountError };
        }
      }
      // One line per image: layers above an already fallen-back parent say nothing new.
      if (!parentRecord?.labels['containerd.io/snapshot/clip.fallback']) {
        const image = parsed.kind === 'remote' ? parsed.request.imageRef : '(not named by the labels)';
        this.logger.warn('not lazy: containerd unpacks this image', {
          image,
          reason: decision.reason,
          detail: decision.detail,
          layer: labels[LABEL_SNAPSHOT_REF],
        });
        this.options.metrics.fallback(decision.reason);
      }
      fallback = decision.reason;
    }

    const id = this.store.allocateId();
    await mkdir(fsDir(this.root, id), { recursive: true });
    if (kind === 'ACTIVE') await mkdir(workDir(this.root, id), { recursive: true });
    const now = wallClockNs();
    const record: SnapshotRecord = {
      id,
      name: key,
      kind,
      parent,
      labels: { ...labels, ...(fallback ? { 'containerd.io/snapshot/clip.fallback': fallback } : {}) },
      createdAt: now,
      updatedAt: now,
    };
    try {
      await this.store.transaction((tx) => {
        this.checkNew(key, parent);
        tx.create(record);
      });
      return await this.mountsOf(record);
    } catch (error) {
      if (this.store.get(key)?.id === id) await this.remove(key).catch(() => undefined);
      else await rm(snapshotDir(this.root, id), { recursive: true, force: true });
      throw error;
    }
  }

  /** Commits a remote layer; returns the ALREADY_EXISTS answer, or why the image could not be mounted. */
  private async commitRemote(
    target: string,
    parent: string,
    labels: Record<string, string>,
    decision: Extract<Decision, { kind: 'remote' }>,
  ): Promise<SnapshotExistsError | { mountError: string }> {
    const answer = new SnapshotExistsError(
      `target snapshot ${JSON.stringify(target)} already exists (served lazily by clip from ${decision.image.imageRef})`,
    );
    if (this.store.get(target)) return answer;
    const id = this.store.allocateId();
    const image = decision.image;
    let imageKey: string;
    try {
      const lease = await this.options.pool.acquire(
        { imageRef: image.imageRef, manifestDigest: image.manifestDigest, archivePath: image.archivePath },
        holderOf(id),
      );
      if (lease.reused) this.options.metrics.lazyMountReuses++;
      else this.options.metrics.lazyMountStarts++;
      imageKey = lease.imageKey;
    } catch (error) {
      return { mountError: error instanceof Error ? error.message : String(error) };
    }
    const now = wallClockNs();
    await this.store.transaction((tx) => {
      if (this.store.get(target)) return;
      tx.create({
        id,
        name: target,
        kind: 'COMMITTED',
        parent,
        labels: { ...labels, [LABEL_CLIP_REMOTE]: image.manifestDigest },
        createdAt: now,
        updatedAt: now,
        imageMount: imageKey,
        remote: {
          imageRef: image.imageRef,
          manifestDigest: image.manifestDigest,
          archivePath: image.archivePath,
          layerDigest: image.layers[decision.layerIndex]?.digest ?? '',
          layerIndex: decision.layerIndex,
          layerCount: image.layers.length,
        },
        usage: { size: 0, inodes: 0 },
      });
    });
    if (this.store.get(target)?.id !== id) await this.options.pool.release(imageKey, holderOf(id));
    else {
      this.options.metrics.remoteLayers++;
      this.logger.info('remote layer', {
        image: image.imageRef,
        layer: `${decision.layerIndex + 1}/${image.layers.length}`,
        snapshot: target,
      });
    }
    return answer;
  }

  private checkNew(key: string, parent: string): void {
    if (this.store.get(key)) throw new SnapshotExistsError(`snapshot ${JSON.stringify(key)} already exists`);
    if (parent) {
      const p = this.store.get(parent);
      if (!p) throw new SnapshotNotFoundError(`parent snapshot ${JSON.stringify(parent)} does not exist`);
      if (p.kind !== 'COMMITTED') throw new SnapshotPreconditionError(`parent ${JSON.stringify(parent)} is not a committed snapshot`);
    }
  }

  async mounts(key: string): Promise<Mount[]> {
    const record = this.store.require(key);
    if (record.kind === 'COMMITTED')
      throw new SnapshotPreconditionError(`snapshot ${JSON.stringify(key)} is committed: only active and view snapshots have mounts`);
    return this.mountsOf(record);
  }

  /** Builds mounts, (re-)acquiring the image mount when a remote layer is below. */
  private async mountsOf(record: SnapshotRecord): Promise<Mount[]> {
    const ancestors = this.store.ancestors(record);
    const base = remoteBase(ancestors);
    let mountpoint: string | undefined;
    if (base?.remote) {
      const lease = await this.options.pool.acquire(base.remote, holderOf(record.id));
      if (lease.reused) this.options.metrics.lazyMountReuses++;
      else this.options.metrics.lazyMountStarts++;
      mountpoint = lease.mountpoint;
      if (record.imageMount !== lease.imageKey) {
        await this.store.transaction((tx) => {
          const current = this.store.get(record.name);
          if (current) tx.put({ ...current, imageMount: lease.imageKey });
        });
      }
    }
    return buildMounts(this.root, record, ancestors, mountpoint);
  }

  async commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    checkKey(name, 'name');
    const record = this.store.require(key);
    if (record.kind !== 'ACTIVE')
      throw new SnapshotPreconditionError(`snapshot ${JSON.stringify(key)} is not active (it is ${record.kind.toLowerCase()})`);
    if (this.store.get(name)) throw new SnapshotExistsError(`snapshot ${JSON.stringify(name)} already exists`);
    const usage = await diskUsage(fsDir(this.root, record.id));
    const now = wallClockNs();
    await this.store.transaction((tx) => {
      if (this.store.get(name)) throw new SnapshotExistsError(`snapshot ${JSON.stringify(name)} already exists`);
      if (this.store.get(key)?.id !== record.id) throw new SnapshotNotFoundError(`snapshot ${JSON.stringify(key)} does not exist`);
      tx.delete(key);
      const { imageMount: _held, ...rest } = record;
      tx.create({ ...rest, name, kind: 'COMMITTED', labels: { ...record.labels, ...labels }, createdAt: now, updatedAt: now, usage });
    });
    await rm(workDir(this.root, record.id), { recursive: true, force: true });
    // Its children acquire the image mount themselves.
    if (record.imageMount) await this.options.pool.release(record.imageMount, holderOf(record.id));
  }

  async remove(key: string): Promise<void> {
    const record = this.store.require(key);
    const child = this.store.children(key)[0];
    if (child)
      throw new SnapshotPreconditionError(
        `cannot remove snapshot ${JSON.stringify(key)}: snapshot ${JSON.stringify(child.name)} is its child`,
      );
    await this.store.transaction((tx) => {
      if (this.store.children(key).length > 0)
        throw new SnapshotPreconditionError(`cannot remove snapshot ${JSON.stringify(key)}: it has children`);
      tx.delete(key);
    });
    await rm(snapshotDir(this.root, record.id), { recursive: true, force: true });
    if (record.imageMount) await this.options.pool.release(record.imageMount, holderOf(record.id));
  }

  stat(key: string): SnapshotInfo {
    return toInfo(this.store.require(key));
  }

  async update(info: { name: string; labels: Record<string, string> }, paths: readonly string[]): Promise<SnapshotInfo> {
    const record = this.store.require(info.name);
    let labels = { ...record.labels };
    if (paths.length === 0) labels = { ...info.labels };
    for (const path of paths) {
      if (path === 'labels') labels = { ...info.labels };
      else if (path.startsWith('labels.')) {
        const key = path.slice('labels.'.length);
        const value = info.labels[key];
        if (value === undefined) delete labels[key];
        else labels[key] = value;
      } else
        throw new SnapshotArgumentError(
          `cannot update field ${JSON.stringify(path)} of snapshot ${JSON.stringify(info.name)}: only labels are mutable`,
        );
    }
    const updated: SnapshotRecord = { ...record, labels, updatedAt: wallClockNs() };
    await this.store.transaction((tx) => {
      if (this.store.get(info.name)?.id !== record.id)
        throw new SnapshotNotFoundError(`snapshot ${JSON.stringify(info.name)} does not exist`);
      tx.put(updated);
    });
    return toInfo(updated);
  }

  list(filters: readonly string[]): SnapshotInfo[] {
    const matches = parseFilters(filters);
    return this.store
      .all()
      .filter((r) => matches({ name: r.name, parent: r.parent, kind: r.kind, labels: r.labels }))
      .map(toInfo);
  }

  async usage(key: string): Promise<{ size: number; inodes: number }> {
    const record = this.store.require(key);
    if (record.kind === 'COMMITTED') return record.usage ?? { size: 0, inodes: 0 };
    return diskUsage(fsDir(this.root, record.id));
  }

  /** Deletes directories no snapshot owns and stops image mounts no snapshot holds. */
  async cleanup(): Promise<{ directories: number; mounts: number }> {
    const ids = new Set(this.store.all().map((r) => String(r.id)));
    let directories = 0;
    for (const entry of await readdir(join(this.root, 'snapshots'))) {
      if (ids.has(entry)) continue;
      await rm(join(this.root, 'snapshots', entry), { recursive: true, force: true });
      directories++;
    }
    const holders = new Set(this.store.all().map((r) => holderOf(r.id)));
    const mounts = (await this.options.pool.sweep?.((h) => holders.has(h))) ?? 0;
    return { directories, mounts };
  }

  counts(): Record<string, number> {
    const counts: Record<string, number> = { VIEW: 0, ACTIVE: 0, COMMITTED: 0 };
    for (const r of this.store.all()) counts[r.kind] = (counts[r.kind] ?? 0) + 1;
    return counts;
  }
}

/** Wall clock with microsecond resolution, as decimal nanoseconds (Date has only milliseconds). */
function wallClockNs(): string {
  return (BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n).toString();
}

function toInfo(record: SnapshotRecord): SnapshotInfo {
  return {
    name: record.name,
    parent: record.parent,
    kind: record.kind,
    createdAt: BigInt(record.createdAt),
    updatedAt: BigInt(record.updatedAt),
    labels: record.labels,
  };
}
