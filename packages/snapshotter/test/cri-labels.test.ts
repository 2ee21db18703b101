// The CRI label path at the gRPC level, as containerd's unpacker sends it for a Kubernetes
// pull (disable_snapshot_annotations = false): containerd.io/snapshot/cri.image-ref,
// cri.layer-digest, cri.manifest-digest and cri.image-layers on each layer's Prepare. A real
// registry, `clip publish` of a two-layer image, `clip snapshotter` as a child process; no
// containerd (its 1.6 CRI plugin needs a kubelet to drive it).
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltLayer, buildLayout, freePort, type RunningRegistry, startRegistry } from '@clip/testkit';
import { chainIds } from '../src/decision.js';
import { snapshotsClient } from './grpc-client.js';
import { CLI, metricValue, mountsUnder, run, type SnapshotterProcess, startSnapshotter } from './harness.js';

let dir: string;
let registry: RunningRegistry;
let snapshotter: SnapshotterProcess | undefined;
let ref: string;
let manifestDigest: string;
let layers: BuiltLayer[];
let chain: string[];
let options: Parameters<typeof startSnapshotter>[0];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-snap-cri-'));
  registry = await startRegistry();
  const layout = await buildLayout(join(dir, 'layout'), {
    tag: 'v1',
    layers: [
      {
        compression: 'gzip',
        entries: [
          { type: 'dir', path: 'etc' },
          { type: 'file', path: 'etc/base.txt', content: 'from layer 1\n' },
          { type: 'file', path: 'etc/replaced.txt', content: 'old\n' },
        ],
      },
      {
        compression: 'gzip',
        entries: [
          { type: 'dir', path: 'app' },
          { type: 'file', path: 'app/top.txt', content: 'from layer 2\n' },
          { type: 'file', path: 'etc/replaced.txt', content: 'new\n' },
        ],
      },
    ],
  });
  const image = layout.images[0];
  if (!image) throw new Error('layout has no image');
  layers = image.layers;
  manifestDigest = image.manifestDigest;
  chain = chainIds(layers.map((l) => l.diffId));
  ref = `${registry.host}/cri/app:v1`;
  await run(process.execPath, [CLI, 'publish', image.ref, ref], { env: { ...process.env, CLIP_LOG_LEVEL: 'warn' }, timeout: 120_000 });
  options = {
    socket: join(dir, 'clip.sock'),
    root: join(dir, 'root'),
    stateDir: join(dir, 'state'),
    cacheDir: join(dir, 'cache'),
    metricsPort: await freePort(),
  };
  snapshotter = await startSnapshotter(options);
}, 180_000);

afterAll(async () => {
  await snapshotter?.stop();
  for (const { path } of (await mountsUnder(dir).catch(() => [])).reverse()) await run('umount', ['-l', path]).catch(() => undefined);
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}, 60_000);

/** The labels CRI's unpacker puts on the Prepare of layer `i` (image-layers: this layer and the ones above). */
function criLabels(i: number, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    'containerd.io/snapshot.ref': chain[i] as string,
    'containerd.io/snapshot/cri.image-ref': ref,
    'containerd.io/snapshot/cri.layer-digest': (layers[i] as BuiltLayer).digest,
    'containerd.io/snapshot/cri.manifest-digest': manifestDigest,
    'containerd.io/snapshot/cri.image-layers': layers
      .slice(i)
      .map((l) => l.digest)
      .join(','),
    ...overrides,
  };
}

