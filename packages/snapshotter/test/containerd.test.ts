// End to end with real parts: Debian's containerd (private root, state and socket) names
// `clip snapshotter` as its proxy snapshotter; images live in a real registry behind the test
// kit's proxy (its log counts the bytes served); `ctr-remote image rpull` and `ctr run` start
// containers with runc.
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildDebianImage,
  type DebianImage,
  type FaultProxy,
  freePort,
  type RunningRegistry,
  skopeoCopy,
  startFaultProxy,
  startRegistry,
} from '@clip/testkit';
import {
  blobBytes,
  CLI,
  type Containerd,
  metricValue,
  mountsUnder,
  run,
  type SnapshotterProcess,
  startContainerd,
  startSnapshotter,
} from './harness.js';
import { snapshotsClient } from './grpc-client.js';

let dir: string;
let registry: RunningRegistry;
let proxy: FaultProxy;
let containerd: Containerd;
let snapshotter: SnapshotterProcess;
let image: DebianImage;
let lazyRef: string;
let plainRef: string;
let plainRef2: string;
let unboundRef: string;
let snapshotterOptions: Parameters<typeof startSnapshotter>[0];

const layerDigests = () => image.layers.map((l) => l.digest);
const layerBytes = () => image.layers.reduce((sum, l) => sum + l.size, 0);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clip-snap-'));
  image = await buildDebianImage();
  registry = await startRegistry();
  proxy = await startFaultProxy({ upstream: { hostname: '127.0.0.1', port: registry.port } });
  lazyRef = `${proxy.host}/lazy/debian:v1`;
  plainRef = `${proxy.host}/plain/debian:v1`;
  await run(process.execPath, [CLI, 'publish', image.ref, lazyRef], { timeout: 240_000 });
  // The same image without an archive: containerd must unpack it.
  await skopeoCopy(image.ref, `docker://${plainRef}`);
  // The base image alone, as a Docker manifest: no archive indexes it (smaller, faster to unpack).
  plainRef2 = `${proxy.host}/plain/debian-base:v2s2`;
  await skopeoCopy(`oci:${image.layoutDir}:${image.baseTag}`, `docker://${plainRef2}`, {
    preserveDigests: false,
    extraArgs: ['--format', 'v2s2'],
  });
  // Published without the binding index: the archive is only a referrer, which the default trust rules refuse.
  unboundRef = `${proxy.host}/unbound/debian-base:v1`;
  await run(process.execPath, [CLI, 'publish', `oci:${image.layoutDir}:${image.baseTag}`, unboundRef, '--no-bind'], { timeout: 240_000 });
  snapshotterOptions = {
    socket: join(dir, 'clip.sock'),
    root: join(dir, 'snap'),
    stateDir: join(dir, 'state'),
    cacheDir: join(dir, 'cache'),
    metricsPort: await freePort(),
  };
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
  for (const { path } of (await mountsUnder(dir).catch(() => [])).reverse()) await run('umount', ['-l', path]).catch(() => undefined);
  await proxy?.stop();
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}, 120_000);

describe('containerd with clip as remote snapshotter', () => {
  it('rpull copies no layer (only ranged reads), and ctr run starts the container lazily', async () => {
    proxy.log.length = 0;
    await containerd.ctr(['image', 'rpull', '--plain-http', '--snapshotter', 'clip', lazyRef], { tool: 'ctr-remote' });
    // The mount may already be fetching the entrypoint's program and libraries (first-run prefetch,
    // in the background): those are range reads of a few spans, never a whole layer.
    const layerGets = proxy.log.filter((r) => r.method === 'GET' && layerDigests().some((d) => r.url.endsWith(`/blobs/${d}`)));
    expect(layerGets.filter((r) => r.status !== undefined && r.status !== 206)).toEqual([]);
    const pulled = blobBytes(proxy.log, layerDigests());
    expect(pulled).toBeLessThan(layerBytes() * 0.1);

    const out = await containerd.ctr([
      'run',
      '--rm',
      '--snapshotter',
      'clip',
      lazyRef,
      'lazy1',
      'python3',
      '-c',
      'import json; print(json.dumps({"answer": 6 * 7}))',
    ]);
    expect(out.trim()).toBe('{"answer": 42}');
    const fetched = blobBytes(proxy.log, layerDigests());
    expect(fetched).toBeGreaterThan(0);
    expect(fetched).toBeLessThan(layerBytes() * 0.5);
    const metrics = await snapshotter.metrics();
    expect(metricValue(metrics, 'clip_snapshotter_remote_layers_total')).toBe(image.layers.length);
    expect(metricValue(metrics, 'clip_snapshotter_lazy_mounts')).toBe(1);
    // The image mount's own counters (bytes fetched, cache), labelled with the image.
    expect(metrics).toMatch(new RegExp(`^clip_[a-z_]+_total\\{image="${lazyRef.replace(/[.]/g, '\\.')}"\\} [1-9]`, 'm'));
    console.log(JSON.stringify({ layerBytes: layerBytes(), rpullLayerBytes: pulled, runLayerBytes: fetched }));

    // `clip run` on the same worker (same state directory) shares the image's mount.
    const clipRun = await run(
      process.execPath,
      [
        CLI,
        'run',
        '--state-dir',
        snapshotterOptions.stateDir,
        '--cache-dir',
        join(dir, 'run-cache'),
        '--json',
        lazyRef,
        '--',
        'cat',
        '/etc/debian_version',
      ],
      { env: { ...process.env, CLIP_ARCHIVE_CACHE: join(dir, 'run-archives') }, timeout: 120_000 },
    );
    expect(clipRun.stdout.trim()).toMatch(/^12\./);
    expect(clipRun.stderr).toMatch(/"mountReused":true/);
    expect(metricValue(await snapshotter.metrics(), 'clip_snapshotter_lazy_mounts')).toBe(1);
  }, 300_000);
});

