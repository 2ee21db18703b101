// The realistic image: Debian bookworm minbase + python3 (two gzip layers, 4 MiB spans),
// mounted by the built cli from nothing but the .clip: the whole tree equals umoci's unpack,
// and python3 runs in a chroot of an overlayfs whose lower layer is the mount.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDebianImage, diffTrees, readTree, type RunningRegistry, startRegistry } from '@clip/testkit';
import { prepareLayout, removeAll, run, sh, startMount, tempDir, type PreparedImage, type RunningMount } from './mount-harness.js';

let work: string;
let registry: RunningRegistry | undefined;
let image: PreparedImage;
let mount: RunningMount | undefined;
let overlay: string | undefined;

beforeAll(async () => {
  work = await tempDir('mount-debian');
  registry = await startRegistry();
  const debian = await buildDebianImage();
  image = await prepareLayout(registry, work, 'debian', { ref: debian.ref, umociRef: debian.umociRef, tag: debian.tag }, 4 * 1024 * 1024);
  mount = await startMount(image.archive, await tempDir('debian-mnt'), ['--cache-dir', join(work, 'cache')]);
}, 900_000);

afterAll(async () => {
  if (overlay) await run('umount', ['-l', overlay]).catch(() => {});
  await mount?.stop();
  await removeAll(mount?.mountpoint);
  await registry?.stop();
  await removeAll(work);
});

describe('Debian + python3 through clip mount', () => {
  it('runs python3 in a chroot of an overlayfs over the mount', async () => {
    overlay = join(work, 'merged');
    const upper = join(work, 'upper');
    const workdir = join(work, 'ovl-work');
    for (const dir of [overlay, upper, workdir]) await mkdir(dir, { recursive: true });
    await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${mount!.mountpoint},upperdir=${upper},workdir=${workdir}`, overlay]);
    const result = await sh(`chroot '${overlay}' /usr/bin/python3 -c 'import json; print(1)'`, 120_000);
    expect(result).toMatchObject({ code: 0, stdout: '1\n' });
    // Writes land in the upper directory, the image stays untouched.
    expect((await sh(`chroot '${overlay}' /bin/sh -c 'echo hi > /etc/written && cat /etc/written'`)).stdout).toBe('hi\n');
    expect((await sh(`test -e '${mount!.mountpoint}/etc/written'`)).code).not.toBe(0);
    await run('umount', [overlay]);
    overlay = undefined;
  }, 180_000);

  it('serves every file exactly as umoci unpacks it', async () => {
    const tree = await readTree(mount!.mountpoint, { concurrency: 4 });
    expect(diffTrees(image.expected, tree)).toEqual([]);
  }, 600_000);
});