describe('CRI labels (Kubernetes pulls)', () => {
  it('commits each layer as remote (ALREADY_EXISTS) and a container sees the whole image through the lazy mount', async () => {
    const client = snapshotsClient(options.socket);
    try {
      // containerd's metadata layer sends keys "<namespace>/<n>/extract-<random> <chain ID>".
      const first = await client.call('Prepare', { key: `k8s.io/1/extract-1 ${chain[0]}`, parent: '', labels: criLabels(0) });
      expect(first.code, first.details).toBe(grpc.status.ALREADY_EXISTS);
      expect(first.details).toMatch(/served lazily by clip/);
      const second = await client.call('Prepare', {
        key: `k8s.io/2/extract-2 ${chain[1]}`,
        parent: chain[0],
        labels: criLabels(1),
      });
      expect(second.code, second.details).toBe(grpc.status.ALREADY_EXISTS);

      const stat = await client.call('Stat', { key: chain[1] });
      expect(stat.response?.['info']).toMatchObject({
        name: chain[1],
        parent: chain[0],
        kind: 'COMMITTED',
        labels: { 'containerd.io/snapshot/clip.remote': manifestDigest, 'containerd.io/snapshot/cri.image-ref': ref },
      });
      // Its data lives in the registry and the shared cache, not in the snapshot's directory.
      expect((await client.call('Usage', { key: chain[1] })).response).toEqual({ size: 0, inodes: 0 });
      // Nothing was unpacked: the extract keys were never created.
      expect((await client.call('Stat', { key: `k8s.io/1/extract-1 ${chain[0]}` })).code).toBe(grpc.status.NOT_FOUND);

      // The pod's container: overlayfs whose lower directory is the image's lazy mount.
      const container = await client.call('Prepare', { key: 'k8s.io/3/pod-container', parent: chain[1] });
      expect(container.code, container.details).toBe(0);
      const [mount] = (container.response?.['mounts'] ?? []) as Array<{ type: string; options: string[] }>;
      expect(mount?.type).toBe('overlay');
      const lower = mount?.options.find((o) => o.startsWith('lowerdir='))?.slice('lowerdir='.length) ?? '';
      expect(lower.split(':')).toHaveLength(1);
      expect(await readFile(join(lower, 'etc/base.txt'), 'utf8')).toBe('from layer 1\n');
      expect(await readFile(join(lower, 'app/top.txt'), 'utf8')).toBe('from layer 2\n');
      expect(await readFile(join(lower, 'etc/replaced.txt'), 'utf8')).toBe('new\n');

      const metrics = await snapshotter?.metrics();
      expect(metricValue(metrics ?? '', 'clip_snapshotter_remote_layers_total')).toBe(2);
      expect(metricValue(metrics ?? '', 'clip_snapshotter_lazy_mounts')).toBe(1);
      expect(metrics).not.toMatch(/^clip_snapshotter_fallbacks_total\{[^}]*\} [1-9]/m);

      // Remove (containerd's garbage collector) frees the directories and stops the mount.
      for (const key of ['k8s.io/3/pod-container', chain[1], chain[0]])
        expect((await client.call('Remove', { key })).code, `Remove ${key}`).toBe(0);
      for (let i = 0; i < 300 && (await mountsUnder(options.stateDir)).length > 0; i++) await sleep(100);
      expect(await mountsUnder(options.stateDir)).toEqual([]);
      expect(await readdir(join(options.root, 'snapshots'))).toEqual([]);
      expect(metricValue((await snapshotter?.metrics()) ?? '', 'clip_snapshotter_lazy_mounts')).toBe(0);
    } finally {
      client.close();
    }
  }, 120_000);

  it('falls back visibly when the tag moved to another manifest during the pull (cri.manifest-digest)', async () => {
    const client = snapshotsClient(options.socket);
    const other = `sha256:${'e'.repeat(64)}`;
    try {
      const key = `k8s.io/4/extract-4 ${chain[0]}`;
      const prepared = await client.call('Prepare', {
        key,
        parent: '',
        labels: criLabels(0, { 'containerd.io/snapshot/cri.manifest-digest': other }),
      });
      // An ordinary overlay snapshot: containerd unpacks the layer into it.
      expect(prepared.code, prepared.details).toBe(0);
      const [mount] = (prepared.response?.['mounts'] ?? []) as Array<{ type: string; source: string }>;
      expect(mount?.type).toBe('bind');
      expect(await readdir(mount?.source ?? '')).toEqual([]);
      expect(metricValue((await snapshotter?.metrics()) ?? '', 'clip_snapshotter_fallbacks_total{reason="image_changed"}')).toBe(1);
      const logged = (snapshotter?.logs() ?? '').split('\n').filter((l) => l.includes('not lazy'));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(`image=${ref}`);
      expect(logged[0]).toContain('reason=image_changed');
      expect(logged[0]).toContain(other);
      expect((await client.call('Remove', { key })).code).toBe(0);
    } finally {
      client.close();
    }
  }, 60_000);
  it('falls back visibly when the image mount cannot start (mount_failed)', async () => {
    // A state directory that is a regular file: the image mount pool cannot create its mount.
    const broken = join(dir, 'broken-state');
    await writeFile(broken, 'not a directory\n');
    const other = await startSnapshotter({
      socket: join(dir, 'broken.sock'),
      root: join(dir, 'broken-root'),
      stateDir: broken,
      cacheDir: join(dir, 'broken-cache'),
      metricsPort: await freePort(),
    });
    const client = snapshotsClient(join(dir, 'broken.sock'));
    try {
      const prepared = await client.call('Prepare', { key: `k8s.io/5/extract-5 ${chain[0]}`, parent: '', labels: criLabels(0) });
      expect(prepared.code, prepared.details).toBe(0);
      expect(metricValue(await other.metrics(), 'clip_snapshotter_fallbacks_total{reason="mount_failed"}')).toBe(1);
      expect(metricValue(await other.metrics(), 'clip_snapshotter_remote_layers_total')).toBe(0);
      const logged = other
        .logs()
        .split('\n')
        .filter((l) => l.includes('not lazy'));
      expect(logged).toHaveLength(1);
      expect(logged[0]).toContain(`image=${ref}`);
      expect(logged[0]).toContain('reason=mount_failed');
      // Not committed as remote: containerd unpacks into the active snapshot.
      expect((await client.call('Stat', { key: chain[0] })).code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
      await other.stop();
    }
  }, 60_000);
});