describe('fallback, restart and removal', () => {
  it('an image without an archive is unpacked normally, runs, and the fallback is logged and counted', async () => {
    // Another namespace: containerd would otherwise find the shared layers already unpacked.
    await containerd.ctr(['image', 'pull', '--plain-http', '--snapshotter', 'clip', plainRef], { namespace: 'fallback' });
    const out = await containerd.ctr(
      ['run', '--rm', '--snapshotter', 'clip', plainRef, 'plain1', 'sh', '-c', 'cat /etc/debian_version; python3 -c "print(7*6)"'],
      { namespace: 'fallback' },
    );
    expect(out.trim().split('\n')[1]).toBe('42');
    expect(out.trim().split('\n')[0]).toMatch(/^12\./);
    const metrics = await snapshotter.metrics();
    expect(metricValue(metrics, 'clip_snapshotter_fallbacks_total{reason="missing_labels"}')).toBe(1);
    expect(snapshotter.logs()).toMatch(/msg="not lazy: containerd unpacks this image" .*reason=missing_labels/);

    // rpull of an image nobody published an archive for: no_archive, still unpacked and run.
    await containerd.ctr(['image', 'rpull', '--plain-http', '--snapshotter', 'clip', plainRef2], {
      tool: 'ctr-remote',
      namespace: 'fallback2',
    });
    const out2 = await containerd.ctr(['run', '--rm', '--snapshotter', 'clip', plainRef2, 'plain2', 'cat', '/etc/debian_version'], {
      namespace: 'fallback2',
    });
    expect(out2.trim()).toMatch(/^12\./);
    const after = await snapshotter.metrics();
    expect(metricValue(after, 'clip_snapshotter_fallbacks_total{reason="no_archive"}')).toBe(1);
    expect(snapshotter.logs()).toMatch(new RegExp(`not lazy.*image=${plainRef2.replace(/[.]/g, '\\.')} reason=no_archive`));

    // An archive nothing binds to the image: refused like clip mount refuses it, and said so.
    await containerd.ctr(['image', 'rpull', '--plain-http', '--snapshotter', 'clip', unboundRef], {
      tool: 'ctr-remote',
      namespace: 'fallback3',
    });
    const out3 = await containerd.ctr(['run', '--rm', '--snapshotter', 'clip', unboundRef, 'plain3', 'cat', '/etc/debian_version'], {
      namespace: 'fallback3',
    });
    expect(out3.trim()).toMatch(/^12\./);
    expect(metricValue(await snapshotter.metrics(), 'clip_snapshotter_fallbacks_total{reason="untrusted_archive"}')).toBe(1);
  }, 300_000);

  it("a container's reads survive SIGKILLs of its image mount's serving process", async () => {
    // Hash thousands of files of the lazy image (mostly never read yet) in a container while the
    // serving process of the snapshotter's image mount is SIGKILLed twice; the same walk on the
    // unpacked image (fallback namespace) gives the expected hashes.
    const walk = 'find /usr -type f | sort | head -n 3000 | xargs sha256sum';
    const expected = await containerd.ctr(['run', '--rm', '--snapshotter', 'clip', plainRef, 'plainwalk', 'sh', '-c', walk], {
      namespace: 'fallback',
    });
    const gate = join(dir, 'walk');
    await mkdir(gate);
    const logs = async () => {
      const mountsDir = join(snapshotterOptions.stateDir, 'mounts');
      const keys = await readdir(mountsDir);
      return (await Promise.all(keys.map((k) => readFile(join(mountsDir, k, 'server.log'), 'utf8').catch(() => '')))).join('');
    };
    const servingPids = async () => [...(await logs()).matchAll(/msg="serving reads" pid=(\d+)/g)].map((m) => Number(m[1]));
    const done = containerd.ctr([
      'run',
      '--rm',
      '--snapshotter',
      'clip',
      '--mount',
      `type=bind,src=${gate},dst=/walk,options=rbind:rw`,
      lazyRef,
      'lazywalk',
      'sh',
      '-c',
      `${walk} >/walk/out 2>/walk/err; echo $? >/walk/code`,
    ]);
    const lines = async () => (await readFile(join(gate, 'out'), 'utf8').catch(() => '')).split('\n').length - 1;
    const killedAt: number[] = [];
    const killed: number[] = [];
    for (const at of [500, 1500]) {
      const deadline = Date.now() + 120_000;
      while ((await lines()) < at && Date.now() < deadline) await sleep(10);
      let pid: number | undefined;
      while ((pid === undefined || killed.includes(pid)) && Date.now() < deadline) {
        pid = (await servingPids()).at(-1);
        if (pid === undefined || killed.includes(pid)) await sleep(10);
      }
      expect(pid).toBeDefined();
      expect(killed).not.toContain(pid);
      killedAt.push(await lines());
      process.kill(pid!, 'SIGKILL');
      killed.push(pid!);
    }
    await done;
    expect(await readFile(join(gate, 'err'), 'utf8')).toBe('');
    expect((await readFile(join(gate, 'code'), 'utf8')).trim()).toBe('0');
    const got = await readFile(join(gate, 'out'), 'utf8');
    expect(got.split('\n').length).toBe(expected.split('\n').length);
    expect(got.trim() === expected.trim()).toBe(true);
    console.log(`snapshotter mount survive: ${got.trim().split('\n').length} files hashed, all right; killed at ${killedAt.join(', ')}`);
    expect(killedAt.every((n) => n < got.trim().split('\n').length)).toBe(true);
    expect((await logs()).match(/serving process died; starting another on the same connection/g)?.length).toBe(2);
    expect(snapshotter.logs()).not.toMatch(/mount server of the image is gone/);
  }, 300_000);

  it('survives a crash of the snapshotter (and of its image mount) between two runs', async () => {
    const names = async () => {
      const client = snapshotsClient(snapshotterOptions.socket);
      const listed = (await client.list([])).response?.['info'] as Array<{ name: string; kind: string; parent: string }>;
      client.close();
      return listed.map((i) => `${i.kind} ${i.name} <- ${i.parent}`).sort();
    };
    const before = await names();
    expect(before.length).toBeGreaterThan(4);
    // kill -9: no clean shutdown, the socket file stays behind; the metadata must be intact.
    await snapshotter.stop('SIGKILL');
    // Stop the image mount too, as a reboot would: the next container must bring it back.
    const mountsDir = join(snapshotterOptions.stateDir, 'mounts');
    const keys = await readdir(mountsDir);
    expect(keys.length).toBe(1);
    for (const key of keys)
      process.kill((JSON.parse(await readFile(join(mountsDir, key, 'server.json'), 'utf8')) as { pid: number }).pid, 'SIGTERM');
    for (let i = 0; i < 300 && (await mountsUnder(snapshotterOptions.stateDir)).length > 0; i++) await sleep(100);
    expect(await mountsUnder(snapshotterOptions.stateDir)).toEqual([]);

    snapshotter = await startSnapshotter(snapshotterOptions);
    expect(await names()).toEqual(before);
    // containerd redials its proxy plugins with a backoff of at most 3 s.
    for (let i = 0; i < 50; i++) {
      if (
        await containerd.ctr(['snapshot', '--snapshotter', 'clip', 'ls']).then(
          () => true,
          () => false,
        )
      )
        break;
      await sleep(200);
    }
    const out = await containerd.ctr([
      'run',
      '--rm',
      '--snapshotter',
      'clip',
      lazyRef,
      'lazy2',
      'python3',
      '-c',
      'import sqlite3; print(sqlite3.sqlite_version_info[0])',
    ]);
    expect(out.trim()).toBe('3');
    expect(snapshotter.logs()).toMatch(/mount server of the image is gone; replacing it/);
  }, 300_000);

  it("malformed requests get containerd's gRPC errors and the server keeps serving", async () => {
    const client = snapshotsClient(snapshotterOptions.socket);
    try {
      const top = (await client.list([`labels."containerd.io/snapshot/clip.remote"`])).response?.['info'] as Array<{
        name: string;
        parent: string;
        labels: Record<string, string>;
      }>;
      expect(top.length).toBe(2);
      const layer1 = top.find((i) => i.parent === '') as { name: string; labels: Record<string, string> };
      const layer2 = top.find((i) => i.parent !== '') as { name: string; labels: Record<string, string> };
      const [digest1, digest2] = layerDigests();
      const criLabels = (target: string, layer: string) => ({
        'containerd.io/snapshot.ref': target,
        'containerd.io/snapshot/cri.image-ref': lazyRef,
        'containerd.io/snapshot/cri.layer-digest': layer,
      });
      const cases: Array<[string, string, Record<string, unknown>, number, RegExp]> = [
        ['unknown key', 'Stat', { key: 'no-such-key' }, grpc.status.NOT_FOUND, /does not exist/],
        ['unknown mounts', 'Mounts', { key: 'no-such-key' }, grpc.status.NOT_FOUND, /does not exist/],
        [
          'unknown parent',
          'Prepare',
          { key: 'k1', parent: 'no-such-parent' },
          grpc.status.NOT_FOUND,
          /parent snapshot "no-such-parent" does not exist/,
        ],
        ['empty key', 'Prepare', { key: '', parent: '' }, grpc.status.INVALID_ARGUMENT, /must not be empty/],
        ['commit of unknown key', 'Commit', { name: 'n1', key: 'no-such-key' }, grpc.status.NOT_FOUND, /does not exist/],
        ['commit of a committed snapshot', 'Commit', { name: 'n2', key: layer1.name }, grpc.status.FAILED_PRECONDITION, /not active/],
        ['mounts of a committed snapshot', 'Mounts', { key: layer1.name }, grpc.status.FAILED_PRECONDITION, /committed/],
        ['remove of a parent', 'Remove', { key: layer1.name }, grpc.status.FAILED_PRECONDITION, /is its child/],
        ['existing key', 'Prepare', { key: layer1.name, parent: '' }, grpc.status.ALREADY_EXISTS, /already exists/],
        [
          'immutable field',
          'Update',
          { info: { name: layer1.name }, update_mask: { paths: ['parent'] } },
          grpc.status.INVALID_ARGUMENT,
          /only labels/,
        ],
        [
          'labels pointing at another image',
          'Prepare',
          { key: 'k2', parent: '', labels: criLabels(`sha256:${'1'.repeat(64)}`, digest1 as string) },
          grpc.status.INVALID_ARGUMENT,
          /point at another image/,
        ],
        [
          'layer the image does not have',
          'Prepare',
          { key: 'k3', parent: '', labels: criLabels(layer1.name, `sha256:${'2'.repeat(64)}`) },
          grpc.status.INVALID_ARGUMENT,
          /does not have/,
        ],
        [
          'wrong parent',
          'Prepare',
          { key: 'k4', parent: '', labels: criLabels(layer2.name, digest2 as string) },
          grpc.status.INVALID_ARGUMENT,
          /wrong parent/,
        ],
      ];
      for (const [what, method, request, code, message] of cases) {
        const result = await client.call(method, request);
        expect({ what, code: result.code }).toEqual({ what, code });
        expect(result.details).toMatch(message);
      }
      expect((await client.list(['bogus==1'])).code).toBe(grpc.status.INVALID_ARGUMENT);
      // Still serving, nothing was created by the refused requests.
      const stat = await client.call('Stat', { key: layer1.name });
      expect(stat.code).toBe(0);
      for (const key of ['k1', 'k2', 'k3', 'k4', '']) expect((await client.call('Stat', { key })).code).toBe(grpc.status.NOT_FOUND);
    } finally {
      client.close();
    }
  }, 60_000);

  it('removing images and containers leaves no mounts and frees the snapshot directories', async () => {
    for (const [namespace, ref] of [
      ['cliptest', lazyRef],
      ['fallback', plainRef],
      ['fallback2', plainRef2],
      ['fallback3', unboundRef],
    ] as const) {
      await containerd.ctr(['image', 'rm', '--sync', ref], { namespace });
    }
    // containerd's garbage collector removes the snapshots and calls Cleanup.
    const busy = async () => (await mountsUnder(dir)).length > 0 || (await readdir(join(snapshotterOptions.root, 'snapshots'))).length > 0;
    for (let i = 0; i < 300 && (await busy()); i++) await sleep(100);
    expect(await mountsUnder(dir)).toEqual([]);
    expect(await readdir(join(snapshotterOptions.root, 'snapshots'))).toEqual([]);
    expect(metricValue(await snapshotter.metrics(), 'clip_snapshotter_lazy_mounts')).toBe(0);
  }, 120_000);
});
