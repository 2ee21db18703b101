// A realistic image: Debian + python3 (testkit, built once and cached) published, then a
// fresh worker mounts it by reference and runs python3 from the mount in a chroot.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDebianImage, type DebianImage, type RunningRegistry, startRegistry, testkitCacheDir } from '@clip/testkit';
import { removeAll, runCli, sh, startMount, tempDir, type RunningMount } from './mount-harness.js';

let work: string;
let registry: RunningRegistry;
let image: DebianImage;
let mount: RunningMount | undefined;

beforeAll(async () => {
  // Resolve the testkit cache before this file points XDG_CACHE_HOME at a fresh worker's cache.
  image = await buildDebianImage({ packages: ['python3'], cacheDir: testkitCacheDir() });
  work = await tempDir('publish-debian');
  registry = await startRegistry();
}, 900_000);

afterAll(async () => {
  await mount?.stop();
  if (mount) await removeAll(mount.mountpoint);
  await registry?.stop();
  await removeAll(work);
});

describe('clip publish (Debian + python3)', () => {
  it('publishes the image and a fresh worker runs python3 from a mount of the reference', async () => {
    const target = `${registry.host}/debian/python:3`;
    const published = await runCli(['publish', image.ref, target, '--json', '--no-progress'], { timeoutMs: 600_000 });
    expect(published.stderr).not.toMatch(/clip: (internal )?error/);
    const summary = JSON.parse(published.stdout.toString()) as {
      manifestDigest: string;
      indexNetworkBytes: number;
      layerBytes: number;
      bytesIndexed: number;
    };
    expect(summary).toMatchObject({ manifestDigest: image.manifestDigest, indexNetworkBytes: 0 });
    expect(summary.bytesIndexed).toBe(image.layers.reduce((sum, l) => sum + l.size, 0));

    process.env['XDG_CACHE_HOME'] = join(work, 'fresh-worker-cache');
    delete process.env['CLIP_ARCHIVE_CACHE'];
    mount = await startMount(target, await tempDir('mnt-debian'));
    const python = await sh(
      `chroot '${mount.mountpoint}' /usr/bin/python3 -c 'import json, hashlib; print(json.dumps({"ok": hashlib.sha256(b"clip").hexdigest()[:8]}))'`,
      120_000,
    );
    expect(python.stderr).toBe('');
    expect(JSON.parse(python.stdout)).toEqual({ ok: createHash('sha256').update('clip').digest('hex').slice(0, 8) });
    const metrics = await mount.stop();
    // Lazy: far less than the image was fetched to start python.
    expect(metrics?.['fetchBytes']).toBeGreaterThan(0);
    expect(metrics?.['fetchBytes']).toBeLessThan(summary.layerBytes);
  }, 900_000);
});
