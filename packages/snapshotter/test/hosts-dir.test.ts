// Mirrors (containerd hosts.toml) reach the image mounts of `clip run`, `clip bundle` and
// `clip snapshotter`: an origin registry, Debian's docker-registry in proxy mode as the
// mirror, the busybox test image. Each command gets its own state and span cache directories
// (its own image mount), reads a file of the image, and the mirror's log shows the layer read.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type RunningRegistry, startRegistry } from '@clip/testkit';
import {
  buildBusyboxLayout,
  CLI,
  cleanupStateDir,
  cli,
  run,
  startRuntimeWorld,
  type RuntimeTestWorld,
} from '../../runtime/test/helpers.js';
import { chainIds } from '../src/decision.js';
import { snapshotsClient } from './grpc-client.js';
import { mountsUnder, type SnapshotterProcess, startSnapshotter } from './harness.js';

let world: RuntimeTestWorld;
let mirror: RunningRegistry;
let hostsDir: string;
let image: string;
let layer: { digest: string; diffId: string };
const stateDirs: string[] = [];

/** Layer blob GETs the mirror received (with containerd's ?ns= query). */
function mirrorLayerReads(): number {
  return [...mirror.logs().matchAll(new RegExp(`"GET /v2/test/mirrored/blobs/${layer.digest}\\?ns=127\\.0\\.0\\.1%3A\\d+ HTTP`, 'g'))]
    .length;
}

function stateDir(name: string): string {
  const dir = join(world.work, `state-${name}`);
  stateDirs.push(dir);
  return dir;
}

beforeAll(async () => {
  world = await startRuntimeWorld('hosts-dir');
  mirror = await startRegistry({ proxy: { remoteUrl: world.registry.url } });
  const layout = await buildBusyboxLayout(join(world.work, 'mirrored-layout'));
  layer = layout.images[0]!.layers[0]!;
  image = `${world.registry.host}/test/mirrored:v1`;
  await run(process.execPath, [CLI, 'publish', layout.ref, image], { env: { ...process.env, CLIP_LOG_LEVEL: 'warn' } });
  hostsDir = join(world.work, 'certs.d');
  await mkdir(join(hostsDir, `127.0.0.1_${world.registry.port}_`), { recursive: true });
  await writeFile(
    join(hostsDir, `127.0.0.1_${world.registry.port}_`, 'hosts.toml'),
    `server = "http://${world.registry.host}"\n\n[host."http://${mirror.host}"]\n  capabilities = ["pull", "resolve"]\n`,
  );
}, 120_000);

afterAll(async () => {
  for (const dir of stateDirs) await cleanupStateDir(dir);
  await mirror?.stop();
  await world?.close();
}, 60_000);

describe('--hosts-dir through the image mounts', () => {
  it('clip run --hosts-dir reads the layer through the mirror', async () => {
    const before = mirrorLayerReads();
    const state = stateDir('run');
    const result = await cli([
      'run',
      '--state-dir',
      state,
      '--cache-dir',
      join(world.work, 'cache-run'),
      '--hosts-dir',
      hostsDir,
      image,
      '--',
      'cat',
      '/work/data.txt',
    ]);
    expect(result.stderr).toMatch(/msg="container started"/);
    expect(result.stdout).toBe('image data\n');
    expect(result.code).toBe(0);
    expect(mirrorLayerReads()).toBeGreaterThan(before);
  }, 60_000);

  it('clip bundle with CLIP_HOSTS_DIR (no flag) reads through the mirror; --hosts-dir "" turns it off', async () => {
    const before = mirrorLayerReads();
    const state = stateDir('bundle');
    const bundle = join(world.work, 'bundle');
    const made = await cli(['bundle', '--state-dir', state, '--cache-dir', join(world.work, 'cache-bundle'), image, bundle], {
      CLIP_HOSTS_DIR: hostsDir,
    });
    expect(made.code, made.stderr).toBe(0);
    try {
      expect(await readFile(join(bundle, 'rootfs/work/data.txt'), 'utf8')).toBe('image data\n');
      expect(mirrorLayerReads()).toBeGreaterThan(before);
    } finally {
      expect((await cli(['bundle', '--remove', bundle, '--state-dir', state])).code).toBe(0);
    }

    // The same with mirrors turned off: the mirror sees nothing more.
    const off = mirrorLayerReads();
    const state2 = stateDir('bundle-off');
    const bundle2 = join(world.work, 'bundle-off');
    const plain = await cli(
      ['bundle', '--state-dir', state2, '--cache-dir', join(world.work, 'cache-bundle-off'), '--hosts-dir', '', image, bundle2],
      { CLIP_HOSTS_DIR: hostsDir },
    );
    expect(plain.code, plain.stderr).toBe(0);
    try {
      expect(await readFile(join(bundle2, 'rootfs/work/data.txt'), 'utf8')).toBe('image data\n');
      expect(mirrorLayerReads()).toBe(off);
    } finally {
      expect((await cli(['bundle', '--remove', bundle2, '--state-dir', state2])).code).toBe(0);
    }
  }, 90_000);

  it('clip snapshotter --hosts-dir: a remote snapshot of the layer is read through the mirror', async () => {
    const before = mirrorLayerReads();
    const dir = join(world.work, 'snap');
    const state = stateDir('snapshotter');
    let snapshotter: SnapshotterProcess | undefined;
    const client = () => snapshotsClient(join(dir, 'clip.sock'));
    try {
      snapshotter = await startSnapshotter({
        socket: join(dir, 'clip.sock'),
        root: join(dir, 'root'),
        stateDir: state,
        cacheDir: join(dir, 'cache'),
        metricsPort: await freePort(),
        args: ['--hosts-dir', hostsDir],
      });
      const grpc = client();
      try {
        const [chainId] = chainIds([layer.diffId]);
        // containerd's unpack of the layer: committed remotely (ALREADY_EXISTS), nothing downloaded.
        const prepared = await grpc.call('Prepare', {
          key: `extract-1 ${chainId}`,
          parent: '',
          labels: {
            'containerd.io/snapshot.ref': chainId,
            'containerd.io/snapshot/cri.image-ref': image,
            'containerd.io/snapshot/cri.layer-digest': layer.digest,
          },
        });
        expect(prepared.code, prepared.details).toBe(6);
        const view = await grpc.call('View', { key: 'view-1', parent: chainId });
        expect(view.code, view.details).toBe(0);
        const [mount] = view.response!['mounts'] as Array<{ type: string; source: string }>;
        expect(mount!.type).toBe('bind');
        expect(await readFile(join(mount!.source, 'work/data.txt'), 'utf8')).toBe('image data\n');
        expect(mirrorLayerReads()).toBeGreaterThan(before);
        expect((await grpc.call('Remove', { key: 'view-1' })).code).toBe(0);
      } finally {
        grpc.close();
      }
    } finally {
      await snapshotter?.stop();
      for (const { path } of (await mountsUnder(dir)).reverse()) await run('umount', ['-l', path]).catch(() => undefined);
    }
  }, 90_000);
});
