// Slow the first time on a machine (two mmdebstrap runs + umoci, about 1.5 min here);
// cached under ~/.cache/clip-testkit afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDebianImage, type DebianImage } from '../src/debian-image.js';
import { readTree } from '../src/read-tree.js';
import { runTool, umociUnpack } from '../src/tools.js';

describe('buildDebianImage', () => {
  let image: DebianImage;
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-testkit-debian-'));
    image = await buildDebianImage({ packages: ['python3'] });
  }, 900_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is a two-layer gzip image (base, then the python3 layer)', () => {
    expect(image.layers).toHaveLength(2);
    for (const layer of image.layers) expect(layer.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
  });

  it('is found in the cache the second time, with the same digest', async () => {
    const again = await buildDebianImage({ packages: ['python3'] });
    expect(again.cached).toBe(true);
    expect(again.manifestDigest).toBe(image.manifestDigest);
  });

  it('unpacks with umoci to a rootfs where python3 runs', async () => {
    const rootfs = await umociUnpack(image.umociRef, join(work, 'bundle'));
    const tree = await readTree(rootfs, { hash: false, xattrs: false });
    expect(tree.get('/usr/bin/python3')).toMatchObject({ type: 'symlink' });
    expect(tree.get('/usr/bin/python3.11')).toMatchObject({ type: 'file', mode: 0o755 });
    expect(tree.get('/etc/debian_version')?.type).toBe('file');
    const { stdout } = await runTool('chroot', [rootfs, '/usr/bin/python3', '-c', 'import sys; print(sys.version_info[0])']);
    expect(stdout.toString().trim()).toBe('3');
  });

  it('the base tag alone has no python3', async () => {
    const rootfs = await umociUnpack(`${image.layoutDir}:${image.baseTag}`, join(work, 'base'));
    const tree = await readTree(rootfs, { hash: false, xattrs: false });
    expect(tree.has('/usr/bin/python3')).toBe(false);
    expect(tree.get('/bin')?.type).toBe('symlink'); // merged /usr
  });
});
