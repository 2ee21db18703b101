// End to end with real parts: Debian's containerd (private root, state and socket) names
// `clip snapshotter` as its proxy snapshotter; images live in a real registry behind a
// byte-counting proxy; `ctr-remote image rpull` and `ctr run` start containers with runc.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDebianImage, type DebianImage } from '@clip/testkit/debian-image';
import { freePort, startRegistry, type RunningRegistry } from '@clip/testkit/registry';
import { skopeoCopy } from '@clip/testkit/tools';
import { CLI, type Containerd, type CountingProxy, metricValue, mountsUnder, run, type SnapshotterProcess, startContainerd, startCountingProxy, startSnapshotter } from './harness.js';

let dir: string;
let registry: RunningRegistry;
let proxy: CountingProxy;
let containerd: Containerd;
let snapshotter: SnapshotterProcess;
let image: DebianImage;
let lazyRef: string;
let plainRef: string;
let snapshotterOptions: Parameters<typeof startSnapshotter>[0];

const layerDigests = () => image.layers.map((l) => l.digest);
const layerBytes = () => image.layers.reduce((sum, l) => sum + l.size, 0);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-snap-'));
  image = await buildDebianImage();
  registry = await startRegistry();
  proxy = await startCountingProxy({ hostname: '127.0.0.1', port: registry.port });
  lazyRef = `${proxy.host}/lazy/debian:v1`;
  plainRef = `${proxy.host}/plain/debian:v1`;
  await run(process.execPath, [CLI, 'publish', image.ref, lazyRef], { timeout: 240_000 });
  // The same image without an archive: containerd must unpack it.
  await skopeoCopy(image.ref, `docker://${plainRef}`);
  snapshotterOptions = { socket: join(dir, 'clip.sock'), root: join(dir, 'snap'), cacheDir: join(dir, 'cache'), metricsPort: await freePort() };
  snapshotter = await startSnapshotter(snapshotterOptions);
  containerd = await startContainerd(join(dir, 'containerd'), snapshotterOptions.socket);
}, 600_000);

afterAll(async () => {
  if (process.env['CLIP_SNAP_DEBUG']) {
    const { writeFile } = await import('node:fs/promises');
    await writeFile('/tmp/snap-debug-snapshotter.log', snapshotter?.logs() ?? '');
    await writeFile('/tmp/snap-debug-containerd.log', containerd?.logs() ?? '');
  }
  await containerd?.ctr(['task', 'ls']).catch(() => '');
  await containerd?.stop();
  await snapshotter?.stop();
  for (const point of (await mountsUnder(dir).catch(() => [])).reverse()) await run('umount', ['-l', point]).catch(() => undefined);
  await proxy?.stop();
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('containerd with clip as remote snapshotter', () => {
  it('rpull fetches no layer bytes, and ctr run starts the container lazily', async () => {
    proxy.served.length = 0;
    await containerd.ctr(['image', 'rpull', '--plain-http', '--snapshotter', 'clip', lazyRef], 'ctr-remote');
    const pulled = proxy.blobBytes(layerDigests());
    expect(pulled).toBeLessThan(layerBytes() * 0.01);

    const out = await containerd.ctr(['run', '--rm', '--snapshotter', 'clip', lazyRef, 'lazy1', 'python3', '-c', 'import json; print(json.dumps({"answer": 6 * 7}))']);
    expect(out.trim()).toBe('{"answer": 42}');
    const fetched = proxy.blobBytes(layerDigests());
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(layerBytes() * 0.5);
    const metrics = await snapshotter.metrics();
    expect(metricValue(metrics, 'clip_snapshotter_remote_layers_total')).toBe(image.layers.length);
    expect(metricValue(metrics, 'clip_snapshotter_lazy_mounts')).toBe(1);
    console.log(JSON.stringify({ layerBytes: layerBytes(), rpullLayerBytes: pulled, runLayerBytes: fetched }));
  }, 300_000);
});
