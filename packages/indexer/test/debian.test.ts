// A real distribution image (Debian bookworm minbase + python3, two gzip layers made by
// umoci, cached by the testkit): push it, index the local layout with a storage reference,
// and compare every path's metadata and content hash with `umoci unpack`.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readArchiveFile } from '@clip/archive-format';
import {
  buildDebianImage,
  type DebianImage,
  diffTrees,
  readTree,
  type RunningRegistry,
  skopeoCopy,
  startRegistry,
  umociUnpack,
} from '@clip/testkit';
import { createArchive } from '../src/create-archive.js';
import { archiveTree, uncompressedLayer } from './helpers/archive-tree.js';

let work: string;
let registry: RunningRegistry | undefined;
let image: DebianImage;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-indexer-debian-'));
  image = await buildDebianImage();
  registry = await startRegistry();
}, 900_000);

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

it('Debian + python3: the archive tree equals umoci unpack (metadata, hardlinks, xattrs, content hashes)', async () => {
  const storageRef = `${registry!.host}/debian/python3:${image.tag}`;
  await skopeoCopy(image.ref, `docker://${storageRef}`);
  const output = join(work, 'debian.clip');
  const logBefore = registry!.logs();
  const summary = await createArchive({ source: image.ref, storageRef, output });
  expect(registry!.logs()).toBe(logBefore);
  expect(summary.layers).toBe(2);
  expect(summary.files).toBeGreaterThan(2000);

  const archive = await readArchiveFile(output);
  expect(archive.metadata.storage?.manifestDigest).toBe(image.manifestDigest);
  expect(archive.lookup('/usr/bin/python3')?.type).toBe('symlink');

  const layers = await Promise.all(
    archive.layers.map((layer) => uncompressedLayer(join(image.layoutDir, 'blobs', 'sha256', layer.digest.slice(7)), layer.compression)),
  );
  const tree = archiveTree(archive, layers);
  layers.length = 0;
  const rootfs = await umociUnpack(image.umociRef, join(work, 'bundle'));
  try {
    const unpacked = await readTree(rootfs);
    expect(diffTrees(unpacked, tree)).toEqual([]);
  } finally {
    await rm(join(work, 'bundle'), { recursive: true, force: true });
  }

  // Deterministic on a real image too.
  const again = join(work, 'debian-again.clip');
  await createArchive({ source: image.ref, storageRef, output: again });
  expect(Buffer.compare(await readFile(again), await readFile(output))).toBe(0);
}, 600_000);
